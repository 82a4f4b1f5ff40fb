"""Operations endpoints: /openapi.json (fuzzed with schemathesis against the real app),
/readyz (real Redis, real registered workers) and /metrics (real registries, real timings)."""

from __future__ import annotations

import dataclasses
import re
import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from rq import Queue
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import tests.schemathesis_hooks  # noqa: F401 - valid uploads are drawings (as for the CLI)
from tests import http
from tests.images import N_PAIRS, design_pair
from worker.core.metrics import STAGE_COUNT, STAGE_MS_SUM, read_metrics, record_timings
from worker.dev.processes import free_port

FRONT, BACK = design_pair(3, N_PAIRS)
CONFORMANCE = [status_code_conformance, content_type_conformance, response_headers_conformance,
               response_schema_conformance, positive_data_acceptance, negative_data_rejection,
               ignored_auth]
STAGES = ("preprocess", "extract", "search", "render", "total")


def post_pair(client, front: bytes | None = FRONT, back: bytes | None = BACK, **fields):
    """This module's default query is design 3's pair."""
    return http.post_pair(client, front, back, **fields)


def metric_values(text: str) -> dict[str, float]:
    """`name{labels}` -> value for every sample line of a Prometheus exposition."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


def down_app(settings):
    from web import create_app

    down = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    return create_app({"SETTINGS": down, "TESTING": True})


# --- the OpenAPI document ------------------------------------------------------------------

@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


OPERATIONS = [("POST", "/api/searches"), ("GET", "/api/searches/{search_id}"),
              ("GET", "/api/searches/{search_id}/result.jpg"),
              ("GET", "/api/searches/{search_id}/results.csv"),
              ("GET", "/api/searches/{search_id}/match/{rank}.jpg"), ("POST", "/api/designs"),
              ("DELETE", "/api/designs/{name}"), ("GET", "/api/edits/{edit_id}"),
              ("GET", "/healthz"), ("GET", "/readyz"),
              ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/api/catalogue"),
              ("GET", "/api/duplicates"), ("GET", "/api/duplicates.csv"),
              ("POST", "/api/checks"), ("GET", "/api/checks/{check_id}"),
              ("DELETE", "/api/checks/{check_id}"), ("GET", "/api/checks/{check_id}/report.csv"),
              ("GET", "/api/checks/{check_id}/designs/{row}.jpg"),
              ("GET", "/database/{path}"), ("GET", "/catalogue/thumbs/{path}")]
FUZZ = [(method, path, GenerationMode.POSITIVE) for method, path in OPERATIONS
        if path != "/api/catalogue"] + [  # needs an index: tests/test_filters.py
    ("POST", "/api/searches", GenerationMode.NEGATIVE),  # those with values to negate
    ("GET", "/api/searches/{search_id}", GenerationMode.NEGATIVE),
    ("POST", "/api/designs", GenerationMode.NEGATIVE),
    ("POST", "/api/checks", GenerationMode.NEGATIVE),
    ("GET", "/api/checks/{check_id}", GenerationMode.NEGATIVE)]


@pytest.mark.parametrize("method, path, mode", FUZZ)
def test_app_conforms_to_its_openapi_document(api_schema, method, path, mode):
    """Fuzz each operation (30 examples; those with parameters also with invalid values): no
    5xx but the documented 503 of /readyz (no worker runs here), every answer matches the
    document (status, content type, headers, body), valid data is accepted and invalid data
    refused, and auth is enforced. (The CLI, `schemathesis run .../openapi.json -c all`, adds
    the checks that need its coverage and stateful phases.)

    (Driven with hypothesis directly: schemathesis' pytest plugin `from_fixture` breaks on
    pytest 9.2, which dropped `Node._nodeid`.)"""
    # without an index, /readyz and /api/duplicates(.csv) answer their documented 503
    # (tests/test_duplicates.py fuzzes the duplicates over an index)
    checks = ([*CONFORMANCE] if path in ("/readyz", "/api/duplicates", "/api/duplicates.csv")
              else [not_a_server_error, *CONFORMANCE])
    if method == "POST":  # in-process (WSGI) generation ignores the drawings format for files:
        checks.remove(positive_data_acceptance)  # the CLI run checks valid uploads accepted

    @given(case=api_schema[path][method].as_strategy(generation_mode=mode))
    @hypothesis_settings(max_examples=30, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case):
        case.call_and_validate(checks=checks)

    fuzz()


def test_every_json_route_is_documented(app, client):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1.")  # generated by spectree from the pydantic models
    routes = {(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
              for rule in app.url_map.iter_rules()
              if (rule.endpoint.split(".")[0] in ("api", "ops", "designs", "checks")
                  or rule.rule.startswith("/api/")
                  or rule.endpoint in ("pages.catalogue_image", "browse.thumbnail"))  # hits' URLs
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, item in doc["paths"].items()
                  for method in item if method != "parameters"}
    assert routes == documented == {(path, method.lower()) for method, path in OPERATIONS}


def test_document_states_the_limits_and_refusals(client, settings):
    doc = client.get("/openapi.json").get_json()
    submit = doc["paths"]["/api/searches"]["post"]
    assert {"202", "400", "413", "415", "422", "503"} <= set(submit["responses"])
    assert submit["responses"]["503"]["headers"]["Retry-After"]["required"] is True
    assert submit["responses"]["202"]["headers"]["Location"]["required"] is True
    assert f"at most {settings.max_upload_mb} MB" in submit["description"]
    form = doc["components"]["schemas"]["SearchForm"]
    for side in ("front", "back"):
        assert form["properties"][side]["format"] == "binary"
        assert form["properties"][side]["minLength"] == 1
        assert "at least 16 px" in form["properties"][side]["description"]
    add = doc["paths"]["/api/designs"]["post"]
    assert add["security"] == [{"adminToken": []}]
    assert add["responses"]["401"]["headers"]["WWW-Authenticate"]
    assert "403" in add["responses"]
    for path in ("/api/searches/{search_id}/result.jpg", "/api/checks/{check_id}/designs/{row}.jpg",
                 "/api/searches/{search_id}/match/{rank}.jpg"):
        assert list(doc["paths"][path]["get"]["responses"]["200"]["content"]) == ["image/jpeg"]
    for table in ("/api/searches/{search_id}/results.csv", "/api/checks/{check_id}/report.csv",
                  "/api/duplicates.csv"):
        assert list(doc["paths"][table]["get"]["responses"]["200"]["content"]) == ["text/csv"]


def test_undeclared_methods_answer_405_with_allow(client):
    for method, path, allowed in (("TRACE", "/healthz", {"GET", "HEAD", "OPTIONS"}),
                                  ("PUT", "/api/searches", {"POST", "OPTIONS"}),
                                  ("GET", "/api/designs/x", {"DELETE", "OPTIONS"})):
        response = client.open(path, method=method)
        assert response.status_code == 405, (method, path)
        assert set(response.headers["Allow"].split(", ")) == allowed
        assert response.get_json()["error"] == "method_not_allowed"


def test_admin_auth_is_exactly_a_bearer_token(settings, redis):
    from web import create_app

    off = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
    refused = off.delete("/api/designs/x", headers={"Authorization": "Bearer x"})
    assert refused.status_code == 403 and refused.get_json()["error"] == "forbidden"
    on = create_app({"SETTINGS": dataclasses.replace(settings, admin_token="s3cret"),
                     "TESTING": True}).test_client()
    for header in (None, "s3cret", "Bearer wrong", "Basic s3cret", "Bearer s3cret x", "Bearer"):
        response = on.delete("/api/designs/x", headers={"Authorization": header} if header else {})
        assert response.status_code == 401, header
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.get_json()["error"] == "unauthorized"
    past_auth = on.delete("/api/designs/x", headers={"Authorization": "Bearer s3cret"})
    assert past_auth.status_code == 503 and past_auth.get_json()["error"] == "no_index"


def test_a_search_taken_before_its_first_stage_report_reads_starting(client, redis):
    """A worker loading a new index before a search's first report: the search read
    `started`, stage `queued`, and its page "Working: queued."."""
    from rq.job import Job, JobStatus

    search_id = post_pair(client, FRONT, BACK).get_json()["id"]
    Job.fetch(search_id, connection=redis).set_status(JobStatus.STARTED)
    body = client.get(f"/api/searches/{search_id}").get_json()
    assert (body["status"], body["stage"]) == ("started", "starting")
    assert "Working: starting." in client.get(f"/searches/{search_id}").get_data(as_text=True)


def test_real_submission_and_poll_conform(api_schema, client, settings):
    created = post_pair(client, FRONT, None, k=5, front_weight=0.25, sides="unknown")
    assert created.status_code == 202
    api_schema["/api/searches"]["POST"].validate_response(created)
    url = created.get_json()["url"]
    polled = client.get(url)
    assert polled.get_json()["queue_position"] == 0 and polled.get_json()["stage"] == "queued"
    api_schema["/api/searches/{search_id}"]["GET"].validate_response(polled)
    image = client.get(f"{url}/result.jpg")
    assert image.status_code == 409
    api_schema["/api/searches/{search_id}/result.jpg"]["GET"].validate_response(image)
    refused = post_pair(client, None, None)
    assert refused.status_code == 400
    api_schema["/api/searches"]["POST"].validate_response(refused)


def test_redis_down_answers_conform(api_schema, settings):
    client = down_app(settings).test_client()
    for path, label in (("/api/searches/0123456789abcdef0123456789abcdef", "/api/searches/{search_id}"),
                        ("/healthz", "/healthz"), ("/readyz", "/readyz")):
        response = client.get(path)
        assert response.status_code == 503, path
        api_schema[label]["GET"].validate_response(response)
    response = post_pair(client)
    assert response.status_code == 503 and response.headers["Retry-After"]
    api_schema["/api/searches"]["POST"].validate_response(response)


def test_a_hung_redis_gets_a_503_after_the_probes_ran(settings, tmp_path):
    """A Redis that stops answering (SIGSTOP: its port open, nothing read) after /healthz,
    /readyz and /metrics have listed the workers: /healthz still gives up with a 503 instead
    of waiting for RQ's 415 s socket timeout (`Worker.all` used to set it on the app's pool)."""
    import signal
    import threading

    from web import create_app
    from worker.dev.processes import start_redis, stop_process

    port = free_port()
    server = start_redis(port, tmp_path / "hung-redis")
    try:
        from redis import Redis
        from rq import Worker

        app = create_app({"SETTINGS": dataclasses.replace(
            settings, redis_url=f"redis://127.0.0.1:{port}/0"), "TESTING": True})
        registered = Worker([settings.queue_name], connection=Redis(port=port))
        registered.register_birth()  # a worker in RQ's registry, for the probes to list
        client = app.test_client()
        assert client.get("/healthz").get_json()["workers"] == 1
        assert client.get("/readyz").get_json()["checks"]["worker"]["ok"] is True
        assert 'pairsearch_workers 1' in client.get("/metrics").text
        registered.connection.hset(registered.key, "last_heartbeat",  # silent for years
                                   "2000-01-01T00:00:00.000000Z")
        assert client.get("/healthz").get_json()["workers"] == 1  # still registered
        assert client.get("/readyz").get_json()["checks"]["worker"]["ok"] is False
        assert app.extensions["redis"].connection_pool.connection_kwargs["socket_timeout"] == 5.0
        server.send_signal(signal.SIGSTOP)
        answers = []
        probe = threading.Thread(target=lambda: answers.append(app.test_client().get("/healthz")),
                                 daemon=True)
        probe.start()
        probe.join(120)  # a hang detector: with the 415 s timeout it would still be waiting
        assert answers and answers[0].status_code == 503
        assert answers[0].get_json()["redis"] is False
    finally:
        server.send_signal(signal.SIGCONT)
        stop_process(server)


# --- /readyz -------------------------------------------------------------------------------

def test_not_ready_without_worker_or_index(client, settings):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["ready"] is False
    checks = body["checks"]
    assert checks["redis"]["ok"] is True and checks["output_dir"]["ok"] is True
    assert checks["worker"]["ok"] is False and "heartbeat" in checks["worker"]["reason"]
    assert checks["index"]["ok"] is False and "make index" in checks["index"]["reason"]
    assert not [p for p in settings.output_dir.iterdir()]  # the probe file is gone


def test_not_ready_when_output_dir_is_not_writable(client, settings):
    shutil.rmtree(settings.output_dir)
    settings.output_dir.write_text("a file where the folder should be")
    check = client.get("/readyz").get_json()["checks"]["output_dir"]
    assert check["ok"] is False and check["reason"].startswith("OUTPUT_DIR is not writable")


def test_not_ready_when_the_upload_folder_takes_no_write(client, settings):
    """Only OUTPUT_DIR was probed, with an empty file: UPLOAD_DIR (the one folder the web
    writes; its own volume under compose) could refuse every upload with /readyz at 200."""
    check = client.get("/readyz").get_json()["checks"]["output_dir"]
    assert check == {"ok": True, "reason": "UPLOAD_DIR and OUTPUT_DIR are writable"}
    shutil.rmtree(settings.upload_dir)
    settings.upload_dir.write_text("a file where the folder should be")
    check = client.get("/readyz").get_json()["checks"]["output_dir"]
    assert check["ok"] is False and check["reason"].startswith("UPLOAD_DIR is not writable")


def test_health_is_ok_only_with_a_worker_of_the_search_queue(client, settings, redis):
    """A worker started with `--chunks-only` serves a build's chunks, never a search: the
    submissions answered 503 `no_worker` while /healthz said `ok`."""
    import numpy as np
    from rq import Worker

    from worker.core.bank import write_bank
    from worker.core.queueing import index_queue_name

    rows = np.eye(2, dtype=np.float32)
    from worker.core.generations import current_id

    write_bank(settings.features_dir, rows, rows, {"n_pairs": 2, "dim": 2, "dtype": "float32",
                                                   "descriptor": settings.descriptor,
                                                   "created": "2026-01-02T03:04:05+00:00",
                                                   "updated": "2026-02-03T04:05:06+00:00"})
    chunks_only = Worker([index_queue_name(settings)], connection=redis)
    chunks_only.register_birth()
    body = client.get("/healthz").get_json()
    assert body["workers"] == 1 and "index_error" not in body and body["status"] == "degraded"
    searching = Worker([settings.queue_name], connection=redis, name="searching")
    searching.register_birth()
    searching.heartbeat()
    body = client.get("/healthz").get_json()
    assert (body["status"], body["search_workers"]) == ("ok", 1)
    # after an edit, which version is served (the build's time alone said nothing of it)
    assert body["index_updated"] == "2026-02-03T04:05:06+00:00"
    assert body["generation"] == current_id(settings.features_dir) is not None
    # a worker frozen (or killed: its registration lives minutes more) is what /readyz says
    redis.hset(searching.key, "last_heartbeat", "2020-01-01T00:00:00.000000Z")
    body = client.get("/healthz").get_json()
    assert (body["status"], body["search_workers"], body["workers"]) == ("degraded", 0, 2)
    assert client.get("/readyz").status_code == 503
    # a worker that cannot load the current index serves the one before: /healthz said ok,
    # naming the new version, while its searches still found what an edit had removed
    searching.heartbeat()
    generation = current_id(settings.features_dir)
    redis.hset(searching.key, mapping={
        "pairsearch_serves": "20260101T000000000000Z-abcdef", "pairsearch_precision": "float32",
        "pairsearch_refused": generation, "pairsearch_refused_why":
            "the banks were built at precision int8 but this worker runs float32"})
    body = client.get("/healthz").get_json()
    assert (body["status"], body["worker_precisions"]) == ("degraded", ["float32"])
    assert body["index_refused"].startswith("1 of 1 search worker(s) cannot load the current "
                                            "index and serve the one before: the banks were "
                                            "built at precision int8")
    redis.hset(searching.key, mapping={"pairsearch_serves": generation, "pairsearch_refused": ""})
    assert client.get("/healthz").get_json()["status"] == "ok"


@pytest.mark.slow
def test_a_worker_s_heartbeat_says_what_it_serves_and_an_idle_one_loads_a_new_index(
        indexed_settings, catalogue_dir, extractor, redis, tmp_path):
    """What /healthz reads of each worker comes with its heartbeat; an idle worker loaded a
    new index only with its next job (the first search after an edit paid for the load). A
    real engine, a real edit (a design added), the worker's own maintenance."""
    from web import create_app
    from worker.core.generations import current_id
    from worker.dev.sample import draw_side, make_designs
    from worker.indexing.edits import add_designs
    from worker.service.process import make_worker, start_engine

    settings = dataclasses.replace(indexed_settings, database_dir=tmp_path / "db")
    shutil.copytree(catalogue_dir, settings.database_dir)  # the edit stays in this test
    engine = start_engine(settings, extractor)
    worker = make_worker(settings, engine, redis, name="w1")
    worker.register_birth()
    try:
        worker.heartbeat()
        before = current_id(settings.features_dir)
        assert before and redis.hget(worker.key, "pairsearch_serves") == before.encode()

        design = make_designs(N_PAIRS + 8, seed=7)[N_PAIRS + 5]  # one the catalogue lacks
        sides = [tmp_path / "new_front.png", tmp_path / "new_back.png"]
        for side, path in zip(("front", "back"), sides, strict=True):
            draw_side(design, side).save(path)
        add_designs(settings, extractor, [("brand-new", *sides)])
        after = current_id(settings.features_dir)
        assert after != before
        assert redis.hget(worker.key, "pairsearch_serves") == before.encode()  # not yet

        worker.run_maintenance_tasks()  # idle: no job comes to load it
        assert engine.snapshot.generation == after
        assert engine.snapshot.catalogue.names[-1] == "brand-new"
        assert redis.hget(worker.key, "pairsearch_serves") == after.encode()
        body = create_app({"SETTINGS": settings, "TESTING": True}).test_client() \
            .get("/healthz").get_json()
        assert (body["status"], body["generation"], body["search_workers"]) == ("ok", after, 1)
    finally:
        worker.register_death()
        engine.release()


