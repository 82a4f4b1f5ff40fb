"""A collection check's chunk job: a few new designs through one forward pass, each ranked as
a search is (`rank_hits`), each outcome recorded in the check (worker.core.checks).

The web enqueues `worker.service.checks.check_chunk` by name on the checks queue, which the
worker serves after the search queue; `python -m worker.cli.check` calls `check_pairs` itself.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple, TypeVar

import numpy as np
from PIL import Image
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import get_current_job

from worker.core.checkcancel import is_cancelled, settle_cancelled
from worker.core.checks import (
    chunk_uploads,
    design_image_name,
    mark_started,
    record_outcomes,
)
from worker.core.contract import (
    RESUBMIT,
    SIDES,
    CheckChunk,
    CheckedDesign,
    Hit,
    ListOrder,
    SearchOptions,
    SideCopy,
    problems,
)
from worker.core.generations import pin, unpin
from worker.core.images import ImageRejected
from worker.core.storage import UploadGone
from worker.pipeline.orientation import split, turned_sides
from worker.pipeline.preprocess import query_canvas
from worker.pipeline.reading import read_sides
from worker.service.engine import Engine, Snapshot, current
from worker.service.jobs import SearchInputError, rank_hits, sides_read

log = logging.getLogger(__name__)
Pair = tuple[bytes | None, bytes | None]  # a design's drawings (front, back), None: no such side
Canvases = tuple[np.ndarray | None, np.ndarray | None]
Prepared = tuple[Canvases, tuple[int, int]]  # canvases turned upright; the degrees each was
BLANK = np.full((224, 224, 3), 255, dtype=np.uint8)  # a side the design does not have
REDIS_PATIENCE_S = 30.0  # a chunk's wait for an unreachable Redis (3 waits within JOB_TIMEOUT)
T = TypeVar("T")


class Ranked(NamedTuple):
    """A checked design's hits, and its sides matched by their outline alone (sketches)."""

    hits: list[Hit]
    outline_only: list[str]
    cropped: list[str]  # the sides scored as crops of a design
    turned: dict[str, int]  # the sides turned upright, and by how many degrees
    catalogue: str | None  # the generation compared with: an edit may land mid-check
    side_copies: list[SideCopy]
    order: ListOrder  # the hits' order (`listing.ranked`)

    def design(self, name: str) -> CheckedDesign:
        return CheckedDesign(name=name, status="finished", results=self.hits, order=self.order,
                             outline_only=self.outline_only, cropped=self.cropped,
                             catalogue=self.catalogue,
                             side_copies=self.side_copies, turned=self.turned)


def _canvases(engine: Engine, pair: Pair) -> Prepared | str:
    """A design's 224x224 canvases turned upright and the degrees each side was turned
    (`orientation`), or why one of its drawings is refused."""
    out = []
    for side, data in zip(SIDES, pair, strict=True):
        try:
            out.append((None, 0) if data is None else query_canvas(
                data, engine.settings.max_image_pixels, engine.extractor.trim, None, side,
                engine.batcher.uprights))
        except ImageRejected as exc:
            return str(exc) if exc.reason == "unseen" else f"{side}: {exc}"
    return split(out)


def check_pairs(engine: Engine, pairs: list[Pair], options: SearchOptions,
                keep: Callable[[list[Prepared | str]], None] | None = None,
                snapshot: Snapshot | None = None) -> list[Ranked | str]:
    """Each design's k best hits and sketched sides (`Ranked`), or why it could not be
    checked; every design whose drawings could be read goes through the model in one forward
    pass. `keep` is given each design's (canvases, turned) (or why it has none) before it.
    Compared with `snapshot` (a check's pinned catalogue version), else the current one."""
    snapshot = snapshot or engine.snapshot
    prepared = list(engine.pool.map(lambda pair: _canvases(engine, pair), pairs))
    if keep is not None:
        keep(prepared)
    good = [found for found in prepared if not isinstance(found, str)]
    extracted = iter(engine.batcher.extract_pairs(good) if good else [])
    return [found if isinstance(found, str) else _ranked(snapshot, next(extracted), options)
            for found in prepared]


def _ranked(snapshot: Snapshot, found, options: SearchOptions) -> Ranked:
    outline, crops = read_sides(snapshot.bank, found.canvases, found.rows)
    hits, copied_sides, order = rank_hits(snapshot, found.rows, options, outline, crops)
    return Ranked(hits, *sides_read(outline, crops), turned_sides(found.turned),
                  _version(snapshot), copied_sides, order)


def _version(snapshot: Snapshot) -> str | None:
    """The index generation's id; for a flat FEATURES_DIR (no generations), when its manifest
    was written, in the same form."""
    if snapshot.stamp is None or snapshot.generation is not None:
        return snapshot.generation
    return f"{datetime.fromtimestamp(snapshot.stamp[3] / 1e9, UTC):%Y%m%dT%H%M%S%fZ}"


def _read(engine: Engine, name: str | None) -> bytes | None:
    """A design's stored drawing (STORAGE=redis: read from Redis, waited for as it restarts)."""
    return None if name is None else _patiently(lambda: engine.storage.read_upload(name))


