"""Searches queued together share one forward pass, and get the results they would alone."""

from __future__ import annotations

import dataclasses

import pytest
from rq import Queue
from rq.job import Job

from tests.http import post_pair
from tests.images import N_PAIRS, design_pair, variant
from worker.core.contract import SearchRequest
from worker.core.queueing import enqueue_search

pytestmark = pytest.mark.slow


def _submit(client, designs: list[int], copy: int = 0) -> list[str]:
    """Submit each design; `copy` > 0 changes one pixel (new bytes: not the result cache)."""
    ids = []
    for i in designs:
        front, back = design_pair(i, N_PAIRS)
        if copy:
            front, back = variant(front, copy), variant(back, copy)
        ids.append(post_pair(client, front, back).get_json()["id"])
    return ids


def _results(redis, ids: list[str]) -> list[dict]:
    return [Job.fetch(i, connection=redis).return_value() for i in ids]


def test_queued_searches_are_batched_with_the_same_results(indexed_settings, indexed_client,
                                                           run_worker, redis):
    designs = [3, 4, 5, 6, 7]
    batched = dataclasses.replace(indexed_settings, batch_size=4)
    ids = _submit(indexed_client, designs)
    run_worker(batched)
    together = _results(redis, ids)
    # the first search ran 4 searches' 8 images in one pass, the next 3 were looked up, the
    # 5th (beyond the batch) went through the model alone, read ahead in the background while
    # the 2nd was drawn: only the 1st search's extract stage ran a pass
    assert [r["timings"]["batch_images"] for r in together] == [8, 8, 8, 8, 2]
    assert ["forward_ms" in r["timings"] for r in together] == [True, False, False, False, False]
    assert together[0]["timings"]["forward_ms"] <= together[0]["timings"]["extract_ms"]

    alone_ids = _submit(indexed_client, designs, copy=1)
    run_worker(dataclasses.replace(indexed_settings, batch_size=1))
    alone = _results(redis, alone_ids)
    assert [r["timings"]["batch_images"] for r in alone] == [2] * 5
    for design, a, b in zip(designs, together, alone, strict=True):
        assert a["results"][0]["name"].endswith(f"{design:04d}")
        assert [h["name"] for h in a["results"]] == [h["name"] for h in b["results"]]
        for x, y in zip(a["results"], b["results"], strict=True):
            assert x["score"] == pytest.approx(y["score"], abs=1e-4)


def test_a_bad_search_in_the_queue_does_not_spoil_the_batch(indexed_settings, indexed_client,
                                                            run_worker, redis):
    from worker.core.storage import open_storage

    first = _submit(indexed_client, [8])
    storage = open_storage(indexed_settings, redis)
    bad_id = "f" * 32
    storage.put_upload(f"{bad_id}-front.png", b"\x89PNG\r\n\x1a\n broken")
    storage.put_upload(f"{bad_id}-back.png", b"\x89PNG\r\n\x1a\n broken")
    queue = Queue(indexed_settings.queue_name, connection=redis)
    enqueue_search(queue, indexed_settings, SearchRequest(
        search_id=bad_id, front=f"{bad_id}-front.png", back=f"{bad_id}-back.png"))
    last = _submit(indexed_client, [9])
    run_worker()
    good = _results(redis, first + last)
    assert [r["timings"]["batch_images"] for r in good] == [4, 4]  # the bad one left out
    assert good[0]["results"][0]["name"].endswith("0008")
    assert good[1]["results"][0]["name"].endswith("0009")
    failed = indexed_client.get(f"/api/searches/{bad_id}").get_json()
    assert failed["status"] == "failed" and "damaged" in failed["error"]


def test_without_read_ahead_each_batch_runs_in_its_first_search(indexed_settings, indexed_client,
                                                                run_worker, redis):
    ids = _submit(indexed_client, [3, 4, 5, 6, 7], copy=2)
    run_worker(dataclasses.replace(indexed_settings, batch_size=4, read_ahead=False))
    results = _results(redis, ids)
    assert [r["timings"]["batch_images"] for r in results] == [8, 8, 8, 8, 2]
    assert ["forward_ms" in r["timings"] for r in results] == [True, False, False, False, True]


def test_a_failed_pass_read_ahead_leaves_its_searches_to_compute_themselves(
        indexed_settings, indexed_client, extractor, run_worker, redis, monkeypatch):
    import threading

    real, attempts = extractor.extract, []

    def fails_in_the_background(canvases):
        if threading.current_thread().name.startswith("read-ahead"):
            attempts.append(len(canvases))
            raise RuntimeError("the read-ahead pass broke")
        return real(canvases)

    monkeypatch.setattr(extractor, "extract", fails_in_the_background)
    ids = _submit(indexed_client, [3, 4, 5, 6, 7], copy=3)
    run_worker(dataclasses.replace(indexed_settings, batch_size=4))
    results = _results(redis, ids)
    # the 5th search was read ahead (tried again by the next searches: its claim is this
    # worker's own), and each of those passes failed
    assert attempts and set(attempts) == {2}
    assert all(r is not None for r in results)  # every search finished
    assert ["forward_ms" in r["timings"] for r in results] == [True, False, False, False, True]
    assert results[4]["results"][0]["name"].endswith("0007")


