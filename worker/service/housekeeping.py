"""Keeping the queue honest: searches left started by a worker that died are failed, dead
workers unregistered (jobs popped and never started: worker.service.dropped)."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from pathlib import Path

from redis import Redis
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.results import Result
from rq.utils import now, utcparse

from worker.core.bank import BankError, read_manifest
from worker.core.checks import CHECK_FUNC
from worker.core.contract import ABANDONED
from worker.core.queueing import (
    ADD_DESIGN_FUNC,
    JOB_FUNC,
    MATCH_FUNC,
    REMOVE_DESIGN_FUNC,
    announce_done,
)

log = logging.getLogger(__name__)
HEARTBEAT_GRACE_S = 60  # beyond JOB_TIMEOUT: a worker this long silent is gone
RERUNNABLE = (JOB_FUNC, CHECK_FUNC, MATCH_FUNC)  # jobs that write only their own outputs
RERUN_AFTER = "rerun_after"  # job meta: the dead worker after which the job was queued again
EDIT_LOST = ("the worker stopped during this edit, before it changed the catalogue: nothing "
             "was changed; try the edit again")


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


def forget_dead_local_workers(connection: Redis, own_name: str) -> list[str]:
    """Unregister this host's workers whose process is gone (killed, crashed), or that carry
    our pid under another name (a restarted container's worker is pid 1 again): a restarted
    worker calls it, under the name it will register, before it loads its model, so that
    /readyz does not count the dead one as serving while the new one is still loading. Their
    started searches are failed later, by `fail_orphaned_searches`."""
    forgotten = []
    for key in Worker.all_keys(connection=connection):
        name = key.removeprefix(Worker.redis_worker_namespace_prefix)
        if _dead_local_worker(name, own_name):
            worker = Worker.find_by_key(key, connection=connection)
            if worker is not None:
                worker.register_death()
                forgotten.append(name)
    return forgotten


def gone(connection: Redis, name: str, own_name: str | None, job_timeout: int) -> bool:
    """Worker `name` is not running (this host: its process; any machine: its registration
    or heartbeat)."""
    return _dead_local_worker(name, own_name) or _silent_worker(connection, name, job_timeout)


def is_orphaned(job: Job, own_name: str | None, job_timeout: int) -> bool:
    name = job.worker_name
    if not name or name == own_name:
        return False
    own_timeout = max(job_timeout, int(job.timeout or 0))  # an edit may run longer than a search
    return gone(job.connection, name, own_name, own_timeout)


def edit_outcome(job: Job, features_dir: Path | None) -> dict | None:
    """What an abandoned catalogue edit returned had its worker lived, read from the current
    catalogue: {"name", "n_pairs"} when it had been applied (the name listed after an add,
    gone after a remove), else None. While its job is started no other edit of that name
    can run (web.designs' claim), so the list shows this edit's doing alone."""
    if features_dir is None or job.func_name not in (ADD_DESIGN_FUNC, REMOVE_DESIGN_FUNC):
        return None
    name = (job.kwargs or {}).get("name")
    try:
        names = read_manifest(features_dir).get("names", [])
    except BankError:
        return None
    applied = (name in names) == (job.func_name == ADD_DESIGN_FUNC)
    return {"name": name, "n_pairs": len(names)} if applied else None


def _rerun(queue: Queue, registry: StartedJobRegistry, job: Job, own_name: str | None) -> bool:
    """Put a job its worker left back at the head of its queue, once, when that worker is
    certainly dead (on this host: its process gone, or its pid reused) rather than silent (a
    frozen one may wake and finish it), and the job only writes its own outputs (a search, a
    check's chunk, a match view): a worker killed under it (OOM, a deploy) costs the user a
    wait, not a resubmission; a job that kills its worker twice fails."""
    if job.func_name not in RERUNNABLE or RERUN_AFTER in job.meta \
            or not _dead_local_worker(job.worker_name or "", own_name):
        return False
    job.meta[RERUN_AFTER] = job.worker_name
    job.save_meta()
    with queue.connection.pipeline() as pipe:
        registry.remove_executions(job, pipeline=pipe)
        job.set_status(JobStatus.QUEUED, pipeline=pipe)
        pipe.lpush(queue.key, job.id)
        pipe.execute()
    log.warning("job %s was abandoned by dead worker %s: queued again, once", job.id,
                job.worker_name)
    return True


def fail_orphaned_searches(queue: Queue, failure_ttl: int, own_name: str | None = None,
                           job_timeout: int = 120, features_dir: Path | None = None
                           ) -> list[str]:
    """Fail searches left 'started' by a dead worker, telling the user to resubmit: one whose
    registration (RQ's worker key) is gone or silent for longer than a search may run (any
    machine), or, on this host, one whose process is gone or whose pid is now ours (a
    container's restarted worker is pid 1 again). `own_name`: the calling worker's name. A
    search, check chunk or match view whose worker is dead on this host is run again once
    instead (`_rerun`); a catalogue edit the catalogue shows applied (`edit_outcome`, with
    `features_dir`) is finished with its outcome; one not applied fails saying nothing
    changed. Returns the jobs ended.

    RQ would find them too, but only once the execution's heartbeat expires.
    """
    registry = StartedJobRegistry(queue=queue)
    ended = []
    for job_id in registry.get_job_ids(cleanup=False):
        try:
            job = Job.fetch(job_id, connection=queue.connection)
        except NoSuchJobError:
            continue
        if job.get_status() != JobStatus.STARTED or not is_orphaned(job, own_name, job_timeout):
            continue
        if _rerun(queue, registry, job, own_name):
            continue
        outcome = edit_outcome(job, features_dir)
        error = EDIT_LOST if job.func_name in (ADD_DESIGN_FUNC, REMOVE_DESIGN_FUNC) else ABANDONED
        if outcome is None:
            job.meta.update(error=error, error_type="AbandonedJobError")
            job.save_meta()
        with queue.connection.pipeline() as pipe:
            registry.remove_executions(job, pipeline=pipe)
            if outcome is None:
                job.set_status(JobStatus.FAILED, pipeline=pipe)
                FailedJobRegistry(queue=queue).add(job, ttl=failure_ttl, pipeline=pipe,
                                                   exc_string=f"AbandonedJobError: {error}")
            else:
                job.set_status(JobStatus.FINISHED, pipeline=pipe)
                FinishedJobRegistry(queue=queue).add(job, ttl=failure_ttl, pipeline=pipe)
                Result.create(job, Result.Type.SUCCESSFUL, failure_ttl, return_value=outcome,
                              pipeline=pipe)
            pipe.execute()
        announce_done(queue.connection, job_id)
        ended.append(job_id)
        log.warning("job %s was abandoned by dead worker %s: %s", job_id, job.worker_name,
                    "marked failed" if outcome is None else f"its edit was applied: {outcome}")
    return ended

