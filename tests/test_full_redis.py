"""A Redis at its memory limit (it never evicts, so it refuses every write): what the people
submitting, the probes and the metrics are told. A Redis server of its own, filled here."""

from __future__ import annotations

import dataclasses
import io
import re

import pytest
from redis import Redis

from tests.http import post_pair
from tests.images import N_PAIRS, design_pair
from tests.test_filters import fake_generation
from worker.core.catalogue import load_catalogue
from worker.dev.processes import free_port, start_redis, stop_process


@pytest.fixture
def full(tmp_path, settings, catalogue_dir):
    """The app over its own Redis, which takes no more writes (maxmemory 1 byte)."""
    from web import create_app

    fake_generation(catalogue_dir, settings.features_dir, load_catalogue(catalogue_dir))
    port = free_port()
    server = start_redis(port, tmp_path / "redis")
    own = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{port}/0")
    client = create_app({"SETTINGS": own, "TESTING": True}).test_client()
    redis = Redis.from_url(own.redis_url)
    redis.config_set("maxmemory", 1)
    yield client, redis
    stop_process(server)


def test_a_full_redis_is_named_to_whoever_submits_and_not_called_brief(full):
    """Every submission was 503 `queue_unavailable`, "briefly unavailable; please retry
    shortly", for as long as results took to expire (up to RESULT_TTL)."""
    client, _ = full
    front, back = design_pair(1, N_PAIRS)
    refused = post_pair(client, front, back)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "60"
    body = refused.get_json()
    assert body["error"] == "redis_full" and "store is full" in body["message"]
    page = client.post("/", data={"front": (io.BytesIO(front), "f.png"),
                                  "back": (io.BytesIO(back), "b.png")},
                       content_type="multipart/form-data")
    assert page.status_code == 503 and "store is full" in page.get_data(as_text=True)


def test_the_probes_and_the_metrics_see_a_full_redis(full):
    """/readyz said "redis answers" (a PING does not write); /metrics read its figures in a
    transaction, which a full Redis refuses, and reported `pairsearch_redis_up 0` alone."""
    client, redis = full
    ready = client.get("/readyz").get_json()
    assert ready["ready"] is False and not ready["checks"]["redis"]["ok"]
    assert "redis is full" in ready["checks"]["redis"]["reason"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "pairsearch_redis_up 1" in metrics and "pairsearch_queue_length 0" in metrics
    assert "pairsearch_redis_memory_max_bytes 1\n" in metrics
    assert int(re.search(r"^pairsearch_redis_memory_used_bytes (\d+)$", metrics, re.M)[1]) > 1
    redis.config_set("maxmemory", 0)
    assert client.get("/readyz").get_json()["checks"]["redis"]["ok"]


def test_a_collection_that_fills_redis_says_how_far_it_got(tmp_path, settings, catalogue_dir):
    """With STORAGE=redis a collection's drawings wait in Redis: one that filled it was told
    the store "is full" and to retry, as if others had filled it, whatever its own size."""
    import numpy as np
    from PIL import Image

    from tests.zips import make_zip, post_collection
    from web import create_app

    fake_generation(catalogue_dir, settings.features_dir, load_catalogue(catalogue_dir))
    port = free_port()
    server = start_redis(port, tmp_path / "redis")
    try:
        own = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{port}/0",
                                  storage="redis", require_worker=False)
        client = create_app({"SETTINGS": own, "TESTING": True}).test_client()
        redis = Redis.from_url(own.redis_url)
        rng, files = np.random.default_rng(5), {}
        for i in range(6):  # noise stores at about 1 MB a drawing
            for side in ("f", "b"):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (600, 600, 3), np.uint8)).save(buf, "PNG")
                files[f"d{i}-{side}.png"] = buf.getvalue()
        used = redis.info("memory")["used_memory"]
        redis.config_set("maxmemory", used + 5 * 2**20)  # room for two or three designs
        refused = post_collection(client, make_zip(files, [(f"n{i}", f"d{i}-f.png", f"d{i}-b.png")
                                                           for i in range(6)]))
        body = refused.get_json()
        assert (refused.status_code, body["error"]) == (503, "redis_full"), body
        assert re.search(r"after [0-9] of the collection's 6 designs were stored", body["message"])
        assert refused.headers["Retry-After"] == "60"
        assert redis.keys("pairsearch:blob:upload:*") == []  # what was stored, deleted again
    finally:
        stop_process(server)
