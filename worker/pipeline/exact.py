"""A bonus for an outline and colours matched all but exactly: what a copy keeps and a
look-alike does not.

A copy in other colours keeps its design's silhouette to within a re-scan, and a copy with
other stripe spacing keeps its colours; a look-alike of the same garment has a near, not the
same, silhouette and other colours. The weighted dot product of the bank rows sees both
blocks only linearly, so a near match and an exact one differ little there. Each side's
score gains, per appearance block (silhouette, colour), `weight * relu((cos - start) /
(1 - start))`: nothing below `start`, `weight` at an identical block; the sum is divided by
1 + the weights, so an identical pair still scores 1. Chosen on the look-alike benchmark's
tuning seed (docs/quality.md); the index writes it into the manifest (`exact_match`) with the
verdict thresholds calibrated for it, and an index without it is scored plainly.

Computed from the bank's own columns (a row is [model, w_s * silhouette, w_c * colour, ...] /
norm, each block unit length; blocks after the colours, the pattern's edges, count plainly),
so no extra forward pass and no extra bank. Where the rows also hold the outline's
proportions (`appearance.proportions`, a raw block: `Whitening.raw_columns`), each side
gains `proportion_weight * exp(-(d / proportion_width)^2)`, d the root mean square of their
differences, counted in the division too: a copy keeps its design's proportions to within a
re-scan, a look-alike cut a little wider or longer loses most of it. A line sketch (matched
by its outline alone) gains it as well. A crop of a design (`crops.is_crop`: its silhouette
and proportions are zero, its frame's would mislead) gains the colours' bonus alone and is
divided by 1 + its weight: a crop identical in all but the outline scores the share of a
row its other blocks hold (plus that bonus), under 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from worker.core.whitening import RAW_SCALE, Whitening


@dataclass(frozen=True)
class ExactMatch:
    outline_from: float  # silhouette cosine from which the bonus starts
    outline_weight: float
    colour_from: float  # colour-histogram cosine from which the bonus starts
    colour_weight: float
    # the verdict thresholds calibrated for scores with this bonus (worker.pipeline.verdicts);
    # the manifest's own "verdicts" stay those of the plain score, which code that predates
    # the bonus reads
    verdicts: dict[str, float] | None = field(default=None, compare=False)
    # those calibrated for a side searched alone (a one-side search, `side_copies`)
    one_side_verdicts: dict[str, float] | None = field(default=None, compare=False)
    proportion_weight: float = 0.0  # the bonus for the outline's proportions (raw columns)
    proportion_width: float = 1.0  # ... exp(-(rms difference / this)^2): half at 0.83 x this

    def to_manifest(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, manifest: dict) -> ExactMatch | None:
        """The index's bonus, None for an index scored plainly (keys it does not know are
        ignored)."""
        stored = manifest.get("exact_match")
        if not stored:
            return None
        return cls(**{f.name: stored[f.name] for f in fields(cls) if f.name in stored})

    def _ranges(self, whitening: Whitening) -> list[tuple[int, int]]:
        """Column ranges of the model's, the silhouette's and the colours' columns."""
        start, (sil, _), (col, _) = int(whitening.projection.shape[1]), *whitening.blocks[:2]
        return [(0, start), (start, start + sil), (start + sil, start + sil + col)]

    def _fit_weight(self, whitening: Whitening) -> float:
        return self.proportion_weight if whitening.raw_columns() is not None else 0.0

    def total(self, whitening: Whitening) -> float:
        """What an identical pair scores before the division: 1 + the weights of the bonuses
        the bank's rows allow."""
        return 1.0 + self.outline_weight + self.colour_weight + self._fit_weight(whitening)

    def fit(self, whitening: Whitening, rows: np.ndarray, q: np.ndarray) -> np.ndarray | float:
        """(n,) the proportions' bonus of each row before the division (0 where the bank has
        none)."""
        raw = whitening.raw_columns()
        if raw is None or not self.proportion_weight or not q[raw].any():  # a crop: none
            return 0.0
        diff = rows[:, raw] - q[raw]
        exponent = np.einsum("ij,ij->i", diff, diff)  # einsum: half the time of square + mean
        exponent *= -1.0 / (diff.shape[1] * (RAW_SCALE * self.proportion_width) ** 2)
        return self.proportion_weight * np.exp(exponent, out=exponent)

    def _combined(self, whitening: Whitening, model, sil, col, fit, crop: bool) -> np.ndarray:
        """The scores with the bonus from the dot products of each column range (summed,
        they are the plain score) and the proportions' bonus; for a `crop` (a query row
        normalised without its silhouette) the colours' alone."""
        norm2 = 1.0 + sum(w * w for _, w in whitening.blocks)  # a row's squared norm before its L2
        (_, w_sil), (_, w_col) = whitening.blocks[:2]
        # a dot product of two blocks over the product of their lengths in the two rows
        scale = np.sqrt(norm2 * (norm2 - w_sil * w_sil if crop else norm2))
        bonus = (self.outline_weight * _ramp(sil * (scale / (w_sil * w_sil)), self.outline_from)
                 + self.colour_weight * _ramp(col * (scale / (w_col * w_col)), self.colour_from))
        divisor = self._divisor(whitening, outline=False, crop=crop)
        return ((model + sil + col + bonus + fit) / divisor).astype(np.float32)

    def divisor(self, whitening: Whitening, q: np.ndarray) -> float:
        """What `scores` divides a side's sum by for the query side `q`: `total`; for a
        side kept to its outline (no model columns) 1 + the proportions' weight alone; for a
        side without its outline (a crop: no silhouette) 1 + the colours' weight alone."""
        (m0, m1), (s0, s1), _ = self._ranges(whitening)
        return self._divisor(whitening, outline=not q[m0:m1].any(), crop=not q[s0:s1].any())

    def _divisor(self, whitening: Whitening, outline: bool, crop: bool) -> float:
        if outline:
            return 1.0 + self._fit_weight(whitening)
        return 1.0 + self.colour_weight if crop else self.total(whitening)

    def scores(self, whitening: Whitening, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
        """(n, dim) bank rows, a (dim,) projected query -> (n,) scores with the bonus. A query
        kept to its outline (a line sketch: its model columns are zero) is scored plainly,
        with the proportions' bonus where the bank has them; one without it (a crop: its
        silhouette is zero) with the colours' bonus alone."""
        (m0, m1), sil, col = self._ranges(whitening)
        fit = self.fit(whitening, rows, q)
        if not q[m0:m1].any():
            return ((rows @ q + fit) / self.divisor(whitening, q)).astype(np.float32)
        # column slices of the bank (BLAS reads them in place): as many multiplications as
        # the plain score; one (dim, 3) product instead was 4x slower in OpenBLAS
        model = rows[:, m0:m1] @ q[m0:m1]
        if col[1] < q.size:  # blocks after the colours (the pattern's edges): no bonus
            model += rows[:, col[1]:] @ q[col[1]:]
        return self._combined(whitening, model,
                              *(rows[:, lo:hi] @ q[lo:hi] for lo, hi in (sil, col)), fit,
                              crop=not q[sil[0]:sil[1]].any())


def _ramp(cosine: np.ndarray, start: float) -> np.ndarray:
    """0 up to `start`, rising to 1 at an identical block."""
    return np.maximum(cosine - start, 0.0) / (1.0 - start)


def usable(exact: ExactMatch | None, whitening: Whitening | None) -> ExactMatch | None:
    """The bonus when the bank has the two appearance blocks it reads, else None."""
    if exact is None or whitening is None or len(whitening.blocks) < 2:
        return None
    return exact


# descriptor -> its bonus, chosen on the look-alike benchmark's tuning seed, and the thresholds
# from `python -m benchmarks.lookalike --seed 7 --calibrate` with it (docs/quality.md): a
# pair's, and a side's searched alone (float32 on a machine without AVX-512)
CHOSEN: dict[str, ExactMatch] = {
    "grey-dir345-lw256-shape-colour": ExactMatch(
        0.98, 0.35, 0.8, 0.07, verdicts={"copy": 0.8881, "near-duplicate": 0.8011,
                                         "similar": 0.5542, "floor": 0.3372,
                                         "margin_weight": 1.0},
        one_side_verdicts={"copy": 1.0662, "near-duplicate": 0.8551, "similar": 0.5594,
                           "floor": 0.3546, "margin_weight": 1.0}),
    "grey-dir345-lw256-shape-colour-pattern": ExactMatch(
        0.98, 0.35, 0.8, 0.07, verdicts={"copy": 0.8483, "near-duplicate": 0.7897,
                                         "similar": 0.5249, "floor": 0.3325,
                                         "margin_weight": 1.0},
        one_side_verdicts={"copy": 1.1001, "near-duplicate": 0.8583, "similar": 0.5285,
                           "floor": 0.3582, "margin_weight": 1.0}),
    # the same with the outline's proportions (weight and width chosen on a cache of the
    # seed-7 benchmark's top 50, thresholds from its 200 queries a family, calibrated again
    # once tilts and specks no longer moved the proportions: docs/quality.md)
    "grey-dir345-lw256-shape-colour-pattern-proportions": ExactMatch(
        0.98, 0.35, 0.8, 0.07, verdicts={"copy": 0.8599, "near-duplicate": 0.7768,
                                         "similar": 0.5377, "floor": 0.3123,
                                         "margin_weight": 1.0},
        one_side_verdicts={"copy": 1.0165, "near-duplicate": 0.8212, "similar": 0.5391,
                           "floor": 0.3302, "margin_weight": 1.0},
        proportion_weight=0.2, proportion_width=0.015),
}


def exact_match_for(descriptor: str) -> dict[str, float] | None:
    """What an index of `descriptor` writes into its manifest (`exact_match`)."""
    chosen = CHOSEN.get(descriptor)
    return None if chosen is None else chosen.to_manifest()
