"""Every refusal is a 4xx (or 503) with {"error", "message"}; HTML pages get a readable page."""

from __future__ import annotations

from flask import Flask, current_app, jsonify, make_response, render_template, request
from redis.exceptions import OutOfMemoryError, RedisError
from werkzeug.exceptions import ClientDisconnected, HTTPException

from web.pacing import SlowBody
from worker.core.metrics import REFUSALS, count


class RequestRefused(Exception):
    """A request we refuse (a search, an edit): HTTP status, a short code and a message for
    people, and Retry-After for a refusal that passes."""

    def __init__(self, status: int, error: str, message: str, retry_after: int | None = None,
                 side: str | None = None):
        super().__init__(message)
        self.status, self.error, self.message, self.retry_after = status, error, message, retry_after
        self.side = side  # the drawing refused, where one side's was


# the 503s of a service short of capacity, counted for /metrics (pairsearch_refusals_total)
COUNTED_REFUSALS = ("queue_full", "no_worker", "catalogue_busy")
QUEUE_UNAVAILABLE = "the search service is briefly unavailable; please retry shortly"


REDIS_FULL = ("the service cannot take new work right now: its store is full until older "
              "results expire (or its operator raises Redis's memory limit); please retry later")


def redis_full(exc: BaseException | None) -> bool:
    """Redis refused a write at its `maxmemory` (it never evicts: results are not dropped)."""
    return isinstance(exc, OutOfMemoryError)


def queue_unavailable(exc: BaseException | None = None) -> RequestRefused:
    """503 `queue_unavailable` (Redis away: seconds), or `redis_full` (a full Redis: minutes)."""
    if redis_full(exc):
        return RequestRefused(503, "redis_full", REDIS_FULL, retry_after=60)
    return RequestRefused(503, "queue_unavailable", QUEUE_UNAVAILABLE, retry_after=5)


def storage_unavailable() -> RequestRefused:
    """An upload that could not be stored (a full disk, a quota, Redis refusing a write)."""
    return RequestRefused(503, "storage_unavailable", "the upload could not be stored right "
                          "now; please retry shortly", retry_after=30)


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz", "/readyz", "/metrics",
                                                                 "/openapi.json")


def error_response(status: int, error: str, message: str, retry_after: int | None = None):
    message = current_app.config["SETTINGS"].without_paths(message)  # a BankError's, an OSError's
    if wants_json():
        response = jsonify(error=error, message=message)
    else:
        response = make_response(render_template("error.html", status=status, message=message))
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    if error in COUNTED_REFUSALS:  # each read Redis a moment ago: the count is no new wait
        count(current_app.extensions["redis"], REFUSALS, error)
    return response


COLLECTION_ENDPOINTS = ("checks.create_check", "pages.submit_check_form")


def upload_limit_words(settings, collection: bool) -> str:
    """What a 413 of a request's size says (nginx's JSON says the same; its page, shorter)."""
    if collection:
        return (f"the collection is too large; the limit is {settings.max_check_upload_mb} MB "
                "a ZIP (split the collection, or make its drawings smaller)")
    return (f"the upload is too large; the limit is {settings.max_upload_mb} MB a request "
            "(a search's two drawings, or a design added to the catalogue)")


def register(app: Flask) -> None:
    @app.errorhandler(RequestRefused)
    def refused(exc: RequestRefused):
        return error_response(exc.status, exc.error, exc.message, exc.retry_after)

    @app.errorhandler(RedisError)
    def redis_error(exc: RedisError):
        app.logger.warning("redis unavailable: %s", exc)
        return refused(queue_unavailable(exc))

    @app.before_request
    def collection_limit():
        """A collection is one request: its ZIP gets MAX_CHECK_UPLOAD_MB, not a search's MB."""
        if request.endpoint in COLLECTION_ENDPOINTS:
            request.max_content_length = app.config["SETTINGS"].max_check_upload_bytes

    @app.errorhandler(413)
    def too_large(exc):
        """Past MAX_UPLOAD_MB (MAX_CHECK_UPLOAD_MB for a collection), or (within it) past
        werkzeug's limits on a form's parts."""
        length = request.content_length
        if length is not None and length <= (request.max_content_length or 0):
            return error_response(413, "too_large", "the form has too many fields, or a text "
                                  "field is too long")
        return error_response(413, "too_large", upload_limit_words(
            app.config["SETTINGS"], request.endpoint in COLLECTION_ENDPOINTS))

    @app.errorhandler(ClientDisconnected)
    def client_gone(exc: ClientDisconnected):
        """The body stopped coming: the client left, was silent for CLIENT_TIMEOUT s, or sent
        too slowly (werkzeug raises this from the input's SlowBody)."""
        if isinstance(exc.__context__, SlowBody):
            return error_response(408, "request_timeout", str(exc.__context__))
        return error_response(408, "request_timeout", "the request body stopped arriving")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        """Our body, the exception's headers (Allow of a 405, WWW-Authenticate of a 401)."""
        response = error_response(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"),
                                  exc.description or exc.name)
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers.add(name, value)
        return response
