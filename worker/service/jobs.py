"""The search job: preprocess -> extract -> search -> render, each stage reported in job.meta.

The web enqueues `worker.service.jobs.search_pair` by name; only the worker imports this module.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from pydantic import ValidationError
from redis.exceptions import RedisError
from rq import get_current_job

from worker.core.contract import (
    SIDES,
    Hit,
    ListOrder,
    SearchOptions,
    SearchRequest,
    SearchResult,
    SideCopy,
    problems,
)
from worker.core.filters import FilterError, allowed_rows
from worker.core.images import STORED_COMPRESSION
from worker.core.metrics import record_timings
from worker.core.queueing import query_canvas_name
from worker.pipeline.grid import draw_grid
from worker.pipeline.listing import ranked
from worker.pipeline.orientation import turned_sides
from worker.pipeline.ranking import project_query, side_weights
from worker.pipeline.reading import read_sides
from worker.pipeline.sides import searched_alone, side_copies
from worker.pipeline.verdicts import thresholds_in
from worker.service.batching import Extracted, QueueRef
from worker.service.engine import Engine, Snapshot, current
from worker.service.reports import REPORTS, StageClock

STAGE_TIMINGS = ("queue_wait_ms", "preprocess_ms", "extract_ms", "search_ms", "render_ms",
                 "total_ms")  # what /metrics sums (forward_ms, only where the pass ran, is in extract_ms)


class SearchInputError(ValueError):
    """A job argument the worker refuses (the message names the value)."""


class ResultNotSaved(RuntimeError):
    """The grid could not be stored (disk full, folder unwritable, Redis refused it)."""


def search_pair(**kwargs) -> dict:
    """Search the catalogue for the uploaded pair (or one side); store the grid `<id>.jpg`."""
    try:
        try:
            request = SearchRequest.model_validate(kwargs)
        except ValidationError as exc:
            raise SearchInputError("; ".join(msg for _, msg in problems(exc))) from None
        return run_search(current(), request).model_dump()
    finally:  # every stage written before RQ records the outcome (and its error, in meta)
        REPORTS.flush()


def run_search(engine: Engine, request: SearchRequest) -> SearchResult:
    job = get_current_job()
    stage = StageClock()
    found = engine.batcher.descriptors(engine.storage, request.search_id, request.uploads,
                                       QueueRef.of(job), stage, request.boxes)
    with stage("search"):
        outline, crops = read_sides(engine.snapshot.bank, found.canvases, found.rows)
        hits, copied_sides, order = rank_hits(engine.snapshot, found.rows, request, outline,
                                              crops)
        outline_only, cropped = sides_read(outline, crops)
    with stage("render"):
        image = save_grid(engine, request, found, hits, order)
        save_query(engine, request.search_id, found.canvases)
    timings = stage.stop()
    record_timings(getattr(job, "connection", None),
                   {key: ms for key, ms in timings.items() if key in STAGE_TIMINGS})
    return SearchResult(results=hits, side_copies=copied_sides, order=order, image=image,
                        outline_only=outline_only, cropped=cropped,
                        turned=turned_sides(found.turned),
                        timings=timings | pass_timings(found), descriptor=engine.extractor.descriptor,
                        weights=engine.extractor.weights_id, catalogue=engine.snapshot.generation,
                        front_weight=side_weights(*(row is not None for row in found.rows),
                                                  request.front_weight)[0],
                        **request.model_dump(include={"k", "sides_unknown", "front_box",
                                                      "back_box", "filters"}))


def sides_read(outline: tuple[bool, bool], crops: tuple[bool, bool]
               ) -> tuple[list[str], list[str]]:
    """The sides matched by their outline alone (line sketches), and those scored as crops of
    a design (`read_sides`: never both), as the result lists them."""
    return ([side for side, o in zip(SIDES, outline, strict=True) if o],
            [side for side, c in zip(SIDES, crops, strict=True) if c])


def rank_hits(snapshot: Snapshot, rows: tuple[np.ndarray | None, np.ndarray | None],
              options: SearchOptions, outline: tuple[bool, bool] = (False, False),
              crops: tuple[bool, bool] = (False, False)
              ) -> tuple[list[Hit], list[SideCopy], ListOrder]:
    """A query's (front, back) descriptors -> the k best designs that pass its filters, each
    with its verdict (a search's and a collection check's search stage; the first hit's lead
    over the second is taken among the designs that pass), the sides that alone copy a
    design (`side_copies`), and the list's order (`listing.ranked`). The sides `outline`
    names (`outline_sides`) are matched by their outline alone, those `crops` names
    (`crop_sides`) by all but it."""
    try:  # the web checked them against the catalogue it saw; this one may be newer
        allowed = allowed_rows(options.filters, snapshot.catalogue)
    except FilterError as exc:
        raise SearchInputError(str(exc)) from None
    q_front, q_back = (None if q is None else project_query(snapshot.bank, q, by_outline, crop)
                       for q, by_outline, crop in zip(rows, outline, crops, strict=True))
    given = [(by_outline, weight) for q, by_outline, weight in zip(
        rows, outline, (options.front_weight, 1 - options.front_weight), strict=True)
        if q is not None]
    counted = [by_outline for by_outline, weight in given if weight > 0 or len(given) == 1]
    # an outline alone tells a garment's cut, not its design: no verdict, whatever it scores
    # (nor when the sides that count, the weighted ones, are all sketches)
    sketch_only = all(counted)
    manifest = snapshot.bank.manifest
    thresholds = None if sketch_only else thresholds_in(manifest, one_side=len(counted) == 1)
    side_thresholds = None if sketch_only else thresholds_in(manifest, one_side=True)
    listing = ranked(snapshot.bank, q_front, q_back, options.k, options.front_weight,
                     options.sides_unknown, allowed, thresholds,
                     searched_alone((q_front, q_back), options.front_weight, side_thresholds,
                                    outline))
    return ([hit.to_hit(snapshot.catalogue, thresholds, score)
             for hit, score in zip(listing.hits, listing.judged, strict=True)],
            side_copies(snapshot.bank, snapshot.catalogue, (q_front, q_back), options.front_weight,
                        options.sides_unknown, allowed, side_thresholds, outline),
            listing.order)


def pass_timings(found: Extracted) -> dict[str, float]:
    """The forward pass's size, and its time where this search ran it (it is in extract_ms)."""
    return {"batch_images": found.batch_images} | \
        ({"forward_ms": found.forward_ms} if found.own_pass else {})


