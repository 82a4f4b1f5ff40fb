"""Faults caused for real: a worker SIGKILLed mid-search, Redis killed and restarted, an
unwritable output folder, a search past its timeout, a full queue, no worker at all."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import RedisError
from rq import Worker
from rq.command import PUBSUB_CHANNEL_TEMPLATE, send_shutdown_command
from rq.job import Job

from tests.http import post_pair
from tests.images import N_PAIRS, design_pair, variant
from web import create_app
from worker.core.settings import REPO_ROOT
from worker.core.storage import FileStorage
from worker.dev.processes import free_port, start_redis, stop_process
from worker.dev.services import service_env, start_worker, wait_for_workers

pytestmark = pytest.mark.slow
FRONT, BACK = design_pair(3, N_PAIRS)


def status_of(client, url) -> dict:
    return client.get(url).get_json()


def test_a_search_whose_worker_is_killed_is_run_again_by_the_next_worker(indexed_settings,
                                                                         redis, indexed_client):
    """SIGKILL while a search runs (an OOM kill, a deploy): the next worker to start finds the
    dead worker's search (same host, pid gone), queues it again at the head, and runs it."""
    worker = start_worker(indexed_settings)
    try:
        wait_for_workers(indexed_settings)
        killed_url = None
        for attempt in range(8):  # catch one search while it is running
            url = post_pair(indexed_client, variant(FRONT, attempt), BACK, k=100).get_json()["url"]
            deadline = time.monotonic() + 30
            while status_of(indexed_client, url)["status"] == "queued" \
                    and time.monotonic() < deadline:
                time.sleep(0.002)
            if status_of(indexed_client, url)["status"] == "started":
                os.kill(worker.pid, signal.SIGKILL)
                worker.wait()
                killed_url = url
                break
        assert killed_url, "never caught a search in the 'started' state"
    finally:
        stop_process(worker)
    assert status_of(indexed_client, killed_url)["status"] == "started"
    next_url = post_pair(indexed_client, FRONT, BACK).get_json()["url"]
    restarted = start_worker(indexed_settings, "--burst")
    try:  # drained as it runs: a full stderr pipe would hold the worker until the timeout
        _, err = restarted.communicate(timeout=180)
    finally:
        stop_process(restarted)
    assert restarted.returncode == 0, err[-2000:]
    killed = status_of(indexed_client, killed_url)
    assert killed["status"] == "finished" and killed["k"] == 100 and killed["results"], killed
    assert indexed_client.get(killed["image_url"]).status_code == 200
    assert not [p for p in indexed_settings.output_dir.iterdir() if p.name.startswith(".")]
    assert status_of(indexed_client, next_url)["status"] == "finished"
    assert list(indexed_settings.upload_dir.iterdir()) == []  # both searches' uploads let go


def _workers_of(pid: int) -> list[int]:
    """The child processes of `pid` that run `python -m worker`."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    found = []
    for child in map(int, children):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if argv[1:3] == [b"-m", b"worker"]:
            found.append(child)
    return found


def test_make_runs_supervisor_starts_a_worker_that_dies_again(indexed_settings, redis,
                                                                indexed_client, tmp_path):
    """`make run`'s supervisor (an OOM kill of its worker): a new worker is started and serves
    searches; Ctrl-C then stops the web and the worker."""
    port = free_port()
    log = tmp_path / "supervisor.log"
    with log.open("wb") as out:  # REDIS_URL set: the tests' Redis, no redis-server of its own
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "worker.cli.supervisor", "--port", str(port), "--run-dir",
             str(tmp_path / "run")], env=service_env(indexed_settings), cwd=REPO_ROOT,
            stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)  # not the terminal's group: a SIGINT reaches it alone
    try:
        wait_for_workers(indexed_settings)
        (first,) = _workers_of(supervisor.pid)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while not [pid for pid in _workers_of(supervisor.pid) if pid != first]:
            assert time.monotonic() < deadline and supervisor.poll() is None, log.read_text()
            time.sleep(0.2)
        (second,) = _workers_of(supervisor.pid)
        url = post_pair(indexed_client, FRONT, BACK).get_json()["url"]
        deadline = time.monotonic() + 120
        while status_of(indexed_client, url)["status"] in ("queued", "started"):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert status_of(indexed_client, url)["status"] == "finished"
        assert "worker exited with -9; restarting" in log.read_text()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            assert answer.status == 200  # the web it started still answers
    finally:
        supervisor.send_signal(signal.SIGINT)
        code = supervisor.wait(timeout=60)
    assert code == 0, log.read_text()
    with pytest.raises(ProcessLookupError):  # stopped with it, not left behind
        os.kill(second, 0)


def _children_of(pid: int) -> dict[int, str]:
    """{child pid: its command line}, of the live children of `pid`."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return {}
    found = {}
    for child in map(int, children):
        try:
            found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except FileNotFoundError:
            continue
    return found


