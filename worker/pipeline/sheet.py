"""A drawing handed in on a framed sheet: the frame, and a title block ruled off inside it,
cut away before the margins are trimmed (exploratory round 7, finding 2).

A spec sheet draws a frame round the page and rules a title block off along its foot (or its
side) with a line across the frame. The trim keeps all of that, so the drawing is shrunk to
a fraction of the canvas and compared with its own catalogue drawing at another size, among
lines and text. A frame is four ruled lines near the page's edges, each across most of the
page and thin; lines across the whole frame cut it into cells, and the largest cell that
holds ink is the drawing's. A page without all four sides of a frame is left as it is, so a
drawing that merely has long straight edges (a stripe, a hem) is never cut. Captions, and a
title block boxed in a corner without a line across the frame, stay (the trim keeps them).
Pillow + numpy only.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

LINE_DARK = 240  # a pixel darker than this (grey) may belong to a ruled line
SPAN = 0.85  # a ruled line crosses at least this share of the page, or of the frame
EDGE = 0.15  # a frame's sides lie within this share of the page from its edges
THIN = 0.03  # a ruled line is at most this share of the page thick (plus TILT)
TILT = 3  # probe px a line may wander up or down across the page (a scan turned ~1 degree)
INSET = 2  # probe px kept clear inside a cell's lines
MIN_INK = 0.002  # a cell with less ink than this share of its pixels is empty
PROBE = 256  # px: lines are found on a copy at most this large (as the trim's ink)


def ruled_cell(img: Image.Image) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) in `img`'s pixels of the drawing's cell on a framed sheet,
    None when the page has no frame."""
    probe, scale = grey_probe(img, PROBE)
    dark = probe < LINE_DARK
    rows, cols = _lines(dark, axis=1), _lines(dark, axis=0)
    h, w = dark.shape
    if not (_near(rows, 0, h) and _near(rows, h, h) and _near(cols, 0, w) and _near(cols, w, w)):
        return None
    top = max(end for _, end in rows if end <= EDGE * h)  # the frame's innermost lines
    bottom = min(start for start, _ in rows if start >= (1 - EDGE) * h)
    left = max(end for _, end in cols if end <= EDGE * w)
    right = min(start for start, _ in cols if start >= (1 - EDGE) * w)
    inner = dark[top:bottom, left:right]
    if inner.size == 0:
        return None
    # lines across the whole frame (not only the page) cut it into cells
    ys = _cuts(_lines(inner, axis=1), inner.shape[0])
    xs = _cuts(_lines(inner, axis=0), inner.shape[1])
    cells = [(x0, y0, x1, y1) for y0, y1 in ys for x0, x1 in xs
             if inner[y0:y1, x0:x1].mean() >= MIN_INK]
    if not cells:
        return None
    x0, y0, x1, y1 = max(cells, key=lambda c: (c[2] - c[0]) * (c[3] - c[1]))
    box = np.array([left + x0, top + y0, left + x1, top + y1]) / scale
    return (int(box[0]), int(box[1]), min(img.width, int(np.ceil(box[2]))),
            min(img.height, int(np.ceil(box[3]))))


def grey_probe(img: Image.Image, longest: int) -> tuple[np.ndarray, float]:
    """A grey copy of `img` box-filtered down to a long side of at most `longest` (uint8),
    and its scale: what the trim and this module look for ink on."""
    probe = img.convert("L")
    scale = min(1.0, longest / max(probe.size))
    if scale < 1.0:
        probe = probe.resize((max(1, round(probe.width * scale)),
                              max(1, round(probe.height * scale))), Image.Resampling.BOX)
    return np.asarray(probe), scale


def _lines(dark: np.ndarray, axis: int) -> list[tuple[int, int]]:
    """[start, end) runs of rows (axis 1) or columns (axis 0) that a thin line crosses from
    side to side, allowing it to wander TILT px."""
    n = dark.shape[1 - axis]
    band = dark if axis == 1 else dark.T
    spread = band.copy()
    for step in range(1, TILT + 1):  # each row also counts its neighbours' dark pixels
        spread[step:] |= band[:-step]
        spread[:-step] |= band[step:]
    crossing = np.flatnonzero(spread.mean(axis=1) >= SPAN)
    runs = np.split(crossing, np.flatnonzero(np.diff(crossing) > 1) + 1) if crossing.size else []
    thin = THIN * n + 2 * TILT + 1
    return [(int(r[0]), int(r[-1]) + 1) for r in runs if r.size <= thin]


def _near(lines: list[tuple[int, int]], edge: int, n: int) -> bool:
    """Some line lies within EDGE of the page's `edge` (0 or n)."""
    return any((end <= EDGE * n) if edge == 0 else (start >= (1 - EDGE) * n)
               for start, end in lines)


def _cuts(lines: list[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """The spans between lines (and the frame's own sides), each INSET clear of them."""
    edges = [0, *(v for line in lines for v in line), n]
    spans = zip(edges[::2], edges[1::2], strict=True)
    return [(a + INSET, b - INSET) for a, b in spans if b - a > 2 * INSET + 1]


def without_sheet(img: Image.Image) -> Image.Image:
    """The drawing's cell of a framed sheet; any other page as it is."""
    cell = ruled_cell(img)
    return img if cell is None else img.crop(cell)
