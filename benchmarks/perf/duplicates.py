"""`duplicates`: listing the catalogue's duplicate pairs (`worker.pipeline.duplicates`) on
synthetic banks: the exact blockwise pass and the coarse IVF range search, with the pairs the
coarse one finds of those the exact one finds."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.perf.banks import clustered_rows, noisy_copies
from benchmarks.perf.report import emit, md_table, preamble
from worker.core.settings import DEFAULT_DESCRIPTOR
from worker.pipeline.duplicates import find_duplicates
from worker.pipeline.verdicts import thresholds_for

COPIES = (0.9, 0.98)  # cosine of a seeded copy's rows to its original's


def seeded_banks(rng: np.random.Generator, n: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Clustered (look-alike family) banks where 1% of the rows are copies of other rows."""
    front, back = clustered_rows(rng, n, dim), clustered_rows(rng, n, dim)
    m = max(1, n // 100)
    src, dst = rng.choice(n, m, replace=False), rng.choice(n, m, replace=False)
    front[dst] = noisy_copies(rng, front[src], COPIES)
    back[dst] = noisy_copies(rng, back[src], COPIES)
    return front, back


def cmd_duplicates(args, argv: list[str]) -> int:
    thresholds = thresholds_for(DEFAULT_DESCRIPTOR)
    preamble("Duplicate pairs inside the catalogue", argv,
             {"dim": args.dim, "thresholds": thresholds, "seed": args.seed})
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        front, back = seeded_banks(np.random.default_rng(args.seed), n, args.dim)
        found = {}
        for method in ("exact", "coarse"):
            if method == "exact" and n > args.exact_max and n not in args.recall_at:
                continue
            start = time.perf_counter()
            pairs = find_duplicates(front, back, thresholds, 0 if method == "coarse" else n + 1)
            found[method] = set(zip(pairs.a.tolist(), pairs.b.tolist(), strict=True))
            rows.append([f"{n:,}", method, f"{time.perf_counter() - start:.1f}", f"{len(pairs):,}",
                         int((pairs.verdict <= 1).sum()), ""])
        if len(found) == 2:
            rows[-1][-1] = f"{len(found['coarse'] & found['exact']) / max(1, len(found['exact'])):.4f}"
    emit(md_table(["pairs in the bank", "method", "seconds", "pairs listed",
                   "copy or near-duplicate", "coarse finds of exact"], rows))
    return 0


def add_parser(sub) -> None:
    d = sub.add_parser("duplicates", help="listing duplicate pairs: exact and coarse passes")
    d.add_argument("--sizes", default="5000,20000,100000")
    d.add_argument("--dim", type=int, default=256)
    d.add_argument("--exact-max", type=int, default=20000,
                   help="run the exact pass up to this size (default 20000)")
    d.add_argument("--recall-at", type=int, nargs="*", default=[],
                   help="also run the exact pass at these sizes, for the coarse pass's recall")
    d.add_argument("--seed", type=int, default=0)
