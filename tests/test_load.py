"""Load and slow clients against the web served exactly as `make run` serves it (gunicorn with
gunicorn.conf.py: gevent processes), one real worker, everything on 127.0.0.1:

200 concurrent long polls (`?wait=30`) and 50 silent clients (a request head and the start of a
10 MB body, then nothing) while 100 searches are submitted from 25 threads. /healthz keeps
answering (every probe a 200 within its timeout; p50/p99 printed, not asserted: figures in
docs/reliability.md), submissions get only 202/429/503, every accepted search finishes, and
the silent clients are dropped after CLIENT_TIMEOUT."""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.images import N_PAIRS, design_pair, variant
from tests.load_clients import (
    LongPollers,
    dropped_within,
    percentile,
    probe_healthz,
    silent_client,
    wait_for_http,
)
from worker.dev.processes import free_port, stop_process
from worker.dev.services import start_web, start_worker, wait_for_workers

pytestmark = pytest.mark.slow
SUBMISSIONS = 100
LONG_POLLS = 200
SILENT_CLIENTS = 50
DEADLINE_S = 300  # for every accepted search to end


@pytest.mark.timeout(DEADLINE_S + 180)
def test_long_polls_and_silent_clients_leave_every_route_answering(indexed_settings, redis,
                                                                   tmp_path):
    settings = dataclasses.replace(indexed_settings, require_worker=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    front, back = design_pair(9, N_PAIRS)
    silent, pollers, probe, worker = [], None, None, None
    spawn = multiprocessing.get_context("spawn")
    stop, out = spawn.Event(), spawn.Queue()
    web = start_web(settings, port, log=tmp_path / "web.log")
    try:
        worker = start_worker(settings)
        wait_for_http(f"{base}/healthz")
        wait_for_workers(settings)
        uploads = [variant(front, i) for i in range(SUBMISSIONS)]  # distinct: no cache hits
        probe = spawn.Process(target=probe_healthz, args=(base, stop, out), daemon=True)
        probe.start()
        opened = time.monotonic()
        silent = [silent_client(port) for _ in range(SILENT_CLIENTS)]
        started = time.monotonic()
        pollers = LongPollers(base, LONG_POLLS, deadline=started + DEADLINE_S)
        pollers.start()

        def submit(i: int) -> int:
            r = requests.post(f"{base}/api/searches", files={"front": uploads[i], "back": back},
                              timeout=30)
            if r.status_code == 202:
                with pollers.lock:
                    pollers.urls.append(r.json()["url"])
            return r.status_code

        with ThreadPoolExecutor(max_workers=25) as pool:
            codes = Counter(pool.map(submit, range(SUBMISSIONS)))
        submitted_in = time.monotonic() - started
        pollers.submitting = False
        pollers.join()
        ended_in = time.monotonic() - started
        stop.set()
        latencies, failures, slowest = out.get(timeout=30)
        probe.join(15)
        assert latencies, failures
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        accepted = len(pollers.urls)
        outcomes = Counter(pollers.ended.values())
        print(f"\nload: {LONG_POLLS} long pollers (at most {pollers.in_flight_max} polls "
              f"outstanding at once; answers {pollers.codes}), {SILENT_CLIENTS} silent clients, "
              f"{SUBMISSIONS} submissions in {submitted_in:.1f} s: {dict(codes)}; accepted "
              f"{accepted}, outcomes {dict(outcomes)} after {ended_in:.1f} s; /healthz "
              f"{len(latencies)} probes, p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms, failures {failures}; slowest (s, at s) "
              f"{[(round(a, 2), round(b, 1)) for a, b in slowest]}")
        assert set(codes) <= {202, 429, 503}, codes
        assert accepted and outcomes["finished"] == accepted, (accepted, outcomes)
        assert pollers.in_flight_max >= LONG_POLLS * 0.9
        assert not failures  # each probe a 200 within its 10 s timeout

        left = settings.client_timeout + 10 - (time.monotonic() - opened)
        still = [s for s in silent if not dropped_within(s, max(left, 0.1))]
        assert not still, f"{len(still)} silent clients still connected after CLIENT_TIMEOUT"
        assert "Traceback" not in (tmp_path / "web.log").read_text()
    finally:  # the probe and the pollers stop too when something above raised
        stop.set()
        if pollers is not None:
            pollers.submitting, pollers.deadline = False, time.monotonic()
        for sock in silent:
            sock.close()
        if worker is not None:
            stop_process(worker)
        stop_process(web)  # a long poll still out ends with the web
        if pollers is not None:  # one bound for all: their threads are daemons
            end = time.monotonic() + 40
            for thread in pollers.threads:
                thread.join(max(0.0, end - time.monotonic()))
        if probe is not None:
            probe.join(15)
            if probe.is_alive():
                probe.terminate()
                probe.join(5)
