"""`e2e`: the service it measures, started in a temporary directory (redis, gunicorn, workers)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.perf.report import emit, fmt
from worker.core.queueing import registered_workers
from worker.core.settings import REPO_ROOT, Settings
from worker.dev.processes import free_port, start_redis, stop_process
from worker.dev.services import search_queue, service_env, start_worker, web_command


def spawn(cmd: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(list(cmd), env=env, cwd=REPO_ROOT, stdout=out,
                                stderr=subprocess.STDOUT)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(interval)


def http_up(url: str) -> bool:
    import requests

    try:
        requests.get(url, timeout=10)
        return True
    except requests.RequestException:  # refused, or too slow while the model starts
        return False


@dataclass
class Service:
    """What one e2e run has started; `close` stops all of it."""

    tmp: Path
    settings: Settings  # what the web and the workers are started with
    logs: Path
    base: str = ""  # the web's URL, once started
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    workers: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.env = service_env(self.settings)

    def worker_count(self) -> int:
        return registered_workers(search_queue(self.settings))

    def start_worker(self) -> subprocess.Popen:
        log = self.logs / f"worker-{len(self.workers) + 1}.log"
        proc = start_worker(self.settings, log=log, cwd=REPO_ROOT)
        self.workers.append(proc)
        return proc

    def check_alive(self) -> None:
        for name, proc in [*self.procs.items(), *(("worker", w) for w in self.workers)]:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} (pid {proc.pid}) exited with {proc.returncode}")

    def close(self) -> None:
        for proc in self.workers:  # all warm shutdowns at once, then wait for each
            if proc.poll() is None:
                proc.terminate()
        for proc in self.workers:
            stop_process(proc)
        for name in ("web", "redis"):
            if name in self.procs:
                stop_process(self.procs[name])


def perf_settings(tmp: Path, redis_url: str, args: argparse.Namespace) -> Settings:
    """The environment's settings, with the run's folders, Redis and command-line choices."""
    return Settings.from_env(
        database_dir=tmp / "database", features_dir=tmp / "features",
        upload_dir=tmp / "uploads", output_dir=tmp / "output", redis_url=redis_url,
        vgg16_weights=args.weights, descriptor=args.descriptor, precision=args.precision,
        queue_name=args.queue_name, require_worker=True, max_queue_length=1000,
        storage=args.storage, batch_size=args.batch_size)


@contextmanager
def started_service(args: argparse.Namespace) -> Iterator[Service]:
    """A temporary directory and redis-server on a free port; the logs' tails on an error."""
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="perf-e2e-") if args.keep else
                   stack.enter_context(tempfile.TemporaryDirectory(prefix="perf-e2e-")))
        logs = tmp / "logs"
        logs.mkdir()
        port = free_port()
        service = Service(tmp, perf_settings(tmp, f"redis://127.0.0.1:{port}/0", args), logs)
        stack.callback(service.close)
        service.procs["redis"] = start_redis(port, tmp / "redis")
        try:
            yield service
        except BaseException:
            for log in sorted(logs.glob("*.log")):
                print(f"--- {log.name} (tail)\n{tail(log)}", file=sys.stderr)
            raise
        finally:
            if args.keep:
                emit(f"\nkept {tmp}")


WEB_MODES = ("gevent", "threads")  # as `make run` serves it (gunicorn.conf.py); the older runs'


def start_web(service: Service, timeout: float, mode: str = "gevent") -> None:
    """gunicorn on a free port: `gevent` as `make run` starts it (gunicorn.conf.py, WEB_WORKERS
    gevent processes), `threads` as this benchmark did before (2 processes x 8 threads)."""
    port = free_port()
    service.base = f"http://127.0.0.1:{port}"
    bind = f"127.0.0.1:{port}"
    args = web_command(bind) if mode == "gevent" else \
        ["-m", "gunicorn", "--bind", bind, "--workers", "2", "--threads", "8", "web:create_app()"]
    service.procs["web"] = spawn([sys.executable, *args], service.env,
                                 service.logs / "gunicorn.log")

    def up() -> bool:
        service.check_alive()
        return http_up(f"{service.base}/healthz")

    wait_until(up, timeout, "gunicorn answering /healthz", interval=0.2)


def proc_ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # fields after "(comm)": state, ppid, ...


def children(pid: int) -> list[int]:
    pids = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    return [child for child in pids if proc_ppid(child) == pid]


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_rows(service: Service) -> list[list[object]]:
    """VmRSS of each worker, of gunicorn's master and workers together, of redis-server."""
    rows: list[list[object]] = []
    for i, proc in enumerate(service.workers, start=1):
        rows.append([f"worker {i}", proc.pid, fmt(rss_kb(proc.pid) / 1024)])
    web = service.procs["web"].pid
    web_pids = [web, *children(web)]
    rows.append([f"gunicorn (master + {len(web_pids) - 1} workers)", " ".join(map(str, web_pids)),
                 fmt(sum(rss_kb(pid) for pid in web_pids) / 1024)])
    redis = service.procs["redis"].pid
    rows.append(["redis-server", redis, fmt(rss_kb(redis) / 1024)])
    return rows
