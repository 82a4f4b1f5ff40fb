"""Keeping the queue honest: searches left started by a worker that died are failed, and jobs
a worker popped but never started are put back."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

from redis import Redis
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.utils import now, utcparse

from worker.core.contract import ABANDONED
from worker.core.queueing import announce_done

log = logging.getLogger(__name__)
HEARTBEAT_GRACE_S = 60  # beyond JOB_TIMEOUT: a worker this long silent is gone
DROPPED_GRACE_S = 30  # a live worker marks a job it popped started within milliseconds
REQUEUED_PREFIX = "pairsearch:requeued:"  # one worker puts a dropped job back, not each


def worker_name() -> str:
    """`host.pid.random`: lets a restarted worker recognise searches its dead predecessor held."""
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


def _dead_local_worker(name: str, own_name: str | None) -> bool:
    """A worker of this host that is not running: its pid is ours but its name is not (a
    restarted container's worker is pid 1 again), or no process has its pid."""
    host, pid, _ = (name.rsplit(".", 2) + ["", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return own_name is not None and name != own_name
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _silent_worker(connection: Redis, name: str, job_timeout: int) -> bool:
    """A worker on any machine that is gone: its registration expired or was removed, or it
    has sent no heartbeat for longer than a search may run (a worker heartbeats when it
    takes a search, and between searches)."""
    beat = connection.hget(Worker.redis_worker_namespace_prefix + name, "last_heartbeat")
    if beat is None:
        return True
    try:
        last = utcparse(beat.decode())
    except ValueError:
        return False
    return (now() - last).total_seconds() > job_timeout + HEARTBEAT_GRACE_S


def forget_dead_local_workers(connection: Redis) -> list[str]:
    """Unregister this host's workers whose process is gone (killed, crashed): a restarted
    worker calls it before it loads its model, so that /readyz does not count the dead one
    as serving while the new one is still loading. Their started searches are failed later,
    by `fail_orphaned_searches`."""
    gone = []
    for key in Worker.all_keys(connection=connection):
        name = key.removeprefix(Worker.redis_worker_namespace_prefix)
        if _dead_local_worker(name, None):
            worker = Worker.find_by_key(key, connection=connection)
            if worker is not None:
                worker.register_death()
                gone.append(name)
    return gone


def is_orphaned(job: Job, own_name: str | None, job_timeout: int) -> bool:
    name = job.worker_name
    if not name or name == own_name:
        return False
    own_timeout = max(job_timeout, int(job.timeout or 0))  # an edit may run longer than a search
    return _dead_local_worker(name, own_name) or _silent_worker(job.connection, name, own_timeout)


def fail_orphaned_searches(queue: Queue, failure_ttl: int, own_name: str | None = None,
                           job_timeout: int = 120) -> list[str]:
    """Fail searches left 'started' by a dead worker, telling the user to resubmit: one whose
    registration (RQ's worker key) is gone or silent for longer than a search may run (any
    machine), or, on this host, one whose process is gone or whose pid is now ours (a
    container's restarted worker is pid 1 again). `own_name`: the calling worker's name.

    RQ would find them too, but only once the execution's heartbeat expires.
    """
    registry = StartedJobRegistry(queue=queue)
    failed = []
    for job_id in registry.get_job_ids(cleanup=False):
        try:
            job = Job.fetch(job_id, connection=queue.connection)
        except NoSuchJobError:
            continue
        if job.get_status() != JobStatus.STARTED or not is_orphaned(job, own_name, job_timeout):
            continue
        job.meta.update(error=ABANDONED, error_type="AbandonedJobError")
        job.save_meta()
        with queue.connection.pipeline() as pipe:
            registry.remove_executions(job, pipeline=pipe)
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            FailedJobRegistry(queue=queue).add(job, ttl=failure_ttl,
                                               exc_string=f"AbandonedJobError: {ABANDONED}",
                                               pipeline=pipe)
            pipe.execute()
        announce_done(queue.connection, job_id)
        failed.append(job_id)
        log.warning("search %s was abandoned by dead worker %s: marked failed", job_id,
                    job.worker_name)
    return failed


def requeue_dropped(queue: Queue, suspects: dict[str, float],
                    now_s: float | None = None) -> list[str]:
    """Put back, at the head of `queue`, its jobs that a worker popped and never started.

    A worker serving several queues (ours serve four) pops with BLPOP, which RQ keeps no copy
    of (its reliable BLMOVE is for one queue only): a job popped by a worker that froze, was
    killed or lost the reply is then in no queue and no registry, 'queued' until it expires.
    Such a job is put back once it has been seen so for DROPPED_GRACE_S: `suspects` (id ->
    first seen, this worker's earlier runs) is updated in place.
    """
    connection, now_s = queue.connection, time.time() if now_s is None else now_s
    prefix = Job.redis_job_namespace_prefix
    keys = [key for key in connection.scan_iter(match=f"{prefix}*", count=1000)
            if b":" not in key[len(prefix):]]  # jobs, not their dependents' sets
    with connection.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hmget(key, "status", "origin")
        fields = pipe.execute()
    # a one-queue worker's pop goes to RQ's recovery list, which RQ itself cleans up
    waiting = set(queue.get_job_ids()) | set(IntermediateQueue(queue.key, connection).get_job_ids())
    seen = {}
    for key, (status, origin) in zip(keys, fields, strict=True):
        job_id = key[len(prefix):].decode()
        if status == JobStatus.QUEUED.value.encode() and origin == queue.name.encode() \
                and job_id not in waiting:
            seen[job_id] = suspects.get(job_id, now_s)
    requeued = [job_id for job_id, since in seen.items() if now_s - since >= DROPPED_GRACE_S
                and connection.set(REQUEUED_PREFIX + job_id, 1, nx=True, ex=DROPPED_GRACE_S)]
    for job_id in requeued:
        queue.push_job_id(job_id, at_front=True)
        log.warning("job %s was popped off %s by a worker that never started it: put back",
                    job_id, queue.name)
    suspects.clear()
    suspects.update((job_id, since) for job_id, since in seen.items() if job_id not in requeued)
    return requeued
