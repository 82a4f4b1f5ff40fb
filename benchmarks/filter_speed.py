"""`python -m benchmarks.filter_speed [--pairs 200000] [--repeats 5]`: the bank search (top 20)
without a filter and with filters letting through 50 %, 10 % and 0.1 % of the rows, on the
exact path and on the coarse index (random unit banks of 256 dims)."""

from __future__ import annotations

import argparse
import time

import numpy as np

from worker.core.bank import FeatureBank
from worker.core.whitening import l2_normalise
from worker.pipeline.ann import with_coarse_index
from worker.pipeline.ranking import top_k


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    bank = FeatureBank(*(l2_normalise(rng.normal(size=(args.pairs, 256))).astype(np.float32)
                         for _ in range(2)), manifest={})
    banks = {"exact": bank, "coarse": with_coarse_index(bank, 0)}
    print("| rows allowed | exact ms | coarse ms |\n|---|---|---|")
    for share in (None, 0.5, 0.1, 0.001):
        allowed = None if share is None else rng.random(args.pairs) < share
        row = []
        for searched in banks.values():
            top_k(searched, bank.front[5], bank.back[5], 20, 0.5, False, allowed)  # warm
            start = time.perf_counter()
            for i in range(6, 6 + args.repeats):  # other queries: the index keeps its last scan
                top_k(searched, bank.front[i], bank.back[i], 20, 0.5, False, allowed)
            row.append((time.perf_counter() - start) / args.repeats * 1000)
        label = "all (no filter)" if share is None else f"{share:.1%}"
        print(f"| {label} | {row[0]:.1f} | {row[1]:.1f} |")


if __name__ == "__main__":
    main()
