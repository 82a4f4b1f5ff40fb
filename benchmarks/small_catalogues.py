"""Verdicts in small catalogues: does an unrelated design get called a copy when the catalogue
is too small to hold look-alikes? Deterministic by seed.

`python -m benchmarks.small_catalogues [--sizes 1,2,3,5,10,30,100] [--seed 11] [--queries 30]
[--descriptor D] [--weights bsds500] [--precision auto]`

For each size N the first N designs of the sample generator at `--seed` are indexed with the
worker's own code (whitening, exact-match bonus, the descriptor's thresholds), and searched
as the job searches (`benchmarks.lookalike.search_all`) by `--queries` unrelated designs (the
generator at another seed, re-scanned) and by re-scanned copies of up to `--queries` catalogue
designs. Reported per size: the verdicts of their first hits, judged as the service judges
them (the lead over a second counted at least the thresholds' floor) and, beside it, with the
whole lead over the second as it scores (the service until 2026-12-06). An unrelated design's
`copy` or `near-duplicate` is a false alarm.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

import numpy as np

from benchmarks.lookalike import UNRELATED_SEED_OFFSET, Query, sample_parser, search_all, table
from worker.dev.sample import make_designs, sample_catalogue
from worker.pipeline.verdicts import VERDICTS, verdict_of, verdict_scores

FLAGGED = ("copy", "near-duplicate")


def first_verdicts(outcomes, thresholds: dict[str, float]) -> tuple[Counter, Counter]:
    """The first hits' verdicts as the service gives them, and with the whole lead."""
    service, whole = Counter(), Counter()
    for o in outcomes:
        if o.sketch_only or not o.hits:
            continue
        service[verdict_of(o.judged[0], thresholds)] += 1
        scores = sorted((h.score for h in o.hits), reverse=True)
        whole[verdict_of(verdict_scores(scores)[0], thresholds)] += 1
    return service, whole


def shares(counts: Counter) -> str:
    total = sum(counts.values())
    return ", ".join(f"{v} {counts[v]}" for v in (*VERDICTS, None) if counts[v]) + f" (of {total})"


def run(args: argparse.Namespace) -> None:
    from benchmarks.quality import build_bank
    from worker.core.catalogue import load_catalogue
    from worker.pipeline.extract import FeatureExtractor
    from worker.pipeline.verdicts import thresholds_in

    extractor = FeatureExtractor(args.weights, args.descriptor, args.precision)
    rng = np.random.default_rng(args.seed)
    strangers = [Query("unrelated", None, d, int(rng.integers(1 << 30)))
                 for d in make_designs(args.queries, args.seed + UNRELATED_SEED_OFFSET,
                                       variant_every=0)]
    rows = []
    for n in args.sizes:
        designs = make_designs(n, args.seed)
        with sample_catalogue(n, args.seed) as database:
            bank = build_bank(extractor, load_catalogue(database))
        thresholds = thresholds_in(bank.manifest)
        copies = [Query("rescan", i, designs[i], int(rng.integers(1 << 30)))
                  for i in range(min(n, args.queries))]
        for label, queries in (("unrelated", strangers), ("copy", copies)):
            outcomes = search_all(extractor, bank, queries, thresholds=thresholds)
            service, whole = first_verdicts(outcomes, thresholds)
            found = sum(o.hits[0].index == o.query.row for o in outcomes) if label == "copy" else None
            wrong = (f"{sum(service[v] for v in FLAGGED)} / {sum(whole[v] for v in FLAGGED)}"
                     if label == "unrelated" else "")
            rows.append([str(n), label, shares(service), shares(whole), wrong,
                         "" if found is None else f"{found} / {len(outcomes)}"])
        print(f"{n} pairs done", file=sys.stderr, flush=True)
    print(f"descriptor {args.descriptor}; weights {extractor.weights_id}; precision "
          f"{extractor.precision}; seed {args.seed}\n")
    print(table(["pairs", "queries", "first hit's verdict (floored lead: the service)",
                 "with the whole lead (before)", "unrelated flagged (floored / whole)",
                 "copy first"], rows))


def main(argv: list[str] | None = None) -> int:
    parser = sample_parser(__doc__, "--queries", 30, "unrelated designs, and copies at most")
    parser.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")],
                        default=[1, 2, 3, 5, 10, 30, 100])
    args = parser.parse_args(argv)
    if args.pairs != parser.get_default("pairs"):  # the sample parser's; sizes say it here
        parser.error("--pairs: give the catalogue sizes with --sizes")
    if args.descriptor is None:
        from worker.core.settings import DEFAULT_DESCRIPTOR
        args.descriptor = DEFAULT_DESCRIPTOR
    start = time.perf_counter()
    run(args)
    print(f"\ntotal {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
