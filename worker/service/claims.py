"""Claiming queued searches for a batch without taking them off the queue.

Each prefetched search is claimed in Redis (SET NX with a TTL), so two workers do not
compute the same one twice; nothing moves off the queue, so a worker that dies mid-batch
loses nothing (the claims expire, and any worker serves those searches).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job, JobStatus

from worker.core.contract import Box
from worker.core.queueing import JOB_FUNC

log = logging.getLogger(__name__)

CLAIM_PREFIX = "pairsearch:batch-claim:"
CLAIM_TTL_S = 120


def sides_of(job: Job) -> tuple[str | None, str | None]:
    return job.kwargs.get("front"), job.kwargs.get("back")


def boxes_of(job: Job) -> tuple[Box | None, Box | None]:
    return job.kwargs.get("front_box"), job.kwargs.get("back_box")  # checked when it runs


def search_key(job: Job) -> tuple[str, tuple[str | None, str | None]]:
    """How a search's descriptors are kept: its id and its two upload names."""
    return job.id, sides_of(job)


def claim_queued(connection: Redis, queue_name: str, skip: Callable[[Job], bool], worker: str,
                 limit: int, scan: int) -> list[Job]:
    """Up to `limit` searches among the first `scan` queued, not skipped, claimed for `worker`;
    none when Redis fails meanwhile (a batch is a saving: the search asking runs alone)."""
    if limit <= 0:
        return []
    claimed: list[Job] = []
    try:
        ids = Queue(queue_name, connection=connection).get_job_ids(0, scan)
        jobs = [job for job in Job.fetch_many(ids, connection=connection) if job is not None
                and job.func_name == JOB_FUNC
                and job.get_status(refresh=False) == JobStatus.QUEUED and not skip(job)]
        while jobs and len(claimed) < limit:  # one pipelined round trip per attempt
            tried, jobs = jobs[:limit - len(claimed)], jobs[limit - len(claimed):]
            claimed += [job for job, ok in zip(tried, claim(connection, tried, worker),
                                               strict=True) if ok]
    except RedisError as exc:  # those claimed lapse in CLAIM_TTL_S; any worker may run them
        log.warning("could not read the queue for a batch (%s); this search runs alone", exc)
        return []
    return claimed


def claim(connection: Redis, jobs: list[Job], worker: str) -> list[bool]:
    """Claim each job for `worker`; a claim `worker` already holds (from a pass of its own
    that failed) counts as claimed."""
    with connection.pipeline(transaction=False) as pipe:
        for job in jobs:
            pipe.set(CLAIM_PREFIX + job.id, worker, nx=True, ex=CLAIM_TTL_S)
            pipe.get(CLAIM_PREFIX + job.id)
        replies = pipe.execute()
    return [bool(new) or held == worker.encode()
            for new, held in zip(replies[::2], replies[1::2], strict=True)]
