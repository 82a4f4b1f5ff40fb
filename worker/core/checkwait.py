"""How far a collection check is, for the web's polls: its progress, a wait for its end (woken
by the chunk that settles its last design), and how many designs of other checks go first.

TensorFlow-free: the web imports it.
"""

from __future__ import annotations

import time

from redis import Redis
from rq.job import Job

from worker.core.checks import KEY, CheckState, CheckStatus
from worker.core.queueing import DONE_CHANNEL, RECHECK_S


def designs_ahead(connection: Redis, state: CheckState, chunk_pairs: int) -> int | None:
    """While the check is queued: about how many designs of other checks its first chunk
    waits behind (chunks ahead x CHECK_CHUNK_PAIRS; searches are served first too). None
    once it runs, or when its first chunk is not in the queue."""
    if state.status is not CheckStatus.QUEUED or not state.chunks:
        return None
    job = Job.fetch_many([state.chunks[0][0]], connection=connection)[0]
    position = job.get_position() if job is not None else None
    return None if position is None else position * chunk_pairs


def progress(connection: Redis, check_id: str) -> tuple[int, int] | None:
    """(settled designs, total), cheaply; None when unknown or expired."""
    with connection.pipeline() as pipe:
        pipe.hget(KEY + check_id, "total")
        pipe.hlen(KEY + check_id + ":rows")
        total, done = pipe.execute()
    return None if total is None else (done, int(total))


def wait_for_check(connection: Redis, check_id: str, timeout: float) -> None:
    """Block until every design is settled or `timeout` s pass (woken by the last chunk)."""
    deadline = time.monotonic() + timeout
    pubsub = connection.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(DONE_CHANNEL + check_id)  # before reading: an end between is not missed
        while (left := deadline - time.monotonic()) > 0:
            now = progress(connection, check_id)
            if now is None or now[0] >= now[1]:
                return
            pubsub.get_message(timeout=min(left, RECHECK_S))
    finally:
        pubsub.close()
