"""Searches left 'started' by a worker that is gone are failed by heartbeat and registration,
not only by pid: a restarted container's worker (pid 1 again) and workers on other machines;
dead workers are unregistered (jobs popped and never started: tests/test_dropped.py)."""

from __future__ import annotations

import json
import os
import socket
import uuid
from datetime import timedelta

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import FinishedJobRegistry, StartedJobRegistry
from rq.utils import now

from worker.core.bank import MANIFEST
from worker.core.checks import CHECK_FUNC
from worker.core.contract import ABANDONED
from worker.core.queueing import ADD_DESIGN_FUNC, MATCH_FUNC, REMOVE_DESIGN_FUNC
from worker.service.orphans import EDIT_LOST, EDIT_UNSURE, _rerun, settle_orphaned_jobs


@pytest.fixture
def queue(redis):
    return Queue(f"orphans-{uuid.uuid4().hex[:8]}", connection=redis)


def started_by(queue: Queue, name: str, timeout: int = 120,
               func: str = "worker.service.jobs.search_pair", kwargs: dict | None = None
               ) -> tuple[Job, SimpleWorker]:
    """A search (or `func`) that worker `name` (registered, with a heartbeat) has taken and
    is running."""
    worker = SimpleWorker([queue], connection=queue.connection, name=name)
    worker.register_birth()
    job = queue.enqueue(func, kwargs=kwargs, job_id=uuid.uuid4().hex, job_timeout=timeout)
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
    assert settle_orphaned_jobs(queue, 60, "here.1.bbbbbb") == []
    assert job.get_status(refresh=True) == JobStatus.STARTED


def test_a_worker_whose_registration_is_gone_leaves_an_orphan(queue):
    job, worker = started_by(queue, "elsewhere.4242.aaaaaa")  # another machine: no pid to test
    queue.connection.delete(worker.key)  # its registration expired (or it was removed)
    assert settle_orphaned_jobs(queue, 60, "here.1.bbbbbb") == [job.id]
    assert failed_with_abandoned(job)
    from worker.core.metrics import SEARCHES_ENDED

    assert queue.connection.hget(SEARCHES_ENDED, "failed") == b"1"  # counted as failures are


@pytest.mark.parametrize("func", [ADD_DESIGN_FUNC, REMOVE_DESIGN_FUNC])
@pytest.mark.parametrize("own", [True, False], ids=["its generation", "another writer's"])
@pytest.mark.parametrize("where", ["here", "elsewhere"])
def test_an_abandoned_edit_ends_as_the_catalogue_shows_it(queue, tmp_path, func, own, where):
    """A worker killed after its edit switched the catalogue and before the job ended: the
    edit is finished with its outcome (it was failed as a search to resubmit, and the retry
    was then refused as a duplicate or an unknown name); one killed before: failed, saying
    nothing changed, but only when its worker is certainly dead (this host, its pid gone): one
    only silent (another machine) may yet apply it. Only its own generation says it was
    applied: the name added or removed meanwhile by another writer (the CLI) is not."""
    host, pid = socket.gethostname(), os.getpid()
    name = f"{host}.{pid}.dead00" if where == "here" else "elsewhere.4242.aaaaaa"
    job, worker = started_by(queue, name, func=func, kwargs={"name": "new"})
    names = ["a", "new"] if func == ADD_DESIGN_FUNC else ["a"]  # the name's change, either way
    (tmp_path / MANIFEST).write_text(json.dumps({
        "names": names, "edit": {"from": "x", "id": job.id if own else uuid.uuid4().hex}}))
    queue.connection.delete(worker.key)
    assert settle_orphaned_jobs(queue, 60, f"{host}.{pid}.alive1",
                                features_dir=tmp_path) == [job.id]
    job.refresh()
    if own:
        assert job.get_status() == JobStatus.FINISHED
        assert job.return_value() == {"name": "new", "n_pairs": len(names)}
        assert job.id in FinishedJobRegistry(queue=queue).get_job_ids()
        assert 0 < queue.connection.ttl(job.key) <= 60  # it expires as any result does
    else:
        assert job.get_status() == JobStatus.FAILED
        assert job.meta["error"] == (EDIT_LOST if where == "here" else EDIT_UNSURE)
    assert job.id not in StartedJobRegistry(queue=queue).get_job_ids()


