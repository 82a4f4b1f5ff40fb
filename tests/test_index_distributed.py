"""`python -m worker.cli.index --distributed`: real worker processes extract the chunks; the
bank equals the local build's; a worker killed while it holds a chunk costs only that chunk.

Determinism: the coordinator is given a `hold` key, so each chunk job, once a worker has
taken it, waits until the test sets that key. The test sees both workers holding a chunk (RQ's
started registry) before it kills one or lets them go; nothing depends on timing."""

from __future__ import annotations

import shutil
import signal
import threading
import time
import uuid

import pytest
from redis import Redis
from rq import Queue, Worker
from rq.job import Job, JobStatus
from rq.registry import FinishedJobRegistry, StartedJobRegistry

from tests.test_index_resume import assert_same_banks, distinct_images
from worker.core.queueing import index_queue_name
from worker.dev.processes import stop_process
from worker.dev.services import start_worker, wait_for_workers
from worker.indexing.build import build_index

pytestmark = pytest.mark.slow
CHUNK_PAIRS = 8  # the 24-pair catalogue's 46 images: 3 chunks for 2 workers


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_url, catalogue_dir, features_dir):
    """Two `python -m worker` processes sharing Redis, the catalogue and FEATURES_DIR (whose
    chunk cache each test empties); float32, as the tests' shared extractor."""
    from worker.core.settings import Settings

    root = tmp_path_factory.mktemp("cluster")
    shutil.copytree(features_dir, root / "features")
    settings = Settings(redis_url=redis_url, database_dir=catalogue_dir,
                        features_dir=root / "features", upload_dir=root / "uploads",
                        output_dir=root / "output", vgg16_weights="bsds500", precision="float32",
                        queue_name=f"dist-{uuid.uuid4().hex[:8]}", index_chunk_pairs=CHUNK_PAIRS)
    workers = [start_worker(settings, log=root / f"worker-{i}.log") for i in (1, 2)]
    try:
        wait_for_workers(settings, count=2, timeout=300)
        yield settings, workers
    finally:
        for worker in workers:
            stop_process(worker)


def start_build(settings, extractor, hold: str) -> tuple[threading.Thread, dict]:
    shutil.rmtree(settings.features_dir / "chunks", ignore_errors=True)
    outcome: dict = {}

    def build() -> None:
        try:
            outcome["manifest"] = build_index(settings, extractor, progress=False,
                                              distributed=True, hold=hold)
        except BaseException as exc:  # re-raised by the test
            outcome["error"] = exc

    thread = threading.Thread(target=build)
    thread.start()
    return thread, outcome


def holders(settings, count: int) -> dict[str, str]:
    """Wait until `count` workers each hold a chunk; {worker name: job id}."""
    registry = StartedJobRegistry(queue=Queue(index_queue_name(settings),
                                              connection=Redis.from_url(settings.redis_url)))
    deadline = time.monotonic() + 300  # a hang guard, not a timing assertion
    while True:
        jobs = [Job.fetch(i, connection=registry.connection) for i in registry.get_job_ids()]
        held = {job.worker_name: job.id for job in jobs if job.worker_name}
        if len(held) >= count:
            return held
        assert time.monotonic() < deadline, f"workers holding chunks: {held}"
        time.sleep(0.05)


def finish(thread, outcome, redis_url: str, hold: str) -> dict:
    release(thread, redis_url, hold)
    assert not thread.is_alive(), "the distributed build did not finish"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["manifest"]


def release(thread, redis_url: str, hold: str) -> None:
    """Let the build's chunks go and wait for it: a test that fails midway leaves no build
    holding the cluster's workers for the next test."""
    Redis.from_url(redis_url).set(hold, 1)
    thread.join(timeout=600)


def this_builds(settings, kind, hold: str) -> list[Job]:
    """The chunk jobs of the build given `hold` in registry `kind`: the module's builds share
    one queue, whose registries keep every earlier build's jobs."""
    connection = Redis.from_url(settings.redis_url)
    jobs = [Job.fetch(i, connection=connection)
            for i in chunk_registry(settings, kind).get_job_ids()]
    return [job for job in jobs if job.kwargs["hold"] == hold]


