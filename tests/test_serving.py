"""The web server's settings (gunicorn.conf.py) and the long-poll cap; the refusals gunicorn
makes itself, from a server started as `make run` starts it."""

from __future__ import annotations

import runpy
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from tests.load_clients import wait_for_http
from web.longpolls import LongPolls
from worker.dev.processes import free_port, stop_process
from worker.dev.services import GUNICORN_CONF, start_web, web_command


@contextmanager
def served(settings, tmp_path) -> Iterator[int]:
    """gunicorn with these settings on a free port of 127.0.0.1, answering; its port."""
    port = free_port()
    web = start_web(settings, port, log=tmp_path / "web.log")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        yield port
    finally:
        stop_process(web)


def test_the_long_poll_cap_grants_slots_up_to_the_limit_then_answers_at_once():
    polls = LongPolls(2)
    with polls.slot() as first, polls.slot() as second, polls.slot() as third:
        assert (first, second, third) == (True, True, False) and polls.active == 2
    assert polls.active == 0
    with LongPolls(0).slot() as granted:
        assert not granted


def test_gunicorn_conf_uses_gevent_workers_and_the_settings(monkeypatch):
    monkeypatch.setenv("WEB_WORKERS", "3")
    monkeypatch.setenv("WEB_CONNECTIONS", "700")
    conf = runpy.run_path(str(GUNICORN_CONF))
    assert conf["workers"] == 3 and conf["worker_connections"] == 700
    assert conf["worker_class"].__mro__[1].__name__ == "GeventWorker"
    assert conf["preload_app"] is False and conf["keepalive"] <= conf["timeout"]
    assert web_command("127.0.0.1:1")[:4] == ["-m", "gunicorn", "-c", str(GUNICORN_CONF)]


def test_gunicorn_conf_imports_no_redis_before_gevent_patches_the_sockets():
    """Reading the settings imported redis-py (its asyncio connection module among it), which
    gevent then could not patch: a MonkeyPatchWarning at every worker's start."""
    import subprocess
    import sys

    from worker.core.settings import REPO_ROOT

    code = ("import runpy, sys; runpy.run_path('gunicorn.conf.py'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'flask')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout


def test_gunicorn_conf_refuses_more_long_polls_than_connections(monkeypatch):
    monkeypatch.setenv("MAX_LONG_POLLS", "1000")
    monkeypatch.setenv("WEB_CONNECTIONS", "1000")
    with pytest.raises(SystemExit, match="gunicorn: setting MAX_LONG_POLLS"):  # its message,
        runpy.run_path(str(GUNICORN_CONF))  # not gunicorn's "Failed to read config file" traceback


def test_requests_gunicorn_refuses_itself_get_the_apis_json_errors(settings, redis, tmp_path):
    """A URL, headers or a request line past gunicorn's limits never reach the app: gunicorn
    answers them, in the same {"error", "message"} shape as every other refusal."""
    with served(settings, tmp_path) as port:
        base = f"http://127.0.0.1:{port}"
        long_url = requests.get(f"{base}/api/searches/{'a' * 5000}", timeout=10)
        big_header = requests.get(f"{base}/api/searches/x", headers={"X-Big": "b" * 9000},
                                  timeout=10)
        many_headers = requests.get(f"{base}/healthz",
                                    headers={f"X-{i}": "1" for i in range(60)}, timeout=10)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            not_http = sock.makefile("rb").read()
        answers = [(r.status_code, r.headers["Content-Type"], r.json())
                   for r in (long_url, big_header, many_headers)]
        for r in (long_url, big_header, many_headers):  # the headers of every other answer
            assert (r.headers["X-Content-Type-Options"], r.headers["Cache-Control"]) == (
                "nosniff", "private, no-store")
        assert answers[0] == (414, "application/json", {
            "error": "uri_too_long",
            "message": "the request's URL is too long: the request line's limit is 4094 bytes"})
        assert answers[1] == answers[2] == (431, "application/json", {
            "error": "request_header_fields_too_large",
            "message": "the request's headers are too large: at most 50 fields of 8190 bytes "
                       "each"})
        head, _, body = not_http.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 Bad Request") and b"application/json" in head
        assert body == b'{"error": "bad_request", "message": "the request is not valid HTTP"}'


def _raw_collection(port: int, data: bytes) -> bytes:
    """A collection POST as the bytes a client sends (request line, headers, body)."""
    prepared = requests.Request("POST", f"http://127.0.0.1:{port}/api/checks", files={
        "collection": ("season.zip", data, "application/zip")}).prepare()
    head = "".join(f"{name}: {value}\r\n" for name, value in prepared.headers.items())
    return (f"POST /api/checks HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{head}\r\n"
            ).encode() + prepared.body


def test_a_collection_whose_client_left_while_it_was_stored_is_not_queued(settings, redis,
                                                                          tmp_path):
    """Storing a large collection's drawings takes the request minutes; a client that gave up
    (closed its connection) midway left a check running for no one, its drawings kept."""
    import time

    from PIL import Image
    from rq import Queue

    from tests.images import drawn, encode
    from tests.zips import make_zip

    drawings = {f"d{i}.png": encode(drawn(Image.new("RGB", (2400, 2400), (9 * i, 90, 120))))
                for i in range(16)}  # each its own, decoded one by one: seconds in all
    request = _raw_collection(0, make_zip(drawings, [(n[:-4], n, "") for n in drawings]))
    port = free_port()
    log = tmp_path / "web.log"
    web = start_web(settings, port, log=log)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(request)
            deadline = time.monotonic() + 60
            while not any(settings.upload_dir.iterdir()):  # closed once drawings are stored
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-2000:]
                time.sleep(0.01)
        wait_for_line(log, '"POST /api/checks HTTP/1.1" 408', timeout=60)  # after the discard
        assert "left before its upload was queued" in log.read_text()
        assert redis.keys("pairsearch:check:*") == []
        assert len(Queue(settings.check_queue_name, connection=redis)) == 0
        assert list(settings.upload_dir.iterdir()) == []
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(request)  # the same bytes from a client that waits: queued
            answer = sock.makefile("rb").read()
        assert answer.startswith(b"HTTP/1.1 202"), answer[:300]
        assert len(Queue(settings.check_queue_name, connection=redis)) == 16 // 4  # chunks
    finally:
        stop_process(web)