def test_an_edit_applied_before_two_more_switches_is_still_seen_as_applied(queue, tmp_path):
    """Two switches after it (another worker's edit, `make index`) before its job was
    settled: its own generation was then deleted, and the design it added was reported
    "nothing was changed; try the edit again" (the retry refused: `duplicate_name`)."""
    from worker.core.generations import carried_edits, clean_leftovers, new_generation, switch_to

    host, pid = socket.gethostname(), os.getpid()
    job, worker = started_by(queue, f"{host}.{pid}.dead00", func=ADD_DESIGN_FUNC,
                             kwargs={"name": "new"})
    manifest, previous = {"names": ["a"]}, None
    for edit_id, added in ((job.id, "new"), (None, "b"), (uuid.uuid4().hex, "c"),  # b: a build
                           (uuid.uuid4().hex, "d")):
        manifest = {"names": [*manifest["names"], added], "recent_edits": carried_edits(manifest),
                    "replaces": {"generation": previous},
                    **({"edit": {"from": "x", "id": edit_id}} if edit_id else {})}
        folder = new_generation(tmp_path)
        (folder / MANIFEST).write_text(json.dumps(manifest))
        switch_to(tmp_path, folder)
        clean_leftovers(tmp_path, keep=previous)  # as each write does
        previous = folder.name
    queue.connection.delete(worker.key)
    assert settle_orphaned_jobs(queue, 60, f"{host}.{pid}.alive1", features_dir=tmp_path) == [job.id]
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == {"name": "new", "n_pairs": 5}


