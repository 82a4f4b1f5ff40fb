"""A verdict a person can read, and a 0-100 similarity, from a hit's score.

Thresholds are calibrated per descriptor on the look-alike benchmark
(`python -m benchmarks.lookalike --seed 7 --calibrate`, docs/quality.md): a hit scoring at
least `copy` is the copied design with precision >= 0.99 there, at least `near-duplicate`
with precision >= 0.95, and at least `similar` is the same garment and pattern with
precision >= 0.80. The index writes them into the manifest beside the descriptor; a worker
reads them from there. An index with an exact-match bonus (worker.pipeline.exact) also
stores the thresholds calibrated for its score with the bonus, which its searches judge by;
its duplicate pairs are scored plainly and judged by the list's own thresholds
(`duplicate_thresholds_in`, calibrated on `benchmarks.catalogue_duplicates`). Similarity
maps the score piecewise-linearly through the thresholds: `floor` -> 0, similar -> 50,
near-duplicate -> 75, copy -> 90, 1.0 (or copy + 0.1 where higher) -> 100.

The first hit is judged on its score plus its lead over the second (`verdict_scores`): a copy
stands out from the look-alikes even when an edit lowered its score. The second counts as
scoring at least `floor` (no second, one design searched: the floor): in a catalogue too
small to hold look-alikes it would lift any first.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

VERDICTS = ("copy", "near-duplicate", "similar")  # most serious first
TARGETS = {"copy": (3, 0.99), "near-duplicate": (3, 0.95), "similar": (2, 0.80)}  # relevance, precision
# calibrated on the tuning seed to half the errors promised, so that the promise holds on a
# catalogue the thresholds never saw (docs/quality.md)
CALIBRATED_PRECISION = {"copy": 0.995, "near-duplicate": 0.975, "similar": 0.80}
MARGIN_WEIGHT = 1.0  # chosen on the tuning seed (docs/quality.md)
ANCHORS = {"floor": 0.0, "similar": 50.0, "near-duplicate": 75.0, "copy": 90.0}
# 100 is a judged score of 1.0, or this far above `copy` where that is higher (a side searched
# alone: its `copy` asks for a lead on top of a near-identical score)
TOP_ABOVE_COPY = 0.1

# descriptor -> thresholds, from `python -m benchmarks.lookalike --seed 7 --calibrate --descriptor D`
CALIBRATED: dict[str, dict[str, float]] = {
    "grey-dir345-lw256-shape-colour-pattern": {"copy": 1.0158, "near-duplicate": 0.9008,
                                               "similar": 0.6271, "floor": 0.4464,
                                               "margin_weight": 1.0},
    "grey-dir345-lw256-shape-colour": {"copy": 0.9828, "near-duplicate": 0.8986,
                                       "similar": 0.6575, "floor": 0.4371, "margin_weight": 1.0},
    "grey-dir345-pw256-shape-colour": {"copy": 0.8985, "near-duplicate": 0.8243, "similar": 0.51,
                                       "floor": 0.2622, "margin_weight": 1.0},
    "trim-gem45-pw256": {"copy": 0.9411, "near-duplicate": 0.7615, "similar": 0.3911,
                         "floor": 0.1319, "margin_weight": 1.0},
}


# descriptor -> the duplicate list's own (pairs of catalogue designs: every design meets
# every other, and many have a look-alike well clear of the rest), from `python -m
# benchmarks.catalogue_duplicates --seed 7 --copies 20 --calibrate` (docs/quality.md)
CALIBRATED_DUPLICATES: dict[str, dict[str, float]] = {
    "grey-dir345-lw256-shape-colour-pattern": {"copy": 0.9979, "near-duplicate": 0.9661,
                                               "similar": 0.819, "floor": 0.3835,
                                               "margin_weight": 0.25},
    "grey-dir345-lw256-shape-colour": {"copy": 0.998, "near-duplicate": 0.9681,
                                       "similar": 0.8198, "floor": 0.3776, "margin_weight": 0.25},
}


# the outline's proportions are a raw block, which adds under 1e-5 to a plain score (a dot
# product: worker/core/whitening.py), so its plain score and its thresholds are the pattern's
for _table in (CALIBRATED, CALIBRATED_DUPLICATES):
    _table["grey-dir345-lw256-shape-colour-pattern-proportions"] = dict(
        _table["grey-dir345-lw256-shape-colour-pattern"])


def thresholds_for(descriptor: str) -> dict[str, float] | None:
    """The calibrated thresholds of `descriptor`, None if it was never calibrated."""
    return CALIBRATED.get(descriptor)


def duplicate_thresholds_for(descriptor: str) -> dict[str, float] | None:
    """What a new list of `descriptor`'s duplicate pairs is judged by: its own calibration,
    else the plain score's thresholds (a search's)."""
    return CALIBRATED_DUPLICATES.get(descriptor) or thresholds_for(descriptor)


def duplicate_thresholds_in(manifest: dict) -> dict[str, float] | None:
    """What an index's duplicate pairs are judged by: those its list was made with; a list
    made before the list had thresholds of its own keeps the plain score's (an edit then
    updates it as it was, and `make index` lists it anew); no list yet: the descriptor's."""
    listed = manifest.get("duplicates")
    if listed is None:
        return duplicate_thresholds_for(manifest.get("descriptor", ""))
    return listed.get("thresholds") or plain_thresholds_in(manifest)


