"""Catalogue editing over HTTP: POST /api/designs and DELETE /api/designs/<name>.

Authenticated with `Authorization: Bearer <ADMIN_TOKEN>` (editing is off without a token).
The edit runs as a job on the search queue (the worker holds the model and serialises edits
with searches); the request waits up to EDIT_WAIT_S for it: 201/200 when done, else 202.
"""

from __future__ import annotations

import hmac
import uuid

from flask import Blueprint, abort, current_app, jsonify, request
from rq.job import JobStatus

from web.errors import RequestRefused
from web.submissions import check_capacity, read_side
from worker.core.bank import BankError, read_manifest_cached
from worker.core.catalogue import DESIGN_NAME
from worker.core.contract import SIDES
from worker.core.queueing import ADD_DESIGN_FUNC, REMOVE_DESIGN_FUNC, upload_name, wait_until_done

bp = Blueprint("designs", __name__)
EDIT_WAIT_S = 60


def _authorise() -> None:
    token = current_app.config["SETTINGS"].admin_token
    if not token:
        abort(403, description="catalogue editing is disabled: set ADMIN_TOKEN on the server")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        abort(401, description="a valid 'Authorization: Bearer <token>' header is required")


def _names() -> list[str]:
    try:
        return read_manifest_cached(current_app.config["SETTINGS"].features_dir).get("names", [])
    except BankError as exc:
        raise RequestRefused(503, "no_index", str(exc), retry_after=60) from None


def _run(func: str, kwargs: dict, done_status: int):
    """Enqueue an edit job and wait a while for it."""
    settings = current_app.config["SETTINGS"]
    queue = current_app.extensions["queue"]
    job = queue.enqueue(func, kwargs=kwargs, job_timeout=max(settings.job_timeout, 300),
                        result_ttl=settings.result_ttl, failure_ttl=settings.result_ttl)
    status = wait_until_done(queue.connection, job, EDIT_WAIT_S)
    if status == JobStatus.FINISHED:
        return jsonify(job.return_value()), done_status
    if status == JobStatus.FAILED:
        job.refresh()
        raise RequestRefused(422, "edit_failed", job.meta.get("error") or "the edit failed")
    return jsonify(id=job.id, status=getattr(status, "value", "expired")), 202


@bp.post("/api/designs")
def add_design():
    _authorise()
    name = request.form.get("name", "").strip()
    if not DESIGN_NAME.match(name):
        raise RequestRefused(400, "invalid_name", "name must be 1-100 letters, digits, '.', "
                              "'_' or '-', starting with a letter or digit")
    if name in _names():
        raise RequestRefused(409, "duplicate_name", f"a design named {name!r} already exists")
    settings = current_app.config["SETTINGS"]
    edit_id = uuid.uuid4().hex
    sides = {}
    for side in SIDES:
        if side not in request.files:
            raise RequestRefused(400, f"missing_{side}", f"the {side} image is missing")
        sides[side] = read_side(request.files[side], side, settings.max_image_pixels)
    check_capacity(settings)  # before anything is stored: a refused edit leaves no upload
    uploads = {side: upload_name(edit_id, side, fmt) for side, (_, fmt) in sides.items()}
    for side, (data, _) in sides.items():
        current_app.extensions["storage"].put_upload(uploads[side], data)
    return _run(ADD_DESIGN_FUNC, {"name": name, **uploads}, 201)


@bp.delete("/api/designs/<name>")
def delete_design(name: str):
    _authorise()
    if name not in _names():
        abort(404, description=f"no design named {name!r}")
    check_capacity(current_app.config["SETTINGS"])
    return _run(REMOVE_DESIGN_FUNC, {"name": name}, 200)
