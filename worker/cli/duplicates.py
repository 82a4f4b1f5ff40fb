"""`python -m worker.cli.duplicates [--min-verdict near-duplicate] [--csv FILE]`: the groups of
catalogue designs whose pairs are judged at least that verdict, as the index lists them
(worker.core.duplicates); printed, or written as a CSV (`results_csv.DUPLICATES_COLUMNS`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from worker.core.bank import BankError
from worker.core.duplicates import DEFAULT_MIN_VERDICT, VERDICTS, duplicate_groups, read_duplicates
from worker.core.results_csv import DUPLICATES_COLUMNS, duplicates_csv
from worker.core.settings import InvalidSetting, Settings
from worker.pipeline.verdicts import duplicate_thresholds_in


def print_groups(groups: list[dict], n_designs: int, min_verdict: str) -> None:
    print(f"{len(groups)} group(s) of designs at least {min_verdict} among {n_designs} designs")
    for number, group in enumerate(groups, start=1):
        print(f"\ngroup {number} ({len(group['designs'])} designs): {', '.join(group['designs'])}")
        if group["sketches"]:  # why a pair of them is judged lower than its score suggests
            print(f"  drawn as line sketches, judged without their lead: "
                  f"{', '.join(group['sketches'])}")
        for pair in group["pairs"]:
            print(f"  {pair['a']} ~ {pair['b']}: {pair['verdict']}, similarity {pair['similarity']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.cli.duplicates",
                                     description="List groups of duplicate designs in the catalogue.")
    parser.add_argument("--min-verdict", choices=VERDICTS, default=DEFAULT_MIN_VERDICT,
                        help="the least serious verdict that joins two designs "
                             f"(default {DEFAULT_MIN_VERDICT})")
    parser.add_argument("--csv", type=Path, metavar="FILE",
                        help="write a row per pair (" + ",".join(DUPLICATES_COLUMNS)
                             + ") to FILE instead of printing")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        manifest, pairs = read_duplicates(settings.features_dir)
        if duplicate_thresholds_in(manifest) is None:  # "0 groups" would read as a clean one
            print(f"duplicates: this index's descriptor ({manifest.get('descriptor')}) has no "
                  "calibrated thresholds, so its pairs cannot be judged and none is listed",
                  file=sys.stderr)
            return 1
        groups = duplicate_groups(pairs, manifest["names"], args.min_verdict)
        if args.csv is not None:
            # a file for a spreadsheet: Excel reads UTF-8 without a BOM in its code page
            args.csv.write_text(duplicates_csv(groups), encoding="utf-8-sig", newline="")
    except (BankError, InvalidSetting, OSError) as exc:
        print(f"duplicates: {exc}", file=sys.stderr)
        return 1
    if args.csv is None:
        print_groups(groups, len(manifest["names"]), args.min_verdict)
    else:
        print(f"{len(groups)} group(s), {sum(len(g['pairs']) for g in groups)} pair(s) -> {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
