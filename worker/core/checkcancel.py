"""Cancelling a collection check (worker.core.checks): the flag first, then its waiting
chunks' jobs, then their designs settled as not checked; a chunk that starts meanwhile reads
the flag and settles its own."""

from __future__ import annotations

from redis import Redis
from rq.exceptions import InvalidJobOperation
from rq.job import Job

from worker.core.checks import CANCELLED, KEY, WAITING, CheckState, record_outcomes
from worker.core.contract import CheckedDesign


def is_cancelled(connection: Redis, check_id: str) -> bool:
    return bool(connection.hexists(KEY + check_id, "cancelled"))


def cancel_check(connection: Redis, state: CheckState, ttl: int) -> list[int]:
    """Cancel the check's chunks that have not started, settling their designs as failed
    (CANCELLED); the rows returned, whose uploads the caller deletes. A chunk already running
    finishes. The flag is set before the jobs' statuses are read and a chunk reads it after
    RQ marks it started, so a chunk seen queued here never checks its designs; one that
    starts between the two is seen started here and settles its designs itself
    (`settle_cancelled`)."""
    # only while it exists: one that expired meanwhile is not made again without a TTL
    connection.eval("if redis.call('EXISTS', KEYS[1]) == 1 then "
                    "redis.call('HSET', KEYS[1], 'cancelled', 1) end", 1, KEY + state.id)
    pending = [(job_id, rows) for job_id, rows in state.chunks
               if any(row not in state.outcomes for row in rows)]
    jobs = Job.fetch_many([job_id for job_id, _ in pending], connection=connection)
    cancelled: list[int] = []
    for job, (_, rows) in zip(jobs, pending, strict=True):
        if job is not None and job.get_status(refresh=False) in WAITING:
            try:
                job.cancel()
            except InvalidJobOperation:  # cancelled meanwhile, by another request
                pass
            cancelled += [row for row in rows if row not in state.outcomes]
    settle_cancelled(connection, state.id, {row: state.names[row] for row in cancelled}, ttl)
    return cancelled


def settle_cancelled(connection: Redis, check_id: str, names: dict[int, str], ttl: int) -> None:
    """Settle designs (row -> name) as not checked for the cancel; one settled meanwhile keeps
    its outcome."""
    record_outcomes(connection, check_id, {
        row: CheckedDesign(name=name, status="failed", error=CANCELLED)
        for row, name in names.items()}, ttl)
