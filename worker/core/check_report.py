"""A collection check's report as CSV: a row per design and hit (the API's report.csv and
`python -m worker.check`'s output). TensorFlow-free: the web imports it."""

from __future__ import annotations

import csv
import io

from worker.core.contract import CheckedDesign
from worker.core.filters import Filters, as_fields

REPORT_COLUMNS = ("design", "rank", "match", "similarity", "verdict", "front_score",
                  "back_score", "error", "filters", "swapped", "outline_only")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run such a cell


def _cell(value: object) -> object:
    """A text cell a spreadsheet will not run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def report_rows(designs: list[CheckedDesign], filters: Filters | None = None
                ) -> list[list[object]]:
    """One row per design and hit; a design that failed (or is not checked yet): one row.
    Every row names the filters the designs were compared under (a row read alone, or a
    report read a season later, still says that hits were looked for among some designs), and
    the design's sides matched by their outline alone (why a sketch's hits have no verdict).
    The columns after `error` came later: they are appended, so older readers keep theirs."""
    compared = "; ".join(as_fields(filters or {}))  # each a `filter` field, as given
    out: list[list[object]] = []
    for design in designs:
        sketched = " ".join(design.outline_only)
        if design.status != "finished":
            out.append([design.name, "", "", "", "", "", "", design.error or design.status,
                        compared, "", sketched])
        for hit in design.results:
            out.append([design.name, hit.rank, hit.name, hit.similarity, hit.verdict,
                        hit.front_score, hit.back_score, "", compared,
                        str(hit.swapped).lower(), sketched])
    return out


def report_csv(designs: list[CheckedDesign], filters: Filters | None = None) -> str:
    """The report as CSV text: REPORT_COLUMNS, then `report_rows`."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(REPORT_COLUMNS)
    writer.writerows([_cell(value) for value in row] for row in report_rows(designs, filters))
    return text.getvalue()