def test_an_unreadable_current_is_the_index_s_error_not_a_500(client, settings):
    """CURRENT that cannot be read (EIO, NFS's ESTALE; here a folder in its place): the probes
    said 500 with no reason, and so did every page and submission."""
    (settings.features_dir / "CURRENT").mkdir(parents=True)
    health = client.get("/healthz")
    assert health.status_code == 200, health.get_data(as_text=True)
    body = health.get_json()
    assert "FEATURES_DIR/CURRENT cannot be read" in body["index_error"], body
    assert str(settings.features_dir) not in body["index_error"] and body["status"] == "degraded"
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "CURRENT cannot be read" in ready.get_json()["checks"]["index"]["reason"]
    assert client.get("/").status_code == 200
    assert client.get("/catalogue").status_code == 503  # as with no index: not a 500
    answer = post_pair(client)
    assert answer.status_code in (202, 503), answer.get_data(as_text=True)


def test_not_ready_when_redis_is_down(settings):
    response = down_app(settings).test_client().get("/readyz")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["redis"]["ok"] is False and checks["worker"]["ok"] is False


@pytest.mark.parametrize("where", ["tcp", "unix"])
def test_the_probes_name_a_redis_fault_not_its_address(settings, where, tmp_path):
    """redis-py's text named the host and port, or a socket's path, to anyone asking."""
    from web import create_app

    url = f"redis://127.0.0.1:{free_port()}/0" if where == "tcp" else \
        f"unix://{tmp_path}/private/redis.sock"
    client = create_app({"SETTINGS": dataclasses.replace(settings, redis_url=url),
                         "TESTING": True}).test_client()
    said = [client.get("/healthz").get_json()["redis_error"],
            client.get("/readyz").get_json()["checks"]["redis"]["reason"]]
    reason = "Connection refused" if where == "tcp" else "No such file or directory"
    assert said == [f"REDIS_URL cannot be reached (ConnectionError: {reason})"] * 2
    stored = create_app({"SETTINGS": dataclasses.replace(settings, redis_url=url, storage="redis"),
                         "TESTING": True}).test_client()  # uploads and grids in Redis
    assert stored.get("/readyz").get_json()["checks"]["output_dir"]["reason"] == \
        f"results are stored in Redis: REDIS_URL cannot be reached (ConnectionError: {reason})"


