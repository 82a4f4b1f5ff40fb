"""web.offload under gevent (as gunicorn's worker runs the app): a request's image work runs on
native threads while the loop keeps serving other greenlets; results come back in order and
a failure is raised only after every call has ended. Run in a child process, because gevent's
monkey-patching must not touch the test process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from worker.core.settings import REPO_ROOT

CHILD = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import gevent
    from web.offload import off_loop

    native_sleep = monkey.get_original("time", "sleep")  # blocks its thread, not the loop
    state = {"ticks": 0, "running": 0, "ended": []}

    def ticker():
        while True:
            if state["running"]:
                state["ticks"] += 1
            gevent.sleep(0.005)

    def work(name, fail=False):
        def call():
            state["running"] += 1
            native_sleep(0.3)  # a long decode holding its native thread
            state["running"] -= 1
            state["ended"].append(name)
            if fail:
                raise ValueError(name + " refused")
            return name
        return call

    gevent.spawn(ticker)
    assert off_loop([work("front"), work("back")]) == ["front", "back"]
    print("ticks while the calls ran:", state["ticks"])
    assert state["ticks"] > 0, "the loop was blocked while the calls ran"
    state["ended"].clear()
    try:
        off_loop([work("front", fail=True), work("back")])
    except ValueError as exc:
        assert str(exc) == "front refused"
    else:
        raise AssertionError("the failure was not raised")
    assert sorted(state["ended"]) == ["back", "front"], state["ended"]  # both ended first
    print("ok")
""")


def test_image_work_runs_off_the_gevent_loop_in_order():
    proc = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok"), proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]  # a refusal is no server error


def test_without_gevent_the_calls_run_in_this_thread_in_order():
    from web.offload import off_loop

    assert off_loop([lambda: 1, lambda: 2]) == [1, 2]
