"""`python -m worker.cli.index --distributed`: the chunks a build lacks are extracted by the
running workers, on any machine that shares Redis, DATABASE_DIR and FEATURES_DIR.

Each chunk is a job on `<QUEUE_NAME>-index`, which every worker takes from after its search
queue (RQ dequeues in the order listed: a waiting search always goes first). A worker refuses
a chunk whose model fingerprint is not its own, extracts the rest with its model and writes
each into the chunk cache (worker/indexing/chunks.py), where this coordinator, holding the
catalogue lock, gathers them as a local build would. A chunk whose job failed, ran past
INDEX_CHUNK_TIMEOUT or was left by a worker that died is enqueued again (MAX_ATTEMPTS in
all): a worker killed mid-chunk costs that chunk only. Chunks finished before the coordinator
stopped stay in the cache, so the next build resumes from them.
"""

from __future__ import annotations

import logging
import time

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from tqdm import tqdm

from worker.core.queueing import CHUNK_FUNC, index_queue_name, registered_workers
from worker.core.settings import Settings
from worker.indexing.chunks import Chunk, ChunkCache, Failure
from worker.service.orphans import settle_orphaned_jobs

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3  # a chunk failing this often stops the build (its error is shown)
POLL_S = 0.5
NO_WORKER_S = 60  # no worker left on the queue this long: the build stops, saying so
KEEP_RESULT_S = 3600  # a chunk job's result and failure are kept this long


class DistributedBuildFailed(RuntimeError):
    """No worker to extract, or a chunk failed MAX_ATTEMPTS times; the message says why."""


def extract_distributed(settings: Settings, cache: ChunkCache, chunks: list[Chunk],
                        progress: bool = True, hold: str | None = None) -> list[Failure]:
    """Have the workers extract `chunks` into `cache`; the images they could not read.
    `hold`: tests only: each chunk job waits until this Redis key exists, then extracts."""
    queue = Queue(index_queue_name(settings), connection=Redis.from_url(settings.redis_url))
    if registered_workers(queue) == 0:
        raise DistributedBuildFailed(
            f"no worker takes chunks from queue {queue.name!r}: start `python -m worker` "
            "(QUEUE_NAME as here), or build without --distributed")
    jobs: dict[str, Job] = {}
    attempts = {c.key: 1 for c in chunks}
    byk = {c.key: c for c in chunks}
    failures: list[Failure] = []
    bar = tqdm(total=len(chunks), unit="chunk", desc="chunks", disable=not progress)
    alone_since = None  # when the queue's last worker was seen gone (it waited for ever)
    try:
        for chunk in chunks:  # within the try: a stop while enqueuing withdraws those queued
            jobs[chunk.key] = _enqueue(queue, settings, cache.model, chunk, hold)
        while jobs:
            settle_orphaned_jobs(queue, KEEP_RESULT_S, None, settings.index_chunk_timeout)
            if registered_workers(queue) > 0:
                alone_since = None
            elif alone_since is None:
                alone_since = time.monotonic()
            elif time.monotonic() - alone_since > NO_WORKER_S:
                raise DistributedBuildFailed(
                    f"no worker has taken chunks from queue {queue.name!r} for {NO_WORKER_S} s "
                    f"({len(jobs)} of {len(chunks)} chunks left; those done are kept): start "
                    "`python -m worker` (QUEUE_NAME as here) and build again, or build "
                    "without --distributed")
            for key, status in _statuses(queue.connection, jobs).items():
                if status == JobStatus.FINISHED:
                    failures += [tuple(f) for f in jobs.pop(key).return_value()["failures"]]
                    bar.update(1)
                elif status not in (JobStatus.QUEUED, JobStatus.STARTED):
                    attempts[key] += 1
                    _give_up_after(jobs[key], attempts[key])
                    jobs[key] = _enqueue(queue, settings, cache.model, byk[key], hold)
            time.sleep(POLL_S if jobs else 0)
    finally:
        bar.close()
        _withdraw(jobs.values())
    return failures


def _enqueue(queue: Queue, settings: Settings, model: str, chunk: Chunk, hold: str | None) -> Job:
    return queue.enqueue(CHUNK_FUNC, kwargs={"model": model, "key": chunk.key,
                                             "paths": chunk.paths, "hashes": chunk.hashes,
                                             "hold": hold},
                         job_timeout=settings.index_chunk_timeout, result_ttl=KEEP_RESULT_S,
                         failure_ttl=KEEP_RESULT_S, description=f"index chunk {chunk.key[:8]}")


def _statuses(connection: Redis, jobs: dict[str, Job]) -> dict[str, str | None]:
    """Each pending chunk's job status, read in one round trip (None: the job is gone)."""
    with connection.pipeline(transaction=False) as pipe:
        for job in jobs.values():
            pipe.hget(job.key, "status")
        values = pipe.execute()
    return {key: value.decode() if value else None for key, value in zip(jobs, values, strict=True)}


def _give_up_after(job: Job, attempt: int) -> None:
    """Log a failed chunk job; raise once its chunk has had MAX_ATTEMPTS."""
    try:
        job.refresh()
        error = job.meta.get("error") or job.get_status() or "gone"
    except NoSuchJobError:  # expired or deleted
        error = "its job is gone"
    if attempt > MAX_ATTEMPTS:
        raise DistributedBuildFailed(f"chunk {job.kwargs.get('key', job.id)} failed "
                                     f"{MAX_ATTEMPTS} times; last error: {error}")
    log.warning("chunk job %s (worker %s) ended without its chunk: %s; enqueued again",
                job.id, job.worker_name, error)


def _withdraw(jobs) -> None:
    """Take the chunks no worker has started off the queue (started ones finish and stay
    cached: a rerun resumes from them)."""
    for job in jobs:
        try:
            if job.get_status(refresh=True) == JobStatus.QUEUED:
                job.delete()
        except (NoSuchJobError, InvalidJobOperation, RedisError) as exc:  # a leftover is only cached
            log.warning("could not withdraw chunk job %s: %s", job.id, exc)
