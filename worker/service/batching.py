"""One forward pass for the running search and the searches queued behind it.

VGG16 on a CPU does more images per second in a batch than one at a time. When a worker
starts a search and more searches are waiting, it reads up to BATCH_SIZE - 1 of them from the
queue (without taking them off it), prepares their images, and runs all of them through the
model at once. The others' descriptors are kept in this process: when the worker dequeues
them, their extract stage is a lookup.

Read-ahead (READ_AHEAD): when a search's descriptors were computed ahead, the worker starts
the next queued searches' pass in a background thread, so the model keeps both cores busy
while grids are drawn and RQ does its bookkeeping (one core, the GIL). A search whose pass
is running waits for it; one whose pass failed computes itself.

Nothing is moved off the queue, so a worker that dies mid-batch loses nothing: the searches
it had prefetched are still queued and any worker serves them (claims: service/claims.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
from redis import Redis
from rq.job import Job
from rq.timeouts import JobTimeoutException

from worker.core.contract import SIDES, Box
from worker.core.queueing import check_upload_name
from worker.core.storage import Storage
from worker.pipeline.orientation import Uprights, split
from worker.pipeline.preprocess import query_canvas
from worker.service.claims import boxes_of, claim_queued, search_key, sides_of

log = logging.getLogger(__name__)

KEEP = 64  # prefetched searches kept at most (oldest dropped: recomputed if ever run)
Pass = tuple[tuple[str, tuple] | None, tuple, tuple]  # (search key or None, canvases, turned)
AHEAD_WAIT_S = 30  # a search waits this long at most for the pass read ahead for it


@dataclass(frozen=True)
class QueueRef:
    """Where the running job came from: its queue's connection and name, and this worker."""

    connection: Redis | None
    name: str | None
    worker: str

    @classmethod
    def of(cls, job: Job | None) -> QueueRef:
        return cls(getattr(job, "connection", None), getattr(job, "origin", None),
                   getattr(job, "worker_name", None) or "")


@dataclass(frozen=True)
class Extracted:
    """A search's images as the model saw them and their descriptors (front, back; None: no such side)."""

    canvases: tuple[np.ndarray | None, np.ndarray | None]
    rows: tuple[np.ndarray | None, np.ndarray | None]  # (dim,) float32 descriptors
    batch_images: int  # images in the forward pass that computed these rows
    forward_ms: float  # that forward pass alone (model + pooling), shared by its searches
    own_pass: bool = False  # the running search ran that pass (it was not computed ahead)
    model: str | None = None  # the extractor's model_id in that pass (int8: the index's model)
    turned: tuple[int, int] = (0, 0)  # degrees each side was turned upright (`orientation`)


