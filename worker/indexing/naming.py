"""What a catalogue add checks of its new designs before it reads a drawing: their names and
their values in the further columns (the command line asks before the model loads, as it
does of the drawings; the add asks again under the lock, of the generation it edits)."""

from __future__ import annotations

from worker.core.catalogue import DESIGN_NAME, Catalogue, check_column_values


class CatalogueEditError(ValueError):
    """An edit we refuse: duplicate or unknown name, bad image; the message says which."""


def check_new_designs(catalogue: Catalogue, names: list[str], values: list[dict[str, str]]
                      ) -> None:
    """ColumnValueError for a column or value `catalogue` cannot take; CatalogueEditError for a
    name that is not one a design may take, or that is taken (or given twice)."""
    check_column_values(list(catalogue.extra), values, names)
    bad = [n for n in names if not DESIGN_NAME.fullmatch(n)]
    if bad:
        raise CatalogueEditError(f"invalid design name(s) {bad[:5]}: 1-100 ASCII letters, "
                                 "digits, '.', '_' or '-', starting with a letter or digit")
    taken = sorted(set(names) & set(catalogue.names) | {n for n in names if names.count(n) > 1})
    if taken:
        raise CatalogueEditError(f"design name(s) already used: {taken[:5]}")