def test_a_refusal_redis_answered_is_told_in_its_own_words():
    """A wrong password, or Redis loading its data, read "cannot be reached (no answer)",
    sending an operator to look for a network fault."""
    from redis.exceptions import AuthenticationError, BusyLoadingError

    from worker.core.settings import redis_problem

    assert redis_problem(AuthenticationError("invalid username-password pair")) == \
        "AuthenticationError: invalid username-password pair"
    assert redis_problem(BusyLoadingError("Redis is loading the dataset in memory")) == \
        "BusyLoadingError: Redis is loading the dataset in memory"


@pytest.mark.slow
def test_ready_only_while_a_live_worker_serves_the_queue(indexed_client, indexed_settings,
                                                       extractor, redis):
    from worker.service.process import make_worker, start_engine

    assert indexed_client.get("/readyz").status_code == 503
    engine = start_engine(indexed_settings, extractor)
    other_queue = dataclasses.replace(indexed_settings, queue_name="some-other-queue")
    elsewhere = make_worker(other_queue, engine, redis)
    from worker.core.queueing import HEARTBEAT_MAX_AGE_S

    assert elsewhere.dequeue_timeout < HEARTBEAT_MAX_AGE_S  # an idle worker stays "live"
    elsewhere.register_birth()
    try:
        checks = indexed_client.get("/readyz").get_json()["checks"]
        assert checks["worker"]["ok"] is False and checks["index"]["ok"] is True
    finally:
        elsewhere.register_death()

    worker = make_worker(indexed_settings, engine, redis)
    worker.register_birth()
    try:
        response = indexed_client.get("/readyz")
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["ready"] is True and all(c["ok"] for c in body["checks"].values())
        metrics = metric_values(indexed_client.get("/metrics").text)
        assert metrics["pairsearch_workers"] == 1

        redis.hset(worker.key, "last_heartbeat", "2000-01-01T00:00:00.000000Z")  # gone quiet
        response = indexed_client.get("/readyz")
        assert response.status_code == 503
        assert "heartbeat" in response.get_json()["checks"]["worker"]["reason"]

        worker.heartbeat()
        assert indexed_client.get("/readyz").status_code == 200
    finally:
        worker.register_death()
    assert indexed_client.get("/readyz").status_code == 503


