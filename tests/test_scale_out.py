"""Workers on other machines: two worker processes that share nothing with the web or with
each other but Redis (STORAGE=redis: uploads and grids travel through Redis)."""

from __future__ import annotations

import dataclasses
import io
import shutil
import time

import pytest
from PIL import Image
from rq.job import Job

from tests.http import post_pair
from tests.images import N_PAIRS, design_pair
from tests.zips import make_zip, post_collection
from worker.dev.processes import stop_process
from worker.dev.services import start_worker, wait_for_workers

pytestmark = pytest.mark.slow


def _machine(settings, root, name):
    """A worker's own machine: its own copy of the catalogue and index, its own empty folders."""
    home = root / name
    shutil.copytree(settings.database_dir, home / "database")
    shutil.copytree(settings.features_dir, home / "features")
    return dataclasses.replace(settings, database_dir=home / "database",
                               features_dir=home / "features", upload_dir=home / "uploads",
                               output_dir=home / "output", storage="redis")


def test_two_workers_sharing_only_redis_serve_the_web(indexed_settings, redis, tmp_path):
    from web import create_app

    web_settings = dataclasses.replace(indexed_settings, storage="redis", require_worker=True)
    client = create_app({"SETTINGS": web_settings, "TESTING": True}).test_client()
    machines = [_machine(indexed_settings, tmp_path, f"machine-{i}") for i in (1, 2)]
    workers = [start_worker(dataclasses.replace(m, batch_size=1)) for m in machines]
    try:
        wait_for_workers(web_settings, count=2, timeout=240)
        designs = [11, 12, 13, 14, 15, 16]
        urls = []
        for i in designs:
            front, back = design_pair(i, N_PAIRS)
            response = post_pair(client, front, back)
            assert response.status_code == 202, response.get_json()
            urls.append(response.get_json()["url"])
        deadline = time.monotonic() + 180
        bodies = []
        for url in urls:
            while (body := client.get(url).get_json())["status"] not in ("finished", "failed"):
                assert time.monotonic() < deadline, body
                time.sleep(0.1)
            bodies.append(body)
        # a collection check through Redis alone too: its drawings stored there, read by the
        # workers' chunks, deleted once checked
        files = {}
        for i in (21, 22):
            files[f"d{i}-f.png"], files[f"d{i}-b.png"] = design_pair(i, N_PAIRS)
        checked = post_collection(client, make_zip(files, [(f"new-{i}", f"d{i}-f.png",
                                                             f"d{i}-b.png") for i in (21, 22)]))
        assert checked.status_code == 202, checked.get_json()
        while (check := client.get(checked.get_json()["url"] + "?wait=5").get_json())[
                "status"] != "finished":
            assert time.monotonic() < deadline + 120, check
    finally:
        for worker in workers:
            stop_process(worker)
    for i, design in zip((21, 22), check["designs"], strict=True):
        assert design["status"] == "finished", design
        assert design["results"][0]["name"].endswith(f"{i:04d}")
        seen = client.get(design["image_url"])
        assert seen.status_code == 200 and Image.open(io.BytesIO(seen.data)).format == "JPEG"
    assert redis.keys("pairsearch:blob:upload:*") == []  # every search's and design's deleted
    for design, body in zip(designs, bodies, strict=True):
        assert body["status"] == "finished", body
        assert body["results"][0]["name"].endswith(f"{design:04d}")
        grid = client.get(body["image_url"])
        assert grid.status_code == 200 and Image.open(io.BytesIO(grid.data)).format == "JPEG"
    served_by = {Job.fetch(body["id"], connection=redis).worker_name for body in bodies}
    assert len(served_by) == 2, f"one worker served every search: {served_by}"
    # nothing went through a folder: not the web's, not the workers'
    for settings in (web_settings, *machines):
        for folder in (settings.upload_dir, settings.output_dir):
            assert not folder.exists() or not any(folder.iterdir()), folder
