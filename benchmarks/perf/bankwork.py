"""`bankwork`: a whole search's bank work against catalogue size: what `jobs.rank_hits` runs
after the forward pass (`listing.ranked` with the verdicts, then `sides.side_copies`, each
side searched alone), through the coarse index (`worker.pipeline.ann`) and by brute force.

The banks are the default descriptor's: the look-alike sample catalogue (`--pairs`, `--seed`)
indexed in-process (its whitening, exact-match bonus and verdict thresholds), its rows
resampled with noise to each size (NOISE: at 1M, each sample design has ~3,300 look-alikes at
cosine ~0.84 to one another, a catalogue of near-ties). Queries: catalogue rows with less
noise (RESCAN), as a re-scan of a catalogue design. numpy on one BLAS thread, as in the
worker. Brute force runs on the first `--exact-queries` queries of each size: the share of its
top 20 the coarse index also returns, of its first hit (the copy), and of its side copies.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from benchmarks.perf.report import emit, ints, md_table, percentile, preamble
from worker.core.bank import FeatureBank
from worker.core.catalogue import Catalogue
from worker.pipeline.ann import with_coarse_index
from worker.pipeline.listing import ranked
from worker.pipeline.sides import searched_alone, side_copies
from worker.pipeline.verdicts import thresholds_in

NOISE = 0.02  # per dimension (476 dims: a resampled row's cosine to its source ~0.92)
RESCAN = 0.01  # a query's noise per dimension (cosine to its catalogue row ~0.98)
K, FRONT_WEIGHT = 20, 0.5


def sample_bank(pairs: int, seed: int, precision: str) -> FeatureBank:
    """The look-alike sample catalogue's banks, built as `benchmarks.lookalike` builds them."""
    from benchmarks.quality import build_bank
    from worker.core.catalogue import load_catalogue
    from worker.core.settings import DEFAULT_DESCRIPTOR
    from worker.dev.sample import sample_catalogue
    from worker.pipeline.extract import FeatureExtractor

    with sample_catalogue(pairs, seed) as database:
        extractor = FeatureExtractor("bsds500", DEFAULT_DESCRIPTOR, precision)
        return build_bank(extractor, load_catalogue(database))


def noisy(rng: np.random.Generator, rows: np.ndarray, noise: float = NOISE) -> np.ndarray:
    rows = rows + rng.normal(0, noise, rows.shape).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def grown(sample: FeatureBank, n: int, rng: np.random.Generator) -> FeatureBank:
    """`sample`'s rows drawn at random with noise, n of them, the manifest and whitening kept."""
    sides = []
    for real in (sample.front, sample.back):
        out = np.empty((n, real.shape[1]), np.float32)
        for start in range(0, n, 100_000):
            stop = min(n, start + 100_000)
            out[start:stop] = noisy(rng, real[rng.integers(0, len(real), stop - start)])
        sides.append(out)
    return FeatureBank(*sides, sample.manifest, sample.whitening)


class Searched(NamedTuple):
    ranked_ms: float
    sides_ms: float
    hits: list[int]  # the listed hits' rows
    sides: list[tuple[str, str]]  # (side, design) of each side that alone copies a design


def search(bank: FeatureBank, catalogue: Catalogue, q: tuple[np.ndarray, np.ndarray]
           ) -> Searched:
    side_thresholds = thresholds_in(bank.manifest, one_side=True)
    start = time.perf_counter()
    listing = ranked(bank, *q, K, FRONT_WEIGHT, False, None, thresholds_in(bank.manifest),
                     searched_alone(q, FRONT_WEIGHT, side_thresholds, (False, False)))
    middle = time.perf_counter()
    sides = side_copies(bank, catalogue, q, FRONT_WEIGHT, False, None, side_thresholds)
    end = time.perf_counter()
    return Searched((middle - start) * 1000, (end - middle) * 1000,
                    [h.index for h in listing.hits], [(s.side, s.name) for s in sides])


def cmd_bankwork(args, argv: list[str]) -> int:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # the worker's numpy runs on one BLAS thread
    start = time.perf_counter()
    sample = sample_bank(args.pairs, args.seed, args.precision)
    preamble("A search's bank work against catalogue size", argv,
             {"sample": f"{args.pairs} look-alike pairs, seed {args.seed}, "
                        f"{sample.front.shape[1]} dims, built in "
                        f"{time.perf_counter() - start:.0f} s",
              "queries": args.queries, "noise per dimension": NOISE})
    rng = np.random.default_rng(args.seed)
    rows = []
    for n in ints(args.sizes):
        bank = grown(sample, n, rng)
        names = [f"d{i}" for i in range(n)]
        catalogue = Catalogue(root=Path("."), names=names, fronts=names, backs=names)
        started = time.perf_counter()
        indexed = with_coarse_index(bank, 0)
        built = time.perf_counter() - started
        picks = rng.integers(0, n, args.queries + 1)
        queries = [(noisy(rng, bank.front[[i]], RESCAN)[0], noisy(rng, bank.back[[i]], RESCAN)[0])
                   for i in picks]
        search(indexed, catalogue, queries.pop())  # warm-up, not searched again (the index
        timed = [search(indexed, catalogue, q) for q in queries]  # keeps its last scan)
        exact = [search(bank, catalogue, q) for q in queries[:args.exact_queries]]
        paired = list(zip(timed, exact, strict=False))  # the queries searched both ways
        agree = np.mean([len(set(a.hits) & set(e.hits)) / len(e.hits) for a, e in paired])
        same_first = np.mean([a.hits[0] == e.hits[0] for a, e in paired])
        same_sides = np.mean([a.sides == e.sides for a, e in paired])
        both = [a.ranked_ms + a.sides_ms for a in timed]
        rows.append([f"{n:,}", f"{built:.1f}", f"{indexed.coarse.nbytes / n:.0f}",
                     f"{np.median([a.ranked_ms for a in timed]):.1f}",
                     f"{np.median([a.sides_ms for a in timed]):.1f}",
                     f"**{np.median(both):.1f}** ({percentile(both, 95):.1f})",
                     f"{np.median([e.ranked_ms + e.sides_ms for e in exact]):.1f}",
                     f"{agree:.3f}", f"{same_first:.3f}", f"{same_sides:.3f}"])
        del bank, indexed
    emit(md_table(["pairs", "coarse index build s", "code bytes/pair", "`ranked` p50 ms",
                   "`side_copies` p50 ms", "both p50 (p95) ms", "brute force both p50 ms",
                   "top-20 agreement", "first hit the same", "side copies the same"], rows))
    return 0


def add_parser(sub) -> None:
    b = sub.add_parser("bankwork", help="a search's bank work (list and sides) against size")
    b.add_argument("--sizes", default="100000,1000000")
    b.add_argument("--pairs", type=int, default=300)
    b.add_argument("--seed", type=int, default=11)
    b.add_argument("--precision", default="auto")
    b.add_argument("--queries", type=int, default=20)
    b.add_argument("--exact-queries", type=int, default=10,
                   help="of them, searched by brute force too (agreement)")
