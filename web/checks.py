"""JSON API of collection checks: submit a ZIP of new designs, poll the check, fetch its CSV."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TypeVar

from flask import Blueprint, abort, current_app, jsonify, request, send_file, url_for

from web.api import UNAVAILABLE, wait_seconds
from web.apidoc import Responses, api
from web.catalogue import catalogue_urls
from web.check_schemas import REPORT_CSV, CheckCreated, CheckForm, CheckQuery, CollectionCheck
from web.check_uploads import submit_check
from web.errors import error_response
from web.headers import csv_attachment
from web.offload import in_request_off_loop
from web.schemas import Error
from web.searches import MAX_WAIT_S, SEARCH_ID, hit_view
from web.submissions import discard_uploads
from worker.core.checkcancel import cancel_check
from worker.core.checks import (
    CheckState,
    CheckStatus,
    collection_upload_name,
    design_image_name,
    fetch_check,
    parse_check,
    read_check,
    read_design,
)
from worker.core.checkwait import designs_ahead, wait_for_check
from worker.core.results_csv import report_csv

T = TypeVar("T")
bp = Blueprint("checks", __name__)
CHECK_ID = {"check_id": "the id the submission returned (32 lowercase hex digits); any other "
                        "string, an unknown or an expired id is 404"}


def state_or_404(check_id: str, results: bool = True) -> CheckState:
    """The check, or 404 when unknown, expired or malformed (the same answer)."""
    state = read_check(current_app.extensions["redis"], check_id, results,
                       current_app.config["SETTINGS"].result_ttl) \
        if SEARCH_ID.fullmatch(check_id) else None
    if state is None:
        abort(404, description="no such check (unknown or expired id)")
    return state


def check_off_loop(check_id: str, build: Callable[[CheckState], T]) -> T:
    """`build(check)` of a check no longer queued, off the gevent loop: its bytes read here
    (Redis's sockets belong to the loop), parsed and built on an offload thread (500 designs'
    hits: up to seconds of pure Python). Read once already by `state_or_404` (its lost
    designs settled), such a check's state needs no further Redis call."""
    meta, rows = fetch_check(current_app.extensions["redis"], check_id)

    def parse_and_build() -> T:
        state = parse_check(check_id, meta, rows)
        if state is None:  # expired since it was read
            abort(404, description="no such check (unknown or expired id)")
        return build(state)

    return in_request_off_loop(parse_and_build)


def describe_check(state: CheckState, designs: bool = True) -> dict:
    """The JSON the API returns for one check: progress and options, then (unless `designs` is
    False) each design in pairs.csv order."""
    body = {"id": state.id, "status": state.status.value, "done": state.done,
            "total": state.total, "url": url_for("checks.get_check", check_id=state.id),
            "report_url": url_for("checks.get_report", check_id=state.id),
            "cancelled": state.cancelled,
            **state.options.model_dump(include={"k", "front_weight", "sides_unknown",
                                                "filters"})}
    ahead = designs_ahead(current_app.extensions["redis"], state,
                          current_app.config["SETTINGS"].check_chunk_pairs)
    if ahead is not None:
        body["designs_ahead"] = ahead
    if designs:
        body["designs"] = _designs(state)
        body["catalogues"] = sorted({d["catalogue"] for d in body["designs"] if d["catalogue"]})
    return body


def _designs(state: CheckState) -> list[dict]:
    designs, urls = [state.design(row) for row in range(state.total)], catalogue_urls()
    return [{**design.model_dump(exclude={"results"}),
                         "results": [hit_view(hit, urls) for hit in design.results],
                         "image_url": url_for("checks.get_design_image", check_id=state.id,
                                              row=row) if design.status == "finished" else None}
                        for row, design in enumerate(designs)]


@bp.post("/api/checks")
@api.validate(form=CheckForm, tags=["checks"], operation_id="createCheck",
              skip_validation=True, resp=Responses(
                  HTTP_202=(CheckCreated, "queued; poll `url`"),
                  HTTP_400=(Error, "no collection (`missing_collection`), two "
                                   "(`invalid_collection`), a body not "
                                   "multipart/form-data (`not_multipart`) or cut short "
                                   "(`malformed_form`), an empty file, no design "
                                   "whose drawings can be used (`no_usable_designs`), a bad "
                                   "or repeated `k`, `front_weight` or `sides`, a box, a bad "
                                   "filter, an entry named with `..` or "
                                   "an absolute path, a link or encrypted (`unsafe_entry`), or "
                                   "no usable pairs.csv (`invalid_pairs_csv`)"),
                  HTTP_413=(Error, "the request is too large (`too_large`), the ZIP holds too "
                                   "many entries (`too_many_entries`), unpacks too large "
                                   "(`collection_too_large`, `zip_bomb`) or pairs.csv has too "
                                   "many rows (`too_many_pairs`)"),
                  HTTP_415=(Error, "the collection is not a ZIP archive (`not_a_zip`), or an "
                                   "entry is compressed with bzip2 or LZMA "
                                   "(`unsupported_compression`)"),
                  HTTP_503=(Error, "Redis is unreachable (`queue_unavailable`) or full "
                                   "(`redis_full`), no worker runs "
                                   "(`no_worker`), too many searches or checked designs wait "
                                   "(`queue_full`) or "
                                   "the drawings could not be stored (`storage_unavailable`)")))
def create_check():
    """Check a collection of new designs (a ZIP) against the catalogue

    A row whose drawing is missing or refused is reported on that row (`failed`, with its
    error); the other rows are checked. A collection none of whose rows can be checked is
    refused (400 `no_usable_designs`, naming the first rows' errors)."""
    check_id = submit_check(request.files, request.form)
    url = url_for("checks.get_check", check_id=check_id)
    response = jsonify(id=check_id, status=CheckStatus.QUEUED.value, url=url)
    response.status_code = 202
    response.headers["Location"] = url
    return response


