"""`e2e`: bursts of concurrent searches with 1, 2... workers, each end seen as it is announced."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from benchmarks.perf.catalogue import QueryImages
from benchmarks.perf.report import fmt, percentile
from benchmarks.perf.searches import Submission, post_search
from benchmarks.perf.service import Service, wait_until
from worker.dev.processes import stop_process


def ensure_workers(service: Service, n: int, timeout: float) -> float:
    """Exactly `n` worker processes, all registered; returns the seconds it took."""
    start = time.perf_counter()
    while len(service.workers) > n:
        stop_process(service.workers.pop())
    while len(service.workers) < n:
        service.start_worker()

    def ready() -> bool:
        service.check_alive()
        return service.worker_count() == n

    wait_until(ready, timeout, f"{n} registered worker(s)", interval=0.2)
    return time.perf_counter() - start


TERMINAL = {"finished": "finished", "failed": "failed", "stopped": "failed", "canceled": "failed"}


def job_outcomes(connection, ids: list[str]) -> dict[str, str]:
    """search id -> "finished"/"failed" for those that ended: one pipelined HGET of each job's
    status (this client shares the cores with the service, so it reads as little as it can)."""
    from rq.job import Job

    with connection.pipeline(transaction=False) as pipe:
        for search_id in ids:
            pipe.hget(Job.key_for(search_id), "status")
        statuses = pipe.execute()
    ended = {}
    for search_id, status in zip(ids, statuses, strict=True):
        if status is None:  # expired or deleted: it will never finish
            ended[search_id] = "failed"
        elif outcome := TERMINAL.get(status.decode()):
            ended[search_id] = outcome
    return ended


@dataclass
class Burst:
    workers: int
    ready_s: float
    submissions: list[Submission] = field(default_factory=list)
    ended: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> (outcome, seen)
    jobs: list[dict] = field(default_factory=list)  # finished searches: timings, start, end


def submit_all(service: Service, payloads: list[tuple[bytes, bytes]],
               threads: int) -> tuple[ThreadPoolExecutor, list[Future]]:
    import requests

    local = threading.local()

    def submit(payload: tuple[bytes, bytes]) -> Submission:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return post_search(local.session, service.base, *payload)

    pool = ThreadPoolExecutor(max_workers=threads)
    return pool, [pool.submit(submit, payload) for payload in payloads]


@dataclass
class Watch:
    """A burst's submissions as their POSTs return, and their ends: as each is announced
    (pub/sub, as the long poll does), with the statuses of all pending re-read every second."""

    burst: Burst
    connection: object  # a Redis client
    pubsub: object  # subscribed to the announcements before the first submission
    pending: dict[str, Submission] = field(default_factory=dict)
    announced: set[str] = field(default_factory=set)  # ended, perhaps before its POST returned
    next_check: float = 0.0

    def collect(self, futures: list[Future]) -> None:
        for future in [f for f in futures if f.done()]:
            futures.remove(future)
            sub = future.result()
            self.burst.submissions.append(sub)
            if sub.search_id:
                self.pending[sub.search_id] = sub

    def listen(self, prefix: str) -> None:
        message = self.pubsub.get_message(timeout=0.05)
        if message is not None:
            self.announced.add(message["channel"].decode().removeprefix(prefix))

    def settle(self) -> None:
        ready = [i for i in self.pending if i in self.announced]
        if time.monotonic() >= self.next_check:  # an announcement missed: statuses as well
            ready, self.next_check = list(self.pending), time.monotonic() + 1.0
        if ready:
            seen = time.perf_counter()
            for search_id, outcome in job_outcomes(self.connection, ready).items():
                self.burst.ended[search_id] = (outcome, seen)
                self.pending.pop(search_id)


def run_burst(service: Service, images: QueryImages, workers: int, n: int, threads: int,
              timeout: float) -> Burst:
    """Submit `n` searches at once and see each end (`Watch`)."""
    from redis import Redis

    from worker.core.queueing import DONE_CHANNEL

    burst = Burst(workers, ensure_workers(service, workers, timeout))
    payloads = [images.next() for _ in range(n)]
    connection = Redis.from_url(service.settings.redis_url)
    pubsub = connection.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(DONE_CHANNEL + "*")  # before the first submission: no end is missed
    watch = Watch(burst, connection, pubsub)
    pool, futures = submit_all(service, payloads, threads)
    deadline = time.monotonic() + timeout
    try:
        while futures or watch.pending:
            watch.collect(futures)
            watch.listen(DONE_CHANNEL)
            watch.settle()
            if time.monotonic() > deadline:
                break
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        pubsub.close()
    burst.jobs = finished_jobs(connection, [i for i, (o, _) in burst.ended.items()
                                            if o == "finished"])
    return burst


def finished_jobs(connection, ids: list[str]) -> list[dict]:
    """Each finished search's job timings and its start and end in the worker (s, epoch)."""
    from rq.job import Job

    jobs = []
    for job in Job.fetch_many(ids, connection=connection):
        if job is None or job.started_at is None or job.ended_at is None:
            continue
        jobs.append({"timings": (job.return_value() or {}).get("timings", {}),
                     "start": job.started_at.timestamp(), "end": job.ended_at.timestamp(),
                     "worker": job.worker_name})
    return jobs


def worker_time_row(burst: Burst) -> list[object]:
    """Where one worker's time went per finished search: inside the job function, by stage,
    and between jobs (RQ's bookkeeping and dequeueing: from one job's end to the next's start
    on the same worker)."""
    jobs = burst.jobs
    n = len(jobs)

    def mean(key: str) -> str:
        values = [float(j["timings"].get(key, 0.0)) for j in jobs]
        return fmt(sum(values) / n if n else None)

    gaps = []
    for worker in {j["worker"] for j in jobs}:
        mine = sorted((j for j in jobs if j["worker"] == worker), key=lambda j: j["start"])
        gaps += [(b["start"] - a["end"]) * 1000 for a, b in zip(mine, mine[1:], strict=False)]
    outside = [(j["end"] - j["start"]) * 1000 - float(j["timings"].get("total_ms", 0.0))
               for j in jobs]
    return [burst.workers, n, mean("preprocess_ms"), mean("extract_ms"), mean("search_ms"),
            mean("render_ms"), mean("total_ms"),
            fmt(sum(outside) / n if n else None), fmt(sum(gaps) / len(gaps) if gaps else None)]


def burst_row(burst: Burst) -> list[object]:
    subs = burst.submissions
    accepted = {s.search_id: s for s in subs if s.search_id}
    refused = Counter(f"{s.status} {s.error or ''}".strip() for s in subs if not s.search_id)
    outcomes = Counter(outcome for outcome, _ in burst.ended.values())
    first = min((s.start for s in subs), default=0.0)
    last = max((seen for _, seen in burst.ended.values()), default=first)
    wall = last - first
    latencies = [(seen - accepted[i].start) * 1000 for i, (outcome, seen) in burst.ended.items()
                 if outcome == "finished"]
    unfinished = len(accepted) - len(burst.ended)
    return [burst.workers, fmt(burst.ready_s), len(subs), len(accepted),
            ", ".join(f"{k} x{v}" for k, v in refused.items()) or "0",
            outcomes["finished"], outcomes["failed"] + unfinished, fmt(wall, 2),
            fmt(outcomes["finished"] / wall if wall > 0 else None, 2),
            fmt(percentile(latencies, 50), 0), fmt(percentile(latencies, 95), 0)]

