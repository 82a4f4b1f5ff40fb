"""One forward pass for the running search and the searches queued behind it.

VGG16 on a CPU does more images per second in a batch than one at a time. When a worker
starts a search and more searches are waiting, it reads up to BATCH_SIZE - 1 of them from the
queue (without taking them off it), prepares their images, and runs all of them through the
model at once. The descriptors of the others are kept in this process; when the worker then
dequeues those searches in the normal way, their extract stage is a lookup.

Read-ahead (READ_AHEAD): when a search's descriptors were computed ahead, the worker also
starts the next queued searches' pass in a background thread, so the model keeps both cores
busy while this batch's grids are drawn and RQ does its bookkeeping (one core, the GIL). A
search whose pass is still running waits for it; one whose pass failed computes itself.

Nothing is moved off the queue, so a worker that dies mid-batch loses nothing: the searches
it had prefetched are still queued and any worker serves them. Each prefetched search is
claimed in Redis (SET NX with a TTL) so two workers do not compute the same one twice; a
search that a worker claimed but another dequeued is computed by the one that runs it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

from worker.preprocess import prepare
from worker.queueing import JOB_FUNC, check_upload_name
from worker.storage import Storage

log = logging.getLogger(__name__)

CLAIM_PREFIX = "pairsearch:batch-claim:"
CLAIM_TTL_S = 120
KEEP = 64  # prefetched searches kept at most (oldest dropped: recomputed if ever run)
AHEAD_WAIT_S = 30  # a search waits this long at most for the pass read ahead for it


@dataclass(frozen=True)
class Prepared:
    """A search's images as the model saw them and their descriptors (front, back; None if
    the search has no such side)."""

    canvases: tuple[np.ndarray | None, np.ndarray | None]
    rows: tuple[np.ndarray | None, np.ndarray | None]
    batch_images: int  # images in the forward pass that computed these rows
    forward_ms: float  # that forward pass alone (model + pooling), shared by its searches


def sides_of(job: Job) -> tuple[str | None, str | None]:
    return job.kwargs.get("front"), job.kwargs.get("back")


def search_key(job: Job) -> tuple[str, tuple[str | None, str | None]]:
    """How a search's descriptors are kept: its id and its two upload names."""
    return job.id, sides_of(job)