def _supervisor_with_its_redis(settings, run_dir: Path, log: Path, cwd: Path = REPO_ROOT,
                               **env_values: str):
    """`make run`'s supervisor with REDIS_URL unset (its own redis-server), started in `cwd`
    with `env_values` besides; (it, its children) once it has started them all."""
    env = {k: v for k, v in service_env(settings).items() if k != "REDIS_URL"} | env_values
    with log.open("wb") as out:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "worker.cli.supervisor", "--port", str(free_port()),
             "--run-dir", str(run_dir)], env=env, cwd=cwd, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)  # its own group, as a terminal's
    deadline = time.monotonic() + 60
    while "Ctrl-C stops everything" not in log.read_text():
        assert time.monotonic() < deadline and supervisor.poll() is None, log.read_text()
        time.sleep(0.1)
    children = _children_of(supervisor.pid)
    assert len(children) == 3 and sum("redis-server" in c for c in children.values()) == 1, \
        children
    return supervisor, children


def _gone(pids) -> bool:
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_make_run_stops_everything_when_its_redis_dies_or_its_terminal_hangs_up(
        indexed_settings, tmp_path):
    """Its Redis killed (OOM, a full disk): the run stops saying so, instead of serving 503s
    with no word; a hang-up (the terminal closed, SSH lost) stops the web, the worker and
    Redis as Ctrl-C does (gunicorn took it as 'reload' and lived on, Redis with it); a
    redis-server left running on the folder by a run killed outright is stopped first."""
    run_dir, log = tmp_path / "run", tmp_path / "supervisor.log"
    supervisor, children = _supervisor_with_its_redis(indexed_settings, run_dir, log)
    try:
        (redis_pid,) = [pid for pid, argv in children.items() if "redis-server" in argv]
        os.kill(redis_pid, signal.SIGKILL)
        assert supervisor.wait(timeout=60) == 1, log.read_text()
    finally:
        stop_process(supervisor)
    assert "redis-server exited with -9" in log.read_text() and _gone(children), log.read_text()

    left = start_redis(free_port(), run_dir / "redis")  # as a run killed outright leaves it
    supervisor, children = _supervisor_with_its_redis(indexed_settings, run_dir, log)
    try:
        assert left.wait(timeout=30) is not None  # stopped before the new one started
        assert f"stopped redis-server {left.pid}, left running" in log.read_text()
        os.killpg(supervisor.pid, signal.SIGHUP)  # the hang-up reaches the whole group
        assert supervisor.wait(timeout=60) == 0, log.read_text()
    finally:
        stop_process(supervisor)
        stop_process(left)
    assert _gone(children), children