def save_query(engine: Engine, search_id: str,
               canvases: tuple[np.ndarray | None, np.ndarray | None]) -> None:
    """Keep the query as the model saw it (224x224 PNGs, as long as the grid): a match view,
    drawn later, compares these with the hit."""
    for side, canvas in zip(SIDES, canvases, strict=True):
        if canvas is not None:
            buffer = io.BytesIO()
            Image.fromarray(canvas).save(buffer, "PNG", compress_level=STORED_COMPRESSION)
            store_result(engine, query_canvas_name(search_id, side), buffer.getvalue())


def store_result(engine: Engine, name: str, data: bytes) -> None:
    """Store an output; ResultNotSaved if the storage refuses it."""
    try:
        engine.storage.put_result(name, data)
    except (OSError, RedisError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ResultNotSaved(f"the result image could not be saved ({reason}); "
                             "please try again later") from exc


def save_grid(engine: Engine, request: SearchRequest, found: Extracted, hits: list[Hit],
              order: ListOrder) -> str:
    """Draw and store the grid; its file name."""
    image = f"{request.search_id}.jpg"
    jpeg = draw_grid(engine.snapshot.catalogue, engine.settings.features_dir, engine.thumbnails,
                     found.canvases, hits, request.filters, order)
    store_result(engine, image, jpeg)
    return image
