"""Match views: why a hit matches the query, drawn by the worker the first time a person asks
(`worker.service.matches.draw_match`, enqueued by name) and kept beside the grid."""

from __future__ import annotations

import io
from datetime import timedelta

from flask import Blueprint, abort, current_app, render_template, send_file, url_for
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.utils import now

from web.apidoc import Responses, api
from web.errors import RequestRefused
from web.schemas import Error
from web.searches import SearchStatus, describe, fetch_search
from worker.core.boxes import MIN_BOX
from worker.core.contract import GRID_COLUMNS, SIDES
from worker.core.queueing import (
    ENDED,
    enqueue_match,
    match_image_name,
    match_job_id,
    query_canvas_name,
    registered_workers,
    wait_until_done,
)
from worker.pipeline.verdicts import ANCHORS

bp = Blueprint("matches", __name__)
MATCH_WAIT_S = 30.0  # the longest a request waits for its view to be drawn (then 503, retry)
MAX_QUEUED_MATCHES = 8  # views waiting, all searches together (checked, then enqueued: requests
# at the same instant may pass it by a few); past it, 503 queue_full
INPUT_ERROR = "MatchInputError"  # the job's own refusal (worker.service.matches), by name
INPUT_ERROR_KEPT = timedelta(minutes=5)  # answered from the failed job, not drawn again
PATH_PARAMETERS = {"search_id": "the search's id (32 lowercase hex digits)",
                   "rank": "the hit's rank, 1 to the number of results"}


@bp.app_context_processor
def page_values() -> dict:
    """What the pages' scripts, grid links and legend need: the smallest box, the grid's
    columns, the similarity each verdict starts at."""
    return {"min_box": MIN_BOX, "grid_columns": GRID_COLUMNS, "anchors": ANCHORS}


def finished_hit(search_id: str, rank: int) -> tuple[dict, dict]:
    """(the search as the API shows it, its hit at `rank`); 404 or 409 otherwise."""
    job = fetch_search(search_id)
    if job is None:
        abort(404, description="no such search (unknown or expired id)")
    search = describe(job)
    if search["status"] == SearchStatus.FAILED:
        raise RequestRefused(409, "search_failed", f"the search failed: {search['error']}")
    if search["status"] != SearchStatus.FINISHED:
        raise RequestRefused(409, "not_ready", "the search has not finished yet; open its "
                             "match views once it has")
    hits = search["results"]
    if not 1 <= rank <= len(hits):
        abort(404, description=f"this search has no hit ranked {rank}; its hits are ranked "
                               f"1 to {len(hits)}")
    return search, hits[rank - 1]


def match_job(search_id: str, rank: int) -> Job:
    """The job drawing this view: one already queued or running, or one that failed on its
    input within INPUT_ERROR_KEPT (the hit's drawing removed since: drawing it again at once
    fails again; later, the drawing may be back or reach this worker), else a new one when
    fewer than MAX_QUEUED_MATCHES wait. Views have their own queue, which workers serve after
    the searches': asking for many (and hanging up) delays no search and fills no search queue."""
    queue = current_app.extensions["match_queue"]
    try:
        job = Job.fetch(match_job_id(search_id, rank), connection=queue.connection)
        status = job.get_status(refresh=False)
        if status not in ENDED or (status == JobStatus.FAILED
                                   and job.meta.get("error_type") == INPUT_ERROR
                                   and job.ended_at is not None
                                   and now() - job.ended_at < INPUT_ERROR_KEPT):
            return job
    except NoSuchJobError:  # none yet, or expired: draw it
        pass
    if current_app.config["SETTINGS"].require_worker and registered_workers(queue) == 0:
        raise RequestRefused(503, "no_worker", "no worker is running to draw the match view "
                             "right now; please retry in a minute", retry_after=30)
    if len(queue) >= MAX_QUEUED_MATCHES:
        raise RequestRefused(503, "queue_full", "the service is busy drawing other match "
                             "views; please retry in a few seconds", retry_after=5)
    return enqueue_match(queue, current_app.config["SETTINGS"], search_id, rank)


def match_jpeg(search_id: str, rank: int) -> bytes:
    """The stored view, drawn first if need be (waiting up to MATCH_WAIT_S, as a long poll:
    past MAX_LONG_POLLS, or when the wait runs out, a 503 with Retry-After)."""
    storage = current_app.extensions["storage"]
    name = match_image_name(search_id, rank)
    if (data := storage.read_result(name)) is not None:
        return data
    if not any(storage.read_result(query_canvas_name(search_id, side)) for side in SIDES):
        abort(404, description="the drawings of this search are no longer kept (or it was "
                               "made before match views existed); please search again")
    job = match_job(search_id, rank)
    with current_app.extensions["long_polls"].slot() as granted:
        status = wait_until_done(job.connection, job, MATCH_WAIT_S if granted else 0)
    if status == JobStatus.FINISHED and (data := storage.read_result(name)) is not None:
        return data
    if status == JobStatus.FAILED:
        job.refresh()
        raise RequestRefused(409, "match_failed", "the match view could not be drawn: "
                             f"{job.meta.get('error') or 'the job failed'}")
    raise RequestRefused(503, "match_pending", "the match view is still being drawn; please "
                         "retry in a few seconds", retry_after=5)


@bp.get("/api/searches/<search_id>/match/<int:rank>.jpg")
@api.validate(tags=["searches"], operation_id="getMatchImage",
              path_parameter_descriptions=PATH_PARAMETERS, skip_validation=True, resp=Responses(
                  HTTP_200=(None, "the query pair beside the hit's pair, the regions whose "
                                  "local features match tinted and the strongest boxed (JPEG)"),
                  HTTP_404=(Error, "unknown, expired or malformed id, no hit of that rank, or "
                                   "the search's drawings are no longer kept"),
                  HTTP_409=(Error, "the search is not finished (`not_ready`) or failed "
                                   "(`search_failed`), or the view could not be drawn "
                                   "(`match_failed`)"),
                  HTTP_503=(Error, "still being drawn (`match_pending`), or too many views "
                                   "wait to be drawn (`queue_full`): retry after Retry-After; "
                                   "no worker runs (`no_worker`), or Redis is unreachable "
                                   "(`queue_unavailable`) or full (`redis_full`)")))
def get_match_image(search_id: str, rank: int):
    """Why a hit matches: the query and the hit with their matching regions

    Drawn by the worker the first time it is asked for (the request waits for it, up to
    30 s), then kept as long as the search."""
    finished_hit(search_id, rank)
    response = send_file(io.BytesIO(match_jpeg(search_id, rank)), mimetype="image/jpeg",
                         etag=False)
    response.direct_passthrough = False  # spectree's wrapper reads every body back (in memory)
    return response


@bp.get("/searches/<search_id>/match/<int:rank>")
def match_page(search_id: str, rank: int):
    search, hit = finished_hit(search_id, rank)
    return render_template("match.html", search=search, hit=hit, image_url=url_for(
        "matches.get_match_image", search_id=search_id, rank=rank),
        search_url=url_for("pages.search_page", search_id=search_id))
