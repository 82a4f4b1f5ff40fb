"""One catalogue edit of a name at a time (web/designs.py `_claim`), decided in one Redis step:
two requests at once, or one before the first's job exists, cannot both pass."""

from __future__ import annotations

import dataclasses

import pytest
from rq import Queue

from web import create_app
from web.designs import ENQUEUE_GRACE_S, PENDING, _claim
from web.errors import RequestRefused


@pytest.fixture
def app(settings):
    return create_app({"SETTINGS": dataclasses.replace(settings, admin_token="s3cret")})


def claim(app, name: str, edit_id: str) -> str | None:
    """None when `edit_id` got the claim, else the holder's id the 409 names."""
    with app.test_request_context():
        try:
            _claim(name, edit_id)
        except RequestRefused as exc:
            assert (exc.status, exc.error) == (409, "edit_pending")
            return str(exc).rsplit("/", 1)[1]
    return None


def test_an_edit_holds_its_name_until_its_job_ends_and_only_it(app, redis, settings):
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    assert claim(app, "x", a) is None
    assert claim(app, "x", b) == a  # a's request is still storing its upload: no job yet
    assert claim(app, "y", b) is None  # another name
    queue = Queue(settings.queue_name, connection=redis)
    job = queue.enqueue("worker.service.jobs.search_pair", job_id=a)
    redis.expire(PENDING + "x", settings.result_ttl - ENQUEUE_GRACE_S - 5)  # long enqueued
    assert claim(app, "x", b) == a  # queued: still under way
    job.set_status("finished")
    assert claim(app, "x", b) is None  # ended: free
    assert claim(app, "x", c) == b
    redis.expire(PENDING + "x", settings.result_ttl - ENQUEUE_GRACE_S - 5)
    assert claim(app, "x", c) is None  # b's request failed before its job: free after the grace
