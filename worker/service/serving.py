"""The worker's loop over its RQ worker: a Redis outage that ends RQ's loop makes a fresh
registration once Redis is back, the model kept loaded."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError
from rq.exceptions import StopRequested

from worker.core.settings import Settings
from worker.service.engine import Engine
from worker.service.process import make_worker

log = logging.getLogger(__name__)

QUICK_FAILURE_S = 5.0  # a registration that failed sooner than this is retried after a pause
MAX_PAUSE_S = 30.0  # the longest such pause (doubling from 1 s)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def wait_for_redis(connection: Redis, stopped: Callable[[], bool] = lambda: False,
                   pause: float = 1.0) -> bool:
    """Block until Redis answers again (True), saying so once, or until `stopped()` (False)."""
    log.warning("lost the connection to Redis; waiting for it to come back")
    while not stopped():
        try:
            if connection.ping():
                log.info("Redis is back; serving again")
                return True
        except RedisError:
            _pause(pause, stopped)
    return False


def _pause(seconds: float, stopped: Callable[[], bool]) -> None:
    """Sleep `seconds`, ending early once `stopped()`."""
    deadline = time.monotonic() + seconds
    while not stopped() and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(0.2, left))


def serve(settings: Settings, engine: Engine, connection: Redis, name: str | None = None,
          burst: bool = False) -> None:
    """Serve the queue until stopped. RQ's worker rides out a Redis outage while it waits for
    a job, and quits on one anywhere else (a job's bookkeeping, start-up, teardown); the
    model stays loaded here, so when Redis comes back a fresh registration serves at once,
    under a new name: a random one, or the name given with `~N` after the Nth outage (a
    restarted Redis may keep the last registration, and what it had claimed or started is
    recovered as any gone worker's). The signal handlers found are restored on return."""
    found = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        _serve(settings, engine, connection, name, burst)
    except StopRequested:  # RQ's handler, raised outside its loop (teardown): a stop all the same
        log.info("stopping on request")
    finally:
        for signum, handler in found.items():
            signal.signal(signum, handler)


def _stop_listening(worker) -> None:
    """End the worker's command listener (a thread and a subscribed connection): RQ ends it
    in its teardown only after unregistering, which a Redis away made fail, so each outage
    that ended a loop left one behind, subscribed again once Redis was back."""
    thread = getattr(worker, "pubsub_thread", None)
    if thread is not None:
        thread.stop()
        thread.join(5)
    if (pubsub := getattr(worker, "pubsub", None)) is not None:
        pubsub.close()  # drops its connection without a command to Redis


def _serve(settings: Settings, engine: Engine, connection: Redis, name: str | None,
           burst: bool) -> None:
    given, outages, pause = name, 0, 0.0
    seen: list[int] = []  # stop signals between two RQ workers (each worker notes its own)
    while not seen:
        worker, started = None, time.monotonic()
        try:  # building it names its connection (CLIENT SETNAME): Redis may be away already
            worker = make_worker(settings, engine, connection, name)
            if not seen:
                worker.work(burst=burst, with_scheduler=False)
        except RedisError as exc:  # raised by RQ's own start-up or teardown while Redis is away
            if burst and worker is None:  # a burst that never started says why
                raise
            log.warning("worker stopped on a Redis error: %s", exc)
        for signum in STOP_SIGNALS:  # RQ's, still installed, would raise out of what follows
            signal.signal(signum, lambda signum, frame: seen.append(signum))
        if burst or seen or (worker is not None and worker.stop_signalled):  # a stop, or done
            return
        # a Redis that answers PING but refuses writes (out of memory, its disk full, read-only)
        # fails each new registration at once: wait longer each time instead of spinning
        quick = time.monotonic() - started < QUICK_FAILURE_S
        pause = min(MAX_PAUSE_S, max(1.0, 2 * pause)) if quick else 0.0
        _pause(pause, lambda: bool(seen))
        if seen or not wait_for_redis(connection, lambda: bool(seen)):
            break
        if worker is not None:
            _stop_listening(worker)
            try:
                worker.register_death()  # /readyz and /metrics stop counting it at once
            except RedisError:
                pass  # gone again: its registration expires by itself
        outages += 1
        name = None if given is None else f"{given}~{outages}"
    log.info("stopping on request")
