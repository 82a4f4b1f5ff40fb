"""Searches left 'started' by a worker that is gone are failed by heartbeat and registration,
not only by pid: a restarted container's worker (pid 1 again) and workers on other machines."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.utils import now

from worker.core.contract import ABANDONED
from worker.service.housekeeping import fail_orphaned_searches


@pytest.fixture
def queue(redis):
    return Queue(f"orphans-{uuid.uuid4().hex[:8]}", connection=redis)


def started_by(queue: Queue, name: str, timeout: int = 120) -> tuple[Job, SimpleWorker]:
    """A search that worker `name` (registered, with a heartbeat) has taken and is running."""
    worker = SimpleWorker([queue], connection=queue.connection, name=name)
    worker.register_birth()
    job = queue.enqueue("worker.service.jobs.search_pair", job_id=uuid.uuid4().hex,
                        job_timeout=timeout)
    queue.remove(job)
    worker.prepare_execution(job)
    worker.prepare_job_execution(job)
    job.refresh()
    assert job.get_status() == JobStatus.STARTED and job.worker_name == name
    return job, worker


def failed_with_abandoned(job: Job) -> bool:
    job.refresh()
    return job.get_status() == JobStatus.FAILED and job.meta.get("error") == ABANDONED


def test_a_live_worker_on_another_machine_keeps_its_search(queue):
    job, _ = started_by(queue, "elsewhere.4242.aaaaaa")
    assert fail_orphaned_searches(queue, 60, "here.1.bbbbbb") == []
    assert job.get_status(refresh=True) == JobStatus.STARTED


def test_a_worker_whose_registration_is_gone_leaves_an_orphan(queue):
    job, worker = started_by(queue, "elsewhere.4242.aaaaaa")  # another machine: no pid to test
    queue.connection.delete(worker.key)  # its registration expired (or it was removed)
    assert fail_orphaned_searches(queue, 60, "here.1.bbbbbb") == [job.id]
    assert failed_with_abandoned(job)


def test_a_worker_silent_longer_than_a_search_may_run_leaves_an_orphan(queue):
    job, worker = started_by(queue, "elsewhere.4242.aaaaaa")
    stale = (now() - timedelta(seconds=120 + 61)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    queue.connection.hset(worker.key, "last_heartbeat", stale)
    assert fail_orphaned_searches(queue, 60, "here.1.bbbbbb", job_timeout=120) == [job.id]
    assert failed_with_abandoned(job)


def test_a_restarted_container_worker_with_the_same_pid_fails_its_predecessors_search(queue):
    """In a container the worker is pid 1 before and after a restart, and the dead one's
    registration outlives it: the same host and pid under another name is a dead worker."""
    host, pid = socket.gethostname(), os.getpid()
    job, _ = started_by(queue, f"{host}.{pid}.dead00")
    assert fail_orphaned_searches(queue, 60, f"{host}.{pid}.alive1") == [job.id]
    assert failed_with_abandoned(job)


def test_a_worker_never_fails_its_own_search(queue):
    name = f"{socket.gethostname()}.{os.getpid()}.mine00"
    job, _ = started_by(queue, name)
    assert fail_orphaned_searches(queue, 60, name) == []
    assert job.get_status(refresh=True) == JobStatus.STARTED


def test_a_job_allowed_longer_than_a_search_is_judged_by_its_own_timeout(queue):
    # a catalogue edit may run 300 s: a worker silent for 181 s is still running it
    job, worker = started_by(queue, "elsewhere.4242.aaaaaa", timeout=300)
    stale = (now() - timedelta(seconds=120 + 61)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    queue.connection.hset(worker.key, "last_heartbeat", stale)
    assert fail_orphaned_searches(queue, 60, "here.1.bbbbbb", job_timeout=120) == []
    assert job.get_status(refresh=True) == JobStatus.STARTED