def test_a_supervisor_killed_outright_takes_the_web_and_the_worker_with_it(indexed_settings,
                                                                         tmp_path):
    """`make run`'s supervisor SIGKILLed (the OOM killer, `kill -9`): the web and the worker
    served on unsupervised, and the next run's Ctrl-C never stopped them. (Started from
    another folder with FEATURES_DIR relative to it, its children, which run in the
    repository, read another folder's index.)"""
    run_dir, log = tmp_path / "run", tmp_path / "supervisor.log"
    features = indexed_settings.features_dir
    supervisor, children = _supervisor_with_its_redis(indexed_settings, run_dir, log,
                                                      features.parent, FEATURES_DIR=features.name)
    (redis_pid,) = [pid for pid, argv in children.items() if "redis-server" in argv]
    served = [pid for pid in children if pid != redis_pid]
    try:
        for pid in served:
            environ = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ")
                           .read_text().split("\0") if "=" in item)
            assert environ["FEATURES_DIR"] == str(features), children[pid]
        supervisor.kill()
        supervisor.wait(timeout=10)
        assert _gone(served), {pid: children[pid] for pid in served}
    finally:
        for pid in (*served, redis_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_redis_restart_loses_no_accepted_search(indexed_settings, tmp_path, extractor):
    from worker.service.process import make_worker, start_engine

    port = free_port()
    redis_dir = tmp_path / "redis"
    server = start_redis(port, redis_dir)
    # its own session: a terminal's Ctrl-C to `make run` leaves it to the supervisor (last)
    assert os.getsid(server.pid) == server.pid != os.getsid(0)
    settings = dataclasses.replace(indexed_settings, redis_url=f"redis://127.0.0.1:{port}/0")
    client = create_app({"SETTINGS": settings}).test_client()
    try:
        url = post_pair(client, FRONT, BACK).get_json()["url"]
        server.kill()
        server.wait()

        start = time.monotonic()
        polled = client.get(url)
        assert polled.status_code == 503 and polled.headers["Retry-After"]
        refused = post_pair(client, variant(FRONT, 1), BACK)
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        assert time.monotonic() - start < 5, "a missing Redis must not hang requests"
        assert len(list(settings.upload_dir.iterdir())) == 2, "the refused upload is not kept"

        server = start_redis(port, redis_dir)
        assert status_of(client, url)["status"] == "queued", "the accepted search survived"
        engine = start_engine(settings, extractor)
        make_worker(settings, engine, Redis.from_url(settings.redis_url)).work(burst=True)
        assert status_of(client, url)["status"] == "finished"
    finally:
        server.kill()
        server.wait()


def test_unwritable_output_fails_the_search_and_the_worker_goes_on(indexed_settings, redis,
                                                                   indexed_client, run_worker):
    out = indexed_settings.output_dir
    if out.exists():
        out.rmdir()
    out.write_text("a file where the output folder should be")
    first = post_pair(indexed_client, FRONT, BACK).get_json()["url"]
    run_worker()
    body = status_of(indexed_client, first)
    assert body["status"] == "failed" and "could not be saved" in body["error"]
    out.unlink()
    out.mkdir()
    second = post_pair(indexed_client, FRONT, BACK).get_json()["url"]
    run_worker()
    assert status_of(indexed_client, second)["status"] == "finished"


def test_search_past_its_timeout_fails_with_a_timeout_message(indexed_settings, redis,
                                                              extractor, monkeypatch):
    from worker.service.process import make_worker, start_engine

    settings = dataclasses.replace(indexed_settings, job_timeout=1)
    client = create_app({"SETTINGS": settings}).test_client()
    url = post_pair(client, FRONT, BACK).get_json()["url"]
    engine = start_engine(settings, extractor)  # warmed up before the model is slowed down
    real_extract = extractor.extract
    monkeypatch.setattr(extractor, "extract", lambda x: (time.sleep(3), real_extract(x))[1])
    make_worker(settings, engine, redis).work(burst=True, with_scheduler=False)
    body = status_of(client, url)
    assert body["status"] == "failed" and "took too long" in body["error"]


def test_full_queue_pushes_back_with_503(indexed_settings, redis):
    settings = dataclasses.replace(indexed_settings, max_queue_length=2)
    client = create_app({"SETTINGS": settings}).test_client()
    assert [post_pair(client, variant(FRONT, i), BACK).status_code for i in range(2)] == [202, 202]
    response = post_pair(client, variant(FRONT, 3), BACK)
    assert response.status_code == 503 and response.get_json()["error"] == "queue_full"
    assert int(response.headers["Retry-After"]) > 0
    assert len(list(settings.upload_dir.iterdir())) == 4


def test_no_live_worker_means_503_not_a_queue_forever(indexed_settings, redis):
    """Also when the last worker was killed: its name stays in RQ's set of the queue's
    workers (only a live worker cleans that set), its registration gone with its TTL."""
    from rq import Queue, SimpleWorker

    settings = dataclasses.replace(indexed_settings, require_worker=True)
    client = create_app({"SETTINGS": settings}).test_client()
    response = post_pair(client, FRONT, BACK)
    assert response.status_code == 503 and response.get_json()["error"] == "no_worker"
    assert list(settings.upload_dir.iterdir()) == []
    queue = Queue(settings.queue_name, connection=redis)
    killed = SimpleWorker([queue], connection=redis, name="elsewhere.4242.killed")
    killed.register_birth()
    redis.delete(killed.key)  # its registration expired: no heartbeat since it was killed
    assert SimpleWorker.count(queue=queue) == 1  # what was asked before: 202, queued for ever
    response = post_pair(client, FRONT, BACK)
    assert response.status_code == 503 and response.get_json()["error"] == "no_worker"
    assert list(settings.upload_dir.iterdir()) == []


def test_expired_uploads_and_results_are_deleted_and_nothing_else(tmp_path):
    search = "0123456789abcdef0123456789abcdef"
    old, new = tmp_path / f"{search}-front.png", tmp_path / f"{search}.jpg"
    leftover = tmp_path / f".{search}.jpg.0a1b2c3d.part"
    theirs = [tmp_path / ".gitkeep", tmp_path / "notes.txt", tmp_path / ".x.part"]
    for path in (old, new, leftover, *theirs):
        path.write_bytes(b"x")
    now = time.time()
    for path in (old, *theirs):
        os.utime(path, (now - 7200, now - 7200))
    os.utime(leftover, (now - 4000, now - 4000))
    assert FileStorage(tmp_path, tmp_path / "output").sweep(5 * 3600, now=now) == 1
    assert not leftover.exists() and old.exists() and new.exists()
    assert FileStorage(tmp_path, tmp_path / "output").sweep(3600, now=now) == 1
    assert not old.exists() and new.exists()
    assert all(path.exists() for path in theirs)  # a clone's .gitkeep, a user's file: not ours


def test_a_file_the_sweep_cannot_delete_is_skipped_not_fatal(tmp_path, monkeypatch, caplog):
    """An EACCES or EIO on one expired file ended RQ's loop, which the worker took for a
    Redis outage and re-registered into the same failure, never taking a job again."""
    from pathlib import Path

    search = "0123456789abcdef0123456789abcdef"
    stuck, old = tmp_path / f"{search}-back.png", tmp_path / f"{search}-front.png"
    for path in (stuck, old):
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    unlink = Path.unlink

    def refuse_one(path, *args, **kwargs):
        if path == stuck:
            raise PermissionError(13, "Permission denied", str(path))
        return unlink(path, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", refuse_one)
    assert FileStorage(tmp_path, tmp_path / "output").sweep(3600) == 1
    assert stuck.exists() and not old.exists()
    assert "could not delete 1 expired file(s)" in caplog.text and "Permission denied" in caplog.text


def test_a_running_worker_survives_a_redis_restart(indexed_settings, tmp_path):
    port = free_port()
    redis_dir = tmp_path / "redis"
    server = start_redis(port, redis_dir)
    settings = dataclasses.replace(indexed_settings, redis_url=f"redis://127.0.0.1:{port}/0")
    client = create_app({"SETTINGS": settings}).test_client()
    worker = start_worker(settings, "--name", "cutter-a")
    try:
        wait_for_workers(settings)
        server.kill()
        server.wait()
        time.sleep(2)  # the worker notices and retries
        server = start_redis(port, redis_dir)
        url = post_pair(client, variant(FRONT, 7), BACK).get_json()["url"]
        deadline = time.monotonic() + 120
        while status_of(client, url)["status"] != "finished" and time.monotonic() < deadline:
            assert worker.poll() is None, "the worker died with Redis"
            time.sleep(0.2)
        assert status_of(client, url)["status"] == "finished"
        assert worker.poll() is None
        # the name given is kept (RQ's loop rides out the outage, or `serve` registers it again
        # as cutter-a~N: test_a_named_worker_keeps_its_name_when_an_outage_ends_its_loop), and
        # only one worker counts (a last registration Redis's append-only file kept is dead)
        serving = Redis.from_url(settings.redis_url)
        (name,) = [w.name for w in Worker.all(connection=serving)]
        assert name == "cutter-a" or name.startswith("cutter-a~")
        assert Job.fetch(status_of(client, url)["id"], connection=serving).worker_name == name
    finally:
        stop_process(worker)
        server.kill()
        server.wait()


class OwnRedis:
    """A redis-server of the test's own on 127.0.0.1, started when the test says, and the
    settings that use it."""

    def __init__(self, settings, folder: Path):
        self.port, self.folder, self.servers = free_port(), folder, []
        self.settings = dataclasses.replace(settings,
                                            redis_url=f"redis://127.0.0.1:{self.port}/0")
        self.connection = Redis.from_url(self.settings.redis_url)

    def start(self, full: bool = False) -> None:
        self.servers.append(start_redis(self.port, self.folder))
        if full:
            self.fill()

    def fill(self) -> None:
        """It refuses every write from now on (maxmemory 1 byte, never evicting), as at its
        memory limit; PING and CLIENT SETNAME still answered."""
        self.connection.config_set("maxmemory", 1)

    def empty(self) -> None:
        self.connection.config_set("maxmemory", 0)


@pytest.fixture
def own_redis(indexed_settings, tmp_path):
    """OwnRedis; stopped at the end, with the command listeners of workers whose teardown it
    refused (RQ unsubscribes after it unregisters, which failed)."""
    from redis.client import PubSubWorkerThread

    before = set(threading.enumerate())
    own = OwnRedis(indexed_settings, tmp_path / "own-redis")
    try:
        yield own
    finally:
        for thread in set(threading.enumerate()) - before:
            if isinstance(thread, PubSubWorkerThread):
                thread.stop()
                thread.join(5)
        for server in own.servers:
            stop_process(server)


def redis_full_from_now_on() -> None:
    """A job (RQ imports it by name): its Redis refuses every write from here on, so RQ's
    bookkeeping of its end, and the worker's teardown, are refused."""
    from rq import get_current_job

    get_current_job().connection.config_set("maxmemory", 1)


@contextlib.contextmanager
def stopped_once_registered(redis_url: str, wanted: str | None = None):
    """While the test serves in this process: once a worker named `wanted` (None: any) is
    registered, SIGTERM this process as a process manager would, and yield the names then
    registered. A do-nothing SIGTERM handler stays around it (`serve` restores the handler
    it found), and with no registration in 120 s the signal is sent all the same (a hang
    guard), unless `serve` has returned."""
    names: list[str] = []
    done = threading.Event()
    watcher = Redis.from_url(redis_url)  # its own pool: Worker.all raises a pool's timeouts

    def watch() -> None:
        deadline = time.monotonic() + 120  # a hang guard, not a timing assertion
        while not done.is_set() and time.monotonic() < deadline:
            try:
                found = sorted(w.name for w in Worker.all(connection=watcher))
            except RedisError:  # not started yet
                found = []
            if found and (wanted is None or wanted in found):
                names.extend(found)
                break
            time.sleep(0.05)
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    found_handler = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield names
    finally:
        done.set()
        thread.join(10)
        signal.signal(signal.SIGTERM, found_handler)


def redis_errors(caplog) -> list[str]:
    """What `serve` logged of each RQ worker that a Redis error ended."""
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith("worker stopped on a Redis error")]


def test_a_named_worker_keeps_its_name_when_an_outage_ends_its_loop(own_redis, extractor,
                                                                    monkeypatch, caplog):
    """RQ's loop rides out most Redis outages by itself; one that reaches `serve` (an error
    in a job's bookkeeping, at start-up or teardown) made the worker register again under a
    random name, losing the one given, while its last registration still counted. Here a
    real Redis refuses a job's bookkeeping and the worker's teardown (it is full), then has
    room again."""
    from rq import Queue

    from worker.service import serving
    from worker.service.process import start_engine

    own_redis.start()
    settings, connection = own_redis.settings, own_redis.connection
    Queue(settings.queue_name, connection=connection).enqueue(
        f"{__name__}.redis_full_from_now_on")
    registered_at_pause: list[list[str]] = []
    reader = Redis.from_url(settings.redis_url)  # its own pool: Worker.all raises a pool's timeouts

    def pause(seconds, stopped):
        registered_at_pause.append(sorted(w.name for w in Worker.all(connection=reader)))
        assert len(registered_at_pause) == 1, "a second outage"
        own_redis.empty()  # room again: the next registration holds

    monkeypatch.setattr(serving, "_pause", pause)
    engine = start_engine(settings, extractor)
    with stopped_once_registered(settings.redis_url, "cutter-b~1") as names:
        serving.serve(settings, engine, connection, name="cutter-b")
    assert registered_at_pause == [["cutter-b"]]  # its unregistering was refused too
    assert names == ["cutter-b~1"]  # the name given, kept; the dead registration gone
    (error,) = redis_errors(caplog)
    assert "command not allowed when used memory" in error, error
    # the refused teardown left the first worker's command listener subscribed: a thread and
    # a connection kept for good, one more each outage
    assert reader.pubsub_numsub("rq:pubsub:cutter-b") == [(b"rq:pubsub:cutter-b", 0)]


def test_a_redis_that_refuses_every_registration_is_retried_after_growing_pauses(
        own_redis, extractor, monkeypatch, caplog):
    """A Redis that answers PING but refuses writes (out of memory, its disk full, read-only)
    failed each new registration at once, and `serve` made the next at once: hundreds a
    second at full CPU, three log lines each. A Redis away while the worker is built (its
    CLIENT SETNAME) ended the process. Here a real Redis is away, then up but full for two
    registrations, then has room."""
    from worker.service import process, serving

    pauses = []

    def pause(seconds, stopped):
        pauses.append(seconds)
        assert len(pauses) <= 3, f"registrations still refused after {pauses}"
        if len(pauses) == 1:
            own_redis.start(full=True)  # back, but taking no writes
        elif len(pauses) == 3:
            own_redis.empty()  # room again: the next registration holds

    monkeypatch.setattr(serving, "_pause", pause)
    settings = own_redis.settings
    engine = process.start_engine(settings, extractor)
    with stopped_once_registered(settings.redis_url) as names:
        serving.serve(settings, engine, own_redis.connection)
    assert pauses == [1.0, 2.0, 4.0]  # doubling, up to MAX_PAUSE_S
    assert len(names) == 1  # the fourth worker registered, and stopped when asked
    errors = redis_errors(caplog)
    assert len(errors) == 3 and "Connection refused" in errors[0], errors
    assert all("command not allowed when used memory" in error for error in errors[1:]), errors


def test_a_sigterm_while_redis_is_away_stops_the_worker(own_redis, extractor, monkeypatch,
                                                         caplog):
    """Between two RQ workers (a pause after a failed registration, the wait for Redis) RQ's
    handler, still installed, raised StopRequested out of `serve` (exit 1, a traceback) or
    was lost; now the stop is noted and `serve` returns, restoring the handlers it found.
    Here a real Redis refuses every registration (it is full)."""
    from worker.service import process, serving

    pauses = []

    def pause(seconds, stopped):
        pauses.append(seconds)
        assert len(pauses) <= 2, "the SIGTERM did not stop serve"
        if len(pauses) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # as `make run` or a process manager
        time.sleep(0.05)
        assert stopped() is (len(pauses) == 2)

    own_redis.start(full=True)
    settings = own_redis.settings
    engine = process.start_engine(settings, extractor)
    monkeypatch.setattr(serving, "_pause", pause)
    with stopped_once_registered(settings.redis_url, "never") as names:  # only the hang guard
        before = signal.getsignal(signal.SIGTERM)
        serving.serve(settings, engine, own_redis.connection)
        assert signal.getsignal(signal.SIGTERM) is before
    assert pauses == [1.0, 2.0] and names == []
    errors = redis_errors(caplog)
    assert len(errors) == 2 and all("command not allowed when used memory" in e for e in errors), errors


@pytest.mark.parametrize("asked_by", ["SIGTERM", "RQ's shutdown command"])
def test_an_idle_worker_stops_when_asked(indexed_settings, redis, tmp_path, asked_by):
    # the warm shutdown that `make run` (and any process manager) asks for: an idle worker
    # exits by itself instead of registering again and waiting to be killed; RQ's command
    # (`rq.command.send_shutdown_command`) reaches it through the worker's own listener
    log = tmp_path / "worker.log"
    worker = start_worker(indexed_settings, log=log)
    try:
        wait_for_workers(indexed_settings)
        if asked_by == "SIGTERM":
            worker.terminate()
        else:
            name = Worker.all(connection=redis)[0].name
            channel = PUBSUB_CHANNEL_TEMPLATE % name
            deadline = time.monotonic() + 30
            while redis.pubsub_numsub(channel)[0][1] == 0 and time.monotonic() < deadline:
                time.sleep(0.1)  # it listens just after it registers
            send_shutdown_command(redis, name)
        try:
            code = worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = f"still running 30 s after {asked_by}"
        assert code == 0, f"{code}; the worker's log:\n{log.read_text()}"  # it failed once
    finally:
        stop_process(worker)


def test_a_worker_whose_listener_saw_its_unsubscribe_first_still_stops_at_once(
        indexed_settings, redis, extractor, monkeypatch):
    # the race that held a stopping worker (and tests' burst workers, 60 s each) for RQ's 60 s
    # listener wait: the listener reads the unsubscribe's reply before the worker stops it
    from redis.client import PubSub

    from worker.service.process import make_worker, start_engine

    unsubscribe = PubSub.unsubscribe

    def read_by_the_listener_first(pubsub, *args, **kwargs):
        sent = unsubscribe(pubsub, *args, **kwargs)
        deadline = time.monotonic() + 10
        while pubsub.subscribed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not pubsub.subscribed, "the listener never read the unsubscribe's reply"
        return sent

    monkeypatch.setattr(PubSub, "unsubscribe", read_by_the_listener_first)
    worker = make_worker(indexed_settings, start_engine(indexed_settings, extractor), redis)
    began = time.monotonic()
    worker.work(burst=True, with_scheduler=False)
    assert time.monotonic() - began < 30  # 60 s and more before the listener woke every 1 s


def test_a_sigterm_while_the_worker_registers_is_a_warm_stop(indexed_settings, redis,
                                                             extractor):
    # RQ registers a worker before it installs its own handlers; a SIGTERM in that window
    # killed the process (exit -15) instead of stopping it: the signal is sent from there
    from worker.service.process import SearchWorker, make_worker, start_engine

    class SignalledAtBirth(SearchWorker):
        def register_birth(self):
            super().register_birth()
            signal.raise_signal(signal.SIGTERM)

    def unhandled(signum, frame):
        pytest.fail("the SIGTERM reached no handler of the worker's")

    worker = make_worker(indexed_settings, start_engine(indexed_settings, extractor), redis)
    worker.__class__ = SignalledAtBirth
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, unhandled)
    try:
        worked = worker.work(max_idle_time=10, with_scheduler=False)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert worker.stop_signalled and not worked
    assert Worker.count(connection=redis) == 0  # it stopped and said so to Redis


