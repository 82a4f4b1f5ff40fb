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
from rq.job import Job, JobStatus

from worker.service.dropped import DROPPED_GRACE_S, POPPED_PREFIX, SWEEP_LOCK, start, sweep, take

JOB = "worker.service.jobs.search_pair"
SWEEPER = "sweeper.1.aaaaaa"


@pytest.fixture
def queue(redis):
    return Queue(f"dropped-{uuid.uuid4().hex[:8]}", connection=redis)


def sweep_at(queue: Queue, at: float) -> list[str]:
    """A sweep at time `at` (each worker's maintenance; the turn of the last one lifted)."""
    queue.connection.delete(SWEEP_LOCK + queue.name)
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


def test_a_worker_that_wakes_after_its_job_was_put_back_leaves_it_alone(queue):
    job = popped(queue)  # worker A froze between its pop and its claim
    sweep_at(queue, 0)
    assert sweep_at(queue, DROPPED_GRACE_S) == [job]
    taker = running_worker(queue, "elsewhere.8.takerr")
    assert queue.connection.lpop(queue.key).decode() == job and take(queue.connection, job,
                                                                     taker, 120)
    frozen = running_worker(queue, "elsewhere.9.frozen")
    assert not take(queue.connection, job, frozen, 120)  # A wakes: the taker holds it
    assert take(queue.connection, job, taker, 120)  # its own claim: still its own
    assert not start(queue.connection, job, frozen)  # only the holder starts it
    assert queue.connection.get(POPPED_PREFIX + job).decode() == taker
    assert start(queue.connection, job, taker)
    assert Job.fetch(job, connection=queue.connection).get_status() == JobStatus.STARTED
    assert queue.connection.get(POPPED_PREFIX + job) is None
    assert not take(queue.connection, job, frozen, 120)  # not 'queued' any more: run by the taker
    finished = popped(queue)  # A woke before anyone popped the copy put back: A ran it
    Job.fetch(finished, connection=queue.connection).set_status(JobStatus.FINISHED)
    assert not take(queue.connection, finished, taker, 120)  # the copy is not run again


def test_a_worker_stopped_between_its_claim_and_its_start_is_refused_at_its_start(queue):
    frozen = "elsewhere.4.frozen"  # its registration expired while it was stopped: gone
    job = popped(queue, by=frozen)
    assert sweep_at(queue, 0) == [job]  # put back at once, its claim deleted
    assert not start(queue.connection, job, frozen)  # wakes before anyone popped the copy
    assert Job.fetch(job, connection=queue.connection).get_status() == JobStatus.QUEUED
    assert queue.get_job_ids() == [job]  # the copy is run instead
    taker = running_worker(queue, "elsewhere.8.takerr")
    assert queue.connection.lpop(queue.key).decode() == job and take(queue.connection, job,
                                                                     taker, 120)
    assert not start(queue.connection, job, frozen)  # wakes after the copy was taken
    assert start(queue.connection, job, taker) and not start(queue.connection, job, taker)
    assert Job.fetch(job, connection=queue.connection).worker_name == taker  # for orphans
    cancelled = popped(queue, by=taker)  # a check's chunk cancelled between claim and start
    Job.fetch(cancelled, connection=queue.connection).set_status(JobStatus.CANCELED)
    assert not start(queue.connection, cancelled, taker)
    assert queue.connection.get(POPPED_PREFIX + cancelled) is None  # its claim let go


def test_a_put_back_drops_the_gone_holder_s_execution_and_only_its(queue):
    from rq.executions import Execution
    from rq.registry import StartedJobRegistry

    dead = dead_local_worker()
    job_id = popped(queue, by=dead)
    job = Job.fetch(job_id, connection=queue.connection)
    with queue.connection.pipeline() as pipe:
        for name in (dead, "elsewhere.3.another"):
            Execution.create(job, 120, pipe, worker_name=name)
        pipe.execute()
    assert sweep_at(queue, 0) == [job_id]
    left = {key.decode() for key in
            queue.connection.zrange(StartedJobRegistry(queue=queue).key, 0, -1)}
    assert {e.worker_name for e in job.get_executions() if e.composite_key in left} == \
        {"elsewhere.3.another"}  # the live one's execution is still there


