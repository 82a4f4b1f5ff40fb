"""A request's CPU-bound image work (decoding, checking and re-encoding an upload) run off the
gevent loop, on at most OFFLOAD_THREADS native threads per web process.

Pillow releases the GIL while it decodes, resizes and encodes, so while an upload is handled
the process's other requests (long polls, health checks, pages) are answered, and the two
sides of a pair use both cores. Outside gunicorn's gevent worker (Flask's test client, a
threaded server) the work runs in the calling thread, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

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


def _outcome(call: Callable[[], T]) -> tuple[bool, T | Exception]:
    """(True, the call's result) or (False, its exception)."""
    try:
        return True, call()
    except Exception as exc:  # raised again by off_loop, in the request
        return False, exc
