"""Appearance features computed without the model, from the canvas the model sees: the
garment's silhouette (its outline filled, so a line sketch and a coloured drawing agree), its
colours, the orientations of its pattern's edges, and its proportions. They weigh the garment
type, the palette and the pattern family beside the model's structure; the proportions tell
a copy from a look-alike of the same garment cut a little wider or longer.

Pillow + numpy. Each function: (224, 224, 3) uint8 canvas -> (dims,) float32.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

SILHOUETTE_SIDE = 12  # the filled outline, area-averaged onto 12 x 12 cells
COLOUR_BINS = 4  # per channel: a 4 x 4 x 4 histogram of the drawing's pixels
INK = 235  # a pixel darker than this in some channel, its 3x3 neighbourhood too, is ink
PAPER = 245  # pixels lighter than this in every channel are paper, not colour
SKETCH_COVERAGE = 0.5  # a drawing that colours less of its outline is a line sketch of the flat
HUE_SPREAD = 40  # a pixel whose channels differ by more than this (0-255) is in a colour, not grey
HUE_AREA = 5  # px: colour counts where it fills a square of this side, not along a line
SKETCH_HUES = 0.005  # ... unless this share of its outline is in colour: a white garment's print
# what `is_sketch` measures, stored beside the flags it gives: flags of another test are unknown
SKETCH_TEST = (f"coverage < {SKETCH_COVERAGE}; colour (channels over {HUE_SPREAD} apart) "
               f"filling {HUE_AREA} px squares < {SKETCH_HUES}")
PATTERN_INSET = 11  # the pattern is read where this square (px) around a pixel is all inside
PATTERN_EDGE = 20.0  # a colour step over 2 px larger than this (0-255) is an edge of the pattern
PATTERN_ORIENTATIONS = 8  # edge orientations (mod 180 degrees), folded to 5 by mirroring
PROPORTION_DIMS = 6
MIN_SPREAD = 0.5  # px: a part of the outline narrower than this counts as this wide
MAX_TILT = 15  # degrees: a scan tilted up to this is measured upright (`proportions`)
# how the appearance columns are measured, recorded with the preprocessing in the manifest: an
# index measured another way is built again (`worker.cli.index.why_build`)
MEASURED = {"outline": f"ink darker than {INK} in some channel, its 3x3 neighbourhood too on "
                       "average",
            "proportions": f"along the filled outline's principal axes, a tilt up to {MAX_TILT} "
                           "degrees undone"}


def _span(ink: np.ndarray) -> np.ndarray:
    """(h, w) bool -> (h, w) bool: each row filled from its first ink pixel to its last."""
    cols = np.arange(ink.shape[1])
    first = ink.argmax(axis=1)
    last = ink.shape[1] - 1 - ink[:, ::-1].argmax(axis=1)
    return ink.any(axis=1)[:, None] & (cols >= first[:, None]) & (cols <= last[:, None])


def silhouette(canvas: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """(144,) the share of each cell inside the garment: what lies between ink both along
    its row and along its column (a filled outline; the gap between trouser legs stays out).
    `inside`: that filled outline, where the caller has it already."""
    inside = _inside(canvas) if inside is None else inside
    cells = Image.fromarray(inside.astype(np.uint8) * 255).resize(
        (SILHOUETTE_SIDE, SILHOUETTE_SIDE), Image.Resampling.BOX)
    return np.asarray(cells, np.float32).ravel() / 255.0


def _inside(canvas: np.ndarray) -> np.ndarray:
    """(h, w) bool, read-only: the garment's filled outline. A query side's is asked for three
    times (its upright check, its appearance columns, its sketch test), so the last 32 (two
    batches of 8 searches' sides; ~6 MB, with their ink masks ~8) are kept by the canvas's
    content (its key's hash ~0.05 ms, the outline ~1: docs/performance.md)."""
    return _inside_of(canvas.tobytes(), canvas.shape, canvas.dtype.str)


def drawn_ink(canvas: np.ndarray) -> np.ndarray:
    """(h, w) bool, read-only: `ink_mask` of a canvas, kept by content beside its filled
    outline (which is made from it), so that the crop reading does not measure it again."""
    return _ink_of(canvas.tobytes(), canvas.shape, canvas.dtype.str)


@lru_cache(maxsize=32)
def _ink_of(pixels: bytes, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    ink = ink_mask(np.frombuffer(pixels, dtype).reshape(shape))
    ink.flags.writeable = False  # shared by every caller of the same canvas
    return ink


@lru_cache(maxsize=32)
def _inside_of(pixels: bytes, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    ink = _ink_of(pixels, shape, dtype)
    inside = _span(ink) & _span(ink.T).T
    inside.flags.writeable = False  # shared by every caller of the same canvas
    return inside


def ink_mask(canvas: np.ndarray) -> np.ndarray:
    """(h, w) bool, of a uint8 canvas: pixels darker than INK in some channel whose 3x3
    neighbourhood is as dark on average (in its darkest channel). Faint speckle (scanner noise,
    JPEG) on the paper is not the drawing, and stretched the filled outline along its row and
    column to it; a dark speck (one pixel under 75, four under 210) still counts. A line 1 px
    wide keeps every pixel but its ends up to grey 194, one 2 px wide up to 224
    (docs/quality.md)."""
    darkest = _darkest(canvas)
    padded = np.pad(darkest, 1, mode="edge").astype(np.uint16)
    rows = padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]  # the 3x3 sum, separably
    return (darkest < INK) & (rows[:-2] + rows[1:-1] + rows[2:] < 9 * INK)


def _darkest(pixels: np.ndarray) -> np.ndarray:
    """(..., 3) -> (...): each pixel's darkest channel (15x faster than `.min(-1)`, whose
    reduction over 3 values is numpy's slow path: docs/performance.md)."""
    return np.minimum(np.minimum(pixels[..., 0], pixels[..., 1]), pixels[..., 2])


def _lightest(pixels: np.ndarray) -> np.ndarray:
    """(..., 3) -> (...): each pixel's lightest channel (as `_darkest`, numpy's fast path)."""
    return np.maximum(np.maximum(pixels[..., 0], pixels[..., 1]), pixels[..., 2])


def coverage(canvas: np.ndarray) -> float:
    """The share of the garment's filled outline that is drawn in (not paper): about 1 for a
    coloured drawing, 0.1-0.2 for a line sketch (outlines only)."""
    inside = _inside(canvas)
    return float(((_darkest(canvas) < PAPER) & inside).sum() / max(1, inside.sum()))


def hue_share(canvas: np.ndarray) -> float:
    """The share of the garment's filled outline filled in a colour rather than a grey (lines
    left out: a sketch drawn in coloured ink, or with a red note, is still a sketch): 0 for a
    sketch, on tinted paper too, a few thousandths or hundredths for a white garment's logo
    or print."""
    inside = _inside(canvas)
    spread = _lightest(canvas) - _darkest(canvas)  # never negative: no uint8 wrap
    return float((_eroded(spread > HUE_SPREAD, HUE_AREA) & inside).sum() / max(1, inside.sum()))


def is_sketch(canvas: np.ndarray) -> bool:
    """A line sketch: outlines only, in any ink; its colours and fills say nothing of the
    design it draws, its outline does (docs/quality.md: such queries are matched by the
    silhouette alone). A white garment with a print or logo in colour is a coloured drawing."""
    return coverage(canvas) < SKETCH_COVERAGE and hue_share(canvas) < SKETCH_HUES


def sketched(canvases: tuple[np.ndarray | None, ...]) -> tuple[bool, ...]:
    """Per side (None: the query has no such side): is it a line sketch?"""
    return tuple(c is not None and is_sketch(c) for c in canvases)


def colour_histogram(canvas: np.ndarray) -> np.ndarray:
    """(64,) square roots of the shares of the drawing's pixels in each colour bin."""
    pixels = canvas.reshape(-1, 3)
    pixels = pixels[_darkest(pixels) < PAPER]
    step = 256 // COLOUR_BINS
    index = (pixels[:, 0] // step * COLOUR_BINS + pixels[:, 1] // step) * COLOUR_BINS \
        + pixels[:, 2] // step
    counts = np.bincount(index.astype(np.int64), minlength=COLOUR_BINS ** 3)
    return np.sqrt(counts / max(1, len(pixels))).astype(np.float32)


def pattern_edges(canvas: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """(6,) square roots of the shares of the pattern's edge pixels at each orientation (0,
    +-22.5, +-45, +-67.5, 90 degrees: a mirror image reads the same), then of the share of the
    garment's inside that is such an edge. Stripes, checks, dots and plain fills differ;
    colours, their contrast and mirroring do not, the stripes' spacing only in the last
    (docs/quality.md)."""
    inside = _inside(canvas) if inside is None else inside
    ys, xs = np.nonzero(_eroded(inside, PATTERN_INSET))  # never on the border
    rgb = canvas.astype(np.int32)
    dx, dy = rgb[ys, xs + 1] - rgb[ys, xs - 1], rgb[ys + 1, xs] - rgb[ys - 1, xs]  # (n, 3)
    steps = dx * dx + dy * dy
    channel = steps.argmax(axis=1)[:, None]  # the channel that changes most
    edge = np.take_along_axis(steps, channel, axis=1)[:, 0] > PATTERN_EDGE ** 2
    dx, dy = (np.take_along_axis(d, channel, axis=1)[edge, 0] for d in (dx, dy))
    n = PATTERN_ORIENTATIONS
    angle = np.mod(np.arctan2(dy, dx), np.pi)
    counts = np.bincount(np.floor(angle * n / np.pi + 0.5).astype(np.int64) % n, minlength=n)
    folded = np.array([counts[0], *(counts[i] + counts[n - i] for i in range(1, n // 2)),
                       counts[n // 2]], np.float64)
    return np.sqrt(np.append(folded / max(1, edge.sum()), edge.sum() / max(1, ys.size))
                   ).astype(np.float32)


def _eroded(mask: np.ndarray, side: int) -> np.ndarray:
    """(h, w) bool -> the pixels whose `side` x `side` square (odd side) lies all in `mask`
    (a summed-area table: Pillow's MinFilter of that side costs 20 ms an image)."""
    r = side // 2
    table = np.pad(mask.astype(np.int32), ((r + 1, r), (r + 1, r))).cumsum(0).cumsum(1)
    box = table[side:, side:] - table[:-side, side:] - table[side:, :-side] + table[:-side, :-side]
    return box == side * side


def proportions(canvas: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """(6,) logs of ratios of the filled outline's spreads (standard deviations of its
    pixels' coordinates along its principal axes): its width to its height, its upper half's
    width to its lower half's, its area to width times height, and each third's width (top to
    bottom, by area) to the whole's. A copy keeps them to a re-scan's ~0.003, a look-alike of
    the same garment cut wider or longer does not; colours, pattern, size and mirroring change
    none, and a tilt up to MAX_TILT is undone first (docs/quality.md). Zeros for an empty
    outline."""
    inside = _inside(canvas) if inside is None else inside
    ys, xs = np.nonzero(inside)
    if ys.size < 3:
        return np.zeros(PROPORTION_DIMS, np.float32)
    xs, ys = _upright(xs - xs.mean(), ys - ys.mean())
    order = np.argsort(ys, kind="stable")
    xs, ys = xs[order], ys[order]

    def spread(part: np.ndarray) -> float:
        return max(float(part.std()), MIN_SPREAD) if part.size else MIN_SPREAD

    width, height, half = spread(xs), spread(ys), int(np.searchsorted(ys, ys.mean()))
    ratios = [width / height, spread(xs[:half]) / spread(xs[half:]), ys.size / (width * height),
              *(spread(third) / width for third in np.array_split(xs, 3))]
    return np.log(ratios).astype(np.float32)


def _upright(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centred pixel coordinates turned so that the principal axis nearest the horizontal
    lies along it: a garment is drawn mirror-symmetric, so its axes are the page's unless it is
    tilted. A turn past MAX_TILT is taken for the garment's own shape and left as it is."""
    # einsum, not a BLAS dot: OpenBLAS threads it outside the worker (7 ms on a busy core)
    cxx, cyy, cxy = (float(np.einsum("i,i->", a, b)) for a, b in ((xs, xs), (ys, ys), (xs, ys)))
    theta = 0.5 * np.arctan2(2.0 * cxy, cxx - cyy)  # the major axis's angle
    theta -= np.pi / 2 * np.round(theta / (np.pi / 2))  # ... or the minor's: the nearer one
    if abs(theta) > np.radians(MAX_TILT):
        return xs.astype(np.float64), ys.astype(np.float64)
    c, s = np.cos(theta), np.sin(theta)
    return c * xs + s * ys, c * ys - s * xs


BLOCKS = (SILHOUETTE_SIDE ** 2, COLOUR_BINS ** 3)  # sizes of the first two (every descriptor's)
PATTERN_DIMS = PATTERN_ORIENTATIONS // 2 + 2  # the third's


def appearance(canvases: np.ndarray, blocks: int = 2) -> np.ndarray:
    """(n, 224, 224, 3) uint8 -> (n, dims) float32: the first `blocks` of silhouette (144),
    colours (64), pattern edges (6) and proportions (6), side by side."""
    def row(canvas: np.ndarray) -> np.ndarray:
        inside = _inside(canvas)  # read once: the silhouette, pattern and proportions need it
        parts = [silhouette(canvas, inside), colour_histogram(canvas)]
        if blocks > 2:
            parts.append(pattern_edges(canvas, inside))
        if blocks > 3:
            parts.append(proportions(canvas, inside))
        return np.concatenate(parts[:blocks])

    return np.stack([row(c) for c in canvases])
