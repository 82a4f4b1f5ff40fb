"""JSON API: submit a search, poll it, fetch its grid; health."""

from __future__ import annotations

import io

from flask import Blueprint, Response, abort, current_app, jsonify, request, send_file, url_for

from web.apidoc import Responses, api
from web.errors import RequestRefused, error_response
from web.headers import csv_attachment
from web.ops_schemas import Health
from web.schemas import Error, Search, SearchCreated, SearchForm, WaitQuery
from web.searches import MAX_WAIT_S, SearchStatus, describe, fetch_search, finished_result
from web.submissions import require_multipart, submit_search
from worker.core.bank import BankError
from worker.core.generations import current_id
from worker.core.queueing import ENDED, live_workers, wait_until_done, worker_states
from worker.core.readcache import read_manifest_cached
from worker.core.results_csv import SEARCH_COLUMNS, search_csv
from worker.core.settings import redis_problem

bp = Blueprint("api", __name__)
SEARCH_ID = {"search_id": "the id the submission returned (32 lowercase hex digits); any other "
                          "string, an unknown or an expired id is 404"}
UNAVAILABLE = (Error, "Redis (the queue and the results) is unreachable (`queue_unavailable`) "
                      "or full (`redis_full`)")


@bp.post("/api/searches")
@api.validate(form=SearchForm, tags=["searches"], operation_id="createSearch",
              skip_validation=True, resp=Responses(
                  HTTP_202=(SearchCreated, "queued (or already finished: a copy of an identical "
                                           "finished search, under its own id); poll `url`"),
                  HTTP_400=(Error, "no image (`missing_images`), an empty file, a drawing "
                                   "given twice (`invalid_front`, `invalid_back`), a bad or "
                                   "repeated `k`, "
                                   "`front_weight`, `sides`, `front_box` or `back_box`, a bad "
                                   "filter, a body not multipart/form-data (`not_multipart`) or "
                                   "cut short before its closing boundary (`malformed_form`)"),
                  HTTP_413=(Error, "the request is too large (`too_large`) or an image has too "
                                   "many pixels (`too_many_pixels`)"),
                  HTTP_415=(Error, "an image is not a JPEG or PNG (`unsupported_format`)"),
                  HTTP_422=(Error, "an image is corrupt or truncated (`corrupt`), under 16 px "
                                   "(`too_small`), of extreme aspect ratio (`bad_aspect`), "
                                   "animated (`animated`) or blank: one flat colour (`blank`)"),
                  HTTP_503=(Error, "Redis is unreachable (`queue_unavailable`) or full "
                                   "(`redis_full`), no worker runs "
                                   "(`no_worker`), too many searches wait (`queue_full`) or "
                                   "the upload could not be stored (`storage_unavailable`)")))
def create_search():
    """Submit a pair (or one side) to search for"""
    require_multipart()
    search_id, status = submit_search(request.files, request.form)
    url = url_for("api.get_search", search_id=search_id)
    response = jsonify(id=search_id, status=status, url=url)
    response.status_code = 202
    response.headers["Location"] = url
    return response


def _job_or_404(search_id: str):
    job = fetch_search(search_id)
    if job is None:
        abort(404, description="no such search (unknown or expired id)")
    return job


def wait_seconds() -> float:
    raw = request.args.get("wait", "0")
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not 0.0 <= wait <= MAX_WAIT_S:  # also refuses nan and inf
        raise RequestRefused(400, "invalid_wait", f"wait must be a number of seconds from 0 "
                             f"to {MAX_WAIT_S:g}, got {raw!r}")
    return wait


@bp.get("/api/searches/<search_id>")
@api.validate(query=WaitQuery, tags=["searches"], operation_id="getSearch",
              path_parameter_descriptions=SEARCH_ID, skip_validation=True, resp=Responses(
                  HTTP_200=(Search, "the search"),
                  HTTP_400=(Error, f"`wait` is not a number of seconds from 0 to {MAX_WAIT_S:g}"),
                  HTTP_404=(Error, "unknown, expired or malformed id"), HTTP_503=UNAVAILABLE))
def get_search(search_id: str):
    """Poll a search: status, stage, then results

    With `?wait=S`, answered as soon as it is finished or failed, or after S s (at once, with
    the status as it is, while this web process already holds MAX_LONG_POLLS waits)."""
    wait = wait_seconds()
    job = _job_or_404(search_id)
    if wait and job.get_status(refresh=False) not in ENDED:  # an ended search answers at once
        with current_app.extensions["long_polls"].slot() as granted:  # past MAX_LONG_POLLS: now
            if granted:
                wait_until_done(current_app.extensions["redis"], job, wait)
                job = _job_or_404(search_id)  # its results, or a 404 if it expired meanwhile
    return jsonify(describe(job))


