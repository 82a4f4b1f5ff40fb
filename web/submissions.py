"""Turning a multipart request into a queued search: validate, store, enqueue."""

from __future__ import annotations

import socket
import uuid
from functools import partial
from tempfile import SpooledTemporaryFile
from typing import NamedTuple

from flask import Request, current_app, request
from pydantic import ValidationError
from redis.exceptions import RedisError
from werkzeug.datastructures import FileStorage, ImmutableMultiDict
from werkzeug.exceptions import ClientDisconnected

from web.catalogue import check_request_filters
from web.errors import RequestRefused, queue_unavailable, storage_unavailable
from web.formfields import (
    ONE_DRAWING,
    refuse_drawing_as_text,
    refuse_options_as_files,
    refuse_repeated,
    sent,
    what_came,
)
from web.offload import off_loop
from web.resultcache import cache_key, copy_search, finished_search, remember_search
from web.searches import SearchStatus
from worker.core.contract import SIDES, SearchOptions, SearchRequest, problems
from worker.core.images import STORED_FORMAT, Box, ImageRejected, stored_form
from worker.core.queueing import enqueue_search, registered_workers, upload_name

STATUS_BY_REASON = {"unsupported_format": 415, "too_many_pixels": 413}
SPOOL_BYTES = 500 * 1024  # a part held in memory up to this, as werkzeug's default does


def is_multipart(req: Request) -> bool:
    """multipart/form-data with its boundary: the only body the forms read fields from."""
    return req.mimetype == "multipart/form-data" and bool(req.mimetype_params.get("boundary"))


class FormRequest(Request):
    """Flask's request, but a multipart body that does not parse (cut short before its closing
    boundary, a part without its headers) is refused saying so: werkzeug reads it as an empty
    form, and the refusal would blame a missing drawing or field."""

    def make_form_data_parser(self):
        parser = super().make_form_data_parser()
        # its ValueError reaches _load_form_data; without a boundary require_multipart says so
        parser.silent = not is_multipart(self)
        return parser

    def _load_form_data(self) -> None:
        try:
            super()._load_form_data()
        except ValueError:  # werkzeug's words name its parser's states, not the body's fault
            # an empty form from here on: a page that shows the refusal reads request.form
            self.__dict__["form"] = self.__dict__["files"] = self.parameter_storage_class()
            raise RequestRefused(400, "malformed_form", "the multipart/form-data body is "
                                 "malformed: cut short before its closing boundary, or a part "
                                 "without its headers") from None
        except OSError as exc:  # a large part's spill into UPLOAD_DIR: a full disk, a quota
            self.__dict__["form"] = self.__dict__["files"] = self.parameter_storage_class()
            if exc.errno is None or isinstance(exc, TimeoutError | ConnectionError):
                raise ClientDisconnected() from None  # stopped (gunicorn's NoMoreData), too slow
            current_app.logger.warning("could not spill an upload to disk: %s", exc)
            raise storage_unavailable() from None

    def _get_file_stream(self, total_content_length, content_type, filename=None,
                         content_length=None):
        """A part past SPOOL_BYTES spills into UPLOAD_DIR (werkzeug's goes to TMPDIR), as an
        unnamed file (O_TMPFILE) that is gone when the request ends, even one killed."""
        folder = current_app.config["SETTINGS"].upload_dir
        return SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="rb+",
                                    dir=folder if folder.is_dir() else None)


def require_client() -> None:
    """ClientDisconnected (408, to no one) once the client has closed its connection: a long
    upload's work stops and nothing is queued for nobody. Called after the body is read, so
    the socket can hold only a pipelined request or its end (a peek of no bytes); gunicorn
    lends the socket, the dev server does not (never gone there)."""
    sock = request.environ.get("gunicorn.socket")
    if sock is None:
        return
    timeout = sock.gettimeout()
    sock.settimeout(0)  # a peek that never waits (select(2) cannot take fds past 1023)
    try:
        gone = not sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:  # open and silent: the client waits for its answer
        gone = False
    except OSError:  # reset by the peer
        gone = True
    except ValueError:  # an SSL socket takes no flags: cannot tell, so still there
        gone = False
    finally:
        sock.settimeout(timeout)
    if gone:
        current_app.logger.warning("the client %s of %s left before its upload was queued; "
                                   "nothing was queued", request.remote_addr, request.path)
        raise ClientDisconnected()


def require_multipart() -> None:
    """400 `not_multipart` unless the body is multipart/form-data with its boundary: any other
    body reads as no fields at all, and the refusal would blame a field as missing."""
    if not is_multipart(request):
        sent = request.content_type or "no Content-Type"
        raise RequestRefused(400, "not_multipart", "send the drawings and fields as "
                             f"multipart/form-data (curl -F), not {sent[:80]}")


def parse_options(form: ImmutableMultiDict) -> SearchOptions:
    """k, front_weight, sides (known|unknown), the boxes and the repeatable `filter` from the
    form (blank = default), validated by the contract and filters checked against the
    catalogue; a refusal names the field (`invalid_k`, `invalid_front_box`, `invalid_filter`)."""
    refuse_repeated(form, ("k", "front_weight", "front_box", "back_box", "sides"))
    sides = form.get("sides", "").strip()
    if sides not in ("", "known", "unknown"):
        raise RequestRefused(400, "invalid_sides",
                             f"sides must be 'known' or 'unknown', got {sides!r}")
    given = {f: form.get(f, "").strip() for f in ("k", "front_weight", "front_box", "back_box")}
    try:
        options = SearchOptions(**{f: v for f, v in given.items() if v},
                                sides_unknown=sides == "unknown", filters=form.getlist("filter"))
    except ValidationError as exc:
        field, message = problems(exc)[0]
        raise RequestRefused(400, "invalid_filter" if field == "filters" else f"invalid_{field}",
                             message) from None
    check_request_filters(options.filters)
    return options


