"""Catalogue editing over HTTP: POST /api/designs and DELETE /api/designs/<name>.

Authenticated with `Authorization: Bearer <ADMIN_TOKEN>` (editing is off without a token).
The edit runs as a job on the search queue (the worker holds the model and serialises edits
with searches); the request waits up to EDIT_WAIT_S for it: 201/200 when done, else 202 with
the URL of GET /api/edits/<id>, which tells its outcome. One edit of a name at a time: another
while it waits is 409 `edit_pending` (a client's retry would otherwise run twice).
"""

from __future__ import annotations

import hmac
from functools import partial

from flask import Blueprint, abort, current_app, jsonify, request, url_for
from rq.job import JobStatus
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from web.apidoc import ADMIN, Responses, api
from web.catalogue import current_catalogue
from web.design_schemas import DesignEdit, DesignForm, EditPending, EditStatus
from web.editclaims import claim, release
from web.errors import RequestRefused
from web.formfields import ONE_DRAWING, refuse_repeated
from web.offload import off_loop
from web.schemas import Error
from web.searches import STATUS_FROM_RQ, SearchStatus, fetch_job
from web.submissions import (
    check_capacity,
    discard_uploads,
    read_original,
    require_multipart,
    store_uploads,
)
from worker.core.bank import BankError
from worker.core.catalogue import DESIGN_NAME, ColumnValueError, check_column_values
from worker.core.contract import SIDES
from worker.core.queueing import (
    ADD_DESIGN_FUNC,
    EDIT_FUNCS,
    REMOVE_DESIGN_FUNC,
    upload_name,
    wait_until_done,
)
from worker.core.readcache import read_manifest_cached

bp = Blueprint("designs", __name__)
EDIT_WAIT_S = 60
EDIT_ID = {"edit_id": "the id a 202 returned (32 lowercase hex digits)"}


def _authorise() -> None:
    """403 while editing is off; 401 (with a Bearer challenge) unless the request carries
    exactly `Authorization: Bearer <ADMIN_TOKEN>` (the scheme's case aside, RFC 9110)."""
    token = current_app.config["SETTINGS"].admin_token
    if not token:
        abort(403, description="catalogue editing is disabled: set ADMIN_TOKEN on the server")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized("a valid 'Authorization: Bearer <token>' header is required",
                           www_authenticate=WWWAuthenticate("bearer"))


# a worker's refusals that pass, so that a client knows to retry (the rest: 422 edit_failed)
PASSING = {"CatalogueBusy": "catalogue_busy",  # a build or another edit held the lock 120 s
           "BankError": "no_index",  # the index no longer matches pairs.csv: `make index`
           "AbandonedJobError": "edit_lost"}  # its worker stopped (orphans: EDIT_LOST, _UNSURE)


def edit_refusal(meta: dict) -> RequestRefused:
    """What a failed edit's request answers, from its job's meta (`record_error`'s)."""
    message = meta.get("error") or "the edit failed"
    if (reason := PASSING.get(meta.get("error_type"))) is not None:
        return RequestRefused(503, reason, message, retry_after=60)
    return RequestRefused(422, "edit_failed", message)


def _edit_responses(done: int, done_text: str, **more) -> Responses:
    """What both edits answer: done, still running, refused."""
    return Responses(**{f"HTTP_{done}": (DesignEdit, done_text)}, **more,
                     HTTP_202=(EditPending, f"not yet {done_text} after {EDIT_WAIT_S} s"),
                     HTTP_401=(Error, "no or a wrong bearer token (`unauthorized`)"),
                     HTTP_403=(Error, "editing is disabled: no ADMIN_TOKEN on the server"),
                     HTTP_503=(Error, "no index or one to rebuild (`no_index`), a build or "
                                      "another edit holding the catalogue (`catalogue_busy`), "
                                      "the worker stopped during the edit (`edit_lost`), "
                                      "no worker, a full queue, no Redis or no room to store "
                                      "the upload (`storage_unavailable`)"))


