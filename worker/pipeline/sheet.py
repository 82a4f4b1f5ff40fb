"""A drawing handed in on a framed sheet: the frame, and a title block ruled off inside it,
cut away before the margins are trimmed (exploratory round 7, finding 2).

A spec sheet draws a frame round the page and rules a title block off along its foot (or its
side) with a line across the frame. The trim keeps all of that, so the drawing is shrunk to
a fraction of the canvas and compared with its own catalogue drawing at another size, among
lines and text. A frame is four ruled lines near the page's edges, each across most of the
page and thin; lines across the whole frame cut it into cells, and the largest cell that
holds ink is the drawing's. A title block boxed in a corner of that cell's foot (a line from
the frame's side and one down to its foot, not across the frame) is painted white. A page
without all four sides of a frame is left as it is, so a drawing that merely has long
straight edges (a stripe, a hem) is never cut. Captions stay (the trim leaves them out).
Pillow + numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

LINE_DARK = 240  # a pixel darker than this (grey) may belong to a ruled line
SPAN = 0.85  # a ruled line crosses at least this share of the page, or of the frame
EDGE = 0.15  # a frame's sides lie within this share of the page from its edges
THIN = 0.03  # a ruled line is at most this share of the page thick (plus TILT)
TILT = 3  # probe px a line may wander up or down across the page (a scan turned ~1 degree)
INSET = 2  # probe px kept clear inside a cell's lines
MIN_INK = 0.002  # a cell with less ink than this share of its pixels is empty
PROBE = 256  # px: lines are found on a copy at most this large (as the trim's ink)
BOX_WIDTH = (0.15, 0.75)  # a boxed title block spans this share of its cell's width
BOX_HEIGHT = 0.45  # and at most this share of its height, from the foot
PAPERLIKE = 0.8  # a box is less dark than this (its fields and text); a dark garment is not

Box = tuple[int, int, int, int]  # left, top, right, bottom


@dataclass(frozen=True)
class Sheet:
    cell: Box  # the drawing's cell, in the page's pixels
    boxed: Box | None  # a title block boxed in the cell's foot, in the cell's pixels


def read_sheet(img: Image.Image) -> Sheet | None:
    """The drawing's cell on a framed sheet and a title block boxed in its foot, if any; None
    when the page has no frame."""
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
    cell = (int(box[0]), int(box[1]), min(img.width, int(np.ceil(box[2]))),
            min(img.height, int(np.ceil(box[3]))))
    boxed = _boxed_title(inner[y0:y1, x0:x1])
    if boxed is not None:  # the cell's probe px -> the page's px -> the cropped cell's px
        page = (np.array(boxed) + [left + x0, top + y0] * 2) / scale
        boxed = tuple(int(v) for v in np.round(page - [cell[0], cell[1]] * 2))
    return Sheet(cell, boxed)


def _boxed_title(dark: np.ndarray) -> Box | None:
    """A title block boxed in the foot of a cell (its `dark` probe pixels): a line from the
    cell's left or right side part of the way across, and one from its free end down to the
    foot, with ink left above it; (left, top, right, bottom) probe px, None when none."""
    for flipped in (False, True):
        found = _foot_right_box(dark[:, ::-1] if flipped else dark)
        if found is not None:
            x0, y0, x1, y1 = found
            w = dark.shape[1]
            return (w - x1, y0, w - x0, y1) if flipped else found
    return None


def _foot_right_box(dark: np.ndarray) -> Box | None:
    """`_boxed_title` for the foot's right corner. The box's own fields may lie closer than a
    line's TILT, so a band of such rows is read from its top; the box must be mostly paper (a
    dark garment cut by the frame is not a box)."""
    h, w = dark.shape
    spread = _spread(dark)
    from_right = np.where(spread.all(axis=1), w, np.argmin(spread[:, ::-1], axis=1))
    lo, hi = (round(f * w) for f in BOX_WIDTH)
    rows = np.flatnonzero((from_right >= lo) & (from_right <= hi))
    rows = rows[rows >= (1 - BOX_HEIGHT) * h]
    thin = int(THIN * h) + 2 * TILT + 1  # the top line's rows at most
    for band in np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1) if rows.size else []:
        top = int(band[0])
        x0 = w - int(np.median(from_right[band[:thin]]))
        below = _spread(dark[top + thin:].T).T  # each column counts its neighbours' too
        side = below[:, max(0, x0 - 2 * TILT):x0 + 2 * TILT + 1]
        if side.size and side.mean(axis=0).max() >= SPAN and dark[top:, x0:].mean() < PAPERLIKE \
                and dark[:top].mean() >= MIN_INK:
            return (max(0, x0 - 2 * TILT), max(0, top - TILT), w, h)
    return None


def _spread(dark: np.ndarray) -> np.ndarray:
    """Each row also counts its TILT neighbours' dark pixels (a line wandering up or down)."""
    spread = dark.copy()
    for step in range(1, TILT + 1):
        spread[step:] |= dark[:-step]
        spread[:-step] |= dark[step:]
    return spread


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
    spread = _spread(dark if axis == 1 else dark.T)
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
    """The drawing's cell of a framed sheet, a title block boxed in its foot painted white;
    any other page as it is."""
    sheet = read_sheet(img)
    if sheet is None:
        return img
    page = img.crop(sheet.cell)
    if sheet.boxed is not None:
        ImageDraw.Draw(page).rectangle(sheet.boxed, fill="white")
    return page