def test_a_check_chunk_waits_out_a_redis_restart_instead_of_failing_its_designs(tmp_path):
    """A chunk's Redis steps (its catalogue pin as it starts, its outcomes as it ends) on a
    Redis restarting for a few seconds failed its designs for good with the connection
    error, and an end not recorded had its uploads deleted all the same."""
    import threading
    from types import SimpleNamespace

    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from worker.core.storage import RedisStorage
    from worker.service.checks import _patiently, _read

    port = free_port()
    server = start_redis(port, tmp_path / "redis")
    # no retries of the client's own (redis-py's default outlasts a 2 s restart by itself)
    client = Redis(port=port, socket_connect_timeout=0.5, socket_timeout=2,
                   retry=Retry(NoBackoff(), 0))
    client.set("outcome", "kept")
    storage = RedisStorage(client, 600)  # STORAGE=redis: the chunk's drawings are read there
    storage.put_upload("c-r0-front.png", b"drawing")
    steps = ((lambda: _patiently(lambda: client.get("outcome")), b"kept"),  # append-only: kept
             (lambda: _read(SimpleNamespace(storage=storage), "c-r0-front.png"), b"drawing"))
    servers = [server]
    try:
        for step, expected in steps:
            stop_process(servers[-1])
            timer = threading.Timer(2.0, lambda: servers.append(
                start_redis(port, tmp_path / "redis")))
            timer.start()
            try:
                start = time.monotonic()
                assert step() == expected
                assert 1.5 < time.monotonic() - start < 30
            finally:
                timer.join()
    finally:
        for running in servers[1:]:
            stop_process(running)