# --- /metrics ------------------------------------------------------------------------------

def test_worker_metrics_store(redis):
    assert read_metrics(redis) == {}
    record_timings(redis, {"preprocess_ms": 10.5, "extract_ms": 200.0, "total_ms": 212.25})
    record_timings(redis, {"preprocess_ms": 4.5, "extract_ms": 100.0, "total_ms": 106.0})
    record_timings(None, {"preprocess_ms": 1000.0})  # no RQ job: nothing recorded
    assert read_metrics(redis) == {
        "extract": {"sum_ms": 300.0, "count": 2},
        "preprocess": {"sum_ms": 15.0, "count": 2},
        "total": {"sum_ms": 318.25, "count": 2},
    }
    assert set(redis.keys("pairsearch:metrics:*")) == {STAGE_MS_SUM.encode(), STAGE_COUNT.encode()}


def test_metrics_exposition(client, redis, settings):
    for _ in range(2):
        assert post_pair(client).status_code == 202
    record_timings(redis, {"extract_ms": 1500.0, "total_ms": 2000.0})
    redis.rpush(f"rq:queue:{settings.check_queue_name}", "chunk-1", "chunk-2", "chunk-3")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    for family, kind in (("pairsearch_redis_up", "gauge"), ("pairsearch_searches", "gauge"),
                         ("pairsearch_queue_length", "gauge"), ("pairsearch_workers", "gauge"),
                         ("pairsearch_stage_duration_seconds", "summary")):
        assert f"# TYPE {family} {kind}\n" in response.text
        assert f"# HELP {family} " in response.text
    values = metric_values(response.text)
    assert values["pairsearch_redis_up"] == 1
    assert values['pairsearch_searches{status="queued"}'] == 2
    assert values["pairsearch_queue_length"] == 2
    # a collection's backlog, which the search queue's length never showed
    assert [values[f'pairsearch_queued_jobs{{queue="{q}"}}'] for q in ("search", "check", "match")] \
        == [2, 3, 0]
    assert values['pairsearch_searches{status="finished"}'] == 0
    assert values["pairsearch_workers"] == 0
    assert values['pairsearch_stage_duration_seconds_sum{stage="extract"}'] == 1.5
    assert values['pairsearch_stage_duration_seconds_count{stage="total"}'] == 1