def test_a_client_is_gone_only_when_its_socket_has_ended_whatever_its_number():
    """The peek never waits and takes any fd (select(2) refused those past 1023, and a web
    process may hold more sockets than that)."""
    import os
    import resource

    from werkzeug.exceptions import ClientDisconnected

    from web import create_app
    from web.submissions import require_client

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1600 <= hard or hard == resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1600), hard))
    app = create_app({"TESTING": True})
    ours, theirs = socket.socketpair()
    high = socket.socket(fileno=os.dup2(ours.detach(), 1500))
    high.settimeout(7.0)
    try:
        def gone() -> bool:
            with app.test_request_context("/api/checks", method="POST",
                                          environ_base={"gunicorn.socket": high}):
                try:
                    require_client()
                except ClientDisconnected:
                    return True
                return False

        assert not gone()  # open and silent: waiting for its answer
        theirs.sendall(b"G")  # a pipelined request's first byte
        assert not gone()
        assert high.recv(1) == b"G" and high.gettimeout() == 7.0
        theirs.close()
        assert gone()
    finally:
        high.close()
        theirs.close()


def wait_for_line(log, words: str, timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    while words not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-2000:]
        time.sleep(0.2)


def test_a_response_reaches_the_server_in_pieces_and_whole():
    from web.pacing import SEND_PIECE, InPieces

    closed = []

    class Body(list):
        def close(self):
            closed.append(True)

    app = InPieces(lambda environ, start: Body([b"a" * (2 * SEND_PIECE + 5), b"", b"bc"]))
    pieces = list(app({}, None))
    assert [len(p) for p in pieces] == [SEND_PIECE, SEND_PIECE, 5, 2] and closed == [True]
    assert b"".join(pieces) == b"a" * (2 * SEND_PIECE + 5) + b"bc"

    class FileWrapper(list):
        pass

    sent = FileWrapper([b"x" * (3 * SEND_PIECE)])  # the server sends a file by itself
    assert InPieces(lambda e, s: sent)({"wsgi.file_wrapper": FileWrapper}, None) is sent