def read_side(upload: FileStorage, side: str, max_pixels: int, box: Box | None = None) -> bytes:
    """What is stored of the upload (its pixels, bounded, as STORED_FORMAT: `stored_form`);
    RequestRefused for anything but a JPEG or PNG within the limits with something drawn (in
    `box`, when given)."""
    return _checked(upload, side, max_pixels, box)[1]


def read_original(upload: FileStorage, side: str, max_pixels: int) -> tuple[bytes, str]:
    """The upload as sent, checked as `read_side` checks it, and its format (JPEG or PNG): a
    catalogue add keeps the team's artwork at its own resolution, as the command line does."""
    data, _, image_format = _checked(upload, side, max_pixels, None)
    return data, image_format


def _checked(upload: FileStorage, side: str, max_pixels: int, box: Box | None
             ) -> tuple[bytes, bytes, str]:
    """The upload's bytes, what is stored of it, its format; RequestRefused as `read_side`."""
    data = upload.read()
    if not data:
        raise RequestRefused(400, f"empty_{side}", f"the {side} image file is empty")
    try:
        stored, info = stored_form(data, max_pixels, box)
    except ImageRejected as exc:
        if exc.reason == "blank_box":
            raise RequestRefused(400, f"invalid_{side}_box", f"{side}_box: {exc}") from None
        raise RequestRefused(STATUS_BY_REASON.get(exc.reason, 422), exc.reason,
                              f"the {side} image was refused: {exc}", side=side) from None
    return data, stored, info.format


def check_capacity(settings) -> None:
    """Refuse (503, Retry-After) when no worker would serve the search or the queue is full."""
    queue = current_app.extensions["queue"]
    if settings.require_worker and registered_workers(queue) == 0:
        raise RequestRefused(503, "no_worker", "no search worker is running right now, so the "
                              "search could not start; please retry in a minute", retry_after=30)
    if len(queue) >= settings.max_queue_length:
        raise RequestRefused(503, "queue_full", "the service is busy (too many searches "
                              "waiting); please retry shortly", retry_after=10)


def store_uploads(uploads: dict[str, bytes]) -> None:
    """Store every upload or none: on a storage error (a full disk, Redis refusing a write)
    what was stored is deleted again and the request is refused with 503."""
    storage = current_app.extensions["storage"]
    stored: list[str] = []
    try:
        for name, data in uploads.items():
            stored.append(name)  # a half-written file is removed too
            storage.put_upload(name, data)
    except (OSError, RedisError) as exc:
        discard_uploads(stored)
        current_app.logger.warning("could not store an upload: %s", exc)
        if isinstance(exc, RedisError):
            raise queue_unavailable(exc) from None
        raise storage_unavailable() from None


def discard_uploads(names: list[str]) -> None:
    """Delete uploads of a refused request (if Redis is away, its keys expire by themselves)."""
    try:
        current_app.extensions["storage"].delete_uploads(names)
    except (OSError, RedisError) as exc:
        current_app.logger.warning("could not delete uploads %s: %s", names, exc)


class Submitted(NamedTuple):
    id: str
    status: str  # a SearchStatus: "queued" for a new search, else the earlier search's


def submit_search(files: ImmutableMultiDict, form: ImmutableMultiDict) -> Submitted:
    """Validate both sides and the options, store the uploads, enqueue; return the new
    search's id (answered at once, already finished, when an identical search finished)."""
    settings = current_app.config["SETTINGS"]
    refuse_options_as_files(files)
    options = parse_options(form)
    refuse_repeated(files, SIDES, ONE_DRAWING)
    uploads = {side: files[side] for side in SIDES if sent(files.get(side))}
    if not uploads:
        raise RequestRefused(400, "missing_images", "no image was uploaded; upload the front "
                              "and the back of the design (or at least one of them)"
                              + what_came(files, form))
    refuse_drawing_as_text(form, set(uploads))
    for side in SIDES:
        if getattr(options, f"{side}_box") is not None and side not in uploads:
            raise RequestRefused(400, f"invalid_{side}_box", f"{side}_box was given but no "
                                 f"{side} image was uploaded")
    sides = dict(zip(uploads, off_loop([
        partial(read_side, upload, side, settings.max_image_pixels,
                getattr(options, f"{side}_box"))
        for side, upload in uploads.items()]), strict=True))
    key = cache_key(sides, options, settings) if settings.result_cache else None
    search_id = uuid.uuid4().hex  # 122 random bits: unguessable
    try:
        cached = finished_search(key, settings.features_dir)
        if cached is not None and copy_search(cached, search_id, settings):
            return Submitted(search_id, SearchStatus.FINISHED.value)  # a copy: its own id
        check_capacity(settings)
    except RedisError as exc:
        raise queue_unavailable(exc) from None
    except OSError as exc:  # the grid could not be copied: search as usual
        current_app.logger.warning("could not copy a cached result: %s", exc)
        check_capacity(settings)
    names = {side: upload_name(search_id, side, STORED_FORMAT) for side in sides}
    store_uploads({names[side]: data for side, data in sides.items()})
    try:
        enqueue_search(current_app.extensions["queue"], settings,
                       SearchRequest(search_id=search_id, **names, **options.model_dump()))
    except RedisError as exc:
        discard_uploads(list(names.values()))
        raise queue_unavailable(exc) from None
    remember_search(key, search_id, settings.result_ttl)
    return Submitted(search_id, SearchStatus.QUEUED.value)
