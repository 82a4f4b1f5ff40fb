"""Keeping the queue honest: searches left started by a worker that died are failed."""

from __future__ import annotations

import logging
import os
import socket
import uuid

from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry

from worker.core.contract import ABANDONED
from worker.core.queueing import announce_done

log = logging.getLogger(__name__)


def worker_name() -> str:
    """`host.pid.random`: lets a restarted worker recognise searches its dead predecessor held."""
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


def _dead_local_worker(name: str | None) -> bool:
    host, _, rest = (name or "").rpartition(".")[0].rpartition(".")
    if host != socket.gethostname() or not rest.isdigit() or int(rest) == os.getpid():
        return False
    try:
        os.kill(int(rest), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def fail_orphaned_searches(queue: Queue, failure_ttl: int) -> list[str]:
    """Fail searches left 'started' by a dead worker of this host, telling the user to resubmit.

    RQ would find them too, but only once their heartbeat expires (the job timeout + 60 s).
    """
    registry = StartedJobRegistry(queue=queue)
    failed = []
    for job_id in registry.get_job_ids(cleanup=False):
        try:
            job = Job.fetch(job_id, connection=queue.connection)
        except NoSuchJobError:
            continue
        if job.get_status() != JobStatus.STARTED or not _dead_local_worker(job.worker_name):
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