def test_refusals_for_want_of_capacity_are_counted_only_up(client, redis, settings):
    """/metrics' searches by status come from RQ's registries, where a search is gone once its
    result expires, and no 503 people met (`queue_full`, `no_worker`) was counted anywhere.
    (Searches ended by outcome: tests/test_hostile_uploads.py, with a real worker.)"""
    from web import create_app

    text = client.get("/metrics").text
    assert "# TYPE pairsearch_refusals_total counter" in text
    assert metric_values(text)['pairsearch_refusals_total{error="no_worker"}'] == 0  # a series
    needing = create_app({"SETTINGS": dataclasses.replace(settings, require_worker=True),
                          "TESTING": True}).test_client()
    assert post_pair(needing).status_code == 503  # no worker
    assert client.get("/api/catalogue").status_code == 503  # no index: not for want of capacity
    values = metric_values(client.get("/metrics").text)
    assert values['pairsearch_refusals_total{error="no_worker"}'] == 1
    assert values['pairsearch_refusals_total{error="queue_full"}'] == 0
    assert not any("no_index" in name for name in values)


def test_metrics_when_redis_is_down(settings):
    response = down_app(settings).test_client().get("/metrics")
    assert response.status_code == 200
    assert metric_values(response.text) == {"pairsearch_redis_up": 0}


