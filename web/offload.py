"""A request's CPU-bound work (decoding, checking and re-encoding an upload; describing a
large check past its queueing) run off the gevent loop, on at most OFFLOAD_THREADS native threads per
web process.

Pillow releases the GIL while it decodes, resizes and encodes, so while an upload is handled
the process's other requests (long polls, health checks, pages) are answered, and the two
sides of a pair use both cores; pure Python work (a check's JSON, page or CSV: up to a second)
gives the loop the GIL every switch interval (5 ms), where on the loop it held it throughout.
Outside gunicorn's gevent worker (Flask's test client, a threaded server) the work runs in the
calling thread, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from flask import copy_current_request_context, g

T = TypeVar("T")
OFFLOAD_THREADS = 2  # the machine's cores; each holds at most one decoded upload at a time

_pool = None  # made in the serving process on first use (gunicorn forks before the app loads)


def _gevent_pool():
    """The process's gevent thread pool when gevent has patched threading, else None."""
    global _pool
    try:
        from gevent import monkey
    except ImportError:  # gevent is a dependency, but the app does not need it to run
        return None
    if not monkey.is_module_patched("threading"):
        return None
    if _pool is None:
        from gevent.threadpool import ThreadPool

        _pool = ThreadPool(OFFLOAD_THREADS)
    return _pool


def off_loop(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Each call's result, in order; under gevent they run side by side on the pool while
    this greenlet waits, and the first failure in order is raised once all have ended."""
    pool = _gevent_pool()
    if pool is None:
        return [call() for call in calls]
    # a call's exception comes back as a value: raised in the pool, gevent prints its
    # traceback, and a refused upload (RequestRefused) is no error of the server's
    running = [pool.spawn(_outcome, call) for call in calls]  # gevent AsyncResults
    outcomes = [result.get() for result in running]  # every call ends before one is raised
    for failure in (exc for ok, exc in outcomes if not ok):
        raise failure
    return [value for _, value in outcomes]


def in_request_off_loop(call: Callable[[], T]) -> T:
    """`call()` off the loop, in a copy of this request's context (url_for, current_app). Its
    flask.g is another's: the page's CSP nonce is carried there and back (the response's
    header must name the one its page was rendered with)."""
    nonce = g.get("csp_nonce")

    @copy_current_request_context
    def in_context() -> tuple[T, str | None]:
        if nonce is not None:
            g.csp_nonce = nonce
        return call(), g.get("csp_nonce")

    result, used = off_loop([in_context])[0]
    if used is not None:
        g.csp_nonce = used
    return result


def _outcome(call: Callable[[], T]) -> tuple[bool, T | Exception]:
    """(True, the call's result) or (False, its exception)."""
    try:
        return True, call()
    except Exception as exc:  # raised again by off_loop, in the request
        return False, exc
