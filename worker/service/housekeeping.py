"""Whether a worker is alive: by its process on this host, by its registration and heartbeat
on any machine (its jobs: worker.service.orphans; jobs popped and never started:
worker.service.dropped)."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import UTC, datetime

from redis import Redis
from rq import Worker
from rq.job import Job
from rq.utils import utcparse

log = logging.getLogger(__name__)
HEARTBEAT_GRACE_S = 60  # beyond JOB_TIMEOUT: a worker this long silent is gone


def worker_name() -> str:
    """`host.pid.random`: lets a restarted worker recognise searches its dead predecessor held."""
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


def dead_local_worker(name: str, own_name: str | None) -> bool:
    """A worker of this host that is not running: its pid is ours but its name is not (a
    restarted container's worker is pid 1 again), or no process has its pid."""
    host, pid, _ = (name.rsplit(".", 2) + ["", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return own_name is not None and name != own_name
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _silent_worker(connection: Redis, name: str, job_timeout: int) -> bool:
    """A worker on any machine that is gone: its registration expired or was removed, or it
    has sent no heartbeat for longer than a search may run (a worker heartbeats when it
    takes a search, and between searches). Measured by Redis's clock, not this machine's:
    a step of this one's (NTP, a VM resumed) failed the running searches of live workers.
    The workers' clocks write the heartbeats: they must agree with Redis's within the grace."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.hget(Worker.redis_worker_namespace_prefix + name, "last_heartbeat")
        pipe.time()
        beat, (seconds, micros) = pipe.execute()
    if beat is None:
        return True
    try:
        last = utcparse(beat.decode())
    except ValueError:
        return False
    redis_now = datetime.fromtimestamp(seconds + micros / 1e6, UTC)
    return (redis_now - last).total_seconds() > job_timeout + HEARTBEAT_GRACE_S


def gone(connection: Redis, name: str, own_name: str | None, job_timeout: int) -> bool:
    """Worker `name` is not running (this host: its process; any machine: its registration
    or heartbeat)."""
    return dead_local_worker(name, own_name) or _silent_worker(connection, name, job_timeout)


def is_orphaned(job: Job, own_name: str | None, job_timeout: int) -> bool:
    name = job.worker_name
    if not name or name == own_name:
        return False
    own_timeout = max(job_timeout, int(job.timeout or 0))  # an edit may run longer than a search
    return gone(job.connection, name, own_name, own_timeout)


