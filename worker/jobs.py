"""The search job: preprocess -> extract -> search -> render, stage reported in job.meta.

The web enqueues `worker.jobs.search_pair` by name; only the worker imports this module.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager

import numpy as np
from redis import Redis
from redis.exceptions import RedisError
from rq import get_current_job

from worker.engine import Engine, current
from worker.metrics import record_timings
from worker.render import GridCell, render_grid
from worker.search import SearchHit, top_k
from worker.storage import Storage, open_storage
from worker.thumbnails import load_thumbnail

STAGE_TIMINGS = ("queue_wait_ms", "preprocess_ms", "extract_ms", "search_ms", "render_ms",
                 "total_ms")  # what /metrics sums (forward_ms, only where the pass ran, is in extract_ms)


log = logging.getLogger(__name__)


class SearchInputError(ValueError):
    """A job argument the worker refuses (it names the value)."""


class ResultNotSaved(RuntimeError):
    """The grid could not be stored (disk full, folder unwritable, Redis refused it)."""


def job_storage(engine: Engine) -> Storage:
    """Where this job's uploads are and its grid goes (STORAGE), over the job's connection."""
    job = get_current_job()
    connection = job.connection if job is not None else None
    if connection is None and engine.settings.storage == "redis":
        connection = Redis.from_url(engine.settings.redis_url)
    return open_storage(engine.settings, connection)


class StageReports:
    """The job's stage written to `job.meta` by one background thread, in order, so the
    search does not wait for Redis at each stage (4 round trips, 2-6 ms a search); `flush`
    waits until all are written, before the job ends and RQ records its outcome."""

    def __init__(self) -> None:
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage-report")
        self._last: Future | None = None

    def report(self, job, name: str) -> None:
        job.meta["stage"] = name
        self._last = self._writer.submit(job.save_meta)
        self._last.add_done_callback(_log_failure)

    def flush(self) -> None:
        """Wait until every report so far is written (in order: the last one is enough)."""
        last, self._last = self._last, None
        if last is not None:
            wait([last])


def _log_failure(report: Future) -> None:
    if not report.cancelled() and (exc := report.exception()) is not None:
        log.warning("stage not reported: %s", exc)  # a lost stage report never fails a search


_reports = StageReports()


def flush_stage_reports() -> None:
    """Every stage report of the running job written (RQ's error handler calls this too)."""
    _reports.flush()


@contextmanager
def stage(name: str, timings: dict[str, float]) -> Iterator[None]:
    """Report `name` as the job's stage (in the background) and record its duration in ms."""
    job = get_current_job()
    if job is not None:
        _reports.report(job, name)
    start = time.perf_counter()
    yield
    timings[f"{name}_ms"] = round((time.perf_counter() - start) * 1000, 2)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _hit_json(engine: Engine, hit: SearchHit) -> dict:
    cat = engine.index.catalogue
    return {"rank": hit.rank, "name": cat.names[hit.index], "score": round(hit.score, 6),
            "front_score": _round(hit.front_score), "back_score": _round(hit.back_score),
            "swapped": hit.swapped, "front": cat.fronts[hit.index], "back": cat.backs[hit.index]}


def _score_line(hit: SearchHit) -> str:
    parts = [f"{label} {value:.3f}" for label, value in (("F", hit.front_score),
                                                         ("B", hit.back_score)) if value is not None]
    return f"{hit.score:.3f}  ({' | '.join(parts)}{' swapped' if hit.swapped else ''})"


def _grid_cells(engine: Engine, query: list[np.ndarray | None],
                hits: list[SearchHit]) -> list[GridCell]:
    """The query pair (as the model saw it; a missing side blank) first, then each hit."""
    cat = engine.index.catalogue
    blank = np.full((8, 8, 3), 255, dtype=np.uint8)
    sides = " | ".join(name for name, img in zip(("front", "back"), query, strict=True)
                       if img is not None)
    cells = [GridCell(query[0] if query[0] is not None else blank,
                      query[1] if query[1] is not None else blank, "Query", sides)]
    features_dir = engine.settings.features_dir
    for hit in hits:  # decoded once, kept in RAM (THUMB_CACHE_MB)
        front, back = (load_thumbnail(features_dir, cat, rel, engine.thumbnails)
                       for rel in (cat.fronts[hit.index], cat.backs[hit.index]))
        cells.append(GridCell(front, back, f"#{hit.rank}  {cat.names[hit.index]}", _score_line(hit)))
    return cells


def _queue_wait_ms() -> float | None:
    """How long the current job waited in the queue before a worker started it."""
    job = get_current_job()
    if job is None or job.enqueued_at is None or job.started_at is None:
        return None
    return round((job.started_at - job.enqueued_at).total_seconds() * 1000, 2)


def _check_options(front: str | None, back: str | None, k: int, front_weight: float) -> None:
    if front is None and back is None:
        raise SearchInputError("a search needs a front image, a back image, or both")
    if not 1 <= k <= 100:
        raise SearchInputError(f"k must be between 1 and 100, got {k}")
    if not 0.0 <= front_weight <= 1.0:
        raise SearchInputError(f"front_weight must be between 0 and 1, got {front_weight}")


def search_pair(search_id: str, front: str | None = None, back: str | None = None, k: int = 20,
                front_weight: float = 0.5, sides_unknown: bool = False) -> dict:
    """Search the catalogue for the uploaded pair (or one side); store the grid `<id>.jpg`."""
    try:
        return _search_pair(search_id, front, back, k, front_weight, sides_unknown)
    finally:  # every stage written before RQ records the outcome (and its error, in meta)
        flush_stage_reports()


def _search_pair(search_id: str, front: str | None, back: str | None, k: int,
                 front_weight: float, sides_unknown: bool) -> dict:
    engine = current()
    _check_options(front, back, k, front_weight)
    job = get_current_job()
    storage = job_storage(engine)
    timings: dict[str, float] = {}
    if (wait := _queue_wait_ms()) is not None:
        timings["queue_wait_ms"] = wait
    start = time.perf_counter()
    uploads = (front, back)
    queue_args = (getattr(job, "connection", None), getattr(job, "origin", None),
                  getattr(job, "worker_name", None) or "")
    ahead = engine.batcher.computed_ahead(search_id, uploads)  # in an earlier or running pass?
    with stage("preprocess", timings):
        canvases = None if ahead else engine.batcher.prepare(storage, uploads)
    with stage("extract", timings):
        prepared = engine.batcher.lookup(search_id, uploads) if ahead else None  # waits
        if prepared is None:  # this search runs the forward pass (for its batch)
            if canvases is None:  # the pass ahead failed or left it out
                canvases = engine.batcher.prepare(storage, uploads)
            prepared = engine.batcher.extract(storage, search_id, canvases, *queue_args)
            timings["forward_ms"] = prepared.forward_ms  # inside extract_ms
        else:  # the next queued searches go through the model while this one is drawn
            engine.batcher.read_ahead(storage, *queue_args)
    canvases = prepared.canvases
    timings["batch_images"] = prepared.batch_images
    with stage("search", timings):
        bank = engine.index.bank
        q_front, q_back = (None if q is None else bank.project(q[None])[0] for q in prepared.rows)
        hits = top_k(bank, q_front, q_back, k, front_weight, sides_unknown)
    with stage("render", timings):
        image = f"{search_id}.jpg"
        jpeg = render_grid(_grid_cells(engine, list(canvases), hits))
        try:
            storage.put_result(image, jpeg)
        except (OSError, RedisError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise ResultNotSaved(f"the result image could not be saved ({reason}); "
                                 "please try again later") from exc
    timings["total_ms"] = round((time.perf_counter() - start) * 1000, 2)
    record_timings(getattr(job, "connection", None),
                   {key: ms for key, ms in timings.items() if key in STAGE_TIMINGS})
    return {"results": [_hit_json(engine, hit) for hit in hits], "image": image, "k": k,
            "front_weight": front_weight, "sides_unknown": sides_unknown, "timings": timings,
            "descriptor": engine.extractor.descriptor, "weights": engine.extractor.weights_id}