def _outcomes(engine: Engine, chunk: CheckChunk, snapshot: Snapshot) -> list[CheckedDesign]:
    pairs: list[Pair | str] = []
    for row in chunk.rows:
        try:
            pairs.append((_read(engine, row.front), _read(engine, row.back)))
        except UploadGone as exc:
            pairs.append(str(exc))
    readable = [pair for pair in pairs if not isinstance(pair, str)]
    rows = [row.row for row, pair in zip(chunk.rows, pairs, strict=True) if not isinstance(pair, str)]
    checked = iter(check_pairs(engine, readable, chunk, lambda prepared: _keep_seen(
        engine, chunk.check_id, rows, prepared), snapshot) if readable else [])
    found = [pair if isinstance(pair, str) else next(checked) for pair in pairs]
    return [CheckedDesign(name=row.name, status="failed", error=hits) if isinstance(hits, str)
            else hits.design(row.name) for row, hits in zip(chunk.rows, found, strict=True)]


def _keep_seen(engine: Engine, check_id: str, rows: list[int],
               prepared: list[Prepared | str]) -> None:
    """Each readable design as the model sees it, front | back (white for a missing side), a
    JPEG result for the report; one that cannot be stored is only missing from the page."""
    for row, found in zip(rows, prepared, strict=True):
        if isinstance(found, str):
            continue
        pair = np.hstack([BLANK if c is None else c for c in found[0]])
        buffer = io.BytesIO()
        Image.fromarray(pair).save(buffer, "JPEG", quality=85)
        try:
            engine.storage.put_result(design_image_name(check_id, row), buffer.getvalue())
        except (OSError, RedisError) as exc:
            log.warning("could not keep design %d of check %s: %s", row, check_id, exc)


def _failed(engine: Engine, chunk: CheckChunk, exc: BaseException) -> list[CheckedDesign]:
    error = (f"checking took too long and was stopped; {RESUBMIT}"
             if type(exc).__name__ == "JobTimeoutException"
             else f"{engine.settings.without_paths(str(exc))}; {RESUBMIT}")
    return [CheckedDesign(name=row.name, status="failed", error=error) for row in chunk.rows]


def check_chunk(**kwargs) -> None:
    """Check a chunk of a collection's designs; record each outcome; drop their uploads."""
    try:
        chunk = CheckChunk.model_validate(kwargs)
    except ValidationError as exc:
        raise SearchInputError("; ".join(msg for _, msg in problems(exc))) from None
    engine, connection = current(), get_current_job().connection
    if _patiently(lambda: is_cancelled(connection, chunk.check_id)):  # settled as cancelled
        _discard(engine, chunk)
        rows = {row.row: row.name for row in chunk.rows}
        _patiently(lambda: settle_cancelled(connection, chunk.check_id, rows,
                                            engine.settings.result_ttl))
        _unpin(engine, chunk.check_id)  # no later chunk compares anything
        return
    try:  # a pinned version's load counts against the chunk's time, as its pass does
        snapshot = _patiently(lambda: _pinned(engine, connection, chunk.check_id))
        outcomes = _outcomes(engine, chunk, snapshot)
    except Exception as exc:  # noqa: BLE001 - its designs fail, saying why; the check goes on
        log.exception("check %s: a chunk failed", chunk.check_id)
        outcomes = _failed(engine, chunk, exc)
    by_row = {row.row: outcome for row, outcome in zip(chunk.rows, outcomes, strict=True)}
    # not recorded (Redis away past the wait): the job fails, its uploads kept for a re-run
    settled = _patiently(lambda: record_outcomes(connection, chunk.check_id, by_row,
                                                 engine.settings.result_ttl))
    _discard(engine, chunk)
    if settled:
        _unpin(engine, chunk.check_id)


def _patiently(call: Callable[[], T]) -> T:
    """`call()`, tried again each second while Redis is unreachable (restarting), for up to
    REDIS_PATIENCE_S: a restart of a few seconds fails no design of a check."""
    deadline = time.monotonic() + REDIS_PATIENCE_S
    while True:
        try:
            return call()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("Redis unreachable during a check's chunk (%s); trying again", exc)
            time.sleep(1.0)


def _unpin(engine: Engine, check_id: str) -> None:
    try:
        unpin(engine.settings.features_dir, check_id)
    except OSError as exc:  # stale in PIN_TTL_S, then deleted by the next edit
        log.warning("could not unpin check %s: %s", check_id, exc)


def _pinned(engine: Engine, connection, check_id: str) -> Snapshot:
    """The catalogue version the check's first chunk was compared with (pinned then), kept on
    disk for the later chunks (`generations.pin`), and its snapshot."""
    pinned = mark_started(connection, check_id, engine.snapshot.generation)
    if pinned is None:  # a flat FEATURES_DIR: one version at a time
        return engine.snapshot
    try:
        pin(engine.settings.features_dir, check_id, pinned)
    except OSError as exc:  # a later edit may then delete it: those chunks see the current one
        log.warning("could not pin catalogue version %s for check %s: %s", pinned, check_id, exc)
    return engine.pinned(pinned)


def _discard(engine: Engine, chunk: CheckChunk) -> None:
    names = chunk_uploads(chunk)
    try:
        engine.storage.delete_uploads(names)
    except (OSError, RedisError) as exc:  # RESULT_TTL's sweep gets them later
        log.warning("could not delete the uploads of check %s: %s", chunk.check_id, exc)
