"""`python -m worker.cli.submit` goes through the same queue as the web."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from rq import Queue

from tests.images import N_PAIRS, design_pair
from worker.dev.services import service_env

pytestmark = pytest.mark.slow


def test_cli_search_is_served_by_a_worker(indexed_settings, redis, run_worker, tmp_path):
    front, back = design_pair(6, N_PAIRS)
    (tmp_path / "f.png").write_bytes(front)
    (tmp_path / "b.png").write_bytes(back)
    cli = subprocess.Popen([sys.executable, "-m", "worker.cli.submit", str(tmp_path / "f.png"),
                            str(tmp_path / "b.png"), "-k", "5", "--json"],
                           env=service_env(indexed_settings), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    queue = Queue(indexed_settings.queue_name, connection=redis)
    deadline = time.monotonic() + 60
    while len(queue) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(queue) == 1, "the CLI enqueued its search"
    run_worker()
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err[-2000:]
    result = json.loads(out)
    assert [h["rank"] for h in result["results"]] == [1, 2, 3, 4, 5]
    assert result["results"][0]["name"] == "jacket-0006"
    assert (indexed_settings.output_dir / result["image"]).is_file()


def test_cli_refuses_a_non_image(indexed_settings, tmp_path):
    (tmp_path / "x.png").write_text("<svg/>")
    proc = subprocess.run([sys.executable, "-m", "worker.cli.submit", str(tmp_path / "x.png")],
                          env=service_env(indexed_settings), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and "not a JPEG or PNG" in proc.stderr
    assert f"the front drawing '{tmp_path / 'x.png'}'" in proc.stderr
    for args, says in ((["-", "-"], "give at least one drawing"),
                       ([str(tmp_path / "x.png"), str(tmp_path / "nothing.png")],
                        f"the back drawing '{tmp_path / 'nothing.png'}' is not a file")):
        proc = subprocess.run([sys.executable, "-m", "worker.cli.submit", *args],
                              env=service_env(indexed_settings), capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 2 and says in proc.stderr, proc.stderr
        assert "Errno" not in proc.stderr


def test_cli_without_redis_says_so_and_keeps_nothing(settings, tmp_path):
    """Redis unreachable (or a back refused after the front was stored): a traceback, and the
    stored drawings left in UPLOAD_DIR until a worker's sweep a day later."""
    import dataclasses

    from worker.dev.processes import free_port

    away = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    front, back = design_pair(6, N_PAIRS)
    (tmp_path / "f.png").write_bytes(front)
    (tmp_path / "b.png").write_bytes(back)
    (tmp_path / "x.png").write_text("<svg/>")
    for drawings, says in (("b.png", "Redis (REDIS_URL) cannot be reached"),
                           ("x.png", "the back drawing")):
        proc = subprocess.run([sys.executable, "-m", "worker.cli.submit", str(tmp_path / "f.png"),
                               str(tmp_path / drawings)], env=service_env(away),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and says in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        assert not away.upload_dir.exists() or list(away.upload_dir.iterdir()) == []


def test_the_cli_prints_the_verdicts_and_what_the_page_says_of_the_list(capsys):
    """It printed rank, raw score and name alone: no verdict, no similarity, and a list
    ordered by design after its copy read as scores out of order."""
    from worker.cli.submit import print_hits

    hit = {"rank": 1, "name": "jacket-0006", "score": 0.93, "verdict": "copy",
           "similarity": 97, "swapped": False}
    print_hits({"results": [hit, {**hit, "rank": 2, "name": "jacket-0007", "score": 0.41,
                                  "verdict": None, "similarity": None, "swapped": True}],
                "order": "design", "outline_only": ["back"],
                "side_copies": [{"side": "front", "name": "coat-0001", "verdict": "near-duplicate",
                                 "similarity": 88}]})
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["1", "copy", "97", "0.9300", "jacket-0006"]
    assert lines[2].split() == ["2", "-", "0.4100", "jacket-0007", "(sides", "swapped)"]
    assert "ordered by design, not by score" in lines[3] and "the back is a line sketch" in lines[4]
    assert lines[5] == "the front alone is a near-duplicate of coat-0001 (similarity 88)"


def test_a_search_nobody_waits_for_is_withdrawn(settings, redis, tmp_path):
    """A timeout (no worker) or a Ctrl-C left the search queued with its uploads: a worker
    started later ran it for nobody, and a retry queued a second one. Ctrl-C was a traceback."""
    import signal

    front, back = design_pair(6, N_PAIRS)
    (tmp_path / "f.png").write_bytes(front)
    (tmp_path / "b.png").write_bytes(back)
    command = [sys.executable, "-m", "worker.cli.submit", str(tmp_path / "f.png"),
               str(tmp_path / "b.png")]
    queue = Queue(settings.queue_name, connection=redis)
    timed_out = subprocess.run([*command, "--timeout", "1"], env=service_env(settings),
                               capture_output=True, text=True, timeout=60)
    assert timed_out.returncode == 1 and "withdrawn from the queue" in timed_out.stderr
    assert len(queue) == 0 and list(settings.upload_dir.iterdir()) == []
    waiting = subprocess.Popen(command, env=service_env(settings), stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 60
    while len(queue) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    waiting.send_signal(signal.SIGINT)  # as a terminal's Ctrl-C
    _, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert len(queue) == 0 and list(settings.upload_dir.iterdir()) == []
