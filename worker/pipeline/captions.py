"""Captions above or below a drawing ("FRONT VIEW", a style number) and notes beside it
("100% COTTON", a Pantone code) left out of the trim (exploratory round 7, finding 2).

The trim crops to the bounding box of all the ink on the page, so a line of text under the
drawing, or a block of notes beside it, shrank the drawing on the canvas and put the text
beside it. Rows of ink separated by blank rows form bands; the band with the most ink is the
drawing, and a band that is small beside it (at most CAPTION_HEIGHT of its height and
CAPTION_INK of its ink) and set apart from it by a clear gap is a caption, cleared before
the trim measures its box. Then the same across columns: a band beside the drawing, at most
NOTES_WIDTH of its width and CAPTION_INK of its ink, whose ink lies in lines of text (rows of ink
split by blank rows, each at most CAPTION_HEIGHT of the drawing's height), is a block of
notes; a second garment beside the first is one tall band, not lines, and stays. A drawing's
own parts are joined by their outlines (thin ones too: the bands are found on ink that keeps
1 px lines), so a drawing is one band. Text written over the drawing that runs off its side
(a "SAMPLE" block, a label) touches it, so it makes no band of its own: its lines reach out
past the drawing over a few rows each, where the drawing's own edge holds over many
(`side_edges`). numpy only.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

CAPTION_GAP = 0.02  # blank rows (columns) between a caption (notes) and the drawing, as a share of the page
CAPTION_HEIGHT = 0.15  # a caption band, or a line of notes, is at most this share of the drawing's height
CAPTION_INK = 0.5  # ... and holds at most this share of its ink (a light garment's fill is not ink)
NOTES_WIDTH = 1.5  # a block of notes is at most this share of the drawing band's width
OVERFLOW_ROWS = 0.08  # ink reaching out sideways over fewer rows than this share of the height,
OVERFLOW_REACH = 0.04  # ... more than this share of the width past the rest, is text run off it


def without_captions(ink: np.ndarray, lines: np.ndarray | None = None) -> np.ndarray:
    """(h, w) bool ink of a page -> the same with the captions above or below the drawing and
    the notes beside it cleared; `ink` itself when there are none. Bands are found on `lines`
    where given: ink that keeps the thin lines a filtered `ink` loses, which join a sketch
    into one band."""
    captions = _small_bands(ink, lines)
    if captions:
        ink, lines = _cleared(ink, captions), None if lines is None else _cleared(lines, captions)
    notes = _small_bands(ink.T, None if lines is None else lines.T, notes=True)
    return _cleared(ink.T, notes).T if notes else ink


def _bands(present: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """(n,) bool -> [start, stop) runs of `present`, runs closer than `gap` joined."""
    at = np.flatnonzero(present)
    if at.size == 0:
        return []
    return [(int(b[0]), int(b[-1]) + 1) for b in np.split(at, np.flatnonzero(np.diff(at) > gap) + 1)]


def _small_bands(ink: np.ndarray, lines: np.ndarray | None,
                 notes: bool = False) -> list[tuple[int, int]]:
    """Bands of rows of `ink` that are captions of the band with the most ink (`notes`: of
    the transposed page, so bands of columns that are blocks of notes)."""
    bands = _bands((ink if lines is None else lines | ink).any(axis=1),
                   max(3, math.ceil(CAPTION_GAP * ink.shape[0])))
    if len(bands) < 2:
        return []
    amounts = [int(ink[start:stop].sum()) for start, stop in bands]
    main = int(np.argmax(amounts))
    drawing = ink[bands[main][0]:bands[main][1]]
    size = bands[main][1] - bands[main][0]
    return [(start, stop) for i, (start, stop) in enumerate(bands)
            if i != main and amounts[i] <= CAPTION_INK * amounts[main]
            and (_text_lines(ink[start:stop], drawing) if notes
                 else stop - start <= CAPTION_HEIGHT * size)]


def _text_lines(block: np.ndarray, drawing: np.ndarray) -> bool:
    """Is this band of columns (transposed) lines of text beside `drawing`: at most NOTES_WIDTH
    of its width, its rows of ink split by blank rows into lines each at most CAPTION_HEIGHT
    of its height?"""
    if block.shape[0] > NOTES_WIDTH * drawing.shape[0]:
        return False
    tall = np.flatnonzero(drawing.any(axis=0))
    height = tall[-1] + 1 - tall[0]
    lines = _bands(block.any(axis=0), 1)
    return bool(lines) and all(stop - start <= CAPTION_HEIGHT * height for start, stop in lines)


def _cleared(ink: np.ndarray, bands: list[tuple[int, int]]) -> np.ndarray:
    kept = ink.copy()
    for start, stop in bands:
        kept[start:stop] = False
    return kept


def side_edges(ink: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[int, int]:
    """The drawing's first and last columns: those of `cols` (the columns with ink; `rows`
    likewise), or, where lines of text written over the drawing run off its side, the
    farthest columns its ink reaches over OVERFLOW_ROWS of its height at a stretch. A line of
    text is a few rows tall and the rows between lines are blank out there; a sleeve or a
    flared hem holds its reach over many rows (the first and last rows count as that many,
    so a hem's corners stay). Moved in only where three or more lines of words reach more
    than OVERFLOW_REACH of the width past that (`_lines`), and never past half the ink."""
    first, last = int(cols[0]), int(cols[-1])
    band = ink[rows[0]:rows[-1] + 1] & np.isin(np.arange(ink.shape[1]), cols)
    window = max(2, round(OVERFLOW_ROWS * band.shape[0]))
    has = band.any(axis=1)
    starts = np.where(has, band.argmax(axis=1), ink.shape[1])
    ends = np.where(has, ink.shape[1] - 1 - band[:, ::-1].argmax(axis=1), -1)
    pad = (window - 1, window - 1)
    start = int(sliding_window_view(np.pad(starts, pad, mode="edge"), window).max(axis=1).min())
    end = int(sliding_window_view(np.pad(ends, pad, mode="edge"), window).min(axis=1).max())
    reach = OVERFLOW_REACH * (last + 1 - first)
    start = start if _lines(starts < start - reach, band[:, :max(start, 0)][:, ::-1]) else first
    end = end if _lines(ends > end + reach, band[:, end + 1:]) else last
    if end <= start or 2 * band[:, start:end + 1].sum() < band.sum():
        return first, last
    return start, end


def _lines(beyond: np.ndarray, past: np.ndarray) -> bool:
    """Are these lines of text: three or more runs of rows reach out (`beyond`), each with its
    ink out there (`past`: the columns past the edge, outward) in two or more pieces, words?
    A scalloped or ruffled side, a sleeve cut by a crop, or an outline the median filter broke
    into dashes reaches out in one piece a run."""
    return sum(len(_bands(past[a:b].any(axis=0), 1)) >= 2 for a, b in _bands(beyond, 1)) >= 3
