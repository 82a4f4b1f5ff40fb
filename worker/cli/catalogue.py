"""`python -m worker.cli.catalogue add NAME FRONT BACK | remove NAME | import DIR_OR_CSV`:
edit the catalogue without re-indexing everything (worker.indexing.edits)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from worker.core.bank import BankError, read_manifest
from worker.core.catalogue import CatalogueError, load_catalogue
from worker.core.generations import CatalogueBusy
from worker.core.images import ImageRejected
from worker.core.settings import InvalidSetting, Settings
from worker.indexing.edits import add_designs, read_drawing, remove_design
from worker.indexing.naming import CatalogueEditError, check_new_designs
from worker.pipeline.weights import WeightsUnavailable


def read_import(source: Path) -> tuple[list[tuple[str, Path, Path]], list[dict[str, str]]]:
    """Designs to import from a folder with pairs.csv, or from a name,front,back CSV (image
    paths relative to the CSV's folder), and each one's values in the CSV's further columns."""
    csv_path = source / "pairs.csv" if source.is_dir() else source
    if not csv_path.is_file():  # not the catalogue's own "no catalogue: make a sample" advice
        raise CatalogueEditError(f"nothing to import at {source}: name a folder holding "
                                 "pairs.csv, or a CSV of name,front,back rows")
    batch = load_catalogue(csv_path.parent, csv_path)
    designs = [(name, batch.image_path(front), batch.image_path(back))
               for name, front, back in zip(batch.names, batch.fronts, batch.backs, strict=True)]
    return designs, [{column: batch.extra[column][row] for column in batch.extra}
                     for row in range(len(batch))]


def check_drawings(settings: Settings, designs: list[tuple[str, Path, Path]]) -> None:
    """Every drawing as the edit will check it (`read_drawing`, prepared as the index's
    manifest says), a refusal naming its file: ImageRejected."""
    trim = bool(read_manifest(settings.features_dir).get("preprocess", {}).get("trim"))
    for _, *paths in designs:
        for side, path in zip(("front", "back"), paths, strict=True):
            try:
                read_drawing(settings, path, side, trim)
            except ImageRejected as exc:
                raise ImageRejected(exc.reason, f"{path.name}: {exc}") from None


def _column_value(text: str) -> tuple[str, str]:
    column, sep, value = text.partition("=")
    if not sep or not column.strip():
        raise argparse.ArgumentTypeError(f"expected COLUMN=VALUE, got {text!r}")
    return column.strip(), value.strip()


def _columns(given: list[tuple[str, str]]) -> dict[str, str]:
    columns = dict(given)
    if len(columns) < len(given):
        raise CatalogueEditError("a column was given more than once in --column")
    return columns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.cli.catalogue",
                                     description="Add or remove catalogue designs.")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add one design")
    add.add_argument("name", type=str.strip)  # as the API reads it: a pasted space dropped
    add.add_argument("front", type=Path)
    add.add_argument("back", type=Path)
    add.add_argument("--column", action="append", default=[], metavar="COLUMN=VALUE",
                     type=_column_value, help="its value in a further column of pairs.csv "
                     "(repeatable; a column left out is empty)")
    remove = commands.add_parser("remove", help="remove one design")
    remove.add_argument("name", type=str.strip)
    batch = commands.add_parser("import", help="add every design of a folder or CSV")
    batch.add_argument("source", type=Path, help="folder with pairs.csv, or a name,front,back CSV")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "remove":
            manifest = remove_design(settings, args.name)
        else:
            designs, columns = (([(args.name, args.front, args.back)], [_columns(args.column)])
                                if args.command == "add" else read_import(args.source))
            check_new_designs(load_catalogue(settings.database_dir),  # before the model loads,
                              [name for name, _, _ in designs], columns)
            check_drawings(settings, designs)  # as the drawings, naming each file
            from worker.pipeline.extract import FeatureExtractor
            from worker.pipeline.weights import weights_for

            extractor = FeatureExtractor(weights_for(settings), settings.descriptor,
                                         settings.precision)
            manifest = add_designs(settings, extractor, designs, columns)
    except (CatalogueEditError, CatalogueError, CatalogueBusy, BankError, ImageRejected,
            InvalidSetting, WeightsUnavailable, OSError) as exc:
        print(f"catalogue: {exc}", file=sys.stderr)
        return 1
    print(f"catalogue now has {manifest['n_pairs']} designs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
