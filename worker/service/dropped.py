"""Jobs a worker took off its queue and never started: claimed when taken, put back when
their taker is gone.

A worker serving several queues (ours serve four) pops with BLPOP, of which RQ keeps no copy
(its BLMOVE to a recovery list is for one-queue workers): a job popped by a worker that then
froze, was killed or lost Redis's reply is in no queue and no registry, 'queued' until it
expires. So a worker claims each job it pops before anything else (`take`), and one worker a
minute (`sweep`) puts back, at the head of its queue, each job that is queued and in no list
whose claim is held by a worker that is gone, or that has no claim and has been seen so for
DROPPED_GRACE_S (a live worker may be between its pop and its claim). A frozen worker that
wakes after its job was put back finds the claim taken and leaves the job to its holder.
"""

from __future__ import annotations

import logging
import time

from redis import Redis
from rq import Queue
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus

from worker.service.housekeeping import gone

log = logging.getLogger(__name__)
POPPED_PREFIX = "pairsearch:popped:"  # job id -> the worker that took it off its queue
POPPED_TTL_S = 3600  # a taken job starts within seconds; its claim only has to outlive that
SUSPECTS = "pairsearch:dropped"  # job id -> when first seen dropped (epoch s), for any sweeper
SWEEP_LOCK = "pairsearch:dropped-sweep"
SWEEP_EVERY_S = 55  # one worker a minute walks the jobs (a SCAN of the keyspace)
DROPPED_GRACE_S = 30  # between a pop and its claim RQ only reads the job's hash


def _text(value: bytes | str | None) -> str | None:
    """A reply as text, whether or not the connection decodes its replies."""
    return value.decode() if isinstance(value, bytes) else value


def take(connection: Redis, job_id: str, worker: str, job_timeout: int) -> bool:
    """Claim `job_id` for `worker`, which has just taken it off its queue. False when another
    worker that is running holds it: the job was put back while this worker was frozen, and
    that worker runs it. A claim of a worker that is gone (a job retried after its worker
    died) is taken over."""
    key = POPPED_PREFIX + job_id
    if connection.set(key, worker, nx=True, ex=POPPED_TTL_S):
        return True
    holder = _text(connection.get(key))
    if holder is None or holder == worker or gone(connection, holder, worker, job_timeout):
        connection.set(key, worker, ex=POPPED_TTL_S)
        return True
    return False


def release(connection: Redis, job_id: str) -> None:
    """The job has ended: a retry under the same id may be taken by any worker."""
    connection.delete(POPPED_PREFIX + job_id)


def sweep(connection: Redis, queue_names: list[str], own_name: str, job_timeout: int,
          now_s: float | None = None) -> list[str]:
    """Put back the jobs of `queue_names` that were dropped (module doc); their ids. At most
    one worker sweeps every SWEEP_EVERY_S; first sightings are kept in Redis (SUSPECTS)."""
    if not connection.set(SWEEP_LOCK, own_name, nx=True, ex=SWEEP_EVERY_S):
        sweeper = _text(connection.get(SWEEP_LOCK))  # a sweeper killed since: its turn passes
        if sweeper in (None, own_name) or not gone(connection, sweeper, own_name, job_timeout):
            return []
        connection.set(SWEEP_LOCK, own_name, ex=SWEEP_EVERY_S)
    now_s = time.time() if now_s is None else now_s
    prefix = Job.redis_job_namespace_prefix
    keys = [key for key in map(_text, connection.scan_iter(match=f"{prefix}*", count=1000))
            if ":" not in key[len(prefix):]]  # jobs, not their dependents' sets
    with connection.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hmget(key, "status", "origin")
        fields = pipe.execute()
    queued = {key[len(prefix):]: _text(origin) for key, (status, origin) in zip(keys, fields, strict=True)
              if _text(status) == JobStatus.QUEUED.value and _text(origin) in queue_names}
    queues = {name: Queue(name, connection=connection) for name in set(queued.values())}
    waiting = {job_id for queue in queues.values()  # RQ cleans up its own recovery list
               for job_id in [*queue.get_job_ids(), *IntermediateQueue(queue.key, connection).get_job_ids()]}
    candidates = [job_id for job_id in queued if job_id not in waiting]
    with connection.pipeline(transaction=False) as pipe:
        for job_id in candidates:
            pipe.get(POPPED_PREFIX + job_id)
        holders = [_text(holder) for holder in pipe.execute()]
    unclaimed = [job_id for job_id, holder in zip(candidates, holders, strict=True)
                 if holder is None]
    abandoned = [job_id for job_id, holder in zip(candidates, holders, strict=True)
                 if holder is not None and gone(connection, holder, own_name, job_timeout)]
    first = {_text(k): float(v) for k, v in connection.hgetall(SUSPECTS).items()}
    seen = {job_id: first.get(job_id, now_s) for job_id in unclaimed}
    # a claim of a worker that is gone needs no grace: no live worker is about to start it
    put_back = abandoned + [job_id for job_id, since in seen.items()
                            if now_s - since >= DROPPED_GRACE_S]
    with connection.pipeline() as pipe:
        for job_id in put_back:
            pipe.delete(POPPED_PREFIX + job_id)
            queues[queued[job_id]].push_job_id(job_id, pipeline=pipe, at_front=True)
        pipe.delete(SUSPECTS)
        if rest := {job_id: since for job_id, since in seen.items() if job_id not in put_back}:
            pipe.hset(SUSPECTS, mapping=rest)
        pipe.execute()
    for job_id in put_back:
        log.warning("job %s was taken off %s by a worker that never started it: put back",
                    job_id, queued[job_id])
    return put_back
