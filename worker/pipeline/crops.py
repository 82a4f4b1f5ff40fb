"""Is a query drawing a crop of a design (a detail: a print, a pocket, the chest) rather than
the whole garment? Its outline then is the crop's frame, not the garment's: the silhouette
and the outline's proportions would compare a box with the boxiest garments, so a cropped
side is scored without them (`Whitening.without_outline`; docs/quality.md).

A whole flat is drawn with a dark contour: where its ink meets the edge of the drawing's box
(its sleeves' ends, a hem, a waistband) that ink is the contour, a dark line in front of
lighter fill. A crop's cut runs straight along at least two edges of its box (tilted a few
degrees by a scan) and the fill runs into it with no line in front. A fill as dark as the
contour cannot tell them apart: such a side is taken as whole.
"""

from __future__ import annotations

import numpy as np

from worker.pipeline.appearance import drawn_ink

MAX_SLOPE = 0.07  # a cut tilted up to 4 degrees by a scan still counts as straight
SLOPES = np.linspace(-MAX_SLOPE, MAX_SLOPE, 29)
NEAR = 2  # px: ink this close to the fitted straight edge lies on it
STRAIGHT = 0.4  # a cut edge: ink lies on one straight line along this share of the side
CUT_SHARE = 0.5  # ... and at this share of those points no contour stands in front of the fill
CONTOUR = 30  # a contour: some pixel of the first 4 is this much darker than the fill behind
DARK_FILL = 60  # fill whose brightest channel is below this may hide a contour: taken as one
SHARP = 40  # a cut reaches its fill's brightness to within this by 1 px in; a softer edge
# (a blurred scan, whose contour may have faded into the fill) is taken as a contour
DEPTH = 8  # px read inward from the edge at each point
CUT_SIDES = 2  # a crop has at least this many cut edges


def _edge_cut(ink: np.ndarray, rgb: np.ndarray) -> bool:
    """Whether one edge of a drawing's box is a cut: (positions, depth) ink and
    (positions, depth, 3) colours, depth 0 at the edge."""
    n = ink.shape[0]
    has = ink.any(1)
    if not has.any():
        return False
    first = np.where(has, ink.argmax(1), 1 << 20).astype(np.float64)
    resid = first - SLOPES[:, None] * np.arange(n)  # (slopes, positions): depth past each line
    lowest = np.where(has, resid, np.inf).min(1, keepdims=True)
    on = np.abs(resid - lowest) <= NEAR  # on the line through the outermost ink, per slope
    best = on[on.sum(1).argmax()]
    points = np.nonzero(best & (first + DEPTH <= ink.shape[1]))[0]
    if best.sum() < STRAIGHT * n or len(points) == 0:
        return False
    depth = first[points].astype(np.int64)[:, None] + np.arange(DEPTH)
    profile = rgb[points[:, None], depth].astype(np.int16)
    return float(1.0 - _contoured(profile).mean()) >= CUT_SHARE


def _contoured(profile: np.ndarray) -> np.ndarray:
    """(points, DEPTH, 3) colours inward from the edge -> whether a contour stands there
    (or may: a fill too dark to tell)."""
    bright = profile.max(-1)
    fill = bright[:, 5:].mean(1)
    return ((bright[:, :4].min(1) < fill - CONTOUR) | (fill < DARK_FILL)
            | (np.abs(bright[:, 1] - fill) > SHARP))


def is_crop(canvas: np.ndarray) -> bool:
    """A (224, 224, 3) uint8 canvas drawing a crop of a design, not a whole flat."""
    ink = drawn_ink(canvas)  # read-only; measured already for the side's filled outline
    rows, cols = np.nonzero(ink)
    if rows.size == 0:
        return False
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    ink, rgb = ink[box], canvas[box]
    edges = (ink.T, ink.T[:, ::-1], ink, ink[:, ::-1])  # top, bottom, left, right: (along, in)
    colours = (rgb.transpose(1, 0, 2), rgb.transpose(1, 0, 2)[:, ::-1], rgb, rgb[:, ::-1])
    return sum(_edge_cut(e, c) for e, c in zip(edges, colours, strict=True)) >= CUT_SIDES


def cropped(canvases: tuple[np.ndarray | None, ...]) -> tuple[bool, ...]:
    """Per side (None: the query has no such side): is it a crop of a design?"""
    return tuple(c is not None and is_crop(c) for c in canvases)
