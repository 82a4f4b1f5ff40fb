"""Results as CSV: a collection check's report (a row per design and hit: the API's
report.csv and `python -m worker.check`'s output), one search's hits (results.csv) and the
catalogue's duplicate pairs (duplicates.csv, `python -m worker.duplicates --csv`).
TensorFlow-free: the web imports it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from worker.core.contract import (
    DEFAULT_FRONT_WEIGHT,
    CheckedDesign,
    Hit,
    SearchOptions,
    SearchResult,
    SideCopy,
)
from worker.core.filters import Filters, as_fields
from worker.pipeline.ranking import side_weights

REPORT_COLUMNS = ("design", "rank", "match", "similarity", "verdict", "front_score",
                  "back_score", "error", "filters", "swapped", "outline_only", "score",
                  "front_weight", "catalogue_version", "side_copies", "order", "turned")
# a search's: the report's, less the design, its error and the catalogue version, and the
# parts of the drawings it searched by (a check has none); then, in both, the hits'
# catalogue columns. `order`: "design" when the hits after a found copy are ordered by
# design, so a reader knows why the scores below it do not fall with the rank; `turned`:
# the sides scanned sideways and turned upright before the search (`front: 270; back: 90`)
SEARCH_COLUMNS = ("rank", "match", "similarity", "verdict", "front_score", "back_score",
                  "filters", "swapped", "outline_only", "score", "front_weight", "side_copies",
                  "boxes", "order", "turned")
DUPLICATES_COLUMNS = ("a", "b", "similarity", "verdict", "group", "sketches")
NO_HITS = "no catalogue design passes the filters"  # a finished design's only cause of none
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run such a cell


def _cell(value: object) -> object:
    """A text cell a spreadsheet will not run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def _csv(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow([_cell(name) for name in header])
    writer.writerows([_cell(value) for value in row] for row in rows)
    return text.getvalue()


def _hit_row(hit: Hit, compared: str, sketched: str, front_weight: float | None,
             copied: str, columns: list[str]) -> list[object]:
    """A hit's row up to `side_copies`, then `columns`: a search's CSV has its `boxes` before
    the catalogue's; a report's row has the design first, its (empty) error after
    `back_score` and the catalogue version after `front_weight`."""
    return [hit.rank, hit.name, hit.similarity, hit.verdict, hit.front_score, hit.back_score,
            compared, str(hit.swapped).lower(), sketched, hit.score, front_weight, copied,
            *(hit.columns.get(name, "") for name in columns)]


def boxes_text(result: SearchResult) -> str:
    """`front: 0.1,0.2,0.6,0.9`: the part of each drawing a search compared, `;` between."""
    return "; ".join(f"{side}: {','.join(f'{v:g}' for v in box)}"
                     for side, box in (("front", result.front_box), ("back", result.back_box))
                     if box is not None)


def turned_text(turned: dict[str, int]) -> str:
    """`front: 270; back: 90`: the sides turned upright, by degrees counter-clockwise."""
    return "; ".join(f"{side}: {degrees}" for side, degrees in turned.items())


def side_copies_text(copies: Iterable[SideCopy]) -> str:
    """`front: jkt-01 copy 98; back: ...`: a query's sides that alone copy a design (`front:
    jkt-01 (its back) copy 98` where sides=unknown matched the design's other side)."""
    return "; ".join(f"{c.side}: {c.name}{_other_side(c)} {c.verdict} {c.similarity}"
                     for c in copies)


def _other_side(copy: SideCopy) -> str:
    return f" (its {'back' if copy.side == 'front' else 'front'})" if copy.swapped else ""


def _catalogue_columns(hits: Iterable[Hit]) -> list[str]:
    """The further pairs.csv columns (garment, season, ...) the hits carry, in their order."""
    return list(dict.fromkeys(name for hit in hits for name in hit.columns))


def _headed(fixed: tuple[str, ...], columns: list[str]) -> list[str]:
    """The header: a catalogue column named like one of ours is `catalogue:<name>` (a reader
    by name would otherwise see one of the two)."""
    return [*fixed, *(f"catalogue:{name}" if name in fixed else name for name in columns)]


def report_rows(designs: list[CheckedDesign], filters: Filters | None = None,
                columns: list[str] | None = None, front_weight: float = DEFAULT_FRONT_WEIGHT
                ) -> list[list[object]]:
    """One row per design and hit; a design that failed (or is not checked yet): one row.
    Every row names the filters the designs were compared under (a row read alone, or a
    report read a season later, still says that hits were looked for among some designs), and
    the design's sides matched by their outline alone (why a sketch's hits have no verdict);
    then each hit's value in `columns` (the catalogue's). The columns after `error` came
    later: they are appended, so older readers keep theirs."""
    compared = "; ".join(as_fields(filters or {}))  # each a `filter` field, as given
    columns = columns or []
    out: list[list[object]] = []
    for design in designs:
        sketched, copied = " ".join(design.outline_only), side_copies_text(design.side_copies)
        turned = turned_text(design.turned)
        if design.status != "finished" or not design.results:  # a design is never left out
            why = NO_HITS if design.status == "finished" else design.error or design.status
            out.append([design.name, "", "", "", "", "", "", why, compared, "", sketched, "",
                        front_weight, design.catalogue, copied, "", turned,
                        *([""] * len(columns))])
        applied = _applied_weight(design, front_weight)
        for hit in design.results:
            row = _hit_row(hit, compared, sketched, applied, copied, columns)
            weight = SEARCH_COLUMNS.index("front_weight") + 1  # then side_copies, the catalogue's
            out.append([design.name, *row[:6], "", *row[6:weight], design.catalogue,
                        row[weight], design.order, turned, *row[weight + 1:]])
    return out


def _applied_weight(design: CheckedDesign, front_weight: float) -> float:
    """The front weight a design's hits were ranked with (a design of one side is ranked by
    that side alone): the sides are read from its hits, the rule is the ranking's."""
    sides = {(hit.front_score is not None, hit.back_score is not None) for hit in design.results}
    if len(sides) != 1:  # no hits: nothing was ranked, the check's weight stands
        return front_weight
    return side_weights(*sides.pop(), front_weight)[0]


def report_csv(designs: list[CheckedDesign], options: SearchOptions | None = None) -> str:
    """The report as CSV text: REPORT_COLUMNS and the catalogue columns the hits carry, then
    `report_rows` (under the check's `options`: its filters and front weight)."""
    options = options or SearchOptions()
    columns = _catalogue_columns(hit for design in designs for hit in design.results)
    return _csv(_headed(REPORT_COLUMNS, columns),
                report_rows(designs, options.filters, columns, options.front_weight))


def search_csv(result: SearchResult) -> str:
    """A finished search's hits as CSV: SEARCH_COLUMNS, then each catalogue column the hits
    carry (garment, season, ...: pairs.csv's order); a row per hit, best first. Every row
    says the filters and boxes it was compared under (a row read alone still does)."""
    compared = "; ".join(as_fields(result.filters))
    sketched, copied = " ".join(result.outline_only), side_copies_text(result.side_copies)
    columns, boxed = _catalogue_columns(result.results), boxes_text(result)
    fixed = len(SEARCH_COLUMNS) - 3  # the columns _hit_row gives before the catalogue's
    return _csv(_headed(SEARCH_COLUMNS, columns), (
        [*row[:fixed], boxed, result.order, turned_text(result.turned), *row[fixed:]]
        for row in (_hit_row(hit, compared, sketched, result.front_weight, copied, columns)
                    for hit in result.results)))


def duplicates_csv(groups: list[dict]) -> str:
    """The duplicate groups (worker.core.duplicates.duplicate_groups) as CSV: a row per pair;
    `group` numbers the groups from 1, as the page and the CLI show them; `sketches`: which
    of the pair (`a`, `b`, `a b`) is drawn as line sketches, judged without its lead."""
    return _csv(DUPLICATES_COLUMNS, (
        [pair["a"], pair["b"], pair["similarity"], pair["verdict"], number,
         " ".join(side for side in ("a", "b") if pair[side] in group.get("sketches", ()))]
        for number, group in enumerate(groups, start=1) for pair in group["pairs"]))