def lead(first, second, floor: float | None):
    """The first hit's lead over the second (floats or arrays), the second counted as scoring
    at least `floor` (the thresholds' own: what an unrelated design scores). In a catalogue or
    a filter too small to hold look-alikes, the second is far from everything and would make
    any first stand out (docs/quality.md: "A lead over a poor second")."""
    return first - (second if floor is None else np.maximum(np.minimum(first, floor), second))


def verdict_scores(scores: list[float], thresholds: dict[str, float] | None = None
                   ) -> list[float]:
    """Scores, best first -> what the verdicts judge: the first plus MARGIN_WEIGHT times its
    `lead` over the second (the second at least `thresholds`' floor; no second, where one
    design is searched, counts as the floor: without a floor, no lead), the others as they
    are."""
    if not scores:
        return []
    floor = None if thresholds is None else thresholds.get("floor")
    second = scores[1] if len(scores) > 1 else (-np.inf if floor is not None else scores[0])
    ahead = float(lead(scores[0], second, floor))
    return [scores[0] + MARGIN_WEIGHT * ahead, *scores[1:]]


def plain_thresholds_in(manifest: dict) -> dict[str, float] | None:
    """The thresholds of an index's plain score (its manifest's, else its descriptor's): what
    a search of an index without the exact-match bonus judges by, and a duplicate list made
    before the list's own thresholds; ones calibrated with another weight of the first hit's
    lead are not used."""
    stored = manifest.get("verdicts")
    if stored and stored.get("margin_weight") == MARGIN_WEIGHT:
        return stored
    return thresholds_for(manifest.get("descriptor", ""))


def thresholds_in(manifest: dict, one_side: bool = False) -> dict[str, float] | None:
    """The thresholds a search of an index judges its hits by: those calibrated for its
    exact-match bonus (worker.pipeline.exact) when it has one, else its plain score's. With
    `one_side`, a side searched alone: the bonus's own for one side where the index has them
    (a side's score is not averaged with another's, so a wrong hit reaches higher), else the
    pair's."""
    exact = manifest.get("exact_match") or {}
    for stored in (exact.get("one_side_verdicts") if one_side else None, exact.get("verdicts")):
        if stored and stored.get("margin_weight") == MARGIN_WEIGHT:
            return stored
    return plain_thresholds_in(manifest)


def verdict_of(score: float, thresholds: dict[str, float] | None) -> str | None:
    """`copy`, `near-duplicate`, `similar`, or None below them (or without thresholds)."""
    if not thresholds:
        return None
    return next((v for v in VERDICTS if score >= thresholds[v]), None)


def similarity(score: float, thresholds: dict[str, float] | None) -> int | None:
    """0-100: the score mapped through the thresholds (ANCHORS); None without thresholds."""
    if not thresholds:
        return None
    return int(similarities(np.array([score]), thresholds)[0])


def similarities(scores: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """`similarity` of each of (m,) scores, (m,) int64; rounded down, so a score just below a
    threshold never shows that threshold's anchor beside the lesser verdict it gets."""
    xs = [thresholds["floor"], thresholds["similar"], thresholds["near-duplicate"],
          thresholds["copy"], max(1.0, thresholds["copy"] + TOP_ABOVE_COPY)]
    ys = [ANCHORS["floor"], ANCHORS["similar"], ANCHORS["near-duplicate"], ANCHORS["copy"], 100.0]
    return np.floor(np.interp(scores, xs, ys) + 1e-9).astype(np.int64)  # 1e-9: float error


def lowest_threshold(scored: list[tuple[float, int]], relevant: int, precision: float) -> float:
    """The lowest score t such that, of every hit scoring >= t, at least `precision` have
    relevance >= `relevant` (hits sorted by score, best first)."""
    best, hits, good = float("inf"), 0, 0
    for score, rel in scored:
        hits += 1
        good += rel >= relevant
        if good / hits >= precision:
            best = score
    return best


def calibrate(hits: Iterable[tuple[float, int]]) -> dict[str, float]:
    """Thresholds from (score, relevance) of benchmark hits: relevance 3 the copy, 2 the same
    garment and pattern, 1 the same garment, 0 other; `floor` the median score."""
    scored = sorted(((float(s), int(r)) for s, r in hits), reverse=True)
    out = {name: round(lowest_threshold(scored, rel, CALIBRATED_PRECISION[name]), 4)
           for name, (rel, _) in TARGETS.items()}
    out["near-duplicate"] = min(out["near-duplicate"], out["copy"])
    out["similar"] = min(out["similar"], out["near-duplicate"])
    out["floor"] = round(min(float(np.median([s for s, _ in scored])), out["similar"] - 1e-3), 4)
    out["margin_weight"] = MARGIN_WEIGHT
    return out
