"""What ordering the list after a found copy by design (worker/pipeline/listing.py) costs a
search: `top_k` of 20 as before, against `listing.ranked` of 20 for a query that is a
catalogue design (its first hit a copy: the best 40 drawn, the 39 after it re-ordered), over
synthetic banks of the default descriptor's layout (256 whitened model dims, silhouette,
colours and pattern blocks, the exact-match bonus), one BLAS thread as in the worker; p50 of
`--calls` calls. With `--coarse`, through the coarse index a bank of 100,000 pairs or more
gets (`worker.pipeline.ann`): the pool of 40 asks it for more candidates.

    .venv/bin/python -m benchmarks.listing_cost [--sizes 3000,20000,100000] [--calls 15] [--coarse]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.perf.report import md_table
from worker.core.bank import FeatureBank
from worker.core.settings import DEFAULT_DESCRIPTOR
from worker.core.whitening import Whitening
from worker.pipeline.ann import with_coarse_index
from worker.pipeline.exact import exact_match_for
from worker.pipeline.listing import ranked
from worker.pipeline.ranking import top_k
from worker.pipeline.verdicts import thresholds_in

BLOCKS = ((144, 0.5), (64, 0.4), (6, 0.375))  # the default descriptor's appearance blocks


def _p50_ms(call, calls: int) -> float:
    call()  # warm
    ms = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        ms.append((time.perf_counter() - start) * 1000)
    return float(np.median(ms))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="3000,20000,100000")
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--coarse", action="store_true", help="search through a coarse index")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    appearance = sum(size for size, _ in BLOCKS)
    whitening = Whitening(np.zeros(1280, np.float32),
                          rng.normal(size=(1280, 256)).astype(np.float32),
                          np.zeros(appearance, np.float32), BLOCKS)
    manifest = {"exact_match": exact_match_for(DEFAULT_DESCRIPTOR)}
    thresholds = thresholds_in(manifest)
    rows = []
    with threadpool_limits(1):
        for n in (int(x) for x in args.sizes.split(",")):
            raw = rng.normal(size=(2 * n, 1280 + appearance)).astype(np.float32)
            banks = np.vstack([whitening.apply(raw[i:i + 20_000])
                               for i in range(0, 2 * n, 20_000)])
            bank = FeatureBank(banks[:n], banks[n:], manifest, whitening)
            if args.coarse:
                bank = with_coarse_index(bank, 0)
            q = bank.front[5], bank.back[5]
            assert ranked(bank, *q, 20, 0.5, thresholds=thresholds).order == "design"
            before = _p50_ms(lambda: top_k(bank, *q, 20, 0.5), args.calls)  # noqa: B023
            after = _p50_ms(lambda: ranked(bank, *q, 20, 0.5, thresholds=thresholds),  # noqa: B023
                            args.calls)
            rows.append([f"{n:,}", f"{before:.2f}", f"{after:.2f}", f"{after - before:+.2f}"])
    print(md_table(["pairs", "top_k of 20, p50 ms", "ordered by design, p50 ms", "difference ms"],
                   rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
