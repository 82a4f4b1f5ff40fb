"""Appearance features computed without the model, from the canvas the model sees: the
garment's silhouette (its outline filled, so a line sketch and a coloured drawing agree) and
its colours. They weigh the garment type and the palette beside the model's structure.

Pillow + numpy. Each function: (224, 224, 3) uint8 canvas -> (dims,) float32.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SILHOUETTE_SIDE = 12  # the filled outline, area-averaged onto 12 x 12 cells
COLOUR_BINS = 4  # per channel: a 4 x 4 x 4 histogram of the drawing's pixels
INK = 235  # a pixel with a channel darker than this belongs to the drawing
PAPER = 245  # pixels lighter than this in every channel are paper, not colour
SKETCH_COVERAGE = 0.5  # a drawing that colours less of its outline is a line sketch of the flat


def _span(ink: np.ndarray) -> np.ndarray:
    """(h, w) bool -> (h, w) bool: each row filled from its first ink pixel to its last."""
    cols = np.arange(ink.shape[1])
    first = ink.argmax(axis=1)
    last = ink.shape[1] - 1 - ink[:, ::-1].argmax(axis=1)
    return ink.any(axis=1)[:, None] & (cols >= first[:, None]) & (cols <= last[:, None])


def silhouette(canvas: np.ndarray) -> np.ndarray:
    """(144,) the share of each cell inside the garment: what lies between ink both along
    its row and along its column (a filled outline; the gap between trouser legs stays out)."""
    inside = _inside(canvas)
    cells = Image.fromarray(inside.astype(np.uint8) * 255).resize(
        (SILHOUETTE_SIDE, SILHOUETTE_SIDE), Image.Resampling.BOX)
    return np.asarray(cells, np.float32).ravel() / 255.0


def _inside(canvas: np.ndarray) -> np.ndarray:
    ink = (canvas < INK).any(-1)
    return _span(ink) & _span(ink.T).T


def coverage(canvas: np.ndarray) -> float:
    """The share of the garment's filled outline that is drawn in (not paper): about 1 for a
    coloured drawing, 0.1-0.2 for a line sketch (outlines only)."""
    inside = _inside(canvas)
    return float(((canvas < PAPER).any(-1) & inside).sum() / max(1, inside.sum()))


def is_sketch(canvas: np.ndarray) -> bool:
    """A line sketch: its colours and fills say nothing of the design it draws, its outline
    does (docs/quality.md: such queries are matched by the silhouette alone)."""
    return coverage(canvas) < SKETCH_COVERAGE


def sketched(canvases: tuple[np.ndarray | None, ...]) -> tuple[bool, ...]:
    """Per side (None: the query has no such side): is it a line sketch?"""
    return tuple(c is not None and is_sketch(c) for c in canvases)


def colour_histogram(canvas: np.ndarray) -> np.ndarray:
    """(64,) square roots of the shares of the drawing's pixels in each colour bin."""
    pixels = canvas.reshape(-1, 3)
    pixels = pixels[(pixels < PAPER).any(-1)]
    step = 256 // COLOUR_BINS
    index = (pixels[:, 0] // step * COLOUR_BINS + pixels[:, 1] // step) * COLOUR_BINS \
        + pixels[:, 2] // step
    counts = np.bincount(index.astype(np.int64), minlength=COLOUR_BINS ** 3)
    return np.sqrt(counts / max(1, len(pixels))).astype(np.float32)


def appearance(canvases: np.ndarray) -> np.ndarray:
    """(n, 224, 224, 3) uint8 -> (n, 144 + 64) float32: silhouette, then colours."""
    return np.stack([np.concatenate([silhouette(c), colour_histogram(c)]) for c in canvases])


BLOCKS = (SILHOUETTE_SIDE ** 2, COLOUR_BINS ** 3)  # sizes of the blocks `appearance` returns
