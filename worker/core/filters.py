"""Filters on the catalogue's further columns (garment, season, ...), in one place.

A filter field reads `column:value[,value...]`; a search takes any number of them. A design
passes when, for every column named, its value is one of the values given: values are OR'ed,
columns AND'ed (a column named in two fields, as a multi-select sends it, has the values of
both). The parsed form, `{column: [values, sorted]}` with columns sorted, is what a search
carries (SearchOptions.filters) and reports; the worker turns it into a mask over bank rows
before ranking, so a filtered search still returns k hits when k designs pass.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from worker.core.catalogue import NO_COLUMNS, Catalogue

Filters = dict[str, list[str]]
# filter fields one search may give: a form's multi-select sends a field per value chosen
# (50 refused a season's 60 collections chosen); within werkzeug's 1,000 form parts
MAX_FILTER_FIELDS = 500
MAX_FILTER_CHARS = 1000  # one filter field, at most
MAX_FILTER_TOTAL = 50_000  # characters of all the filter fields together
SHOWN_VALUES = 12  # values listed in a refusal


class FilterError(ValueError):
    """A filter that is malformed or names a column or value the catalogue lacks."""


class NothingPasses(FilterError):
    """Filters whose values each exist but that no design passes together."""


def parse_filter_fields(fields: Iterable[str]) -> Filters:
    """`column:value[,value...]` fields -> {column: sorted values}; blank fields are skipped.
    Raises FilterError naming the field it cannot read."""
    fields = [str(f) for f in fields]
    if len(fields) > MAX_FILTER_FIELDS:
        raise FilterError(f"at most {MAX_FILTER_FIELDS} filter fields (values chosen), got "
                          f"{len(fields)}")
    if (total := sum(map(len, fields))) > MAX_FILTER_TOTAL:
        raise FilterError(f"the filter fields hold {total:,} characters; at most "
                          f"{MAX_FILTER_TOTAL:,} in all")
    parsed: dict[str, set[str]] = {}
    for raw in fields:
        field = raw.strip()
        if not field:
            continue
        column, sep, values = field.partition(":")
        wanted = {v.strip() for v in values.split(",")} - {""}
        if len(raw) > MAX_FILTER_CHARS or not sep or not column.strip() or not wanted:
            raise FilterError(f"a filter reads column:value[,value...] (at most "
                              f"{MAX_FILTER_CHARS} characters), got {field[:80]!r}")
        parsed.setdefault(column.strip(), set()).update(wanted)
    return normalised(parsed)


def filters_field(value: object) -> Filters:
    """A search's `filters` as given: `column:value[,value...]` fields (a list, or one
    string), or the parsed dict; ValueError for people otherwise."""
    try:
        if isinstance(value, dict):
            if not all(isinstance(c, str) and isinstance(vs, list | tuple) and
                       all(isinstance(v, str) for v in vs) for c, vs in value.items()):
                raise TypeError(value)
            return normalised(value)
        return parse_filter_fields([value] if isinstance(value, str) else value)
    except (FilterError, TypeError, AttributeError) as exc:
        raise ValueError(str(exc) if isinstance(exc, FilterError) else
                         f"filters must be column:value[,value...] fields, got {value!r}"
                         ) from None


def normalised(filters: dict[str, Iterable[str]]) -> Filters:
    """Columns and their values sorted, so equal filters compare and print equal."""
    return {column: sorted(set(values)) for column, values in sorted(filters.items())}


def check_filters(filters: Filters, catalogue: Catalogue) -> None:
    """Refuse a column the catalogue does not have, or a value no design has in it."""
    for column, values in filters.items():
        if column not in catalogue.codes:
            have = ", ".join(filter(_nameable, catalogue.codes)) or NO_COLUMNS
            raise FilterError(f"unknown filter column {column!r}; the catalogue's columns "
                              f"are: {have}")
        known = set(catalogue.codes[column][1])
        unknown = [v for v in values if v not in known]
        if unknown:
            listed = ", ".join(repr(v) for v in catalogue.codes[column][1][:SHOWN_VALUES])
            raise FilterError(f"no design has {column} {unknown[0]!r}; its values are: {listed}"
                              + (" ..." if len(known) > SHOWN_VALUES else ""))


def allowed_rows(filters: Filters, catalogue: Catalogue) -> np.ndarray | None:
    """(n_pairs,) bool, True for the rows that pass every filter; None without filters.
    Raises FilterError as `check_filters`."""
    if not filters:
        return None
    check_filters(filters, catalogue)
    mask = np.ones(len(catalogue), dtype=bool)
    for column, values in filters.items():
        codes, uniques = catalogue.codes[column]
        mask &= np.isin(codes, [uniques.index(v) for v in values])
    return mask


def check_some_pass(filters: Filters, catalogue: Catalogue) -> None:
    """`check_filters`, and refuse (NothingPasses) filters no design passes together: a
    search or a check against none would find nothing and read as clean."""
    allowed = allowed_rows(filters, catalogue)
    if allowed is not None and not allowed.any():
        raise NothingPasses(f"no catalogue design passes the filters ({describe(filters)}), "
                            "so nothing would be compared; name fewer or other values")


def facets(catalogue: Catalogue) -> dict[str, list[str]]:
    """Each further column and its distinct non-empty values, sorted: what a form offers. A
    value with a comma, or a column with a colon, cannot be named in a `filter` field (a
    comma separates values, the first colon ends the column), so it is not offered."""
    return {column: [v for v in uniques if v and "," not in v]
            for column, (_, uniques) in catalogue.codes.items() if _nameable(column)}


def _nameable(column: str) -> bool:
    return ":" not in column


def describe(filters: Filters) -> str:
    """For people: `garment is dress or trousers, and season is SS25`."""
    return ", and ".join(f"{column} is {' or '.join(values)}"
                         for column, values in filters.items())


def as_fields(filters: Filters) -> list[str]:
    """The filter fields that parse back to `filters` (for links and query strings)."""
    return [f"{column}:{','.join(values)}" for column, values in filters.items()]
