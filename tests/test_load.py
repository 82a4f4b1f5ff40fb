"""100 concurrent submissions from other threads against the app served by gunicorn, one real
worker: only 202/429/503, no other 5xx, and every accepted search finishes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.images import N_PAIRS, design_pair, variant
from worker.core.settings import REPO_ROOT
from worker.dev.processes import free_port, stop_process
from worker.dev.services import service_env, start_worker, wait_for_workers

pytestmark = pytest.mark.slow
SUBMISSIONS = 100


def wait_for_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=10)
            return
        except requests.RequestException:  # refused, or too slow while the machine is busy
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def test_hundred_concurrent_submissions(indexed_settings, redis):
    settings = dataclasses.replace(indexed_settings, require_worker=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                            "--workers", "2", "--threads", "8", "web:create_app()"],
                           env=service_env(settings), cwd=REPO_ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = start_worker(settings)
    front, back = design_pair(9, N_PAIRS)
    try:
        wait_for_http(f"{base}/healthz")
        wait_for_workers(settings)

        def submit(i: int) -> tuple[int, str | None]:  # distinct bytes: no result cache hits
            r = requests.post(f"{base}/api/searches", files={"front": variant(front, i), "back": back},
                              timeout=30)
            return r.status_code, r.json().get("url") if r.status_code == 202 else None

        with ThreadPoolExecutor(max_workers=25) as pool:
            answers = list(pool.map(submit, range(SUBMISSIONS)))
        codes = Counter(code for code, _ in answers)
        assert set(codes) <= {202, 429, 503}, codes
        accepted = [url for code, url in answers if code == 202]
        assert accepted

        deadline = time.monotonic() + 600
        pending = set(accepted)
        statuses: Counter = Counter()
        while pending and time.monotonic() < deadline:
            for url in list(pending):
                poll = requests.get(f"{base}{url}", timeout=10)
                if poll.status_code == 503:  # busy for a moment: a client retries later
                    continue
                status = poll.json()["status"]
                if status in ("finished", "failed"):
                    statuses[status] += 1
                    pending.discard(url)
            time.sleep(0.5)
        print(f"\nload: submitted {SUBMISSIONS}, answers {dict(codes)}, accepted {len(accepted)}, "
              f"outcomes {dict(statuses)}")
        assert not pending, f"{len(pending)} accepted searches never ended"
        assert statuses["finished"] == len(accepted)
    finally:
        stop_process(worker)
        stop_process(web)