def replace_worker(settings, workers: list, victim) -> None:
    """Start a worker in the killed `victim`'s place in the cluster's list (which the fixture
    stops) and wait until it registers, so the next test again has two."""
    log = settings.features_dir.parent / f"worker-after-{victim.pid}.log"
    fresh = start_worker(settings, log=log)
    workers[workers.index(victim)] = fresh
    names = Queue(settings.queue_name, connection=Redis.from_url(settings.redis_url))
    deadline = time.monotonic() + 300  # a hang guard, not a timing assertion
    while not any(w.name.split(".")[-2] == str(fresh.pid) for w in Worker.all(queue=names)):
        assert fresh.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, "the replacement worker did not register"
        time.sleep(0.2)


def chunk_registry(settings, kind):
    return kind(queue=Queue(index_queue_name(settings),
                            connection=Redis.from_url(settings.redis_url)))


def test_two_workers_build_the_same_bank_as_a_local_build(cluster, extractor, features_dir):
    settings, _ = cluster
    hold = f"hold-{uuid.uuid4().hex}"
    thread, outcome = start_build(settings, extractor, hold)
    try:
        held = holders(settings, 2)
        manifest = finish(thread, outcome, settings.redis_url, hold)
    finally:
        release(thread, settings.redis_url, hold)
    assert manifest["images"]["distributed"] is True
    assert manifest["images"]["extracted"] == distinct_images(settings.database_dir)
    assert_same_banks(settings.features_dir, features_dir)
    finished = this_builds(settings, FinishedJobRegistry, hold)
    assert len(finished) == 3 and set(held) <= {job.worker_name for job in finished}


def test_a_worker_killed_mid_chunk_loses_only_that_chunk(cluster, extractor, features_dir):
    settings, workers = cluster
    hold = f"hold-{uuid.uuid4().hex}"
    thread, outcome = start_build(settings, extractor, hold)
    victim = None
    try:
        held = holders(settings, 2)
        pids = {name.rsplit(".", 2)[1]: name for name in held}  # worker names: host.pid.random
        victim = next(w for w in workers if str(w.pid) in pids)
        victim_name = pids[str(victim.pid)]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        manifest = finish(thread, outcome, settings.redis_url, hold)
    finally:
        release(thread, settings.redis_url, hold)
        if victim is not None:  # the cluster has two workers again for the module's next test
            replace_worker(settings, workers, victim)
    assert manifest["images"]["extracted"] == distinct_images(settings.database_dir)
    assert_same_banks(settings.features_dir, features_dir)
    connection = Redis.from_url(settings.redis_url)
    lost = Job.fetch(held[victim_name], connection=connection)
    assert lost.get_status() == JobStatus.FAILED and lost.meta["error_type"] == "AbandonedJobError"
    redone = this_builds(settings, FinishedJobRegistry, hold)
    assert any(job.kwargs["key"] == lost.kwargs["key"] for job in redone)
    assert all(job.worker_name != victim_name for job in redone
               if job.kwargs["key"] == lost.kwargs["key"])


def test_workers_without_an_index_do_the_first_build(tmp_path, redis_url, catalogue_dir,
                                                      extractor, features_dir):
    """The first build of a catalogue: no generation exists anywhere, so no worker could load
    one; `python -m worker --chunks-only` needs none, serves only the chunk queue, and the
    distributed build it serves equals the local build."""
    from worker.core.settings import Settings

    settings = Settings(redis_url=redis_url, database_dir=catalogue_dir,
                        features_dir=tmp_path / "features", upload_dir=tmp_path / "uploads",
                        output_dir=tmp_path / "output", vgg16_weights="bsds500",
                        precision="float32", queue_name=f"first-{uuid.uuid4().hex[:8]}",
                        index_chunk_pairs=CHUNK_PAIRS)
    build_on_chunks_only_worker(settings, extractor, tmp_path / "worker.log")
    assert_same_banks(settings.features_dir, features_dir)


