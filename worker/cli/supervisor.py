"""`python -m worker.cli.supervisor`: what `make run` starts.

Redis (a local redis-server when REDIS_URL is unset, its data in .run/redis), one search
worker (restarted if it dies), and the web app under gunicorn (gevent workers,
gunicorn.conf.py) on http://127.0.0.1:5000. Ctrl-C stops them all. One at a time per folder
(.run/supervisor.lock): a second would share the first's Redis data.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from worker.cli.index import why_build
from worker.core.numerals import whole
from worker.core.settings import REPO_ROOT, InvalidSetting, Settings
from worker.dev.processes import (
    RedisServerError,
    free_port,
    port_in_use,
    start_redis,
    stop_left_redis,
    stop_process,
)
from worker.dev.services import web_command
from worker.pipeline.weights import WeightsUnavailable, resolve_weights, weights_for

RESTART_DELAY = 2.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    parent = os.getpid()
    return subprocess.Popen([sys.executable, *args], env=env, cwd=REPO_ROOT,
                            preexec_fn=lambda: _die_with(parent))


def _die_with(parent: int) -> None:
    """In the web's or the worker's process before it runs: a SIGTERM when the supervisor dies
    however it dies (killed, it left them unsupervised). Redis is left: the next run stops it."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the prctl
        os._exit(1)


def _hold_lock(run_dir: Path):
    """The open lock file of this folder's run, or None while another supervisor holds it
    (the OS drops the lock when its holder exits, however it exits)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = open(run_dir / "supervisor.lock", "w")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock


def _bindable(host: str, port: int) -> bool:
    """Whether the web could listen on host:port now (what gunicorn will try)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _prepare(settings: Settings) -> int:
    """The sample catalogue if there is none, and its index if there is none, pairs.csv
    changed since, or the worker would refuse it (`why_build`) (under the lock, so a
    second `make run` cannot build beside this one); 2 for VGG16_WEIGHTS that cannot be had."""
    try:
        resolve_weights(weights_for(settings))  # the worker would refuse them once started
    except WeightsUnavailable as exc:
        print(f"supervisor: {exc}; nothing started", file=sys.stderr)
        return 2
    steps = []
    if not settings.catalogue_csv.is_file():
        steps.append(["-m", "worker.cli.sample", "--out", str(settings.database_dir)])
    reason = "there is no catalogue yet" if steps else why_build(settings)
    if reason:
        print(f"supervisor: building the index: {reason}", file=sys.stderr)
        steps.append(["-m", "worker.cli.index", "--if-needed"])  # judged again after a build
    for step in steps:
        child = subprocess.Popen([sys.executable, *step], cwd=REPO_ROOT)
        try:
            code = child.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the child too; a build is atomic anyway
            code = child.wait()
        finally:
            stop_process(child)  # a SIGTERM to us (turned into SystemExit) stops it as well
        if code != 0:
            print(f"supervisor: `python {' '.join(step)}` stopped ({code}); nothing started",
                  file=sys.stderr)
            return code or 1
    return 0


def _port(raw: str) -> int:
    """A TCP port, else argparse's usage error naming PORT (a bad env value too: exit 2)."""
    port = whole(raw)
    if port is None or not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"PORT must be a port number from 1 to 65535, "
                                         f"got {raw[:20]!r}")
    return port


def _address(args: argparse.Namespace) -> str:
    """host:port as gunicorn reads it and a browser takes it: [::1]:5000 for an IPv6 host."""
    return f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # HOST=::1 or [::1] alike; bound and shown as [::1]:5000 (gunicorn splits ::1:5000 badly)
    parser.add_argument("--host", type=lambda h: h.strip("[]"),
                        default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=_port, default=os.environ.get("PORT", "").strip() or "5000",
                        help="the web app's port (PORT; default 5000)")
    parser.add_argument("--run-dir", type=Path, default=REPO_ROOT / ".run",
                        help="the lock, and the local Redis's data (default .run)")
    parser.add_argument("--prepare", action="store_true",
                        help="first make the sample catalogue and its index if there are none "
                             "(or index again a pairs.csv newer than the index), as `make run`")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()  # a bad setting stops here, not in a worker restarted
    except InvalidSetting as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return 2
    # the children run in the repository: DATABASE_DIR=mycat names this folder's, not theirs
    os.environ.update({name.upper(): str(value.absolute()) for name, value in vars(settings).items()
                       if isinstance(value, Path)})
    lock = _hold_lock(args.run_dir)
    if lock is None:
        print(f"supervisor: another `make run` is running from this folder (it holds "
              f"{args.run_dir / 'supervisor.lock'}); stop it first (Ctrl-C there), or run from "
              "another clone", file=sys.stderr)
        return 1
    address = _address(args)
    if not _bindable(args.host, args.port):  # before anything starts, the index build too
        print(f"supervisor: {address} is already in use (another server); stop "
              "it, or set PORT to a free port", file=sys.stderr)
        return 1
    for signum in (signal.SIGTERM, signal.SIGHUP):  # a closed terminal hangs up: as a SIGTERM
        signal.signal(signum, lambda signum, frame: sys.exit(143))  # unwinds _prepare
    try:
        if args.prepare and (code := _prepare(settings)) != 0:
            return code
    except KeyboardInterrupt:  # Ctrl-C between two steps of the build
        return 130
    return _supervise(args, dict(os.environ), lock, settings.edit_timeout + 10)