def test_the_sweep_of_a_worker_killed_while_it_held_the_turn_passes_to_another(queue):
    queue.connection.set(SWEEP_LOCK + queue.name, dead_local_worker())
    job = popped(queue, by=dead_local_worker())
    assert sweep(queue.connection, [queue.name], SWEEPER, 120) == [job]
    assert queue.connection.get(SWEEP_LOCK + queue.name).decode() == SWEEPER


def test_each_queue_has_its_own_turn_and_first_sightings(queue):
    """A worker of other queues (a chunks-only one) sweeping cannot skip or erase this one's."""
    other = Queue(f"{queue.name}-index", connection=queue.connection)
    job = popped(queue)
    sweep_at(queue, 0)  # first sighting, this queue's
    assert sweep(queue.connection, [other.name], "chunks.1.cccccc", 120, 0) == []  # its turn
    assert sweep_at(queue, DROPPED_GRACE_S) == [job]


def test_a_job_in_rqs_own_recovery_list_is_left_to_rq(queue):
    job = popped(queue)  # a one-queue worker's pop moves it to RQ's recovery list
    queue.connection.lpush(IntermediateQueue(queue.key, queue.connection).key, job)
    assert sweep_at(queue, 0) == [] and sweep_at(queue, 10 * DROPPED_GRACE_S) == []


@pytest.mark.slow
def test_a_search_dropped_by_its_worker_is_run_by_the_next_one(indexed_client, indexed_settings,
                                                                run_worker, redis):
    from tests.http import post_pair
    from tests.images import N_PAIRS, design_pair

    url = post_pair(indexed_client, *design_pair(3, N_PAIRS)).get_json()["url"]
    search = Queue(indexed_settings.queue_name, connection=redis)
    assert redis.lpop(search.key) == url.rsplit("/", 1)[1].encode()  # a frozen worker's pop
    run_worker()  # nothing queued (its maintenance sees the search dropped for the first time)
    assert indexed_client.get(url).get_json()["status"] == "queued"
    redis.delete(SWEEP_LOCK + search.name)
    assert sweep(redis, [search.name], SWEEPER, 120, time.time() + DROPPED_GRACE_S) == \
        [url.rsplit("/", 1)[1]]
    run_worker()
    assert indexed_client.get(url).get_json()["status"] == "finished"


@pytest.mark.slow
def test_a_search_put_back_while_its_worker_was_stopped_after_its_claim_runs_once(
        indexed_client, indexed_settings, extractor, run_worker, redis):
    """The worker wakes between its claim and its start: refused, its execution dropped, the
    uploads kept for the copy, which the next worker runs."""
    from rq.registry import StartedJobRegistry

    from tests.http import post_pair
    from tests.images import N_PAIRS, design_pair
    from worker.service.process import make_worker, start_engine

    url = post_pair(indexed_client, *design_pair(4, N_PAIRS)).get_json()["url"]
    job_id = url.rsplit("/", 1)[1]
    search = Queue(indexed_settings.queue_name, connection=redis)
    assert redis.lpop(search.key) == job_id.encode()
    stopped = make_worker(indexed_settings, start_engine(indexed_settings, extractor), redis)
    assert take(redis, job_id, stopped.name, 120)  # ...then stopped; its registration expires
    redis.delete(SWEEP_LOCK + search.name)
    assert sweep(redis, [search.name], SWEEPER, 120) == [job_id]
    uploads = sorted(indexed_settings.upload_dir.iterdir())
    stopped.run_claimed(Job.fetch(job_id, connection=redis), search)  # it wakes
    assert stopped.refused and sorted(indexed_settings.upload_dir.iterdir()) == uploads
    assert indexed_client.get(url).get_json()["status"] == "queued"
    assert StartedJobRegistry(queue=search).get_job_ids() == []
    run_worker()
    assert indexed_client.get(url).get_json()["status"] == "finished"


