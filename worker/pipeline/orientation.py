"""A drawing scanned sideways is turned upright before the model sees it.

A portrait page fed through a scanner the other way round comes back as a landscape image,
and a scanner writes no EXIF orientation to undo it (`images.load_image` applies EXIF). The
model's features and the silhouette are not rotation-invariant: scanned sideways, a
re-scanned copy came back first for 35-48 % of queries, a recoloured one for 2-5 %
(docs/quality.md). Which way is up is read from the catalogue itself: a query side's
silhouette (`appearance.silhouette`, no model) is compared, as given and turned a quarter
either way, with a sample of the catalogue's drawings; it is turned when a turned silhouette
matches some drawing closely (TURN_MIN) and better than the drawing as given (TURN_MARGIN).
When no turn is chosen and the drawing as given does not match closely either, the page is
turned and prepared again (`preprocess.upright_canvas`: the trim cuts captions and notes the
way the page then lies). Chosen on the look-alike benchmark's tuning seed (`python -m
benchmarks.orientation --seed 7`): TURN_MIN lies between the best a drawing tilted by up to
10 degrees reached turned and the least a whole drawing scanned sideways reached. A side
searched by a box is left as given; a page upside down is not looked for (nor measured).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from worker.core.bank import FeatureBank
from worker.core.contract import SIDES
from worker.pipeline.appearance import SILHOUETTE_SIDE, silhouette

TURNS = (90, 270)  # counter-clockwise degrees tried (np.rot90 of the canvas: exact)
TURN_MIN = 0.86  # a turned silhouette's best cosine against the catalogue sample
TURN_MARGIN = 0.05  # ... and its lead over the drawing as given
SAMPLE = 4096  # catalogue drawings of each side compared (evenly spread over the rows)


@dataclass(frozen=True)
class Uprights:
    """The catalogue's silhouettes (a sample) as the bank holds them: centred, unit rows."""

    mean: np.ndarray  # (cells,) the catalogue's mean silhouette (the whitening's)
    shapes: np.ndarray  # (n, cells) float32

    @classmethod
    def of(cls, bank: FeatureBank) -> Uprights | None:
        """From the bank's silhouette columns; None when its rows have no silhouette block
        (descriptors without appearance blocks) or it is empty."""
        whitening = bank.whitening
        if whitening is None or not whitening.blocks or len(bank) == 0:
            return None
        start, (cells, weight) = int(whitening.projection.shape[1]), whitening.blocks[0]
        # a row is [model, w_0 * block_0, ...] / sqrt(1 + sum w^2), each block unit length
        scale = float(np.sqrt(1.0 + sum(w * w for _, w in whitening.blocks))) / weight
        rows = np.unique(np.linspace(0, len(bank) - 1, min(len(bank), SAMPLE)).astype(int))
        shapes = np.vstack([side[rows, start:start + cells] for side in (bank.front, bank.back)])
        return cls(whitening.block_mean[:cells].copy(), (shapes * scale).astype(np.float32))

    def best(self, cells: np.ndarray) -> float:
        """A silhouette's best cosine against the sample."""
        shape = cells.ravel() - self.mean
        norm = float(np.linalg.norm(shape))
        return float((self.shapes @ (shape / norm)).max()) if norm > 0 else -1.0

    def upright(self, canvas: np.ndarray,
                refit: Callable[[tuple[int, ...]], dict[int, np.ndarray]] | None = None
                ) -> tuple[np.ndarray, int]:
        """(224, 224, 3) canvas -> the canvas to search with and the degrees it was turned
        counter-clockwise (0: as given). `refit(turns)`: the page turned by each, then
        prepared again; tried when no quarter turn of the canvas is chosen and the canvas does
        not match the catalogue closely (TURN_MIN) either, as for a page whose captions, notes
        or title block the trim read the wrong way (it cuts captions above or below a drawing,
        notes beside it)."""
        cells = silhouette(canvas).reshape(SILHOUETTE_SIDE, SILHOUETTE_SIDE)
        # the silhouette of a turned canvas is its silhouette turned (the filled outline and
        # the box filter are the same along rows and columns: to a grey level, tested)
        scores = {degrees: self.best(np.rot90(cells, degrees // 90)) for degrees in (0, *TURNS)}
        degrees = _chosen(scores)
        if degrees:
            return np.ascontiguousarray(np.rot90(canvas, degrees // 90)), degrees
        if refit is None or scores[0] >= TURN_MIN:
            return canvas, 0
        again = refit(TURNS)
        degrees = _chosen({0: scores[0]} | {degrees: self.best(silhouette(c))
                                             for degrees, c in again.items()})
        return (again[degrees], degrees) if degrees else (canvas, 0)


def _chosen(scores: dict[int, float]) -> int:
    """The turn whose silhouette matches the catalogue closely and better than the drawing
    as given (scores: degrees -> best cosine, 0 the drawing as given), else 0."""
    degrees = max(TURNS, key=scores.get)
    return degrees if scores[degrees] >= TURN_MIN and scores[degrees] - scores[0] >= TURN_MARGIN \
        else 0


def split(sides: list[tuple[np.ndarray | None, int]]) -> tuple[tuple, tuple[int, ...]]:
    """[(canvas, degrees turned) of each side] -> (the canvases, the degrees)."""
    return tuple(c for c, _ in sides), tuple(d for _, d in sides)


def turned_sides(turned: tuple[int, ...]) -> dict[str, int]:
    """The sides that were turned, and by how many degrees (a result's `turned`)."""
    return {side: degrees for side, degrees in zip(SIDES, turned, strict=True) if degrees}