def _supervise(args: argparse.Namespace, env: dict[str, str], lock, worker_grace: float) -> int:
    """Redis (unless REDIS_URL), the web and the worker until a signal, or until Redis or the
    web stops (then everything stops, saying why); a worker that dies is started again. A
    stopping worker gets `worker_grace` s to finish its job (a catalogue edit's timeout: cut
    short, the edit is settled only at the next start), the others 20 s."""
    stopping, signalled = False, []
    foreground = _foreground()  # read now: a hung-up terminal can no longer tell

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        signalled.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # before any child starts
        signal.signal(signum, stop)
    children: list[subprocess.Popen] = []
    redis = None
    try:
        if not env.get("REDIS_URL"):
            if (left := stop_left_redis(args.run_dir / "redis")) is not None:
                print(f"supervisor: stopped redis-server {left}, left running on "
                      f"{args.run_dir / 'redis'} by an earlier run")
            port = 6379 if not port_in_use(6379) else free_port()
            redis = start_redis(port, args.run_dir / "redis")
            children.append(redis)
            env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
            print(f"supervisor: started redis-server on port {port} (append-only, "
                  f"{args.run_dir / 'redis'})")
        web = _spawn(web_command(_address(args)), env)
        worker = _spawn(["-m", "worker"], env)
        children += [web, worker]
        print(f"supervisor: web on http://{_address(args)} · Ctrl-C stops everything")
        if args.host not in ("127.0.0.1", "localhost", "::1"):  # tcsh exports HOST, say
            print(f"supervisor: HOST={args.host} is not the loopback address: the web may be "
                  "reachable from other machines", file=sys.stderr)
        while not stopping:
            time.sleep(0.5)
            if stopping:  # the web and the worker got the terminal's Ctrl-C too: not a crash
                break
            if redis is not None and redis.poll() is not None:
                print(f"supervisor: redis-server exited with {redis.returncode} (see "
                      f"{args.run_dir / 'redis' / 'redis.log'}); stopping", file=sys.stderr)
                return 1
            if web.poll() is not None:
                print(f"supervisor: web exited with {web.returncode}; stopping", file=sys.stderr)
                return 1
            if worker.poll() is not None:
                if worker.returncode == 2:  # refused to start: restarting will not help
                    print("supervisor: the worker refused to start (see above); stopping",
                          file=sys.stderr)
                    return 2
                print(f"supervisor: worker exited with {worker.returncode}; restarting",
                      file=sys.stderr)
                time.sleep(RESTART_DELAY)
                if stopping:  # a Ctrl-C meanwhile reached no new worker: none is started
                    break
                children.remove(worker)
                worker = _spawn(["-m", "worker"], env)
                children.append(worker)
        return 0
    except RedisServerError as exc:
        print(f"supervisor: {exc}; nothing else started", file=sys.stderr)
        return 1
    finally:  # worker and web first (they finish their requests), Redis last
        # the terminal's Ctrl-C or hang-up reached the web and the worker too (our process
        # group is its foreground one): a SIGTERM after it would reach a busy worker as a
        # second signal, RQ's cold stop, once more than a second had passed
        told = foreground and signalled[:1] in ([signal.SIGINT], [signal.SIGHUP])
        for child in reversed(children):
            stop_process(child, worker_grace if child.args[1:] == ["-m", "worker"] else 20.0,
                         terminate=not (told and child is not redis))
        lock.close()


def _foreground() -> bool:
    """Whether our process group (the web's and the worker's) is its terminal's foreground
    one, which a Ctrl-C or a hang-up reaches whole."""
    try:
        return os.tcgetpgrp(0) == os.getpgrp()
    except OSError:  # no terminal (a service manager, a test): a signal reaches us alone
        return False


if __name__ == "__main__":
    sys.exit(main())