NOT_FINISHED = (Error, "not finished yet (`not_ready`) or failed (`search_failed`)")


def _finished(job) -> Response | None:
    """None for a finished search; else the 409 that says why it has nothing to show."""
    body = describe(job)
    if body["status"] == SearchStatus.FAILED:
        return error_response(409, "search_failed", f"the search failed: {body['error']}")
    if body["status"] != SearchStatus.FINISHED:
        return error_response(409, "not_ready", "the search has not finished yet; poll "
                              f"{body['url']} until its status is 'finished'")
    return None


@bp.get("/api/searches/<search_id>/result.jpg")
@api.validate(tags=["searches"], operation_id="getSearchImage",
              path_parameter_descriptions=SEARCH_ID, skip_validation=True, resp=Responses(
                  HTTP_200=(None, "the grid: the query pair, then each hit (JPEG)"),
                  HTTP_404=(Error, "unknown, expired or malformed id, or the image has expired"),
                  HTTP_409=NOT_FINISHED, HTTP_503=UNAVAILABLE))
def get_result_image(search_id: str):
    """The rendered grid of a finished search"""
    job = _job_or_404(search_id)
    if (refused := _finished(job)) is not None:
        return refused
    data = current_app.extensions["storage"].read_result(f"{job.id}.jpg")
    if data is None:
        abort(404, description="the result image has expired")
    response = send_file(io.BytesIO(data), mimetype="image/jpeg", etag=False)
    response.direct_passthrough = False  # spectree's wrapper reads every body back (in memory)
    return response


@bp.get("/api/searches/<search_id>/results.csv")
@api.validate(tags=["searches"], operation_id="getSearchCsv",
              path_parameter_descriptions=SEARCH_ID, skip_validation=True, resp=Responses(
                  HTTP_200=(None, "CSV, a row per hit, in the results' order: "
                            + ",".join(SEARCH_COLUMNS) + ", then the catalogue's further "
                            "columns the hits carry (garment, season, ...; one named like ours: "
                            "`catalogue:<name>`); `order`, the result's `order`; `turned`, its "
                            "`turned` (`front: 270; back: 90`); the others "
                            "as in a check's report"),
                  HTTP_404=(Error, "unknown, expired or malformed id"),
                  HTTP_409=NOT_FINISHED, HTTP_503=UNAVAILABLE))
def get_result_csv(search_id: str):
    """The hits of a finished search, as CSV"""
    job = _job_or_404(search_id)
    if (refused := _finished(job)) is not None:
        return refused
    return csv_attachment(search_csv(finished_result(job)), f"search-{job.id[:8]}.csv")


@bp.get("/healthz")
@api.validate(tags=["operations"], operation_id="health", skip_validation=True, resp=Responses(
    HTTP_200=(Health, "Redis answers (`status` says whether all is well)"),
    HTTP_503=(Health, "Redis is unreachable")))
def healthz():
    """What the service sees: Redis, workers, index"""
    settings = current_app.config["SETTINGS"]
    redis = current_app.extensions["redis"]
    body: dict = {"redis": False, "workers": 0, "queue_length": None}
    searching: list[dict[str, str]] = []
    try:
        redis.ping()
        queue = current_app.extensions["queue"]  # `--chunks-only` workers serve no search
        searching = worker_states(redis, queue)
        body.update(redis=True, workers=live_workers(redis, max_age_s=None),
                    queue_length=len(queue), search_workers=len(searching),
                    worker_precisions=sorted({s["pairsearch_precision"] for s in searching} - {""}))
    except Exception as exc:  # noqa: BLE001 - health reports every failure as data
        current_app.logger.warning("healthz: redis: %s", exc)
        body["redis_error"] = settings.without_paths(redis_problem(exc))
    try:
        manifest = read_manifest_cached(settings.features_dir)
        body.update(catalogue_pairs=manifest.get("n_pairs"), descriptor=manifest.get("descriptor"),
                    weights=manifest.get("weights"), precision=manifest.get("precision"),
                    index_created=manifest.get("created"),
                    generation=current_id(settings.features_dir))
        if manifest.get("updated"):
            body["index_updated"] = manifest["updated"]
    except (BankError, OSError) as exc:
        body["index_error"] = settings.without_paths(str(exc))
    if refused := [s for s in searching if s["pairsearch_refused"] and
                   s["pairsearch_refused"] == body.get("generation")]:
        body["index_refused"] = settings.without_paths(
            f"{len(refused)} of {len(searching)} search worker(s) cannot load the current index "
            f"and serve the one before: {refused[0]['pairsearch_refused_why']}")
    body["status"] = "ok" if body["redis"] and body.get("search_workers") and not \
        {"index_error", "index_refused"} & body.keys() else "degraded"
    return jsonify(body), 200 if body["redis"] else 503
