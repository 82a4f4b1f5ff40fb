"""Each side of the look-alike queries searched alone, as a one-side search and `side_copies`
(worker.pipeline.sides) search it: are its verdicts as often right as a pair's? Each side's
list comes from `listing.ranked` with the one-side thresholds, as a one-side search's does.

A side's hit is the copy when it holds the very drawing the query side was made from (a
front shared by a design and its variant is the copy of both); relevance otherwise as for a
pair, with that side's pattern. Sides matched by their outline alone get no verdict, as in
the job, and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.lookalike import verdict_row
from worker.core.contract import SIDES
from worker.dev.sample import Design
from worker.pipeline.listing import ranked
from worker.pipeline.verdicts import VERDICTS

K = 20


@dataclass
class SideOutcome:
    side: str
    row: int | None  # the catalogue row the query was copied from; None: unrelated
    design: Design
    hits: list  # SearchHit, in the list's order
    judged: list  # what each hit's verdict judges (`listing.ranked`)


def search_sides(bank, outcomes, front_weight: float = 0.5,
                 thresholds: dict[str, float] | None = None) -> list[SideOutcome]:
    """Every query side not matched by its outline, searched alone among every design;
    `thresholds` (one side's) gate the list after a found copy (None: the score's order)."""
    found = []
    for o in outcomes:
        for side, q, by_outline in zip(SIDES, o.projected, o.outline, strict=True):
            if by_outline:
                continue
            alone = (q, None) if side == "front" else (None, q)
            listing = ranked(bank, *alone, K, front_weight, thresholds=thresholds)
            found.append(SideOutcome(side, o.query.row, o.query.design, listing.hits,
                                     listing.judged))
    return found


def drawing_of(d: Design, side: str) -> str:
    """Which catalogue drawing a design's side is (a variant's front is its base's)."""
    return (d.variant_of or d.name) if side == "front" else d.name


def side_relevance(s: SideOutcome, other: Design, designs: list[Design]) -> int:
    """The copied drawing 3, same garment and that side's pattern 2, same garment 1, else 0."""
    if s.row is not None and drawing_of(other, s.side) == drawing_of(designs[s.row], s.side):
        return 3
    if other.garment != s.design.garment:
        return 0
    pattern = (lambda d: d.pattern) if s.side == "front" else (lambda d: d.back_pattern)
    return 2 if pattern(other) == pattern(s.design) else 1


def _graded(s: SideOutcome, designs: list[Design]) -> list[tuple[float, int]]:
    """(score the verdicts judge, relevance) of a side's hits, in the list's order."""
    return [(judged, side_relevance(s, designs[h.index], designs))
            for h, judged in zip(s.hits, s.judged, strict=True)]


def graded_side_hits(sides: list[SideOutcome], designs: list[Design]
                     ) -> list[tuple[float, int, bool]]:
    """(score the verdicts judge, relevance, copied query) of every side's top-20 hits."""
    return [(judged, rel, s.row is not None) for s in sides for judged, rel in _graded(s, designs)]


def side_verdict_table(sides: list[SideOutcome], designs: list[Design],
                       thresholds: dict[str, float] | None) -> list[list[str]]:
    """As `lookalike.verdict_table`, per side searched alone: hits given each verdict or a
    more serious one, the share that were what it promises, and the share of copied sides
    whose drawing got it (a shared front may be the copy of two designs: counted once)."""
    if not thresholds:
        return [["(no thresholds for this descriptor)", "", "", "", ""]]
    graded = [(s, _graded(s, designs)) for s in sides]
    copied = [hits for s, hits in graded if s.row is not None]
    rows = []
    for name in VERDICTS:
        given = [rel for _, hits in graded for score, rel in hits if score >= thresholds[name]]
        found = sum(any(rel == 3 and score >= thresholds[name] for score, rel in hits)
                    for hits in copied)
        rows.append(verdict_row(name, thresholds[name], given, found, len(copied)))
    return rows