def build_on_chunks_only_worker(settings, extractor, log) -> dict:
    """A distributed build whose every chunk one `python -m worker --chunks-only` extracts
    (checked); its manifest."""
    from worker.dev.services import search_queue

    worker = start_worker(settings, "--chunks-only", log=log)
    try:
        chunks = Queue(index_queue_name(settings), connection=Redis.from_url(settings.redis_url))
        deadline = time.monotonic() + 300  # a hang guard, not a timing assertion
        while Worker.count(queue=chunks) == 0:
            assert worker.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the chunks-only worker did not register"
            time.sleep(0.2)
        assert Worker.count(queue=search_queue(settings)) == 0  # it serves no searches
        manifest = build_index(settings, extractor, progress=False, distributed=True)
    finally:
        stop_process(worker)
    assert worker.returncode == 0  # a warm stop
    assert manifest["images"]["distributed"] is True
    assert manifest["images"]["extracted"] == distinct_images(settings.database_dir)
    workers = {Job.fetch(i, connection=chunks.connection).worker_name
               for i in FinishedJobRegistry(queue=chunks).get_job_ids()}
    assert len(workers) == 1 and None not in workers  # every chunk extracted by that worker
    return manifest


def test_a_build_whose_workers_all_went_away_stops_saying_so(redis_url, tmp_path, monkeypatch):
    """Its chunk jobs stayed queued and the build waited for ever behind a still progress bar."""
    from worker.core.settings import Settings
    from worker.indexing import distributed
    from worker.indexing.chunks import Chunk, ChunkCache

    monkeypatch.setattr(distributed, "NO_WORKER_S", 1.0)
    settings = Settings(redis_url=redis_url, features_dir=tmp_path / "features",
                        queue_name=f"gone-{uuid.uuid4().hex[:8]}")
    connection = Redis.from_url(redis_url)
    queue = Queue(index_queue_name(settings), connection=connection)
    lone = Worker([queue], connection=connection, name=f"lone-{uuid.uuid4().hex[:6]}")
    lone.register_birth()
    outcome: dict = {}

    def build() -> None:
        try:
            distributed.extract_distributed(settings, ChunkCache(settings.features_dir, "m"),
                                            [Chunk("k1", ["images/a.png"], ["h1"])], False)
        except distributed.DistributedBuildFailed as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=build)
    thread.start()
    deadline = time.monotonic() + 10
    while len(queue) == 0 and time.monotonic() < deadline:  # its chunk enqueued
        time.sleep(0.05)
    lone.register_death()  # the only worker stops
    thread.join(30)
    assert not thread.is_alive()
    assert "no worker has taken chunks" in outcome["error"] and "1 of 1 chunks left" in outcome["error"]
    assert len(queue) == 0  # its chunk withdrawn


def test_a_distributed_build_stopped_by_a_signal_withdraws_its_chunks(redis_url, catalogue_dir,
                                                                      tmp_path):
    """`kill`, `timeout` or a lost SSH session ended the build without its `finally`: its
    chunks stayed queued, and the workers went on extracting for a build that was gone."""
    import subprocess
    import sys

    from worker.core.settings import Settings
    from worker.dev.services import service_env

    settings = Settings(redis_url=redis_url, database_dir=catalogue_dir,
                        features_dir=tmp_path / "features", vgg16_weights="bsds500",
                        precision="float32", queue_name=f"sig-{uuid.uuid4().hex[:8]}",
                        index_chunk_pairs=CHUNK_PAIRS)
    connection = Redis.from_url(redis_url)
    queue = Queue(index_queue_name(settings), connection=connection)
    idle = Worker([queue], connection=connection, name=f"idle-{uuid.uuid4().hex[:6]}")
    idle.register_birth()  # registered, never taking a chunk
    build = subprocess.Popen([sys.executable, "-m", "worker.cli.index", "--distributed",
                              "--no-progress"], env=service_env(settings),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while len(queue) < 3 and build.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(queue) == 3, build.stderr.read()[-2000:] if build.poll() is not None else ""
        time.sleep(1)  # the third chunk queued and recorded: a stop between the two leaves it
        build.send_signal(signal.SIGTERM)
        _, err = build.communicate(timeout=60)
    finally:
        stop_process(build)
        idle.register_death()
    assert build.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err[-2000:]
    assert len(queue) == 0  # withdrawn