def test_a_worker_silent_longer_than_a_search_may_run_leaves_an_orphan(queue):
    job, worker = started_by(queue, "elsewhere.4242.aaaaaa")
    stale = (now() - timedelta(seconds=120 + 61)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    queue.connection.hset(worker.key, "last_heartbeat", stale)
    assert settle_orphaned_jobs(queue, 60, "here.1.bbbbbb", job_timeout=120) == [job.id]
    assert failed_with_abandoned(job)


@pytest.mark.parametrize("func", ["worker.service.jobs.search_pair", CHECK_FUNC, MATCH_FUNC])
def test_a_restarted_container_worker_runs_its_predecessors_job_again_once(queue, func):
    """In a container the worker is pid 1 before and after a restart, and the dead one's
    registration outlives it: the same host and pid under another name is a dead worker. Its
    search (check chunk, match view) is queued again, at the head (a worker killed under it
    costs a wait, not a resubmission), by one step that a second look at the same state
    cannot repeat; one whose second worker dies too fails (it may be what kills them)."""
    host, pid = socket.gethostname(), os.getpid()
    queue.enqueue("worker.service.jobs.search_pair", job_id=uuid.uuid4().hex)  # waiting
    job, _ = started_by(queue, f"{host}.{pid}.dead00", func=func)
    stale = Job.fetch(job.id, connection=queue.connection)  # as another worker read it
    assert settle_orphaned_jobs(queue, 60, f"{host}.{pid}.alive1") == []  # none ended
    assert job.get_status(refresh=True) == JobStatus.QUEUED
    assert queue.get_job_ids()[0] == job.id and len(queue) == 2
    assert job.id not in StartedJobRegistry(queue=queue).get_job_ids()
    assert _rerun(queue, stale, f"{host}.{pid}.alive2") == 0 and len(queue) == 2  # not twice
    queue.remove(job)  # taken and started by the next worker, which dies as well
    worker = SimpleWorker([queue], connection=queue.connection, name=f"{host}.{pid}.dead01")
    worker.prepare_execution(job)
    worker.prepare_job_execution(job)
    assert settle_orphaned_jobs(queue, 60, f"{host}.{pid}.alive2") == [job.id]
    assert failed_with_abandoned(job)


def test_an_edit_or_a_worker_that_may_be_frozen_is_not_run_again(queue, tmp_path):
    """An edit changes the catalogue (`settle_edit` settles it); a worker on another machine
    that is only silent may wake and finish its search: both end as before."""
    host, pid = socket.gethostname(), os.getpid()
    (tmp_path / MANIFEST).write_text(json.dumps({"names": ["a"]}))
    edit, _ = started_by(queue, f"{host}.{pid}.dead00", func=ADD_DESIGN_FUNC,
                         kwargs={"name": "new"})
    silent, worker = started_by(queue, "elsewhere.4242.aaaaaa")
    queue.connection.delete(worker.key)
    assert sorted(settle_orphaned_jobs(queue, 60, f"{host}.{pid}.alive1",
                                         features_dir=tmp_path)) == sorted([edit.id, silent.id])
    assert failed_with_abandoned(silent) and edit.get_status(refresh=True) == JobStatus.FAILED


def test_a_worker_never_fails_its_own_search(queue):
    name = f"{socket.gethostname()}.{os.getpid()}.mine00"
    job, _ = started_by(queue, name)
    assert settle_orphaned_jobs(queue, 60, name) == []
    assert job.get_status(refresh=True) == JobStatus.STARTED


def test_a_job_allowed_longer_than_a_search_is_judged_by_its_own_timeout(queue):
    # a catalogue edit may run 300 s: a worker silent for 181 s is still running it
    job, worker = started_by(queue, "elsewhere.4242.aaaaaa", timeout=300)
    stale = (now() - timedelta(seconds=120 + 61)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    queue.connection.hset(worker.key, "last_heartbeat", stale)
    assert settle_orphaned_jobs(queue, 60, "here.1.bbbbbb", job_timeout=120) == []
    assert job.get_status(refresh=True) == JobStatus.STARTED


def test_a_restarted_worker_unregisters_its_dead_predecessors_first(queue):
    """So /readyz does not count a worker killed on this host while the next one loads."""
    import subprocess
    import sys

    from worker.core.queueing import live_workers
    from worker.service.orphans import forget_dead_local_workers

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    host = socket.gethostname()
    names = {"dead": f"{host}.{int(ended.stdout)}.aaaaaa", "alive": f"{host}.{os.getppid()}.bbbbbb",
             "elsewhere": "elsewhere.4242.cccccc",
             "same pid": f"{host}.{os.getpid()}.before"}  # a restarted container's pid 1
    for key, name in names.items():
        if key != "dead":
            worker = SimpleWorker([queue], connection=queue.connection, name=name)
            worker.register_birth()
            worker.heartbeat()
    job, worker = started_by(queue, names["dead"])  # killed while it ran a search
    worker.heartbeat()
    assert live_workers(queue.connection, queue) == 4  # of this test's queue
    me = f"{host}.{os.getpid()}.after"  # the name this worker will register under
    gone = forget_dead_local_workers(queue.connection, me)  # (and any other test's dead ones)
    assert {names["dead"], names["same pid"]} <= set(gone)
    assert not {names["alive"], names["elsewhere"]} & set(gone)
    assert live_workers(queue.connection, queue) == 2
    assert names["dead"] not in forget_dead_local_workers(queue.connection, me)
    # its search was queued again before its registration went: a worker on another machine,
    # which would now judge that worker only silent, finds nothing to fail
    assert job.get_status(refresh=True) == JobStatus.QUEUED and queue.get_job_ids() == [job.id]
    assert settle_orphaned_jobs(queue, 60, "elsewhere.4242.cccccc") == []


def test_the_drawings_of_a_chunk_whose_worker_died_are_deleted_with_it(queue, tmp_path):
    """A chunk deletes its rows' drawings when it ends; one failed as orphaned did not, and
    they stayed until RESULT_TTL's sweep (the maintenance discards a failed orphan's)."""
    from worker.core.checks import collection_upload_name
    from worker.core.contract import CheckChunk, ChunkRow
    from worker.core.storage import FileStorage
    from worker.service.maintenance import discard_uploads

    check = uuid.uuid4().hex
    storage = FileStorage(tmp_path / "uploads", tmp_path / "output")
    storage.setup()
    names = [collection_upload_name(check, row, side) for row in (0, 1) for side in ("front", "back")]
    for name in names:
        storage.put_upload(name, b"drawing")
    other = f"{uuid.uuid4().hex}-front.png"
    storage.put_upload(other, b"another search's")
    chunk = CheckChunk(check_id=check, rows=[ChunkRow(row=0, name="a", front=names[0], back=names[1]),
                                             ChunkRow(row=1, name="b", front=names[2])])
    job = queue.enqueue("worker.service.checks.check_chunk", kwargs=chunk.job_kwargs())
    discard_uploads(storage, job)
    kept = sorted(p.name for p in (tmp_path / "uploads").iterdir())
    assert kept == sorted([names[3], other])  # what the chunk does not name stays


def test_a_search_whose_dead_worker_s_execution_expired_is_run_again_not_failed(queue, tmp_path):
    """The first maintenance after a death may come after the execution's expiry (a restart
    slower than JOB_TIMEOUT + 60 s): RQ's clean-up, run first, failed the search for good as
    abandoned; ours, run first now, queues it again."""
    from types import SimpleNamespace

    from worker.core.storage import FileStorage
    from worker.service.process import SearchWorker

    host, pid = socket.gethostname(), os.getpid()
    job, _ = started_by(queue, f"{host}.{pid}.dead00")
    registry = StartedJobRegistry(queue=queue)
    queue.connection.zadd(registry.key, {member: 1 for member in
                                         queue.connection.zrange(registry.key, 0, -1)})
    assert registry.get_expired_job_ids()  # what RQ's clean-up would fail
    renewed = []  # the pin on the generation it reads (worker/service/reading.py)
    engine = SimpleNamespace(
        settings=SimpleNamespace(job_timeout=120, result_ttl=600, features_dir=tmp_path,
                                 queue_name=queue.name),
        storage=FileStorage(tmp_path / "uploads", tmp_path / "output"),
        hold=lambda: renewed.append(1), snapshot=None)  # no index (a chunks-only worker's)
    worker = SearchWorker([queue], connection=queue.connection, engine=engine,
                          name=f"{host}.{pid}.alive1")
    worker.run_maintenance_tasks()
    assert job.get_status(refresh=True) == JobStatus.QUEUED and queue.get_job_ids() == [job.id]
    assert renewed == [1]  # an idle worker's maintenance renews it too


def test_a_worker_s_silence_is_judged_by_redis_s_clock_not_this_machine_s(redis, monkeypatch):
    """The heartbeat's age was taken against this machine's clock (rq's `now`, imported into
    housekeeping: stepped here ten minutes ahead): a step of it (NTP, a VM resumed) made
    every busy worker silent, and its search failed. Redis's `TIME` is the clock now."""
    from datetime import UTC, datetime

    from rq import Worker
    from rq.utils import utcformat

    from worker.service import housekeeping

    seconds, micros = redis.time()
    redis_now = datetime.fromtimestamp(seconds + micros / 1e6, UTC)
    key, name = Worker.redis_worker_namespace_prefix + "elsewhere.7.abcdef", "elsewhere.7.abcdef"
    redis.hset(key, "last_heartbeat", utcformat(redis_now - timedelta(seconds=30)))
    class Stepped(datetime):  # this machine's clock, ten minutes ahead, whichever way it is read
        @classmethod
        def now(cls, tz=None):
            return redis_now + timedelta(seconds=600)

    monkeypatch.setattr(housekeeping, "datetime", Stepped)
    monkeypatch.setattr(housekeeping, "now", Stepped.now, raising=False)  # rq's, as it was read
    assert not housekeeping._silent_worker(redis, name, 120)
    redis.hset(key, "last_heartbeat", utcformat(redis_now - timedelta(seconds=120 + 61)))
    assert housekeeping._silent_worker(redis, name, 120)  # silent by Redis's clock
    redis.delete(key)
    assert housekeeping._silent_worker(redis, name, 120)  # its registration gone
