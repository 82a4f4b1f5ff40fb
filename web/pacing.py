"""Responses handed to the server in pieces: gevent gives one `sendall` one CLIENT_TIMEOUT
deadline for all its bytes, and gunicorn sends each item of a response with one `sendall`, so
a body sent whole (a check's JSON, a CSV) cut off any client reading it slower than its size
per CLIENT_TIMEOUT; a piece at a time, only a client silent for CLIENT_TIMEOUT is dropped."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

SEND_PIECE = 64 * 1024  # bytes a sendall: at 64 KiB per 30 s, a reader of 17 bit/s still keeps up


def _pieces(body: Iterable[bytes]) -> Iterator[bytes]:
    try:
        for item in body:
            view = memoryview(item)
            for start in range(0, len(view), SEND_PIECE):
                yield view[start:start + SEND_PIECE].tobytes()
    finally:  # WSGI: the server closes what the app returned; the app's close must still run
        if hasattr(body, "close"):
            body.close()


class InPieces:
    """WSGI middleware: every response item past SEND_PIECE in pieces; a file the server can
    send by itself (`wsgi.file_wrapper`: sendfile, or its own blocks) is left to it."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        body = self.app(environ, start_response)
        wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(wrapper, type) and isinstance(body, wrapper):
            return body
        return _pieces(body)
