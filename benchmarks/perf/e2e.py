"""`e2e`: the whole service, step by step: index, worker start-up, sequential searches, RSS,
concurrent bursts."""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.perf.bursts import burst_row, run_burst, worker_time_row
from benchmarks.perf.catalogue import QueryImages, build_index, index_settings, report_index
from benchmarks.perf.model import PairPasses
from benchmarks.perf.report import emit, fmt, ints, md_table, preamble
from benchmarks.perf.searches import sequential_searches, stage_rows, worker_start_up
from benchmarks.perf.service import Service, rss_rows, start_web, started_service


def prepare_index(service: Service, args: argparse.Namespace) -> None:
    """The sample catalogue written and indexed (timed), or both copied from `--reuse`."""
    from worker.dev.sample import write_catalogue

    if args.reuse:  # a catalogue + index kept by an earlier `--keep` run
        for part in ("database", "features"):
            shutil.copytree(Path(args.reuse) / part, service.tmp / part)
        emit(f"catalogue and index copied from {args.reuse} (index build not measured)\n")
        emit(f"index: {index_settings(service)}\n")
        return
    start = time.perf_counter()
    write_catalogue(service.tmp / "database", args.pairs, seed=7)
    emit(f"catalogue: {args.pairs} pairs written in {time.perf_counter() - start:.1f} s\n")
    report_index(build_index(service), service)


def report_start_up(service: Service, images: QueryImages, timeout: float) -> None:
    startup = worker_start_up(service, images, timeout)
    emit("### Worker start-up (spawn -> first search)\n")
    emit(md_table(["spawn -> registered (first POST accepted) s",
                   "spawn -> first search finished s", "first search"],
                  [[fmt(startup.registered_s, 2), fmt(startup.first_finished_s, 2),
                    startup.status]]))


def report_sequential(service: Service, images: QueryImages, args: argparse.Namespace) -> None:
    samples = sequential_searches(service, images, args.searches, args.timeout,
                                  after=PairPasses(args, service.settings.features_dir))
    failed = sum(s.status != "finished" for s in samples)
    emit(f"\n### Sequential searches ({len(samples)}, {failed} failed), 1 worker\n")
    emit(md_table(["stage", "n", "p50 ms", "p95 ms"], stage_rows(samples)))
    emit("\n### RSS after the sequential run (VmRSS)\n")
    emit(md_table(["process", "pid(s)", "RSS MiB"], rss_rows(service)))


def report_bursts(service: Service, images: QueryImages, args: argparse.Namespace,
                  worker_counts: list[int]) -> None:
    bursts = [run_burst(service, images, n, args.concurrent, args.threads, args.timeout)
              for n in worker_counts]
    emit(f"\n### Concurrent bursts ({args.concurrent} searches from {args.threads} threads;"
         " each end seen from the worker's pub/sub announcement)\n")
    emit(md_table(["workers", "ready s", "submitted", "accepted", "refused", "finished",
                   "failed", "wall s", "searches/s", "p50 e2e ms", "p95 e2e ms"],
                  [burst_row(b) for b in bursts]))
    emit("\n### Worker time per finished search in the bursts (means, ms)\n")
    emit(md_table(["workers", "searches", "preprocess", "extract", "search", "render",
                   "job total", "RQ around the job (start -> end minus job total)",
                   "gap between jobs on a worker"], [worker_time_row(b) for b in bursts]))


def cmd_e2e(args: argparse.Namespace, argv: Sequence[str]) -> int:
    worker_counts = ints(args.workers)
    preamble("Service end to end", argv, {
        "pairs": args.pairs, "sequential searches": args.searches,
        "concurrent searches": args.concurrent, "worker counts": worker_counts,
        "submit threads": args.threads, "descriptor": args.descriptor, "weights": args.weights,
        "precision (setting)": args.precision, "gunicorn": args.web,
        "queries": "catalogue drawings, one pixel changed per search (no cache hits)"})
    with started_service(args) as service:
        prepare_index(service, args)
        start_web(service, args.timeout, args.web)
        images = QueryImages(service.tmp / "database")
        report_start_up(service, images, args.timeout)
        report_sequential(service, images, args)
        report_bursts(service, images, args, worker_counts)
    return 0
