"""Reading a search back from Redis: its status, stage, results and error."""

from __future__ import annotations

import re
from collections.abc import Collection
from enum import StrEnum

from flask import abort, current_app, url_for
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job, JobStatus

from web.catalogue import CatalogueUrls, catalogue_urls
from worker.core import contract
from worker.core.contract import ABANDONED, RESUBMIT, Hit, SearchResult
from worker.core.queueing import JOB_FUNC
from worker.pipeline.ranking import side_weights

SEARCH_ID = re.compile(contract.SEARCH_ID)  # use fullmatch: `$` also matches before a "\n"
MAX_WAIT_S = 30.0  # the longest long poll
# search id -> the catalogue design it searched with; beside the job, whose meta the worker
# writes back whole while it runs
SEARCHED_WITH = "pairsearch:searched-with:"


class SearchStatus(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"


STATUS_FROM_RQ = {
    JobStatus.QUEUED: SearchStatus.QUEUED, JobStatus.DEFERRED: SearchStatus.QUEUED,
    JobStatus.SCHEDULED: SearchStatus.QUEUED, JobStatus.STARTED: SearchStatus.STARTED,
    JobStatus.FINISHED: SearchStatus.FINISHED, JobStatus.FAILED: SearchStatus.FAILED,
    JobStatus.STOPPED: SearchStatus.FAILED, JobStatus.CANCELED: SearchStatus.FAILED,
}


def fetch_job(job_id: str, funcs: Collection[str]) -> Job | None:
    """The job of an id if it runs one of `funcs`; None when unknown, expired, malformed or
    another kind of job (searches, edits and check chunks share the id form and the queue)."""
    if not SEARCH_ID.fullmatch(job_id):
        return None
    try:
        job = Job.fetch(job_id, connection=current_app.extensions["redis"])
    except NoSuchJobError:
        return None
    return job if job.func_name in funcs else None


def fetch_search(search_id: str) -> Job | None:
    """The job of a search id, or None (as `fetch_job`: the same answer for each reason)."""
    return fetch_job(search_id, (JOB_FUNC,))


def error_message(job: Job) -> str:
    """Why a search failed, in words a person can act on."""
    error_type, error = job.meta.get("error_type"), job.meta.get("error")
    if error_type == "JobTimeoutException":
        return f"the search took too long and was stopped; {RESUBMIT}"
    if error_type == "AbandonedJobError" or (not error and job.get_status() == JobStatus.FAILED
                                             and "AbandonedJobError" in (job.exc_info or "")):
        return ABANDONED
    if error:
        return error
    lines = [ln for ln in (job.exc_info or "").strip().splitlines() if ln.strip()]
    return current_app.config["SETTINGS"].without_paths(lines[-1]) if lines \
        else f"the search failed; {RESUBMIT}"


def finished_result(job: Job) -> SearchResult:
    """A finished search's result; a 404 where it expired a moment before its job (each lives
    RESULT_TTL from a moment apart)."""
    if (value := job.return_value()) is None:
        abort(404, description="the search's results have expired; search again")
    return SearchResult.model_validate(value)


def hit_view(hit: Hit, urls: CatalogueUrls | None = None) -> dict:
    """A hit with the URLs of its two catalogue images (`urls`: the request's)."""
    urls = urls or catalogue_urls()
    return {**hit.model_dump(), "front_url": urls.drawing(hit.front),
            "back_url": urls.drawing(hit.back)}


def mark_searched_with(search_id: str, name: str, ttl: int) -> None:
    """Record that search `search_id` is the catalogue design `name`'s own drawings."""
    current_app.extensions["redis"].set(SEARCHED_WITH + search_id, name, ex=ttl)


def search_status(job: Job) -> SearchStatus:
    """The search's status from its job's (as fetched; an unknown RQ status reads as failed)."""
    return STATUS_FROM_RQ.get(job.get_status(refresh=False), SearchStatus.FAILED)


def describe(job: Job) -> dict:
    """The JSON the API returns for one search."""
    status = search_status(job)
    # a job queued again after its worker died keeps that run's last stage in its meta
    stage = "queued" if status is SearchStatus.QUEUED else job.meta.get("stage")
    if status is SearchStatus.STARTED and stage in (None, "queued"):
        stage = "starting"  # taken by a worker before its first report (a new index loading)
    body: dict = {"id": job.id, "status": status.value, "stage": stage,
                  "url": url_for("api.get_search", search_id=job.id)}
    if (name := current_app.extensions["redis"].get(SEARCHED_WITH + job.id)) is not None:
        body["searched_with"] = name.decode()
    if status is SearchStatus.QUEUED:
        body["queue_position"] = job.get_position()
    if status is SearchStatus.FINISHED:
        result = finished_result(job)
        body.update(result.model_dump(exclude={"results", "image"}),
                    results=[hit_view(hit) for hit in result.results],
                    image_url=url_for("api.get_result_image", search_id=job.id),
                    csv_url=url_for("api.get_result_csv", search_id=job.id))
    else:
        body.update(requested_options(job))
    if status is SearchStatus.FAILED:
        body["error"] = error_message(job)
    return body


def requested_options(job: Job) -> dict:
    """A search's options as its request holds them, the front weight as it will apply (1 or
    0 for one side); a finished search shows its result's. None of them for a job unread."""
    try:
        request = contract.SearchRequest.model_validate(job.kwargs)
    except (ValueError, TypeError, DeserializationError):  # pydantic's is a ValueError
        return {}
    weight, _ = side_weights(request.front is not None, request.back is not None,
                             request.front_weight)
    return {**request.model_dump(include={"k", "sides_unknown", "front_box", "back_box",
                                          "filters"}), "front_weight": weight}