@pytest.mark.slow
def test_metrics_and_documents_of_finished_and_failed_searches(indexed_app, indexed_client,
                                                               indexed_settings, run_worker, redis):
    api_schema = schemathesis.openapi.from_wsgi("/openapi.json", indexed_app)
    ok_url = post_pair(indexed_client, k=4).get_json()["url"]
    doomed = post_pair(indexed_client).get_json()["id"]
    for upload in indexed_settings.upload_dir.glob(f"{doomed}-*"):
        upload.unlink()  # this one's uploads vanish before the worker gets to them
    run_worker()

    finished = indexed_client.get(ok_url)
    assert finished.get_json()["status"] == "finished"
    api_schema["/api/searches/{search_id}"]["GET"].validate_response(finished)
    image = indexed_client.get(finished.get_json()["image_url"])
    assert image.status_code == 200
    api_schema["/api/searches/{search_id}/result.jpg"]["GET"].validate_response(image)
    table = indexed_client.get(finished.get_json()["csv_url"])
    assert table.status_code == 200 and len(table.text.splitlines()) == 1 + 4
    api_schema["/api/searches/{search_id}/results.csv"]["GET"].validate_response(table)
    failed = indexed_client.get(f"/api/searches/{doomed}")
    assert failed.get_json()["status"] == "failed"
    api_schema["/api/searches/{search_id}"]["GET"].validate_response(failed)
    not_ready = indexed_client.get(f"/api/searches/{doomed}/result.jpg")
    assert not_ready.status_code == 409
    api_schema["/api/searches/{search_id}/result.jpg"]["GET"].validate_response(not_ready)
    not_ready = indexed_client.get(f"/api/searches/{doomed}/results.csv")
    assert not_ready.status_code == 409
    api_schema["/api/searches/{search_id}/results.csv"]["GET"].validate_response(not_ready)

    values = metric_values(indexed_client.get("/metrics").text)
    assert values['pairsearch_searches{status="finished"}'] == 1
    assert values['pairsearch_searches{status="failed"}'] == 1
    assert values['pairsearch_searches{status="queued"}'] == 0
    assert values['pairsearch_searches{status="started"}'] == 0
    assert values["pairsearch_queue_length"] == 0
    assert len(Queue(indexed_settings.queue_name, connection=redis)) == 0

    timings = finished.get_json()["timings"]
    for stage in STAGES:
        assert values[f'pairsearch_stage_duration_seconds_count{{stage="{stage}"}}'] == 1
        assert values[f'pairsearch_stage_duration_seconds_sum{{stage="{stage}"}}'] == \
            pytest.approx(timings[f"{stage}_ms"] / 1000)
    assert "forward_ms" in timings and not any('stage="forward"' in key for key in values)