def test_a_search_this_worker_claimed_before_can_be_claimed_again_by_it(indexed_settings, redis):
    # claims of a failed pass read ahead are this worker's own: its next batch takes them
    import uuid

    from worker.service.batching import Batcher
    from worker.service.claims import CLAIM_PREFIX

    queue = Queue(indexed_settings.queue_name, connection=redis)
    ids = [uuid.uuid4().hex for _ in range(3)]
    for search_id in ids:
        enqueue_search(queue, indexed_settings,
                       SearchRequest(search_id=search_id, front=f"{search_id}-front.png"))
    redis.set(CLAIM_PREFIX + ids[0], "this-worker", ex=60)
    redis.set(CLAIM_PREFIX + ids[1], "another-worker", ex=60)
    batcher = Batcher(None, 8, 1000, pool=None)
    claimed = batcher._queued(redis, queue.name, None, "this-worker", 8)
    assert [job.id for job in claimed] == [ids[0], ids[2]]


def test_a_search_waits_for_its_pass_ahead_only_so_long(monkeypatch):
    import threading
    import time
    from concurrent.futures import Future

    from worker.service import batching

    monkeypatch.setattr(batching, "AHEAD_WAIT_S", 0.2)
    batcher = batching.Batcher(None, 8, 1000, pool=None)
    key = ("a" * 32, ("a-front.png", None))
    batcher._inflight[key] = Future()  # a pass that never ends
    assert batcher.computed_ahead(*key)
    start = time.monotonic()
    assert batcher.lookup(*key) is None  # computes itself instead of waiting for ever
    assert 0.2 <= time.monotonic() - start < 5

    # a pass that ends while the search waits: its descriptors are taken
    done, prepared = Future(), object()
    batcher._inflight[key] = done

    def finish():
        time.sleep(0.05)
        batcher._ready[key] = prepared
        del batcher._inflight[key]
        done.set_result(None)

    threading.Thread(target=finish).start()
    assert batcher.lookup(*key) is prepared


def test_a_stopping_worker_reads_no_further_ahead(indexed_settings, extractor, redis):
    import signal

    from rq.exceptions import StopRequested

    from worker.service.process import make_worker, start_engine

    engine = start_engine(indexed_settings, extractor)
    worker = make_worker(indexed_settings, engine, redis)
    assert engine.batcher.read_ahead_enabled
    with pytest.raises(StopRequested):
        worker.request_stop(signal.SIGTERM, None)  # idle: RQ stops at once
    assert worker.stop_signalled and not engine.batcher.read_ahead_enabled
    import uuid

    from worker.service.batching import QueueRef
    from worker.service.claims import CLAIM_PREFIX

    queue = Queue(indexed_settings.queue_name, connection=redis)
    queued = uuid.uuid4().hex
    enqueue_search(queue, indexed_settings,
                   SearchRequest(search_id=queued, front=f"{queued}-front.png"))
    engine.batcher.read_ahead(engine.storage, QueueRef(redis, queue.name, worker.name))
    assert not engine.batcher._inflight and redis.get(CLAIM_PREFIX + queued) is None


def test_a_job_s_time_limit_is_not_taken_for_a_queued_search_s_bad_drawing(redis,
                                                                           indexed_settings):
    """RQ's timeout is an Exception raised where the job waits, here for the queued
    searches' drawings: caught with their errors, the job ran on with no limit at all."""
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    from rq import Queue
    from rq.timeouts import JobTimeoutException

    from worker.core.contract import SearchRequest
    from worker.core.queueing import enqueue_search
    from worker.service import batching

    queue = Queue(indexed_settings.queue_name, connection=redis)
    search_id = uuid.uuid4().hex
    job = enqueue_search(queue, indexed_settings,
                         SearchRequest(search_id=search_id, front=f"{search_id}-front.png"))
    with ThreadPoolExecutor(2) as pool:
        batcher = batching.Batcher(None, 8, 1000, pool=pool)

        def timed_out(*args):
            raise JobTimeoutException("Task exceeded maximum timeout value (300 seconds)")

        batcher._canvas = timed_out
        with pytest.raises(JobTimeoutException):
            batcher._canvases_of(None, [job])

        def unreadable(*args):
            raise OSError("not a drawing")

        batcher._canvas = unreadable
        assert batcher._canvases_of(None, [job]) == []  # that search fails on its own later


def test_a_search_whose_batch_cannot_be_read_runs_alone_instead_of_failing(indexed_settings,
                                                                           extractor):
    """Reading the queue for a batch (a saving) on a Redis gone past redis-py's retries failed
    the search itself, even one whose descriptors were already computed."""
    import numpy as np
    from redis import Redis

    from worker.dev.processes import free_port
    from worker.service.batching import QueueRef
    from worker.service.process import start_engine

    engine = start_engine(indexed_settings, extractor)
    assert engine.batcher.max_searches > 1
    gone = Redis(port=free_port(), socket_connect_timeout=0.5)  # nothing listens there
    canvas = np.full((224, 224, 3), 255, np.uint8)
    canvas[60:160, 80:140] = (200, 40, 40)
    alone = engine.batcher.extract(engine.storage, "a" * 32, (canvas, None))
    batched = engine.batcher.extract(engine.storage, "b" * 32, (canvas, None),
                                     queue=QueueRef(gone, indexed_settings.queue_name, "w"))
    assert np.allclose(batched.rows[0], alone.rows[0], atol=1e-5) and batched.rows[1] is None
