"""Captions above or below a drawing ("FRONT VIEW", a style number) left out of the trim
(exploratory round 7, finding 2, its last part).

The trim crops to the bounding box of all the ink on the page, so a line of text under the
drawing shrank the drawing on the canvas and put the text beside it. Rows of ink separated
by blank rows form bands; the band with the most ink is the drawing, and a band that is
small beside it (at most CAPTION_HEIGHT of its height and CAPTION_INK of its ink) and set
apart from it by a clear gap is a caption, cleared before the trim measures its box. A
drawing's own parts are joined by their outlines (thin ones too: the bands are found on ink
that keeps 1 px lines), so a drawing is one band; a caption beside the drawing (to its left
or right) is not looked for. numpy only.
"""

from __future__ import annotations

import math

import numpy as np

CAPTION_GAP = 0.02  # blank rows between a caption and the drawing, as a share of the page's height
CAPTION_HEIGHT = 0.15  # a caption band is at most this share of the drawing band's height
CAPTION_INK = 0.5  # ... and holds at most this share of its ink (a light garment's fill is not ink)


def without_captions(ink: np.ndarray, lines: np.ndarray | None = None) -> np.ndarray:
    """(h, w) bool ink of a page -> the same with the caption bands above or below the drawing
    cleared; `ink` itself when there are none. Bands are found on `lines` where given: ink
    that keeps the thin lines a filtered `ink` loses, which join a sketch into one band."""
    inked = np.flatnonzero((ink if lines is None else lines | ink).any(axis=1))
    if inked.size == 0:
        return ink
    gap = max(3, math.ceil(CAPTION_GAP * ink.shape[0]))
    bands = [(int(b[0]), int(b[-1]) + 1)
             for b in np.split(inked, np.flatnonzero(np.diff(inked) > gap) + 1)]
    if len(bands) == 1:
        return ink
    amounts = [int(ink[top:bottom].sum()) for top, bottom in bands]
    main = int(np.argmax(amounts))
    height = bands[main][1] - bands[main][0]
    captions = [(top, bottom) for i, (top, bottom) in enumerate(bands)
                if i != main and bottom - top <= CAPTION_HEIGHT * height
                and amounts[i] <= CAPTION_INK * amounts[main]]
    if not captions:
        return ink
    kept = ink.copy()
    for top, bottom in captions:
        kept[top:bottom] = False
    return kept