def _names() -> list[str]:
    try:
        return read_manifest_cached(current_app.config["SETTINGS"].features_dir).get("names", [])
    except BankError as exc:
        raise RequestRefused(503, "no_index", str(exc), retry_after=60) from None


def _run(func: str, kwargs: dict, done_status: int, edit_id: str,
         uploads: dict[str, bytes] | None = None):
    """Store `uploads`, enqueue an edit job (`edit_id`, claimed on `kwargs["name"]`) and wait
    a while for it. Until it is enqueued a failure drops the uploads and the claim; after, the
    job owns them (a failed wait leaves it to run)."""
    settings = current_app.config["SETTINGS"]
    queue = current_app.extensions["queue"]
    try:
        store_uploads(uploads or {})
        job = queue.enqueue(func, kwargs=kwargs, job_id=edit_id,
                            job_timeout=settings.edit_timeout,
                            result_ttl=settings.result_ttl, failure_ttl=settings.result_ttl)
    except BaseException:
        discard_uploads(list(uploads or {}))
        release(kwargs["name"], edit_id)
        raise
    status = wait_until_done(queue.connection, job, EDIT_WAIT_S)
    if status == JobStatus.FINISHED:
        return jsonify(job.return_value()), done_status
    if status == JobStatus.FAILED:
        job.refresh()
        raise edit_refusal(job.meta)
    if status not in (JobStatus.QUEUED, JobStatus.STARTED):  # gone, stopped or cancelled
        raise RequestRefused(422, "edit_failed", "the edit's job ended without an outcome "
                             f"({getattr(status, 'value', 'lost')}); nothing was changed "
                             "unless the catalogue says so: check it, then try again")
    url = url_for("designs.get_edit", edit_id=job.id)
    return jsonify(id=job.id, status=status.value, url=url), 202, {"Location": url}


@bp.get("/api/edits/<edit_id>")
@api.validate(path_parameter_descriptions=EDIT_ID, tags=["catalogue"], operation_id="getEdit",
              security=ADMIN, skip_validation=True, resp=Responses(
                  HTTP_200=(EditStatus, "the edit's state, and its outcome once ended"),
                  HTTP_401=(Error, "no or a wrong bearer token (`unauthorized`)"),
                  HTTP_403=(Error, "editing is disabled: no ADMIN_TOKEN on the server"),
                  HTTP_404=(Error, "no such edit (unknown or expired id)"),
                  HTTP_503=(Error, "Redis is unreachable (`queue_unavailable`) or full "
                                   "(`redis_full`)")))
def get_edit(edit_id: str):
    """A catalogue edit that was still under way when its request answered 202"""
    _authorise()
    job = fetch_job(edit_id, EDIT_FUNCS)
    if job is None:
        abort(404, description="no such edit (unknown or expired id)")
    status = STATUS_FROM_RQ.get(job.get_status(), SearchStatus.FAILED)  # None: expired
    if status == SearchStatus.FINISHED:
        return jsonify(id=edit_id, status=status, result=job.return_value())
    if status == SearchStatus.FAILED:
        refusal = edit_refusal(job.meta)
        return jsonify(id=edit_id, status=status, error=refusal.message, reason=refusal.error,
                       retry=refusal.status == 503)
    return jsonify(id=edit_id, status=status)


def _column_values() -> dict[str, str]:
    """The new design's values in the catalogue's further columns: every form field but its
    name (and a side sent as text, refused below as missing); 400 as `check_column_values`
    refuses (the worker checks again, against the catalogue it edits)."""
    given = {column: request.form.getlist(column) for column in request.form
             if column not in ("name", *SIDES)}
    for column, values in given.items():
        if len(values) > 1:
            raise RequestRefused(400, "invalid_column_value", f"{column} was given more than once")
    values = {column: values[0].strip() for column, values in given.items()}
    catalogue = current_catalogue()
    if catalogue is not None:  # unreadable for now: the worker's check refuses
        try:
            check_column_values(list(catalogue.extra), [values])
        except ColumnValueError as exc:
            raise RequestRefused(400, exc.code, str(exc)) from None
    return values