@bp.get("/api/checks/<check_id>")
@api.validate(query=CheckQuery, tags=["checks"], operation_id="getCheck",
              path_parameter_descriptions=CHECK_ID, skip_validation=True, resp=Responses(
                  HTTP_200=(CollectionCheck, "the check: progress, then each design's hits"),
                  HTTP_400=(Error, f"`wait` is not a number of seconds from 0 to {MAX_WAIT_S:g}, "
                                   "or `designs` is neither `true` nor `false`"),
                  HTTP_404=(Error, "unknown, expired or malformed id"), HTTP_503=UNAVAILABLE))
def get_check(check_id: str):
    """Poll a check: done of total, each design's status, then its hits

    With `?wait=S`, answered as soon as every design is settled, or after S s (at once while
    this web process already holds MAX_LONG_POLLS waits). `?designs=false`: the progress
    and the options alone."""
    wait = wait_seconds()
    designs = request.args.get("designs", "true")
    if designs not in ("true", "false"):
        return error_response(400, "invalid_designs", "designs must be true or false, got "
                              f"{designs!r}")
    state = state_or_404(check_id, results=False)  # the hits read once, for the answer
    if wait and state.status is not CheckStatus.FINISHED:
        with current_app.extensions["long_polls"].slot() as granted:
            if granted:
                wait_for_check(current_app.extensions["redis"], check_id, wait)
                state = state_or_404(check_id, results=False)
    if designs == "false":
        return jsonify(describe_check(state, designs=False))
    if state.status is CheckStatus.QUEUED:  # how far back it waits asks Redis; few hits yet
        return jsonify(describe_check(state_or_404(check_id), designs=True))
    return check_off_loop(check_id, lambda current: jsonify(describe_check(current)))


def cancel_unstarted(check_id: str) -> CheckState | None:
    """Cancel the check's designs not started yet and delete their drawings; None when the
    check has already finished (nothing to cancel). 404 as `state_or_404`."""
    state = state_or_404(check_id, results=False)
    if state.status is CheckStatus.FINISHED:
        return None
    settings = current_app.config["SETTINGS"]
    rows = cancel_check(current_app.extensions["redis"], state, settings.result_ttl)
    discard_uploads([collection_upload_name(check_id, row, side)
                     for row in rows for side in ("front", "back")])
    return state_or_404(check_id, results=False)


@bp.delete("/api/checks/<check_id>")
@api.validate(tags=["checks"], operation_id="cancelCheck", path_parameter_descriptions=CHECK_ID,
              skip_validation=True, resp=Responses(
                  HTTP_200=(CollectionCheck, "cancelled: every design not started yet is "
                                             "settled as failed, its `error` saying so, and its "
                                             "drawings deleted; a chunk already running "
                                             "finishes. The progress and options, no `designs`"),
                  HTTP_404=(Error, "unknown, expired or malformed id"),
                  HTTP_409=(Error, "the check has finished: nothing to cancel (`finished`)"),
                  HTTP_503=UNAVAILABLE))
def delete_check(check_id: str):
    """Cancel a check: its designs not started yet are not checked"""
    state = cancel_unstarted(check_id)
    if state is None:
        return error_response(409, "finished", "the check has finished (or was cancelled): "
                              "there is nothing left to cancel")
    return jsonify(describe_check(state, designs=False))


@bp.get("/api/checks/<check_id>/report.csv")
@api.validate(tags=["checks"], operation_id="getCheckReport",
              path_parameter_descriptions=CHECK_ID, skip_validation=True, resp=Responses(
                  HTTP_200=(None, REPORT_CSV),
                  HTTP_404=(Error, "unknown, expired or malformed id"),
                  HTTP_409=(Error, "not finished yet (`not_ready`)"), HTTP_503=UNAVAILABLE))
def get_report(check_id: str):
    """The report of a finished check, as CSV"""
    state = state_or_404(check_id, results=False)
    if state.status is not CheckStatus.FINISHED:
        return error_response(409, "not_ready", f"the check has not finished yet ({state.done} "
                              f"of {state.total} designs); poll "
                              f"{url_for('checks.get_check', check_id=check_id)}")
    return csv_attachment(check_off_loop(check_id, lambda finished: report_csv(
        [finished.design(row) for row in range(finished.total)], finished.options)),
        f"check-{check_id[:8]}.csv")


@bp.get("/api/checks/<check_id>/designs/<int:row>.jpg")
@api.validate(tags=["checks"], operation_id="getCheckedDesignImage",
              path_parameter_descriptions={**CHECK_ID, "row": "the design's row in pairs.csv, "
                                           "from 0"}, skip_validation=True, resp=Responses(
                  HTTP_200=(None, "the design as the model saw it: front | back (JPEG; white "
                                  "where a side is missing)"),
                  HTTP_404=(Error, "unknown, expired or malformed id, no such row, a design not "
                                   "checked (yet) or failed, or the image has expired"),
                  HTTP_503=UNAVAILABLE))
def get_design_image(check_id: str, row: int):
    """One new design of a check, as it was searched"""
    # its row alone is read: the whole check's state cost a finished page's 500 images 2 s
    design = read_design(current_app.extensions["redis"], check_id, row) \
        if SEARCH_ID.fullmatch(check_id) else None
    if design is None or design.status != "finished":
        abort(404, description=f"no checked design at row {row} of this check")
    data = current_app.extensions["storage"].read_result(design_image_name(check_id, row))
    if data is None:
        abort(404, description="the design's image has expired")
    response = send_file(io.BytesIO(data), mimetype="image/jpeg", etag=False)
    response.direct_passthrough = False  # spectree's wrapper reads every body back (in memory)
    return response