def test_a_second_ctrl_c_during_a_job_leaves_it_for_the_next_worker(indexed_settings, redis,
                                                                    tmp_path):
    """RQ's cold stop (a second Ctrl-C or SIGTERM a second or more after the first) raises
    SystemExit inside the job: it was recorded as the job's failure ("SystemExit") and its
    uploads deleted. Now the job is queued again at the head of its queue, once, its uploads
    kept, for the next worker (as after a SIGKILL; with its registration gone at teardown, a
    job left started would be failed as abandoned by a worker elsewhere)."""
    from rq.job import JobStatus

    from tests.zips import make_zip, post_collection, season_files
    from worker.core.checks import read_check

    settings = dataclasses.replace(indexed_settings, check_chunk_pairs=24)
    client = create_app({"SETTINGS": settings}).test_client()
    files, rows = season_files(list(range(12)), 12)  # one chunk of 24 designs: seconds of work
    log = tmp_path / "worker.log"
    worker = start_worker(indexed_settings, log=log)
    try:
        wait_for_workers(indexed_settings)
        check = post_collection(client, make_zip(files, rows)).get_json()
        ((chunk_id, _),) = read_check(redis, check["id"]).chunks
        job = Job.fetch(chunk_id, connection=redis)
        deadline = time.monotonic() + 60
        while job.get_status(refresh=True) != JobStatus.STARTED:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        worker.send_signal(signal.SIGINT)  # a warm stop: it would finish the chunk first
        time.sleep(1.2)
        worker.send_signal(signal.SIGINT)  # RQ's cold stop
        worker.wait(timeout=60)
    finally:
        stop_process(worker)
    assert f"stopped cold while running job {chunk_id}: queued again" in log.read_text(), \
        log.read_text()[-3000:]
    assert job.get_status(refresh=True) == JobStatus.QUEUED
    assert len(list(settings.upload_dir.iterdir())) == 48  # kept for the run again
    restarted = start_worker(indexed_settings, "--burst")
    try:  # drained as it runs: a full stderr pipe would hold the worker until the timeout
        _, err = restarted.communicate(timeout=300)
    finally:
        stop_process(restarted)
    assert restarted.returncode == 0, err[-2000:]
    body = client.get(check["url"]).get_json()
    assert body["status"] == "finished", body
    assert [d["status"] for d in body["designs"]] == ["finished"] * 24, body["designs"]
    assert list(settings.upload_dir.iterdir()) == []
