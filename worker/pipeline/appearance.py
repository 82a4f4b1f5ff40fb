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


def _span(ink: np.ndarray) -> np.ndarray:
    """(h, w) bool -> (h, w) bool: each row filled from its first ink pixel to its last."""
    cols = np.arange(ink.shape[1])
    first = ink.argmax(axis=1)
    last = ink.shape[1] - 1 - ink[:, ::-1].argmax(axis=1)
    return ink.any(axis=1)[:, None] & (cols >= first[:, None]) & (cols <= last[:, None])


def silhouette(canvas: np.ndarray) -> np.ndarray:
    """(144,) the share of each cell inside the garment: what lies between ink both along
    its row and along its column (a filled outline; the gap between trouser legs stays out)."""
    ink = (canvas < INK).any(-1)
    inside = _span(ink) & _span(ink.T).T
    cells = Image.fromarray(inside.astype(np.uint8) * 255).resize(
        (SILHOUETTE_SIDE, SILHOUETTE_SIDE), Image.Resampling.BOX)
    return np.asarray(cells, np.float32).ravel() / 255.0


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