def test_a_put_back_is_undone_by_any_change_since_the_sweep_read_the_job(queue):
    from worker.service.dropped import _put_back

    job = popped(queue)  # read by the sweep with no claim...
    assert take(queue.connection, job, running_worker(queue, "elsewhere.5.wakeup"), 120)
    assert not _put_back(queue, job, None)  # ...claimed since: its worker woke up
    assert queue.get_job_ids() == []
    dead = dead_local_worker()
    killed, finished = popped(queue, by=dead), popped(queue, by=dead)
    Job.fetch(finished, connection=queue.connection).set_status(JobStatus.FINISHED)
    assert not _put_back(queue, finished, dead)  # no longer 'queued'
    assert _put_back(queue, killed, dead) and queue.get_job_ids() == [killed]


def test_a_key_that_is_not_a_job_does_not_stop_the_sweep(queue):
    queue.connection.set("rq:job:not-a-hash", "x")  # another app's key, or a damaged one
    queue.connection.set(b"rq:job:\xff\xfe", "y")
    try:
        job = popped(queue, by=dead_local_worker())
        assert sweep_at(queue, 0) == [job]
    finally:
        queue.connection.delete("rq:job:not-a-hash", b"rq:job:\xff\xfe")


@pytest.mark.slow
def test_a_search_whose_end_could_not_be_recorded_keeps_its_uploads_for_the_re_run(
        indexed_settings, extractor, tmp_path, monkeypatch):
    """Redis lost as the search ended (a Ctrl-C took redis-server with it): the search runs,
    its private redis-server is killed before RQ records the outcome, RQ raises while
    recording it, and the uploads stay: the next worker runs it again from them."""
    import dataclasses

    from redis import Redis
    from redis.exceptions import RedisError

    from tests.http import post_pair
    from tests.images import N_PAIRS, design_pair
    from web import create_app
    from worker.dev.processes import free_port, start_redis, stop_process
    from worker.service import jobs
    from worker.service.process import make_worker, start_engine

    port, redis_dir = free_port(), tmp_path / "redis"
    servers = [start_redis(port, redis_dir)]
    settings = dataclasses.replace(indexed_settings, redis_url=f"redis://127.0.0.1:{port}/0")
    searched = jobs.search_pair

    def search_then_redis_dies(**kwargs):  # the real search, then the outage
        result = searched(**kwargs)
        servers[-1].kill()
        servers[-1].wait()
        return result

    try:
        redis = Redis.from_url(settings.redis_url)
        client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
        url = post_pair(client, *design_pair(5, N_PAIRS)).get_json()["url"]
        job_id = url.rsplit("/", 1)[1]
        search = Queue(settings.queue_name, connection=redis)
        assert redis.lpop(search.key) == job_id.encode()
        engine = start_engine(settings, extractor)
        worker = make_worker(settings, engine, redis)
        assert take(redis, job_id, worker.name, 120)
        uploads = sorted(settings.upload_dir.iterdir())
        assert len(uploads) == 2

        monkeypatch.setattr(jobs, "search_pair", search_then_redis_dies)  # RQ imports it by name
        with pytest.raises(RedisError):
            worker.run_claimed(Job.fetch(job_id, connection=redis), search)
        monkeypatch.undo()
        assert servers[-1].poll() is not None  # the search ran to its end, then Redis went
        assert sorted(settings.upload_dir.iterdir()) == uploads
        assert list(settings.output_dir.glob(f"{job_id}*"))  # its grid was written

        servers.append(start_redis(port, redis_dir))  # append-only: the search left started
        assert client.get(url).get_json()["status"] == "started"
        # the next worker (another name: the lost one counts as dead) settles it and runs it
        make_worker(settings, engine, redis).work(burst=True, with_scheduler=False)
        assert client.get(url).get_json()["status"] == "finished"
        assert list(settings.upload_dir.iterdir()) == []
    finally:
        for server in servers:
            stop_process(server)
