"""One catalogue edit of a name at a time (web/editclaims.py `claim`), decided in one Redis step:
two requests at once, or one before the first's job exists, cannot both pass."""

from __future__ import annotations

import dataclasses

import pytest
from rq import Queue

from web import create_app, editclaims
from web.editclaims import ENQUEUE_GRACE_S, PENDING, claim_ttl
from web.errors import RequestRefused


@pytest.fixture
def app(settings):
    return create_app({"SETTINGS": dataclasses.replace(settings, admin_token="s3cret")})


def claim(app, name: str) -> tuple[str | None, str | None]:
    """(the new edit's id, None) when the claim was got, else (None, the holder's id the 409
    names)."""
    with app.test_request_context():
        try:
            return editclaims.claim(name), None
        except RequestRefused as exc:
            assert (exc.status, exc.error) == (409, "edit_pending")
            return None, str(exc).rsplit("/", 1)[1]


def test_an_edit_holds_its_name_until_its_job_ends_and_only_it(app, redis, settings):
    a, _ = claim(app, "x")
    assert a is not None
    assert claim(app, "x") == (None, a)  # a's request is still storing its upload: no job yet
    assert claim(app, "y")[0] is not None  # another name
    queue = Queue(settings.queue_name, connection=redis)
    job = queue.enqueue("worker.service.jobs.search_pair", job_id=a)
    redis.expire(PENDING + "x", claim_ttl(settings) - ENQUEUE_GRACE_S - 5)  # long enqueued
    assert claim(app, "x") == (None, a)  # queued: still under way
    job.set_status("finished")
    b, _ = claim(app, "x")
    assert b is not None  # ended: free
    assert claim(app, "x") == (None, b)
    redis.expire(PENDING + "x", claim_ttl(settings) - ENQUEUE_GRACE_S - 5)
    assert claim(app, "x")[0] is not None  # b's request failed before its job: free after the grace


def test_a_claim_outlives_its_edit_however_short_result_ttl_is(redis, settings):
    """With RESULT_TTL at its least (60 s) the claim lived 60 s, while its edit may wait for
    the catalogue lock 120 s and run for its timeout: a retry then queued the edit again."""
    brief = create_app({"SETTINGS": dataclasses.replace(settings, result_ttl=60)})
    edit_id, _ = claim(brief, "x")
    assert edit_id is not None
    assert redis.ttl(PENDING + "x") > settings.edit_timeout + 120


def test_a_delete_of_a_name_whose_add_is_under_way_is_409_naming_it(app, redis):
    """It was 404 `no design named`: the name is not listed until its add lands. A delete
    refused before its job (here: no index) lets go of its claim."""
    auth = {"Authorization": "Bearer s3cret"}
    add, _ = claim(app, "x")
    response = app.test_client().delete("/api/designs/x", headers=auth)
    assert response.status_code == 409 and response.get_json()["error"] == "edit_pending"
    assert add in response.get_json()["message"]
    assert redis.get(PENDING + "x").decode() == add  # the add's claim stands
    refused = app.test_client().delete("/api/designs/y", headers=auth)
    assert refused.status_code == 503 and redis.get(PENDING + "y") is None


def test_a_worker_s_refusal_that_passes_is_a_503_to_retry_the_rest_422():
    from web.designs import edit_refusal

    busy = edit_refusal({"error_type": "CatalogueBusy", "error": "a build holds the catalogue"})
    stale = edit_refusal({"error_type": "BankError", "error": "run make index"})
    lost = edit_refusal({"error_type": "AbandonedJobError", "error": "try the edit again"})
    taken = edit_refusal({"error_type": "CatalogueEditError", "error": "already used: x"})
    assert [(r.status, r.error, r.retry_after) for r in (busy, stale, lost, taken)] == [
        (503, "catalogue_busy", 60), (503, "no_index", 60), (503, "edit_lost", 60),
        (422, "edit_failed", None)]
    assert (busy.message, edit_refusal({}).message) == ("a build holds the catalogue",
                                                        "the edit failed")
