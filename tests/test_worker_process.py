"""The worker as a process: refuses bad banks at start, serves a real job, swaps a rebuilt
index between jobs without a restart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rq import Queue

from tests.http import post_pair
from tests.images import N_PAIRS, design_pair
from worker.core.generations import current_dir
from worker.dev.sample import write_catalogue
from worker.dev.services import service_env
from worker.indexing.build import build_index
from worker.pipeline.thumbnails import thumbnail_path

pytestmark = pytest.mark.slow


def run_worker_process(settings, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker", "--burst"], env=service_env(settings),
                          capture_output=True, text=True, timeout=timeout)


def test_worker_process_serves_a_search(indexed_client, indexed_settings, redis):
    front, back = design_pair(7, N_PAIRS)
    url = post_pair(indexed_client, front, back).get_json()["url"]
    pins = indexed_settings.features_dir / "pins"
    held = set(pins.glob("worker-*"))  # this process's engines'
    proc = run_worker_process(indexed_settings)
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = indexed_client.get(url).get_json()
    assert body["status"] == "finished" and body["results"][0]["name"] == "trousers-0007"
    assert set(pins.glob("worker-*")) == held  # the stopped worker's pin let go


def test_worker_refuses_to_start_without_usable_banks(indexed_settings, tmp_path):
    # missing banks, then a bank that no longer matches pairs.csv: both are refused with a fix
    import dataclasses

    missing = dataclasses.replace(indexed_settings, features_dir=tmp_path / "empty")
    proc = run_worker_process(missing)
    assert proc.returncode == 2 and "make index" in proc.stderr

    manifest_path = current_dir(indexed_settings.features_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["catalogue_fingerprint"] = "0" * 16
    manifest_path.write_text(json.dumps(manifest))
    proc = run_worker_process(indexed_settings)
    assert proc.returncode == 2 and "another pairs.csv" in proc.stderr and "make index" in proc.stderr


def test_rebuilt_index_is_picked_up_between_jobs(tmp_path, indexed_settings, extractor, redis,
                                                 indexed_client):
    import dataclasses

    from worker.service.process import make_worker, start_engine

    db = tmp_path / "db"
    write_catalogue(db, 8, seed=7)
    settings = dataclasses.replace(indexed_settings, database_dir=db, features_dir=tmp_path / "f")
    build_index(settings, extractor, progress=False)
    engine = start_engine(settings, extractor)
    worker = make_worker(settings, engine, redis)
    queue = Queue(settings.queue_name, connection=redis)

    from web import create_app

    client = create_app({"SETTINGS": settings}).test_client()
    front, back = design_pair(11, 12)  # design 11 exists only in the bigger catalogue
    first = post_pair(client, front, back).get_json()["url"]
    worker.work(burst=True, with_scheduler=False)
    assert client.get(first).get_json()["results"][0]["name"] != "jacket-0011"

    write_catalogue(db, 12, seed=7)
    build_index(settings, extractor, progress=False)
    second = post_pair(client, front, back).get_json()["url"]
    worker.work(burst=True, with_scheduler=False)
    body = client.get(second).get_json()
    assert body["results"][0]["name"] == "jacket-0011" and len(engine.snapshot.catalogue) == 12
    assert len(queue) == 0
    # the rebuild rewrote every thumbnail: the old decodings are gone, the new ones held
    cat = engine.snapshot.catalogue
    fresh = {str(thumbnail_path(settings.features_dir, rel)) for rel in cat.fronts + cat.backs}
    held = {key[0] for key in engine.thumbnails._pixels}
    assert held == fresh and all(engine.thumbnails._key(Path(key[0])) == key
                                 for key in engine.thumbnails._pixels)


def test_a_started_worker_runs_numpy_blas_on_one_thread(indexed_settings, extractor):
    # OpenBLAS's spinning second thread would take a core from the next forward pass
    from threadpoolctl import threadpool_info, threadpool_limits

    from worker.service.engine import WORKER_BLAS_THREADS
    from worker.service.process import start_engine

    threadpool_limits(limits=2, user_api="blas")  # as a fresh process on two cores starts
    start_engine(indexed_settings, extractor)
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == WORKER_BLAS_THREADS == 1 for pool in blas)


def test_a_worker_given_a_name_still_registered_stops_before_loading_the_model(
        indexed_settings, redis):
    """RQ refused the name after the model had loaded, the process exited 1, and a
    supervisor restarted it into the same refusal until the old registration expired."""
    from rq import SimpleWorker

    SimpleWorker([Queue(indexed_settings.queue_name, connection=redis)], connection=redis,
                 name="fixed-name").register_birth()  # a killed predecessor's, say
    proc = subprocess.run([sys.executable, "-m", "worker", "--burst", "--name", "fixed-name"],
                          env=service_env(indexed_settings), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "a worker named 'fixed-name' is registered" in proc.stderr
    assert "serving" not in proc.stderr  # refused before the model and the banks loaded
    SimpleWorker([Queue(indexed_settings.queue_name, connection=redis)], connection=redis,
                 name="fixed-name").register_death()  # stopped cleanly: RQ takes the name
    proc = subprocess.run([sys.executable, "-m", "worker", "--burst", "--name", "fixed-name"],
                          env=service_env(indexed_settings), capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0 and "is registered" not in proc.stderr, proc.stderr[-2000:]
