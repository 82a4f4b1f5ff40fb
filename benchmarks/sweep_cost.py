"""What a dropped-job sweep (worker/service/dropped.py) costs as Redis holds more jobs: the
sweeping worker's wall time, and the time Redis itself spent serving it (INFO commandstats),
which is when it serves nobody else. A real redis-server holding N finished jobs (RQ hashes
with the fields a finished search has) and a few dropped ones; each sweep must put back
exactly the dropped ones.

    .venv/bin/python -m benchmarks.sweep_cost [--jobs 1000 10000 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.job import Job

from benchmarks.perf.report import md_table
from worker.dev.processes import free_port, start_redis, stop_process
from worker.service.dropped import SUSPECTS, SWEEP_LOCK, sweep

DROPPED = 5
FIELDS = {"status": "finished", "created_at": "2026-12-03T12:00:00.000000Z",
          "enqueued_at": "2026-12-03T12:00:00.000000Z", "started_at": "2026-12-03T12:00:00Z",
          "ended_at": "2026-12-03T12:00:01Z", "description": "search_pair(...)",
          "timeout": "120", "result_ttl": "86400", "worker_name": "host.1.abcdef",
          "data": "x" * 400}


def fill(redis: Redis, queue: Queue, count: int) -> list[str]:
    """`count` finished jobs of `queue`, and DROPPED queued ones in no list; the latter's ids."""
    with redis.pipeline(transaction=False) as pipe:
        for i in range(count):
            pipe.hset(Job.key_for(uuid.uuid4().hex), mapping=FIELDS | {"origin": queue.name})
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()
    dropped = [queue.enqueue("worker.service.jobs.search_pair", job_id=uuid.uuid4().hex).id
               for _ in range(DROPPED)]
    redis.delete(queue.key)  # popped by a worker that died before its claim
    return dropped


def busy_us(redis: Redis) -> int:
    return sum(stats["usec"] for stats in redis.info("commandstats").values())


def timed_sweep(redis: Redis, queue: Queue, at: float) -> tuple[list[str], float, float]:
    redis.delete(SWEEP_LOCK + queue.name)
    before, start = busy_us(redis), time.perf_counter()
    put_back = sweep(redis, [queue.name], "bench.1.aaaaaa", 120, at)
    return put_back, time.perf_counter() - start, (busy_us(redis) - before) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start_redis(port, Path(tmp) / "redis", maxmemory_mb=2048)
        try:
            redis = Redis(port=port)
            for count in args.jobs:
                redis.flushall()
                queue = Queue("search", connection=redis)
                dropped = fill(redis, queue, count)
                walls, busies = [], []
                for _ in range(args.repeats):  # the first sightings, nothing put back
                    redis.delete(SUSPECTS + queue.name)
                    put_back, wall, busy = timed_sweep(redis, queue, 0)
                    assert put_back == [], put_back
                    walls.append(wall)
                    busies.append(busy)
                put_back, _, _ = timed_sweep(redis, queue, 3600)
                assert sorted(put_back) == sorted(dropped), (put_back, dropped)
                rows.append([f"{count:,}", f"{min(walls) * 1e3:.0f}", f"{max(walls) * 1e3:.0f}",
                             f"{min(busies) * 1e3:.0f}"])
        finally:
            stop_process(server)
    print(md_table(["jobs in Redis", "sweep wall ms (best)", "worst", "Redis busy ms"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
