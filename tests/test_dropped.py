"""Jobs a worker took off its queue and never started (worker/service/dropped.py): RQ pops
with BLPOP for a worker of several queues and keeps no copy, so a worker that froze, was
killed or lost the reply left the job 'queued' in no list until it expired."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid

import pytest
from rq import Queue, SimpleWorker
from rq.intermediate_queue import IntermediateQueue

from worker.service.dropped import DROPPED_GRACE_S, SUSPECTS, SWEEP_LOCK, sweep, take

JOB = "worker.service.jobs.search_pair"
SWEEPER = "sweeper.1.aaaaaa"


@pytest.fixture
def queue(redis):
    redis.delete(SUSPECTS, SWEEP_LOCK)
    return Queue(f"dropped-{uuid.uuid4().hex[:8]}", connection=redis)


def sweep_at(queue: Queue, at: float) -> list[str]:
    """A sweep at time `at` (each worker's maintenance; the lock of the last one lifted)."""
    queue.connection.delete(SWEEP_LOCK)
    return sweep(queue.connection, [queue.name], SWEEPER, 120, at)


def running_worker(queue: Queue, name: str) -> str:
    worker = SimpleWorker([queue], connection=queue.connection, name=name)
    worker.register_birth()
    worker.heartbeat()
    return name


def dead_local_worker() -> str:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return f"{socket.gethostname()}.{int(ended.stdout)}.dddddd"


def popped(queue: Queue, by: str | None = None) -> str:
    """A job taken off `queue` (its BLPOP answered), claimed by worker `by` if given."""
    job = queue.enqueue(JOB, job_id=uuid.uuid4().hex)
    assert queue.connection.lrem(queue.key, 0, job.id) == 1
    if by is not None:
        assert take(queue.connection, job.id, by, 120)
    return job.id


def test_a_dropped_job_is_put_back_at_the_head_after_the_grace_and_only_it(queue):
    frozen = popped(queue)  # a worker frozen or killed between its pop and its claim
    killed = popped(queue, by=dead_local_worker())  # killed after its claim, before its start
    slow = popped(queue, by=running_worker(queue, "elsewhere.7.slowww"))  # still reloading
    waiting = queue.enqueue(JOB, job_id=uuid.uuid4().hex).id
    other = Queue(f"{queue.name}-other", connection=queue.connection)
    elsewhere = popped(other)  # another queue's: that queue's workers sweep it
    t0 = time.time()
    assert sweep_at(queue, t0) == [killed]  # its taker is gone: at once
    assert queue.get_job_ids() == [killed, waiting]  # at the head
    assert sweep(queue.connection, [queue.name], SWEEPER, 120, t0 + 99) == []  # one a minute
    assert sweep_at(queue, t0 + DROPPED_GRACE_S - 1) == []  # a live worker may claim it yet
    assert sweep_at(queue, t0 + DROPPED_GRACE_S) == [frozen]
    assert queue.get_job_ids() == [frozen, killed, waiting]
    assert sweep_at(queue, t0 + 2 * DROPPED_GRACE_S) == []  # waiting now: not dropped
    assert slow not in queue.get_job_ids() and elsewhere not in other.get_job_ids()


def test_a_worker_that_wakes_after_its_job_was_put_back_leaves_it_to_the_taker(queue):
    job = popped(queue)
    sweep_at(queue, 0)
    assert sweep_at(queue, DROPPED_GRACE_S) == [job]
    taker = running_worker(queue, "elsewhere.8.takerr")
    assert queue.connection.lpop(queue.key).decode() == job and take(queue.connection, job,
                                                                     taker, 120)
    assert not take(queue.connection, job, "elsewhere.9.frozen", 120)  # the taker runs it
    assert take(queue.connection, job, taker, 120)  # its own claim: still its own


def test_the_sweep_of_a_worker_killed_while_it_held_the_turn_passes_to_another(queue):
    queue.connection.set(SWEEP_LOCK, dead_local_worker())
    job = popped(queue, by=dead_local_worker())
    assert sweep(queue.connection, [queue.name], SWEEPER, 120) == [job]
    assert queue.connection.get(SWEEP_LOCK).decode() == SWEEPER


def test_a_job_in_rqs_own_recovery_list_is_left_to_rq(queue):
    job = popped(queue)  # a one-queue worker's pop moves it to RQ's recovery list
    queue.connection.lpush(IntermediateQueue(queue.key, queue.connection).key, job)
    assert sweep_at(queue, 0) == [] and sweep_at(queue, 10 * DROPPED_GRACE_S) == []


@pytest.mark.slow
def test_a_search_dropped_by_its_worker_is_run_by_the_next_one(indexed_client, indexed_settings,
                                                                run_worker, redis):
    from tests.http import post_pair
    from tests.images import N_PAIRS, design_pair

    redis.delete(SUSPECTS, SWEEP_LOCK)
    url = post_pair(indexed_client, *design_pair(3, N_PAIRS)).get_json()["url"]
    search = Queue(indexed_settings.queue_name, connection=redis)
    assert redis.lpop(search.key) == url.rsplit("/", 1)[1].encode()  # a frozen worker's pop
    run_worker()  # nothing queued (its maintenance sees the search dropped for the first time)
    assert indexed_client.get(url).get_json()["status"] == "queued"
    redis.delete(SWEEP_LOCK)
    assert sweep(redis, [search.name], SWEEPER, 120, time.time() + DROPPED_GRACE_S) == \
        [url.rsplit("/", 1)[1]]
    run_worker()
    assert indexed_client.get(url).get_json()["status"] == "finished"
