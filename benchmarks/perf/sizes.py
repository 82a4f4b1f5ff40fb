"""`sizes`: the search stage alone (`top_k`), brute force and coarse + exact, against bank size."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.perf.banks import (
    CLUSTER,
    FAMILY_COS,
    QUERY_COS,
    clustered_bank,
    near_duplicate_queries,
    synthetic_bank,
    unit_rows,
)
from benchmarks.perf.report import MIB, emit, fmt, ints, md_table, percentile, preamble
from worker.core.bank import FeatureBank
from worker.pipeline.ann import MIN_CANDIDATES, with_coarse_index
from worker.pipeline.ranking import top_k

K = 20
FRONT_WEIGHT = 0.5

Timed = tuple[list[float], list[list[int]]]  # ms per call, the hits' rows per call


def time_search(bank: FeatureBank, queries: np.ndarray, sides_unknown: bool = False) -> Timed:
    """(ms per `top_k` call, the hits' rows per call), one call per pair of query rows."""
    times, hits = [], []
    for q_front, q_back in queries:
        start = time.perf_counter()
        found = top_k(bank, q_front, q_back, K, FRONT_WEIGHT, sides_unknown)
        times.append((time.perf_counter() - start) * 1000)
        hits.append([hit.index for hit in found])
    return times, hits


def agreement(exact: Sequence[Sequence[int]], approx: Sequence[Sequence[int]]) -> float | None:
    """Fraction of the exact top K found in the approximate top K, averaged over queries."""
    shares = [len(set(e) & set(a)) / len(e) for e, a in zip(exact, approx, strict=True) if e]
    return float(np.mean(shares)) if shares else None


def estimate_seconds(n: int, dim: int, n_queries: int,
                     rng: np.random.Generator, probe_rows: int = 20000) -> tuple[float, float]:
    """(estimated seconds for the warm-up call + the timed queries, estimated ms per query),
    from a probe bank of at most `probe_rows` pairs scaled linearly to `n`."""
    rows = min(n, probe_rows)
    probe = synthetic_bank(rng, rows, dim)
    query = unit_rows(rng, 2, dim)[None]
    time_search(probe, query)  # first call: page faults, allocator
    per_query_ms = float(np.median(time_search(probe, np.repeat(query, 3, axis=0))[0]))
    scale = n / rows
    return per_query_ms / 1000 * (n_queries + 1) * scale, per_query_ms * scale


@dataclass
class RandomRuns:
    """Brute force and coarse + exact on one random bank, random queries (first: warm-up)."""

    gen_s: float
    index_s: float
    index_bytes: int
    brute: Timed
    brute_x: Timed  # sides unknown
    ann: Timed
    ann_x: Timed


def random_runs(n: int, dim: int, n_queries: int, rng: np.random.Generator) -> RandomRuns:
    start = time.perf_counter()
    bank = synthetic_bank(rng, n, dim)
    gen_s = time.perf_counter() - start
    queries = unit_rows(rng, 2 * (n_queries + 1), dim).reshape(-1, 2, dim)
    brute, brute_x = time_search(bank, queries), time_search(bank, queries, sides_unknown=True)
    start = time.perf_counter()
    indexed = with_coarse_index(bank, 0)
    index_s = time.perf_counter() - start
    return RandomRuns(gen_s, index_s, indexed.coarse.nbytes, brute, brute_x,
                      time_search(indexed, queries), time_search(indexed, queries, sides_unknown=True))


def clustered_hits(n: int, dim: int, n_queries: int,
                   rng: np.random.Generator) -> tuple[list[list[int]], ...]:
    """Near-duplicate queries against families of related designs (what real queries look
    like): the hits of brute force, coarse + exact, then both with sides unknown."""
    bank = clustered_bank(rng, n, dim)
    indexed = with_coarse_index(bank, 0)
    near = near_duplicate_queries(rng, bank, n_queries)
    return (time_search(bank, near)[1], time_search(indexed, near)[1],
            time_search(bank, near, sides_unknown=True)[1],
            time_search(indexed, near, sides_unknown=True)[1])


def ms(times: list[float], q: float) -> str:
    return fmt(percentile(times[1:], q), 2)  # the first call warms up


def agree(exact: list[list[int]], approx: list[list[int]],
          exact_x: list[list[int]], approx_x: list[list[int]]) -> str:
    return f"{fmt(agreement(exact, approx), 3)} ({fmt(agreement(exact_x, approx_x), 3)})"


@dataclass
class SizeResult:
    brute: list[object]  # a row of the brute-force table
    coarse: list[object]  # a row of the coarse + exact table


def size_rows(n: int, dim: int, n_queries: int, budget_s: float,
              rng: np.random.Generator) -> SizeResult:
    """Brute force and coarse + exact on one random bank of n pairs (timings, agreement on
    random queries), then agreement on a clustered bank with near-duplicate queries."""
    per_pair = 2 * dim * np.dtype(np.float32).itemsize
    head: list[object] = [f"{n:,}", dim, f"{per_pair:,}", fmt(n * per_pair / MIB)]
    est_s, est_ms = estimate_seconds(n, dim, 2 * n_queries, rng)  # straight + crossed
    if est_s > budget_s:
        note = f"skipped (est. {est_s:,.0f} s > {budget_s:.0f} s; ~{est_ms:,.0f} ms/query)"
        return SizeResult([*head, "-", "-", "-", "-", "-", note], [f"{n:,}", *["-"] * 9, note])
    r = random_runs(n, dim, n_queries, rng)
    near = clustered_hits(n, dim, n_queries, rng)
    brute, brute_x, ann, ann_x = r.brute[0], r.brute_x[0], r.ann[0], r.ann_x[0]
    p50 = percentile(brute[1:], 50)
    gb_s = n * per_pair / 1e9 / (p50 / 1000) if p50 else None
    note = f"{len(brute) - 1} queries"
    return SizeResult(
        [*head, fmt(r.gen_s, 2), ms(brute, 50), ms(brute, 95), ms(brute_x, 50), fmt(gb_s, 2),
         note],
        [f"{n:,}", fmt(r.index_s, 2), fmt(r.index_bytes / MIB), f"{per_pair + r.index_bytes / n:,.0f}",
         ms(ann, 50), ms(ann, 95), ms(ann_x, 50),
         agree(r.brute[1][1:], r.ann[1][1:], r.brute_x[1][1:], r.ann_x[1][1:]), agree(*near), note])


def sizes_settings(args: argparse.Namespace, sizes: list[int], blas_threads: int) -> dict[str, object]:
    return {
        "dim": args.dim, "sizes": sizes, "queries per size": args.queries,
        "k": K, "front_weight": FRONT_WEIGHT, "query dtype": "float32 (as the extractor returns)",
        "budget per size": f"{args.budget_s:.0f} s of brute-force searching, estimated from a "
                           "20k-pair probe (bank generation not counted)",
        "gen s": "time to generate the synthetic bank (not part of the service)",
        "BLAS threads": f"{blas_threads} (as in the worker)",
        "banks": "synthetic random unit rows, front + back, float32 in RAM (not memory-mapped); "
                 "float16 banks were 10-15x slower with numpy and are not measured",
        "coarse + exact": f"worker.pipeline.ann.CoarseIndex (fast-scan PQ [front | back] codes, faiss "
                          f"{faiss_version()}), best max(10 k, {MIN_CANDIDATES}) rows per query "
                          "vector re-scored exactly",
        "agreement": f"fraction of brute force's top {K} that coarse + exact returns, mean over "
                     "queries; in brackets: with sides_unknown. random: random unit queries on "
                     f"the random bank (near-ties: the worst case); clustered: families of "
                     f"{CLUSTER} pairs (cosine to centre {FAMILY_COS[0]}-{FAMILY_COS[1]}), "
                     f"queries are noisy copies of a pair (cosine {QUERY_COS[0]}-{QUERY_COS[1]})"}


def emit_size_tables(results: list[SizeResult]) -> None:
    emit("### Brute force (numpy, float32 banks)\n")
    emit(md_table(["pairs", "dim", "bytes/pair", "bank MiB", "gen s", "p50 ms", "p95 ms",
                   "p50 ms sides unknown", "GB/s at p50", "note"], [r.brute for r in results]))
    emit("\n### Coarse + exact (worker.pipeline.ann)\n")
    emit(md_table(["pairs", "index build s", "index MiB", "bytes/pair (banks + index)", "p50 ms",
                   "p95 ms", "p50 ms sides unknown", f"top-{K} agreement random",
                   f"top-{K} agreement clustered", "note"], [r.coarse for r in results]))


def cmd_sizes(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from worker.service.engine import WORKER_BLAS_THREADS, limit_blas_threads

    limit_blas_threads()  # as in the worker
    sizes = ints(args.sizes)
    preamble("Search stage vs bank size", argv, sizes_settings(args, sizes, WORKER_BLAS_THREADS))
    rng = np.random.default_rng(args.seed)
    results = []
    for n in sizes:
        results.append(size_rows(n, args.dim, args.queries, args.budget_s, rng))
        print(f"done: {n} pairs", file=sys.stderr, flush=True)
    emit_size_tables(results)
    return 0


def faiss_version() -> str:
    import faiss

    return faiss.__version__