class Batcher:
    """Per worker process: computes descriptors for a search, batched with queued ones."""

    def __init__(self, extractor, max_searches: int, max_pixels: int, pool: ThreadPoolExecutor,
                 read_ahead: bool = True):
        self.extractor = extractor
        self.max_searches = max_searches
        self.max_pixels = max_pixels
        self.read_ahead_enabled = read_ahead and max_searches > 1
        self._ready: OrderedDict[tuple[str, tuple], Prepared] = OrderedDict()
        self._inflight: dict[tuple[str, tuple], Future] = {}  # read ahead, pass not done yet
        self._lock = threading.Lock()  # _ready and _inflight: the job thread and read-ahead
        self._model_lock = threading.Lock()  # one forward pass at a time
        self._pool = pool  # the sides of a search, and the searches of a batch, in parallel
        self._ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")

    def _canvas(self, storage: Storage, name: str | None) -> np.ndarray | None:
        if name is None:
            return None
        return prepare(storage.read_upload(check_upload_name(name)), self.max_pixels,
                       self.extractor.trim)

    def prepare(self, storage: Storage, uploads: tuple[str | None, str | None]
                ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Uploads (front, back names) -> 224x224 canvases; raises UploadRefused, UploadGone or
        ImageRejected (the search fails with its message)."""
        front, back = self._pool.map(lambda name: self._canvas(storage, name), uploads)
        return front, back

    def _prepare_many(self, storage: Storage, jobs: list[Job]) -> list[tuple[tuple, tuple]]:
        """(key, canvases) of the jobs whose uploads could be prepared (all images at once)."""
        futures = [[self._pool.submit(self._canvas, storage, name) for name in sides_of(job)]
                   for job in jobs]
        prepared = []
        for job, pair in zip(jobs, futures, strict=True):
            try:
                prepared.append((search_key(job), (pair[0].result(), pair[1].result())))
            except Exception as exc:  # noqa: BLE001 - that search fails on its own later
                log.info("not batching search %s: %s", job.id, exc)
        return prepared

    def computed_ahead(self, search_id: str, uploads: tuple[str | None, str | None]) -> bool:
        """Are this search's descriptors ready, or in a pass running now?"""
        key = (search_id, uploads)
        with self._lock:
            return key in self._ready or key in self._inflight

    def lookup(self, search_id: str, uploads: tuple[str | None, str | None]) -> Prepared | None:
        """Descriptors computed for this search in an earlier batch, if any (taken out); waits
        for a pass read ahead that includes it."""
        key = (search_id, uploads)
        with self._lock:
            pending = self._inflight.get(key)
        if pending is not None:  # wait; a failed or stuck pass leaves it to compute itself
            try:
                pending.exception(timeout=AHEAD_WAIT_S)
            except FutureTimeout:
                log.warning("search %s: its pass read ahead is still running after %d s; "
                            "computing it here", search_id, AHEAD_WAIT_S)
                return None
        with self._lock:
            return self._ready.pop(key, None)

    def stop_reading_ahead(self) -> None:
        """No new pass ahead (the worker is stopping: it would only claim searches)."""
        self.read_ahead_enabled = False

    def read_ahead(self, storage: Storage, connection: Redis | None, queue_name: str | None,
                   worker: str) -> None:
        """Start the forward pass of the next queued searches in the background, while this
        one is searched and drawn (one pass ahead at most)."""
        if not self.read_ahead_enabled or connection is None or queue_name is None:
            return
        with self._lock:
            if self._inflight:
                return
        jobs = self._queued(connection, queue_name, None, worker, self.max_searches)
        if not jobs:
            return
        with self._lock:
            future = self._ahead.submit(self._pass_ahead, storage, jobs)
            for job in jobs:
                self._inflight[search_key(job)] = future

    def _pass_ahead(self, storage: Storage, jobs: list[Job]) -> None:
        try:
            batch = self._prepare_many(storage, jobs)
            if batch:
                self._forward(batch)
        except Exception:  # the searches compute themselves when they run
            log.exception("read-ahead forward pass failed")
            raise
        finally:
            with self._lock:
                for job in jobs:
                    self._inflight.pop(search_key(job), None)

    def _queued(self, connection: Redis, queue_name: str, current_id: str, worker: str,
                limit: int) -> list[Job]:
        """Up to `limit` queued searches behind the current one that this worker claimed."""
        if limit <= 0:
            return []
        queue = Queue(queue_name, connection=connection)
        with self._lock:
            known = len(self._ready) + len(self._inflight)
        ids = [i for i in queue.get_job_ids(0, known + limit * 2) if i != current_id]
        jobs = [job for job in Job.fetch_many(ids, connection=connection) if job is not None
                and job.func_name == JOB_FUNC and job.get_status(refresh=False) == JobStatus.QUEUED]
        with self._lock:
            jobs = [job for job in jobs
                    if search_key(job) not in self._ready and search_key(job) not in self._inflight]
        claimed: list[Job] = []
        while jobs and len(claimed) < limit:  # one pipelined round trip per attempt
            tried, jobs = jobs[:limit - len(claimed)], jobs[limit - len(claimed):]
            claimed += [job for job, ok in zip(tried, self._claim(connection, tried, worker),
                                               strict=True) if ok]
        return claimed

    @staticmethod
    def _claim(connection: Redis, jobs: list[Job], worker: str) -> list[bool]:
        """Claim each job for `worker` (SET NX with a TTL); a claim already held by `worker`
        (from a pass of its own that failed) counts as claimed."""
        with connection.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.set(CLAIM_PREFIX + job.id, worker, nx=True, ex=CLAIM_TTL_S)
                pipe.get(CLAIM_PREFIX + job.id)
            replies = pipe.execute()
        return [bool(new) or held == worker.encode()
                for new, held in zip(replies[::2], replies[1::2], strict=True)]

    def extract(self, storage: Storage, search_id: str,
                canvases: tuple[np.ndarray | None, np.ndarray | None],
                connection: Redis | None = None, queue_name: str | None = None,
                worker: str = "") -> Prepared:
        """Descriptors for the current search's canvases, in one forward pass with up to
        BATCH_SIZE - 1 queued searches (those are kept for later)."""
        batch: list[tuple[tuple[str, tuple] | None, tuple]] = [(None, canvases)]
        if connection is not None and queue_name is not None and self.max_searches > 1:
            queued = self._queued(connection, queue_name, search_id, worker,
                                  self.max_searches - 1)
            batch += self._prepare_many(storage, queued)
        return self._forward(batch)[0]

    def _forward(self, batch: list[tuple[tuple[str, tuple] | None, tuple]]) -> list[Prepared]:
        """One forward pass over the batch's images; keyed searches are kept for later, the
        unkeyed one (the running search, if any) is returned."""
        images = [c for _, pair in batch for c in pair if c is not None]
        with self._model_lock:
            start = time.perf_counter()
            rows = iter(self.extractor.extract(np.stack(images)))
            forward_ms = round((time.perf_counter() - start) * 1000, 2)
        log.debug("forward pass: %d images, %d searches, %.0f ms", len(images), len(batch),
                  forward_ms)
        results = []
        with self._lock:
            for key, pair in batch:
                prepared = Prepared(pair, tuple(None if c is None else next(rows) for c in pair),
                                    len(images), forward_ms)
                if key is None:
                    results.append(prepared)
                else:
                    self._ready[key] = prepared
            while len(self._ready) > KEEP:
                self._ready.popitem(last=False)
        return results
