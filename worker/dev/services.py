"""Starting real worker processes with a given Settings: for the tests and the benchmarks.

A child process reads its settings from the environment (`Settings.from_env`), so
`service_env` writes every field of a Settings object as its env var (the upper-cased
field name) on top of this process's environment.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis
from rq import Queue

from worker.core.queueing import registered_workers
from worker.core.settings import REPO_ROOT, Settings

GUNICORN_CONF = REPO_ROOT / "gunicorn.conf.py"  # every web server setting, in one place


def env_value(value: object) -> str:
    """A setting as `Settings.from_env` reads it back: bools as 1/0, the rest as str."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def service_env(settings: Settings) -> dict[str, str]:
    """This process's environment with every field of `settings` as its env var."""
    fields = {f.name.upper(): env_value(getattr(settings, f.name))
              for f in dataclasses.fields(settings)}
    return {**os.environ, **fields}


def start_worker(settings: Settings, *args: str, log: Path | None = None,
                 cwd: Path | None = None, prefix: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m worker *args` with `settings` (behind `prefix`, e.g. `taskset -c 0`; `env`
    added to its environment). Its output is appended to `log` when given; otherwise stdout
    is dropped and stderr kept on a pipe (text) for the caller to read."""
    cmd = [*prefix, sys.executable, "-m", "worker", *args]
    environment = {**service_env(settings), **(env or {})}
    if log is None:
        return subprocess.Popen(cmd, env=environment, cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, env=environment, cwd=cwd, stdout=out,
                                stderr=subprocess.STDOUT)


def web_command(bind: str) -> list[str]:
    """gunicorn's arguments (after `python`) as `make run`, docker compose and the load tests
    start the web: everything but the address is in gunicorn.conf.py."""
    return ["-m", "gunicorn", "-c", str(GUNICORN_CONF), "--bind", bind, "web:create_app()"]


def start_web(settings: Settings, port: int, log: Path | None = None) -> subprocess.Popen:
    """The web app under gunicorn on 127.0.0.1:`port`, as `make run` starts it, with `settings`;
    its output is appended to `log` when given, else dropped."""
    cmd = [sys.executable, *web_command(f"127.0.0.1:{port}")]
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(cmd, env=service_env(settings), cwd=REPO_ROOT, stdout=out,
                                stderr=subprocess.STDOUT)
    finally:
        if log is not None:
            out.close()


def search_queue(settings: Settings) -> Queue:
    """The RQ queue the web puts searches on and the workers take them from."""
    return Queue(settings.queue_name, connection=Redis.from_url(settings.redis_url))


def wait_for_workers(settings: Settings, count: int = 1, timeout: float = 120,
                     queue_name: str | None = None) -> None:
    """Until at least `count` workers are registered on the search queue (or `queue_name`);
    TimeoutError after `timeout` s."""
    queue = search_queue(settings) if queue_name is None else \
        Queue(queue_name, connection=Redis.from_url(settings.redis_url))
    deadline = time.monotonic() + timeout
    while registered_workers(queue) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} worker(s) registered within {timeout} s")
        time.sleep(0.2)
