"""The web server's settings (gunicorn.conf.py) and the long-poll cap, without starting a server."""

from __future__ import annotations

import runpy

import pytest

from web.longpolls import LongPolls
from worker.core.settings import InvalidSetting
from worker.dev.services import GUNICORN_CONF, web_command


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


def test_gunicorn_conf_refuses_more_long_polls_than_connections(monkeypatch):
    monkeypatch.setenv("MAX_LONG_POLLS", "1000")
    monkeypatch.setenv("WEB_CONNECTIONS", "1000")
    with pytest.raises(InvalidSetting, match="MAX_LONG_POLLS"):
        runpy.run_path(str(GUNICORN_CONF))