@pytest.mark.slow
def test_a_slow_reader_gets_a_whole_large_body_and_only_a_silent_one_is_dropped(settings, redis,
                                                                              tmp_path):
    """gevent gives one sendall one CLIENT_TIMEOUT deadline, and gunicorn sent a body whole:
    a check's JSON of some MB, read steadily but slower than its size per CLIENT_TIMEOUT,
    was cut off part-way (with a traceback in the log). A piece's wait still lasts until the
    kernel frees half the socket's send buffer (up to 4 MB here): a reader slower than about
    2 MB per CLIENT_TIMEOUT (70 KB/s at 30 s) is still dropped (docs/reliability.md)."""
    import dataclasses
    import json
    import time

    from worker.core.checks import create_check, record_outcomes
    from worker.core.contract import CheckedDesign, Hit, SearchOptions

    settings = dataclasses.replace(settings, client_timeout=2)
    hits = [Hit(rank=r, name=f"catalogue-design-{r:04d}", score=0.5, front_score=0.5,
                back_score=0.5, swapped=False, front=f"images/d{r:04d}_front.png",
                back=f"images/d{r:04d}_back.png", columns={"garment": "jacket"})
            for r in range(1, 101)]
    names = [f"new-design-{i:04d}" for i in range(400)]  # a JSON of about 13 MB
    check_id = "c" * 32
    create_check(redis, check_id, names, SearchOptions(k=100), [], {}, settings.result_ttl)
    record_outcomes(redis, check_id, {i: CheckedDesign(name=n, status="finished", results=hits)
                                      for i, n in enumerate(names)}, settings.result_ttl)
    with served(settings, tmp_path) as port:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(f"GET /api/checks/{check_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Connection: close\r\n\r\n".encode())
        received, started = bytearray(), time.monotonic()
        while chunk := sock.recv(64 * 1024):  # about 2.5 MB/s: never silent, 5 s in all
            received += chunk
            time.sleep(0.025)
        took = time.monotonic() - started
        sock.close()
        head, _, body = bytes(received).partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        assert len(body) == length, f"{len(body)} of {length} bytes after {took:.1f} s"
        assert took > 2 * settings.client_timeout, f"read in {took:.1f} s: too fast to tell"
        assert len(json.loads(body)["designs"]) == len(names)
        silent = socket.socket()  # its window small: loopback's would take the whole body
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        silent.settimeout(10)
        silent.connect(("127.0.0.1", port))
        silent.sendall(f"GET /api/checks/{check_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        got = bytearray(silent.recv(1))  # the answer has started (its JSON took a while)
        time.sleep(settings.client_timeout + 2)  # reads nothing more: dropped, the rest unsent
        while chunk := silent.recv(1 << 20):
            got += chunk
        silent.close()
        assert len(got) < length


@pytest.mark.slow
def test_a_large_finished_check_is_described_while_the_process_answers_others(settings, redis,
                                                                              tmp_path):
    """Its JSON, page and CSV (800 designs x 100 hits here: a second or two of pure Python each),
    and a running check's JSON (the API's default poll), were built on the gevent loop: every
    other request of that web process, /healthz too, waited until they were done. Now on the
    offload threads, which give the loop the GIL."""
    import dataclasses
    import re
    import threading
    import time

    from worker.core.checks import create_check, mark_started, record_outcomes
    from worker.core.contract import CheckedDesign, Hit, SearchOptions

    settings = dataclasses.replace(settings, web_workers=1)  # the probes reach its process
    names = [f"new-design-{i:04d}" for i in range(800)]  # past CHECK_MAX_PAIRS: a longer build
    check_id, running_id = "d" * 32, "e" * 32
    for made, settled in ((check_id, len(names)), (running_id, len(names) - 1)):
        create_check(redis, made, names, SearchOptions(k=100), [], {}, settings.result_ttl)
        record_outcomes(redis, made, {i: CheckedDesign(name=n, status="finished", results=[
            Hit(rank=r, name=f"d{(i * 37 + r) % 9000:04d}", score=0.5, front_score=0.5,
                back_score=0.5, swapped=False, front=f"images/d{(i * 37 + r) % 9000:04d}_f.png",
                back=f"images/d{(i * 37 + r) % 9000:04d}_b.png") for r in range(1, 101)])
            for i, n in enumerate(names[:settled])}, settings.result_ttl)
    mark_started(redis, running_id)
    with served(settings, tmp_path) as port:
        base = f"http://127.0.0.1:{port}"
        for path in (f"/api/checks/{check_id}", f"/checks/{check_id}",
                     f"/api/checks/{check_id}/report.csv", f"/api/checks/{running_id}"):
            span = {}

            def fetch(path=path, span=span):
                span["start"] = time.monotonic()
                span["response"] = requests.get(base + path, timeout=120)
                span["end"] = time.monotonic()

            big = threading.Thread(target=fetch)
            big.start()
            probes = []
            while big.is_alive():
                start = time.monotonic()
                requests.get(f"{base}/healthz", timeout=120)
                probes.append((start, time.monotonic()))
                time.sleep(0.02)
            big.join()
            response = span["response"]
            assert response.status_code == 200, path
            if path.startswith("/checks/"):  # rendered on a thread: the nonce its header names
                nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"])
                assert f'nonce="{nonce.group(1)}"' in response.text
            inside = [p for p in probes if span["start"] < p[0] and p[1] < span["end"]]
            print(path, f"{span['end'] - span['start']:.2f} s,", len(inside), "probes inside")
            assert len(inside) >= 5, (path, probes, span)


@pytest.mark.slow
def test_a_body_trickled_slower_than_the_least_pace_is_refused_and_its_connection_closed(
        settings, redis, tmp_path):
    """Each read of a body had its own CLIENT_TIMEOUT: a client sending a byte every half
    second kept its connection and greenlet for as long as it liked (thousands of them,
    almost no bandwidth, filled every process's WEB_CONNECTIONS)."""
    import dataclasses
    import time

    settings = dataclasses.replace(settings, client_timeout=2, min_upload_kbps=4)
    with served(settings, tmp_path) as port:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"POST /api/searches HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 20000"
                     b"\r\nContent-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n")
        sock.settimeout(0.5)
        answer, closed, deadline = b"", False, time.monotonic() + 20
        while time.monotonic() < deadline and not closed:
            try:
                sock.sendall(b"x")  # a byte every half second: under CLIENT_TIMEOUT each
            except OSError:
                closed = True
            try:
                chunk = sock.recv(65536)
                answer, closed = answer + chunk, closed or not chunk
            except TimeoutError:
                pass
            except OSError:
                closed = True
        sock.close()
        print(f"answered and closed {20 - (deadline - time.monotonic()):.1f} s after the head")
        assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
        assert b"under the 4 KB/s this server needs" in answer, answer
        assert closed
