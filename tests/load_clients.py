"""Clients for the load test (tests/test_load.py): silent uploaders, long pollers and a
/healthz prober, all threads or plain sockets on 127.0.0.1, each bounded in count and time."""

from __future__ import annotations

import socket
import threading
import time

import requests

SILENT_BODY_START = (b'--x\r\nContent-Disposition: form-data; name="front"; filename="a.png"\r\n'
                     b"Content-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n" + b"\0" * 65536)


def silent_client(port: int, declared: int = 10 * 1024 * 1024) -> socket.socket:
    """A socket that sent a request head and the start of a `declared`-byte body, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /api/searches HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: multipart/form-data; boundary=x\r\n"
                 b"Content-Length: " + str(declared).encode() + b"\r\n\r\n" + SILENT_BODY_START)
    return sock


def dropped_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server ends the silent client's request (an answer, then a close, or a
    close) within `seconds`."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except TimeoutError:
        return False
    except OSError:  # reset: dropped all the same
        return True
    return False


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def probe_healthz(base: str, stop, out, interval: float = 0.1, limit_s: float = 600) -> None:
    """GET /healthz every `interval` s (a new connection each time) until `stop` is set; puts
    (latencies, failures, slowest [(latency, at s)]) on `out`. Run in its own process (spawn),
    so the load test's client threads do not slow down the measurement."""
    latencies: list[float] = []
    failures: list[str] = []
    slowest: list[tuple[float, float]] = []
    began = time.monotonic()
    while not stop.is_set() and time.monotonic() - began < limit_s:
        start = time.monotonic()
        try:
            code = requests.get(f"{base}/healthz", timeout=10).status_code
            if code != 200:
                failures.append(str(code))
        except requests.RequestException as exc:
            failures.append(type(exc).__name__)
        latencies.append(time.monotonic() - start)
        slowest = sorted([*slowest, (latencies[-1], start - began)])[-5:]
        stop.wait(interval)
    out.put((latencies, failures, slowest))


class LongPollers:
    """`count` threads, each long-polling (`?wait=30`) accepted searches that have not ended
    until every one has ended or `deadline` (monotonic) passes. `in_flight_max`: the most
    long polls outstanding at once."""

    def __init__(self, base: str, count: int, deadline: float):
        self.base, self.deadline = base, deadline
        self.urls: list[str] = []  # accepted searches, appended as submissions are answered
        self.ended: dict[str, str] = {}
        self.submitting = True
        self.in_flight = self.in_flight_max = 0
        self.codes: dict[int, int] = {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(count)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(max(0.0, self.deadline - time.monotonic()) + 35)

    def _next(self, i: int) -> str | None:
        with self.lock:
            pending = [url for url in self.urls if url not in self.ended]
            return pending[i % len(pending)] if pending else None

    def _run(self, i: int) -> None:
        session = requests.Session()
        while time.monotonic() < self.deadline:
            url = self._next(i)
            if url is None:
                if not self.submitting:
                    return
                time.sleep(0.05)
                continue
            with self.lock:
                self.in_flight += 1
                self.in_flight_max = max(self.in_flight_max, self.in_flight)
            try:
                response = session.get(f"{self.base}{url}?wait=30", timeout=60)
            except requests.RequestException:
                time.sleep(0.5)
                continue
            finally:
                with self.lock:
                    self.in_flight -= 1
            with self.lock:
                self.codes[response.status_code] = self.codes.get(response.status_code, 0) + 1
                if response.status_code == 200 and response.json()["status"] in ("finished",
                                                                                 "failed"):
                    self.ended[url] = response.json()["status"]
            if response.status_code != 200:
                time.sleep(0.5)


def wait_for_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=10)
            return
        except requests.RequestException:  # refused, or too slow while the machine is busy
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")