@bp.post("/api/designs")
@api.validate(form=DesignForm, tags=["catalogue"], operation_id="addDesign", security=ADMIN,
              skip_validation=True, resp=_edit_responses(
                  201, "added", HTTP_400=(Error, "a bad name, a missing or empty image, "
                                                 "one sent twice (`invalid_front`, "
                                                 "`invalid_back`), a name or value sent as a "
                                                 "file, a "
                                                 "column the catalogue lacks (`unknown_column`) "
                                                 "or a bad value in one "
                                                 "(`invalid_column_value`), or a body not "
                                                 "multipart/form-data (`not_multipart`) or cut "
                                                 "short (`malformed_form`)"),
                  HTTP_409=(Error, "a design of that name exists (`duplicate_name`), or an "
                                   "edit of it is under way (`edit_pending`, its URL in the "
                                   "message)"),
                  HTTP_413=(Error, "too large (`too_large`, `too_many_pixels`)"),
                  HTTP_415=(Error, "an image is not a JPEG or PNG (`unsupported_format`)"),
                  HTTP_422=(Error, "an image is corrupt, too small, of extreme aspect ratio or "
                                   "animated, or the edit failed (`edit_failed`)")))
def add_design():
    """Add a design to the catalogue (no re-index)"""
    _authorise()
    require_multipart()
    for field in request.files:  # as searches and checks refuse them
        if field not in SIDES:  # the name, a column's value: text (curl -F season=SS26, no @)
            raise RequestRefused(400, "invalid_name" if field == "name" else "invalid_column_value",
                                 f"{field} came as a file, not a text field (curl: -F "
                                 f"{field}=value, without the @)")
    refuse_repeated(request.files, SIDES, ONE_DRAWING)
    name = request.form.get("name", "").strip()
    if not DESIGN_NAME.fullmatch(name):
        raise RequestRefused(400, "invalid_name", "name must be 1-100 ASCII letters (A-Z, "
                              "a-z), digits, '.', '_' or '-', starting with a letter or digit")
    if name in _names():
        raise RequestRefused(409, "duplicate_name", f"a design named {name!r} already exists")
    columns = _column_values()
    settings = current_app.config["SETTINGS"]
    for side in SIDES:
        if side not in request.files:
            raise RequestRefused(400, f"missing_{side}", f"the {side} image is missing")
    sides = dict(zip(SIDES, off_loop([partial(read_original, request.files[side], side,
                                              settings.max_image_pixels) for side in SIDES]),
                     strict=True))
    check_capacity(settings)  # before anything is stored: a refused edit leaves no upload
    edit_id = claim(name)
    uploads = {side: upload_name(edit_id, side, image_format)
               for side, (_, image_format) in sides.items()}
    return _run(ADD_DESIGN_FUNC, {"name": name, **uploads, "columns": columns}, 201, edit_id,
                {uploads[side]: data for side, (data, _) in sides.items()})


@bp.delete("/api/designs/<path:name>")  # a hand-written pairs.csv may name "SS26/jkt-01"
@api.validate(tags=["catalogue"], operation_id="removeDesign", security=ADMIN,
              path_parameter_descriptions={"name": "the design's name"}, skip_validation=True,
              resp=_edit_responses(200, "removed", HTTP_404=(Error, "no such design"),
                                   HTTP_409=(Error, "an edit of it is under way "
                                                    "(`edit_pending`, its URL in the message)"),
                                   HTTP_422=(Error, "the edit failed (`edit_failed`)")))
def delete_design(name: str):
    """Remove a design from the catalogue"""
    _authorise()
    edit_id = claim(name)  # first: a name whose add is under way is 409 edit_pending, not 404
    try:
        if name not in _names():
            abort(404, description=f"no design named {name!r}")
        check_capacity(current_app.config["SETTINGS"])
    except BaseException:  # refused before its job: a retry must not meet this claim
        release(name, edit_id)
        raise
    return _run(REMOVE_DESIGN_FUNC, {"name": name}, 200, edit_id)
