"""A distributed index build on one worker against two, each worker pinned to one core.

    python -m benchmarks.index_scale --pairs 96 --chunk-pairs 8 [--precision int8]

Writes a sample catalogue and, with no index anywhere (a first build), runs
`build_index(distributed=True)` over it twice, the chunk cache emptied before each: with one
`python -m worker --chunks-only` under `taskset -c 0`, then with two (`taskset -c 0` and
`taskset -c 1`), every worker on one TensorFlow thread (TF_NUM_INTRAOP_THREADS and
TF_NUM_INTEROP_THREADS = 1, OMP_NUM_THREADS = 1). A rate is images extracted / seconds from
the first chunk job's start to the last one's end (RQ's own timestamps), so worker start-up
is left out; the build's wall time, whitening and bank writing included, is printed too.
The load average is printed with each run: on a shared machine, a run beside other work
is noise.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import FinishedJobRegistry

from worker.core.queueing import index_queue_name
from worker.core.settings import Settings
from worker.dev.processes import free_port, start_redis, stop_process
from worker.dev.sample import write_catalogue
from worker.dev.services import start_worker, wait_for_workers
from worker.indexing.build import build_index

ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}


def chunk_span(settings: Settings) -> float:
    """Seconds from the first chunk job's start to the last one's end (a queue per run)."""
    connection = Redis.from_url(settings.redis_url)
    registry = FinishedJobRegistry(queue=Queue(index_queue_name(settings), connection=connection))
    jobs = [Job.fetch(i, connection=connection) for i in registry.get_job_ids()]
    return (max(j.ended_at for j in jobs) - min(j.started_at for j in jobs)).total_seconds()


def run(settings: Settings, extractor, cores: list[int], logs: Path) -> dict:
    shutil.rmtree(settings.features_dir / "chunks", ignore_errors=True)
    queue = dataclasses.replace(settings, queue_name=f"bench-{uuid.uuid4().hex[:6]}")
    load = os.getloadavg()[0]
    workers = [start_worker(queue, "--chunks-only", log=logs / f"worker-{len(cores)}-{core}.log",
                            prefix=("taskset", "-c", str(core)), env=ONE_THREAD)
               for core in cores]
    try:
        wait_for_workers(queue, len(cores), 600, index_queue_name(queue))
        start = time.perf_counter()
        manifest = build_index(queue, extractor, progress=False, distributed=True)
        wall = time.perf_counter() - start
        span = chunk_span(queue)
    finally:
        for worker in workers:
            stop_process(worker)
    images = manifest["images"]["extracted"]
    return {"workers": len(cores), "images": images, "span_s": span, "wall_s": wall,
            "rate": images / span, "load_before": load, "load_after": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=96)
    parser.add_argument("--chunk-pairs", type=int, default=8)
    parser.add_argument("--weights", default="bsds500")
    parser.add_argument("--precision", default="auto", help="PRECISION (int8: the build "
                        "quantises, the workers run its published model)")
    args = parser.parse_args(argv)
    from worker.pipeline.extract import FeatureExtractor

    tmp = Path(tempfile.mkdtemp(prefix="index-scale-"))
    port = free_port()
    redis = start_redis(port, tmp / "redis")
    try:
        write_catalogue(tmp / "database", args.pairs, seed=7)
        settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0", database_dir=tmp / "database",
                            features_dir=tmp / "features", upload_dir=tmp / "uploads",
                            output_dir=tmp / "output", vgg16_weights=args.weights,
                            precision=args.precision, index_chunk_pairs=args.chunk_pairs)
        extractor = FeatureExtractor(settings.vgg16_weights, settings.descriptor, settings.precision)
        results = [run(settings, extractor, cores, tmp) for cores in ([0], [0, 1])]
    finally:
        redis.terminate()
        redis.wait(timeout=10)
    print("| workers (1 core each) | images | chunk span s | build wall s | images/s | "
          "load avg before / after |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['workers']} | {r['images']} | {r['span_s']:.1f} | {r['wall_s']:.1f} | "
              f"{r['rate']:.2f} | {r['load_before']:.1f} / {r['load_after']:.1f} |")
    ratio = results[1]["rate"] / results[0]["rate"]
    noisy = any(r["load_before"] > 1.5 for r in results)
    print(f"\nratio 2 workers / 1 worker: {ratio:.2f}x (target >= 1.8)"
          f"{'  [NOISY: the machine was busy (load average > 1.5)]' if noisy else ''}")
    print(f"logs and catalogue: {tmp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
