"""The pace of a request's bytes, both ways.

Responses are handed to the server in pieces: gevent gives one `sendall` one CLIENT_TIMEOUT
deadline for all its bytes, and gunicorn sends each item of a response with one `sendall`, so
a body sent whole (a check's JSON, a CSV) cut off any client reading it slower than its size
per CLIENT_TIMEOUT; a piece at a time, only a client silent for CLIENT_TIMEOUT is dropped.

A request body must come at MIN_UPLOAD_KBPS on average, CLIENT_TIMEOUT s allowed besides:
the first N bytes by CLIENT_TIMEOUT + N / MIN_UPLOAD_KBPS s after the request began, read by
read. Each read had only its own CLIENT_TIMEOUT, so a client sending a byte every few
seconds held its connection and its greenlet for as long as it liked (a few thousand such
clients, almost no bandwidth, filled every process's WEB_CONNECTIONS). Under gevent the
deadline interrupts a read (gunicorn's gathers all the bytes asked for before it returns)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Iterator

SEND_PIECE = 64 * 1024  # bytes a sendall: at 64 KiB per 30 s, a reader of 17 bit/s still keeps up
READ_ALL_GUESS = 64 * 1024  # bytes a read of a body of unknown length is taken to want


def _pieces(body: Iterable[bytes]) -> Iterator[bytes]:
    try:
        for item in body:
            view = memoryview(item)
            for start in range(0, len(view), SEND_PIECE):
                yield view[start:start + SEND_PIECE].tobytes()
    finally:  # WSGI: the server closes what the app returned; the app's close must still run
        if hasattr(body, "close"):
            body.close()


class SlowBody(TimeoutError):
    """The request body came slower than MIN_UPLOAD_KBPS (the message says so)."""


def _gevent_timeout():
    """gevent's Timeout where gevent has patched the sockets (gunicorn's worker), else None."""
    try:
        from gevent import Timeout, monkey
    except ImportError:
        return None
    return Timeout if monkey.is_module_patched("socket") else None


class PacedInput:
    """`wsgi.input` that raises SlowBody when the bytes a read asks for (with those before
    it) are not in by `grace_s` + their number / `bytes_per_s` after the request began
    (`length`: the body's, for a read of all of it); the socket's reading side is then shut,
    so the server's discard of the unread body ends at once and the connection closes."""

    def __init__(self, raw, bytes_per_s: int, grace_s: float, length: int | None, sock=None):
        self._raw, self._rate, self._grace, self._sock = raw, bytes_per_s, grace_s, sock
        self._length, self._start, self._received = length, time.monotonic(), 0
        self._timeout = _gevent_timeout()

    def _too_slow(self):
        elapsed = time.monotonic() - self._start
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RD)
            except OSError:  # already gone
                pass
        raise SlowBody(f"the request body came at {self._received / elapsed / 1024:.1f} KB/s, "
                       f"under the {self._rate // 1024} KB/s this server needs; send it again "
                       "over a faster connection")

    def _paced(self, read, size: int | None = None) -> bytes:
        whole = size is None or size < 0
        if self._length is None:  # what may come of it: no more than is asked, or is left
            want = READ_ALL_GUESS if whole else size
        else:
            left = self._length - self._received
            want = left if whole else min(size, left)
        due = self._start + self._grace + (self._received + want) / self._rate
        args = () if size is None else (size,)
        if self._timeout is None:
            data = read(*args)
        else:  # a read that would run past its due time is cut short there
            timer = self._timeout(max(0.0, due - time.monotonic()))
            timer.start()
            try:
                data = read(*args)
            except self._timeout as exc:
                if exc is not timer:
                    raise
                self._too_slow()
            finally:
                timer.close()
        self._received += len(data)
        if time.monotonic() > due + 1:  # (no gevent: the read ran to its end) a second's slack
            self._too_slow()
        return data

    def read(self, size: int | None = None) -> bytes:
        return self._paced(self._raw.read, size)

    def readline(self, size: int | None = None) -> bytes:
        return self._paced(self._raw.readline, size)

    def readlines(self, hint: int = -1) -> list[bytes]:  # the rest of WSGI's input interface
        lines, size = [], 0
        while (hint <= 0 or size < hint) and (line := self.readline()):
            lines.append(line)
            size += len(line)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class InPieces:
    """WSGI middleware: every response item past SEND_PIECE in pieces; a file the server can
    send by itself (`wsgi.file_wrapper`: sendfile, or its own blocks) is left to it. A body
    is read through PacedInput (`min_bytes_per_s` 0: any pace)."""

    def __init__(self, app, min_bytes_per_s: int = 0, grace_s: float = 30):
        self.app, self.min_bytes_per_s, self.grace_s = app, min_bytes_per_s, grace_s

    def __call__(self, environ, start_response):
        if self.min_bytes_per_s and environ.get("wsgi.input") is not None:
            length = environ.get("CONTENT_LENGTH", "")
            environ["wsgi.input"] = PacedInput(
                environ["wsgi.input"], self.min_bytes_per_s, self.grace_s,
                int(length) if length.isdigit() else None, environ.get("gunicorn.socket"))
        body = self.app(environ, start_response)
        wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(wrapper, type) and isinstance(body, wrapper):
            return body
        return _pieces(body)
