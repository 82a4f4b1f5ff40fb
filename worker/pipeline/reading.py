"""Stage 3a: how each query side is compared, from its canvas and raw descriptor: whole, by
its outline alone (a line sketch in a catalogue of coloured drawings: `outline_sides`), or
without it (a crop of a design: `crop_sides`).

A side that reads as a sketch (`appearance.is_sketch`) may still be a copy of a catalogue
drawing marked only in black (a white garment): it is compared whole where the catalogue holds
the drawing it copies (`copied_whole`). Whole descriptors of sketch-like drawings gather
together (a sketch of one design scores up to 0.99 against another design's filed sketch),
so nearness alone does not say which drawing that is: the one the side nearly duplicates must
also be the one its outline matches best (docs/quality.md, "Line sketches filed beside
coloured drawings").
"""

from __future__ import annotations

import numpy as np

from worker.core.bank import FeatureBank
from worker.core.duplicates import SKETCHED_CATALOGUE
from worker.pipeline.appearance import sketched
from worker.pipeline.crops import cropped
from worker.pipeline.ranking import project_query, side_scores

DRAWN_ALIKE = 0.9  # a sketch-like side this close whole to a catalogue drawing may copy it


def read_sides(bank: FeatureBank, canvases: tuple[np.ndarray | None, np.ndarray | None],
               rows: tuple[np.ndarray | None, np.ndarray | None]
               ) -> tuple[tuple[bool, bool], tuple[bool, bool]]:
    """How each query side is compared, from its canvas and raw descriptor (None: no side):
    (matched by its outline alone: `outline_sides`, scored without it: `crop_sides`). A side
    read as both a sketch and a crop is matched by its outline: never both."""
    crops = cropped(canvases)
    outline = outline_sides(bank, sketched(canvases), rows, crops)
    crops = tuple(c and not o for c, o in zip(crops, outline, strict=True))
    return outline, crop_sides(bank, crops, rows)


def outline_sides(bank: FeatureBank, sketches: tuple[bool, bool],
                  rows: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
                  crops: tuple[bool, bool] = (False, False)) -> tuple[bool, bool]:
    """Which query sides are matched by their outline alone: the line sketches
    (`appearance.is_sketch`) when the catalogue is of coloured drawings (the index's
    `sketch_share`; an index without it: none), unless the catalogue holds the drawing the
    side copies (`copied_whole`: a white garment marked only in black or grey reads as a
    sketch, and a copy of one is not a sketch of a coloured design; a side also read as a
    crop, `crops`, by its nearness alone: its outline is its frame's). A sketch's model and
    colour columns describe an empty garment, not the design it draws; among sketches they
    are compared whole."""
    coloured = bank.manifest.get("sketch_share", 1.0) < SKETCHED_CATALOGUE
    usable = coloured and bank.whitening is not None and bool(bank.whitening.blocks)
    return tuple(bool(sketch) and usable and not copied_whole(bank, row, crop)
                 for sketch, row, crop in zip(sketches, rows, crops, strict=True))


def crop_sides(bank: FeatureBank, crops: tuple[bool, bool],
               rows: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
               ) -> tuple[bool, bool]:
    """Which query sides are scored without their outline: the crops of a design
    (`crops.is_crop`), where the bank has a silhouette to leave out, unless the catalogue
    holds a drawing the side nearly duplicates whole (a catalogue of details)."""
    usable = bank.whitening is not None and bool(bank.whitening.blocks)
    return tuple(bool(crop) and usable and _nearest_whole(bank, row)[0] < DRAWN_ALIKE
                 for crop, row in zip(crops, rows, strict=True))


def copied_whole(bank: FeatureBank, row: np.ndarray | None, crop: bool = False) -> bool:
    """Whether the catalogue holds the drawing a sketch-like query drawing copies: the one it
    nearly duplicates whole (DRAWN_ALIKE), if that is also its best outline match (the
    silhouette and the proportions' bonus, as `outline_sides` scores it) on that side of the
    catalogue; for a `crop` of a drawing (whose outline is its frame's), nearness alone."""
    cosine, rows, i = _nearest_whole(bank, row)
    if cosine < DRAWN_ALIKE:
        return False
    if crop:
        return True
    by_outline = side_scores(bank, rows, project_query(bank, row, outline=True))
    return bool(by_outline[i] >= by_outline.max())


def _nearest_whole(bank: FeatureBank, row: np.ndarray | None
                   ) -> tuple[float, np.ndarray | None, int]:
    """One query drawing's (whole cosine, bank side, row) nearest among the catalogue's
    drawings of either side (every row, outside the coarse index: asked only for a side read
    as a sketch or a crop, rare queries, and one product is cheap below a million pairs);
    (-inf, None, -1) for no drawing."""
    if row is None or len(bank) == 0:
        return -np.inf, None, -1
    q = project_query(bank, row)
    cosines = [(rows @ q, rows) for rows in (bank.front, bank.back)]
    scores, rows = max(cosines, key=lambda pair: float(pair[0].max()))
    i = int(scores.argmax())
    return float(scores[i]), rows, i
