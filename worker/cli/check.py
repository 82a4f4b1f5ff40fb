"""`python -m worker.cli.check PATH [--out FILE] [--filter COLUMN:VALUE]`: check a collection
of new designs against the catalogue, in this process, and write the report CSV (the same as
the API's report.csv).

PATH is a ZIP, a folder holding pairs.csv, or a CSV (name,front,back; image paths relative to
it). The model and the index are loaded here, as `python -m worker.cli.index` does; designs go
through the model CHECK_CHUNK_PAIRS at a time and are ranked as searches are
(`worker.service.checks.check_pairs`). No Redis, no worker.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pydantic import ValidationError
from tqdm import tqdm

from worker.core.archive import CollectionRefused, ZipLimits
from worker.core.bank import BankError
from worker.core.catalogue import CatalogueError, listed_catalogue
from worker.core.collection import Collection, read_collection
from worker.core.contract import CheckedDesign, SearchOptions, problems
from worker.core.filters import FilterError, check_some_pass
from worker.core.results_csv import report_csv
from worker.core.settings import InvalidSetting, Settings
from worker.core.storedforms import StoredForms, stored_design
from worker.pipeline.weights import WeightsUnavailable


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m worker.cli.check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="a ZIP, a folder with pairs.csv, or a CSV")
    parser.add_argument("--out", help="the CSV report (default: standard output)")
    parser.add_argument("-k", default="20", help="hits per design, 1-100 (default 20)")
    parser.add_argument("--front-weight", default="0.5", help="0-1 (default 0.5)")
    parser.add_argument("--sides-unknown", action="store_true",
                        help="match each drawing against both sides of every design")
    parser.add_argument("--filter", action="append", default=[], metavar="COLUMN:VALUE[,VALUE]",
                        help="compare only with catalogue designs whose COLUMN has one of the "
                             "values (repeat for more columns), as the API's `filter`")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def run_check(engine, collection: Collection, options: SearchOptions,
              progress: bool = True) -> list[CheckedDesign]:
    """Each design's outcome, CHECK_CHUNK_PAIRS designs to a forward pass."""
    from worker.service.checks import check_pairs

    settings, out = engine.settings, []
    with tqdm(total=len(collection.names), unit="design", disable=not progress,
              file=sys.stderr) as bar:
        pending: list = []
        forms = StoredForms(settings.max_image_pixels)
        for design in collection.designs:
            pending.append(stored_design(design, forms))
            if len(pending) == settings.check_chunk_pairs:
                out += _checked(engine, pending, options, check_pairs)
                bar.update(len(pending))
                pending = []
        out += _checked(engine, pending, options, check_pairs)
        bar.update(len(pending))
    return out


def _checked(engine, designs: list, options: SearchOptions, check_pairs) -> list[CheckedDesign]:
    ready = [d for d in designs if not d.error]
    found = iter(check_pairs(engine, [(d.front, d.back) for d in ready], options) if ready else [])
    out = []
    for design in designs:
        hits = design.error or next(found)
        out.append(CheckedDesign(name=design.name, status="failed", error=hits)
                   if isinstance(hits, str) else hits.design(design.name))
    return out


def unwritable(given: str | None) -> str | None:
    """Why the report could not be written to `given`, known before an hour's check."""
    if given is None:
        return None
    out = Path(given)
    if out.is_dir() or given.endswith(("/", os.sep)):  # Path drops a trailing slash
        return f"--out {given} names a folder; name the report's file"
    if not out.parent.is_dir():
        return f"--out {out}: there is no folder {out.parent}"
    if not os.access(out.parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        return f"--out {out}: not writable here"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if (refused := unwritable(args.out)) is not None:
        print(f"check: {refused}", file=sys.stderr)
        return 1
    out = None if args.out is None else Path(args.out)
    try:
        settings = Settings.from_env()
        options = SearchOptions(k=args.k, front_weight=args.front_weight,
                                sides_unknown=args.sides_unknown, filters=args.filter)
        collection = read_collection(args.path, ZipLimits.of(settings), settings.check_max_pairs)
        if options.filters:  # a name the catalogue lacks, or none passing: refused first
            check_some_pass(options.filters, listed_catalogue(settings.features_dir,
                                                              settings.database_dir))
        from worker.service.engine import Engine

        engine = Engine(settings)
        try:
            designs = run_check(engine, collection, options, not args.no_progress)
        finally:
            engine.release()  # its pin on the catalogue version it read
    except ValidationError as exc:
        print(f"check: {problems(exc)[0][1]}", file=sys.stderr)
        return 2
    except (CollectionRefused, CatalogueError, BankError, FilterError, InvalidSetting,
            WeightsUnavailable, OSError) as exc:
        print(f"check: {exc}", file=sys.stderr)
        return 1
    report = report_csv(designs, options)
    if out is not None:
        try:
            # a file for a spreadsheet: Excel reads UTF-8 without a BOM in its code page
            out.write_text(report, encoding="utf-8-sig", newline="")
        except OSError as exc:  # the check is not lost: the report goes to standard output
            print(f"check: could not write {out} ({exc.strerror}); the report follows on "
                  "standard output", file=sys.stderr)
            sys.stdout.write(report)
            return 1
    else:
        sys.stdout.write(report)
    failed = sum(d.status == "failed" for d in designs)
    print(f"checked {len(designs) - failed} of {len(designs)} designs"
          + (f" ({failed} failed: see the error column)" if failed else "")
          + (f" -> {args.out}" if args.out else ""), file=sys.stderr)
    return 1 if failed == len(designs) else 0  # as the web's 400 no_usable_designs


if __name__ == "__main__":
    sys.exit(main())