class Batcher:
    """Per worker process: computes descriptors for a search, batched with queued ones."""

    def __init__(self, extractor, max_searches: int, max_pixels: int, pool: ThreadPoolExecutor,
                 read_ahead: bool = True):
        self.extractor = extractor
        self.max_searches = max_searches
        self.max_pixels = max_pixels
        self.read_ahead_enabled = read_ahead and max_searches > 1
        self._ready: OrderedDict[tuple[str, tuple], Extracted] = OrderedDict()
        self._inflight: dict[tuple[str, tuple], Future] = {}  # read ahead, pass not done yet
        self._lock = threading.Lock()  # _ready and _inflight: the job thread and read-ahead
        self._model_lock = threading.Lock()  # one forward pass at a time
        self._pool = pool  # the sides of a search, and the searches of a batch, in parallel
        self._ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
        self.uprights: Uprights | None = None  # the current index's (set by the engine)

    def use_quantised(self, blob: bytes) -> None:
        """The extractor's int8 model replaced between two forward passes."""
        with self._model_lock:
            self.extractor.use_quantised(blob)

    def _canvas(self, storage: Storage, name: str | None, box: Box | None, side: str):
        return (None, 0) if name is None else query_canvas(storage.read_upload(check_upload_name(
            name)), self.max_pixels, self.extractor.trim, box, side, self.uprights)

    def canvases(self, storage: Storage, uploads: tuple[str | None, str | None],
                 boxes: tuple[Box | None, Box | None] = (None, None)) -> tuple[tuple, tuple]:
        """Uploads (front, back names), each cropped to its box -> 224x224 canvases turned
        upright, and the degrees each was turned; raises UploadRefused, UploadGone or
        ImageRejected (the search fails with its message)."""
        return split(list(self._pool.map(self._canvas, (storage, storage), uploads, boxes, SIDES)))

    def _canvases_of(self, storage: Storage, jobs: list[Job]) -> list[Pass]:
        """(key, canvases, turned) of the jobs whose uploads could be prepared (all at once)."""
        futures = [[self._pool.submit(self._canvas, storage, name, box, side)
                    for name, box, side in zip(sides_of(job), boxes_of(job), SIDES, strict=True)]
                   for job in jobs]
        prepared = []
        for job, pair in zip(jobs, futures, strict=True):
            try:
                prepared.append((search_key(job), *split([side.result() for side in pair])))
            except JobTimeoutException:  # this job's own time limit: never swallowed
                raise
            except Exception as exc:  # noqa: BLE001 - that search fails on its own later
                log.info("not batching search %s: %s", job.id, exc)
        return prepared

    def descriptors(self, storage: Storage, search_id: str,
                    uploads: tuple[str | None, str | None], queue: QueueRef,
                    stage: Callable[[str], AbstractContextManager],
                    boxes: tuple[Box | None, Box | None] = (None, None)) -> Extracted:
        """A search's canvases and descriptors, timed as its `preprocess` and `extract` stages:
        from a pass that already ran or is running (then the next queued batch is read
        ahead), else from a pass this search runs with the queued searches behind it."""
        ahead = self.computed_ahead(search_id, uploads)
        with stage("preprocess"):
            prepared = None if ahead else self.canvases(storage, uploads, boxes)
        with stage("extract"):
            found = self.lookup(search_id, uploads) if ahead else None  # waits for its pass
            if found is not None and found.model == self.extractor.model_id:
                self.read_ahead(storage, queue)
                return found
            if found is not None:  # computed with the int8 model of the index just replaced
                prepared = found.canvases, found.turned
            if prepared is None:  # the pass ahead failed or left it out
                prepared = self.canvases(storage, uploads, boxes)
            return self.extract(storage, search_id, *prepared, queue=queue)

    def computed_ahead(self, search_id: str, uploads: tuple[str | None, str | None]) -> bool:
        """Are this search's descriptors ready, or in a pass running now?"""
        key = (search_id, uploads)
        with self._lock:
            return key in self._ready or key in self._inflight

    def lookup(self, search_id: str, uploads: tuple[str | None, str | None]) -> Extracted | None:
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

    def stop_reading_ahead(self) -> None:  # the worker is stopping: it would only claim them
        self.read_ahead_enabled = False

    def read_ahead(self, storage: Storage, queue: QueueRef) -> None:
        """Start the forward pass of the next queued searches in the background, while this
        one is searched and drawn (one pass ahead at most)."""
        if not self.read_ahead_enabled or queue.connection is None or queue.name is None:
            return
        with self._lock:
            if self._inflight:
                return
        jobs = self._queued(queue.connection, queue.name, None, queue.worker, self.max_searches)
        if not jobs:
            return
        with self._lock:
            future = self._ahead.submit(self._pass_ahead, storage, jobs)
            for job in jobs:
                self._inflight[search_key(job)] = future

    def _pass_ahead(self, storage: Storage, jobs: list[Job]) -> None:
        try:
            batch = self._canvases_of(storage, jobs)
            if batch:
                self._forward(batch)
        except Exception:  # the searches compute themselves when they run
            log.exception("read-ahead forward pass failed")
            raise
        finally:
            with self._lock:
                for job in jobs:
                    self._inflight.pop(search_key(job), None)

    def _queued(self, connection: Redis, queue_name: str, current_id: str | None, worker: str,
                limit: int) -> list[Job]:
        """Up to `limit` queued searches behind the current one that this worker claimed."""
        with self._lock:
            known = set(self._ready) | set(self._inflight)
        return claim_queued(connection, queue_name, lambda job: job.id == current_id or
                            search_key(job) in known, worker, limit, len(known) + limit * 2)

    def extract(self, storage: Storage, search_id: str,
                canvases: tuple[np.ndarray | None, np.ndarray | None],
                turned: tuple[int, int] = (0, 0),
                queue: QueueRef = QueueRef(None, None, "")) -> Extracted:
        """Descriptors for the current search's canvases (turned as `turned` says), in one
        forward pass with up to BATCH_SIZE - 1 queued searches (those are kept for later)."""
        batch: list[Pass] = [(None, canvases, turned)]
        if queue.connection is not None and queue.name is not None and self.max_searches > 1:
            batch += self._canvases_of(storage, self._queued(
                queue.connection, queue.name, search_id, queue.worker, self.max_searches - 1))
        return self._forward(batch)[0]

    def feature_maps(self, canvases: np.ndarray) -> list[np.ndarray]:
        """`FeatureExtractor.feature_maps`, between the searches' forward passes."""
        with self._model_lock:
            return self.extractor.feature_maps(canvases)

    def extract_pairs(self, pairs: list[tuple[tuple, tuple[int, int]]]) -> list[Extracted]:
        """Several queries' (canvases, turned) in one forward pass (a collection check's)."""
        return self._forward([(None, *pair) for pair in pairs])

    def _forward(self, batch: list[Pass]) -> list[Extracted]:
        """One forward pass over the batch's images; keyed searches are kept for later, the
        unkeyed one (the running search, if any) is returned."""
        images = [c for _, pair, _ in batch for c in pair if c is not None]
        with self._model_lock:
            model = self.extractor.model_id
            start = time.perf_counter()
            rows = iter(self.extractor.extract(np.stack(images)))
            forward_ms = round((time.perf_counter() - start) * 1000, 2)
        log.debug("forward pass: %d images, %d searches, %.0f ms", len(images), len(batch),
                  forward_ms)
        results = []
        with self._lock:
            for key, pair, turned in batch:
                prepared = Extracted(pair, tuple(None if c is None else next(rows) for c in pair),
                                     len(images), forward_ms, key is None, model, turned)
                if key is None:
                    results.append(prepared)
                else:
                    self._ready[key] = prepared
            while len(self._ready) > KEEP:
                self._ready.popitem(last=False)
        return results
