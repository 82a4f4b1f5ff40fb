"""`int8`: PRECISION=int8 against bfloat16 on this machine, alternated in one run.

Per round, the baseline then int8: the forward pass alone at batch 1 (in this process), then
the service with that precision (its own index built by `python -m worker.cli.index`, one
worker): sequential searches on an idle queue, then a burst. The issue's targets are set
against TensorFlow bfloat16 at batch 1 measured in the same run; `--against float32` is for a
CPU without bfloat16 units, where bfloat16 is emulated (slower than float32) and
`PRECISION=auto` picks float32.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.perf.bursts import burst_row, ensure_workers, run_burst
from benchmarks.perf.catalogue import QueryImages, build_index
from benchmarks.perf.model import time_extract
from benchmarks.perf.report import emit, fmt, md_table, percentile, preamble
from benchmarks.perf.searches import all_finished, sequential_searches
from benchmarks.perf.service import start_web, started_service


def precisions(args: argparse.Namespace) -> tuple[str, str]:
    """(the baseline, int8), in the order each round runs them."""
    return args.against, "int8"


def model_rounds(args: argparse.Namespace, database: Path) -> dict[str, list[float]]:
    """ms per image at batch 1, per precision, the two alternated `args.rounds` times."""
    from worker.core.catalogue import load_catalogue
    from worker.indexing.quantising import quantise_for_index
    from worker.pipeline.extract import FeatureExtractor
    from worker.pipeline.preprocess import make_canvas

    catalogue = load_catalogue(database)
    extractors = {p: FeatureExtractor(args.weights, args.descriptor, p) for p in precisions(args)}
    quantise_for_index(extractors["int8"])
    canvases = [make_canvas(catalogue.image_path(rel), trim=True)[None]
                for rel in catalogue.fronts[:16]]
    times: dict[str, list[float]] = {p: [] for p in precisions(args)}
    for _ in range(args.rounds):
        times.setdefault("load", []).append(os.getloadavg()[0])
        for p in precisions(args):
            times[p] += [s * 1000 for s in time_extract(extractors[p], canvases, args.model_calls)]
    return times


def service_round(args: argparse.Namespace, database: Path, precision: str) -> dict:
    """One precision's service: index build, sequential searches, a one-worker burst."""
    args = copy.copy(args)
    args.precision = precision
    load = os.getloadavg()[0]
    with started_service(args) as service:
        shutil.copytree(database, service.tmp / "database")
        build = build_index(service)
        start_web(service, args.timeout)
        images = QueryImages(service.tmp / "database")
        ensure_workers(service, 1, args.timeout)
        samples = all_finished(sequential_searches(service, images, args.searches, args.timeout))
        burst = run_burst(service, images, 1, args.concurrent, args.threads, args.timeout)
    row = burst_row(burst)
    return {"load": load, "images/s": build.images / build.wall_s, "index wall s": build.wall_s,
            "e2e p50": percentile([s.e2e_ms for s in samples], 50),
            "forward p50": percentile([s.timings["forward_ms"] for s in samples], 50),
            "searches/s": float(row[8].replace(",", "")) if row[8] != "n/a" else 0.0,
            "burst": row}


def report_model(times: dict[str, list[float]], calls: int, baseline: str) -> float:
    """Per-round medians and the overall one; returns the baseline's ms per image at batch 1."""
    rows = []
    for p in (baseline, "int8"):
        rounds = [times[p][i:i + calls] for i in range(0, len(times[p]), calls)]
        rows.append([p, *(fmt(statistics.median(r)) for r in rounds),
                     fmt(statistics.median(times[p]))])
    emit("### The forward pass alone, batch 1, ms per image (median per round; rounds alternated)\n")
    rows.append(["load average (1 min) at the round's start", *(fmt(x, 2) for x in times["load"]),
                 ""])
    emit(md_table(["precision", *(f"round {i + 1}" for i in range(len(rows[0]) - 2)), "median"],
                  rows))
    return statistics.median(times[baseline])


def report_service(results: list[tuple[str, dict]],
                   baseline: str) -> dict[str, dict[str, float]]:
    """One row per service round; returns each precision's medians over its rounds."""
    emit("\n### The service, one worker, per round (in the order run)\n")
    emit(md_table(["precision", "load avg at start", "index images/s (wall, incl. quantisation)",
                   "index wall s",
                   "search p50 ms (idle queue, end to end)", "forward_ms p50",
                   "burst searches/s", "burst finished / accepted"],
                  [[p, fmt(r["load"], 2), fmt(r["images/s"], 2), fmt(r["index wall s"], 1), fmt(r["e2e p50"]),
                    fmt(r["forward p50"]), fmt(r["searches/s"], 2),
                    f"{r['burst'][5]} / {r['burst'][3]}"] for p, r in results]))
    keys = ("images/s", "e2e p50", "searches/s")
    return {p: {k: statistics.median(r[k] for q, r in results if q == p) for k in keys}
            for p in (baseline, "int8")}


def report_targets(base_ms: float, int8_ms: float, svc: dict[str, dict[str, float]],
                   baseline: str) -> None:
    """The issue's targets, set against the baseline's batch-1 pass (bfloat16 in the issue)."""
    two = 2 * base_ms
    rows = [["forward pass, batch 1", f"{int8_ms:.1f} / {base_ms:.1f} ms = "
             f"{int8_ms / base_ms:.2f}x", "<= 0.5x"],
            ["search p50, idle queue", f"{svc['int8']['e2e p50']:.1f} ms = "
             f"{svc['int8']['e2e p50'] / two:.2f} x two {baseline} passes ({two:.1f} ms)",
             "<= 0.6x"],
            ["searches/s, one worker", f"{svc['int8']['searches/s']:.2f} = "
             f"{svc['int8']['searches/s'] * two / 1000:.2f} x what two {baseline} passes allow "
             f"({1000 / two:.2f})", ">= 1.8x"],
            ["index build images/s", f"{svc['int8']['images/s']:.2f} vs "
             f"{svc[baseline]['images/s']:.2f} = "
             f"{svc['int8']['images/s'] / svc[baseline]['images/s']:.2f}x", ">= 2x"]]
    emit("\n### int8 against the issue's targets (medians over the rounds)\n")
    emit(md_table(["measure", f"int8 ({baseline} in the same run)", "target"], rows))


def cmd_int8(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from worker.dev.sample import write_catalogue

    preamble(f"int8 against {args.against}, alternated", argv, {
        "pairs": args.pairs, "rounds": args.rounds, "batch-1 calls per round": args.model_calls,
        "sequential searches": args.searches, "burst": args.concurrent,
        "descriptor": args.descriptor, "weights": args.weights})
    with tempfile.TemporaryDirectory(prefix="perf-int8-") as tmp:
        database = Path(tmp) / "database"
        write_catalogue(database, args.pairs, seed=7)
        times = model_rounds(args, database)
        results = [(p, service_round(args, database, p)) for _ in range(args.rounds)
                   for p in precisions(args)]
    base_ms = report_model(times, args.model_calls, args.against)
    report_targets(base_ms, statistics.median(times["int8"]),
                   report_service(results, args.against), args.against)
    return 0
