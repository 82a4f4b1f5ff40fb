"""`python -m worker.cli.sample [--pairs 200] [--seed 7] [--out DIR]`: the sample catalogue."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from worker.core.numerals import whole
from worker.core.settings import InvalidSetting, Settings
from worker.dev.sample import write_catalogue


def _pairs(raw: str) -> int:
    """A number of designs, 1 or more, else argparse's usage error (a catalogue of none
    cannot be written, nor indexed)."""
    pairs = whole(raw)
    if pairs is None or not 1 <= pairs <= 9_999_999:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 9999999, "
                                         f"got {raw[:20]!r}")
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.cli.sample",
                                     description="Write the deterministic sample catalogue.")
    parser.add_argument("--pairs", type=_pairs, default=200, help="1 or more (default 200)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="default: DATABASE_DIR")
    parser.add_argument("--force", action="store_true",
                        help="replace the list of a catalogue already there with the sample's")
    args = parser.parse_args(argv)
    try:
        out = args.out or Settings.from_env().database_dir
    except InvalidSetting as exc:
        print(f"sample: {exc}", file=sys.stderr)
        return 2
    if (Path(out) / "pairs.csv").exists() and not args.force:  # a team's catalogue, likely
        print(f"sample: {Path(out) / 'pairs.csv'} exists: a catalogue is there, and the sample "
              "would replace its list (--force to do so)", file=sys.stderr)
        return 1
    path = write_catalogue(out, args.pairs, args.seed)
    print(f"wrote {args.pairs} sample designs to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
