"""What the exact-match bonus (worker/pipeline/exact.py) costs a search: `top_k` over synthetic
banks of the default descriptor's layout (256 whitened model dims, a 144-cell silhouette and a
64-bin colour block, each block unit length, weights 0.5 and 0.4), scored plainly and with
the bonus, one BLAS thread as in the worker; p50 of `--calls` calls.

    .venv/bin/python -m benchmarks.exact_cost [--sizes 3000,20000,100000] [--calls 15]
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
from worker.pipeline.exact import exact_match_for
from worker.pipeline.ranking import top_k


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="3000,20000,100000")
    parser.add_argument("--calls", type=int, default=15)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    whitening = Whitening(np.zeros(1280, np.float32),
                          rng.normal(size=(1280, 256)).astype(np.float32),
                          np.zeros(208, np.float32), ((144, 0.5), (64, 0.4)))
    rows = []
    with threadpool_limits(1):
        for n in (int(x) for x in args.sizes.split(",")):
            raw = rng.normal(size=(2 * n, 1280 + 208)).astype(np.float32)
            banks = np.vstack([whitening.apply(raw[i:i + 20_000])
                               for i in range(0, 2 * n, 20_000)])
            front, back = banks[:n], banks[n:]
            times = {}
            for label, manifest in (("plain", {}),
                                    ("bonus", {"exact_match": exact_match_for(DEFAULT_DESCRIPTOR)})):
                bank = FeatureBank(front, back, manifest, whitening)
                top_k(bank, front[5], back[5], 20, 0.5)  # warm
                ms = []
                for _ in range(args.calls):
                    start = time.perf_counter()
                    top_k(bank, front[5], back[5], 20, 0.5)
                    ms.append((time.perf_counter() - start) * 1000)
                times[label] = float(np.median(ms))
            rows.append([f"{n:,}", f"{times['plain']:.2f}", f"{times['bonus']:.2f}",
                         f"{times['bonus'] - times['plain']:+.2f}"])
    print(md_table(["pairs", "plain p50 ms", "with the bonus p50 ms", "difference ms"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
