"""The whole service through HTTP: app from the factory, real Redis, real worker (burst)."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from PIL import Image
from rq import Queue

from tests.http import post_pair
from tests.images import N_PAIRS, design_pair, encode
from worker.core.generations import current_id
from worker.core.settings import DEFAULT_DESCRIPTOR

pytestmark = pytest.mark.slow


def test_search_end_to_end(indexed_client, run_worker, indexed_settings):
    front, back = design_pair(5, N_PAIRS)
    response = post_pair(indexed_client, front, back)
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued" and response.headers["Location"] == body["url"]
    assert indexed_client.get(body["url"]).get_json()["status"] == "queued"
    for waiting in (f"{body['url']}/result.jpg", f"{body['url']}/results.csv"):
        refused = indexed_client.get(waiting)
        assert refused.status_code == 409 and refused.get_json()["error"] == "not_ready"

    run_worker()

    result = indexed_client.get(body["url"]).get_json()
    assert result["status"] == "finished", result
    hits = result["results"]
    assert len(hits) == 20 and [h["rank"] for h in hits] == list(range(1, 21))
    assert hits[0]["name"] == "dress-0005" and hits[0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert set(hits[0]) >= {"rank", "name", "score", "front_score", "back_score", "front", "back"}
    # the copy found first; the rest in order of design (worker.pipeline.listing), not of score
    assert result["order"] == "design" and all(hits[0]["score"] >= h["score"] for h in hits)
    assert set(result["timings"]) == {"queue_wait_ms", "preprocess_ms", "extract_ms", "search_ms",
                                      "render_ms", "total_ms", "batch_images", "forward_ms"}
    assert result["timings"]["batch_images"] == 2  # alone in the queue: its own two images
    assert 0 < result["timings"]["forward_ms"] <= result["timings"]["extract_ms"]
    assert result["timings"]["queue_wait_ms"] >= 0
    assert result["stage"] == "render"

    image = indexed_client.get(result["image_url"])
    assert image.status_code == 200 and image.mimetype == "image/jpeg"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert image.headers["Cache-Control"] == "private, no-store"  # a team's unreleased designs
    assert indexed_client.get(body["url"]).headers["Cache-Control"] == "private, no-store"
    grid = Image.open(io.BytesIO(image.data))
    assert grid.format == "JPEG" and grid.width > 1000
    thumb = indexed_client.get(hits[0]["front_url"])
    assert thumb.status_code == 200 and thumb.mimetype == "image/png"
    assert sorted(p.name for p in indexed_settings.output_dir.iterdir()) == [
        f"{body['id']}-query-back.png", f"{body['id']}-query-front.png", f"{body['id']}.jpg"]


def test_options_are_used(indexed_client, run_worker):
    front, back = design_pair(10, N_PAIRS)
    url = post_pair(indexed_client, front, back, k=3, front_weight=1.0).get_json()["url"]
    run_worker()
    result = indexed_client.get(url).get_json()
    assert result["k"] == 3 and result["front_weight"] == 1.0
    assert len(result["results"]) == 3
    for hit in result["results"]:
        assert hit["score"] == pytest.approx(hit["front_score"], abs=1e-5)


def test_html_form_redirects_to_a_page_that_shows_the_grid(indexed_client, run_worker):
    front, back = design_pair(2, N_PAIRS)
    form = indexed_client.get("/")
    assert b'name="front"' in form.data and b'name="back"' in form.data
    response = indexed_client.post("/", data={"front": (io.BytesIO(front), "f.png"),
                                              "back": (io.BytesIO(back), "b.png")},
                                   content_type="multipart/form-data")
    assert response.status_code == 303 and response.location.startswith("/searches/")
    waiting = indexed_client.get(response.location)
    assert b"Searching" in waiting.data and b'http-equiv="refresh" content="10"' in waiting.data
    assert b'<p id="progress" role="status">' in waiting.data  # read out as it changes
    run_worker()
    page = indexed_client.get(response.location).data.decode()
    assert "result.jpg" in page and "jacket-0002" in page and 'id="results"' in page


def test_a_body_that_is_not_multipart_or_repeats_an_option_is_refused_saying_so(
        indexed_client, redis, indexed_settings):
    """Another body reads as no fields at all: it was refused as missing its images (or a
    design's name); a repeated option was read as one of its values."""
    for body in ({"json": {"k": 5}}, {"data": {"k": "5"}},
                 {"data": b"--x--", "content_type": "multipart/form-data"}):  # no boundary
        for url in ("/api/searches", "/api/checks"):
            response = indexed_client.post(url, **body)
            assert (response.status_code, response.get_json()["error"]) == (400, "not_multipart")
            assert "multipart/form-data" in response.get_json()["message"]
    response = indexed_client.post("/", json={"k": 5})  # the page says the same
    assert response.status_code == 400 and b"multipart/form-data (curl -F)" in response.data
    cut = (b'--x\r\nContent-Disposition: form-data; name="front"; filename="f.png"\r\n'
           b"Content-Type: image/png\r\n\r\n" + GOOD_FRONT[:500])  # no closing boundary
    for url in ("/api/searches", "/api/checks", "/"):  # before: read as an empty form
        response = indexed_client.post(url, data=cut, content_type="multipart/form-data; boundary=x")
        assert response.status_code == 400, url
        assert b"body is malformed: cut short before its closing boundary, or a part without " \
            b"its headers" in response.data, (url, response.data[:300])
        if url == "/":  # the front page again, its form and the refusal
            assert b'id="search-form"' in response.data and b'role="alert" id="form-error" >' in response.data
        else:
            assert response.get_json()["error"] == "malformed_form"
    response = indexed_client.post("/api/searches", data={
        "k": ["5", "6"], "front": (io.BytesIO(GOOD_FRONT), "f.png")}, content_type="multipart/form-data")
    assert (response.status_code, response.get_json()["error"]) == (400, "invalid_k")
    assert response.get_json()["message"] == "k was given more than once"
    assert len(Queue(indexed_settings.queue_name, connection=redis)) == 0


def test_form_errors_are_readable(indexed_client, redis, indexed_settings):
    response = indexed_client.post("/", data={"k": "20"}, content_type="multipart/form-data")
    assert response.status_code == 400
    assert b"no image was uploaded" in response.data and b"<form" in response.data
    assert b"<title>Error: Paired design search</title>" in response.data  # said first
    response = indexed_client.post("/", data={"front": (io.BytesIO(b"GIF89a"), "x.gif")},
                                   content_type="multipart/form-data")
    assert response.status_code == 415 and b"not a JPEG or PNG image" in response.data


GOOD_FRONT, GOOD_BACK = design_pair(0, N_PAIRS)


@pytest.mark.parametrize("front, back, fields, status, error", [
    (None, None, {}, 400, "missing_images"),
    (b"", GOOD_BACK, {}, 400, "empty_front"),
    (GOOD_FRONT, GOOD_BACK, {"sides": "sideways"}, 400, "invalid_sides"),
    (b"just some text", GOOD_BACK, {}, 415, "unsupported_format"),
    (GOOD_FRONT, encode(Image.new("RGB", (64, 64)), "GIF"), {}, 415, "unsupported_format"),
    (GOOD_FRONT, GOOD_BACK[:200], {}, 422, "corrupt"),
    (GOOD_FRONT, GOOD_BACK, {"k": 0}, 400, "invalid_k"),
    (GOOD_FRONT, GOOD_BACK, {"k": "many"}, 400, "invalid_k"),
    (GOOD_FRONT, GOOD_BACK, {"k": "9" * 5000}, 400, "invalid_k"),  # past int()'s 4,300 digits
    (GOOD_FRONT, GOOD_BACK, {"k": "0" * 5000 + "1" * 12}, 400, "invalid_k"),  # zeros count
    (GOOD_FRONT, GOOD_BACK, {"k": "\u00b2"}, 400, "invalid_k"),  # a digit to str.isdigit, not to int
    (GOOD_FRONT, GOOD_BACK, {"front_weight": 1.5}, 400, "invalid_front_weight"),
    (GOOD_FRONT, GOOD_BACK, {"front_weight": "nan"}, 400, "invalid_front_weight"),
])
def test_bad_input_is_refused_and_nothing_is_kept(indexed_client, redis, indexed_settings,
                                                 front, back, fields, status, error):
    response = post_pair(indexed_client, front, back, **fields)
    assert response.status_code == status
    body = response.get_json()
    assert body["error"] == error and len(body["message"]) > 10
    assert "invalid literal" not in body["message"]  # said for a person, not by Python
    assert "int_max_str_digits" not in body["message"] and len(body["message"]) < 300
    assert len(Queue(indexed_settings.queue_name, connection=redis)) == 0
    assert list(indexed_settings.upload_dir.iterdir()) == []


def test_a_drawing_whose_exif_cannot_be_read_is_searched_not_a_500(indexed_client, redis,
                                                                   indexed_settings):
    from tests.test_preprocess import with_bad_exif

    front = encode(Image.open(io.BytesIO(GOOD_FRONT)).convert("RGB"), "JPEG")
    response = post_pair(indexed_client, with_bad_exif(front), with_bad_exif(GOOD_BACK))
    assert response.status_code == 202, response.get_json()
    assert len(Queue(indexed_settings.queue_name, connection=redis)) == 1
    assert len(list(indexed_settings.upload_dir.iterdir())) == 2


def test_a_drawing_sent_without_a_file_name_is_searched_not_dropped(indexed_client, redis,
                                                                     indexed_settings):
    """werkzeug gives no length for a part with filename="": taken for an empty file input,
    the front was dropped and the search ran by the back alone, without a word."""
    response = indexed_client.post("/api/searches", data={
        "front": (io.BytesIO(GOOD_FRONT), ""), "back": (io.BytesIO(GOOD_BACK), "b.png")},
        content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    job = Queue(indexed_settings.queue_name, connection=redis).jobs[0]
    assert job.kwargs["front"] and job.kwargs["back"]
    empty_input = indexed_client.post("/api/searches", data={  # a form's file input left empty
        "front": (io.BytesIO(b""), ""), "back": (io.BytesIO(GOOD_BACK), "b.png")},
        content_type="multipart/form-data")
    assert empty_input.status_code == 202
    assert Queue(indexed_settings.queue_name, connection=redis).jobs[1].kwargs["front"] is None


def test_a_drawing_sent_as_text_under_another_name_or_twice_is_refused_saying_so(client):
    def post(data: dict):
        return client.post("/api/searches", data=data, content_type="multipart/form-data")

    as_text = post({"front": "front.png", "k": "3"}).get_json()
    assert as_text["error"] == "missing_images"
    assert as_text["message"].endswith("; front came as a text field, not a file (curl: "
                                       "-F front=@drawing.png, with the @)")
    misnamed = post({"image": (io.BytesIO(GOOD_FRONT), "f.png")}).get_json()
    assert misnamed["message"].endswith("; the files came as 'image': name the fields front "
                                        "and back")
    twice = post({"front": [(io.BytesIO(GOOD_FRONT), "a.png"), (io.BytesIO(GOOD_BACK), "b.png")]})
    assert (twice.status_code, twice.get_json()) == (400, {
        "error": "invalid_front", "message": "front was given more than once; upload one front "
                                             "drawing"})


def test_a_field_sent_the_wrong_way_beside_a_drawing_is_refused_not_dropped(
        indexed_client, redis, indexed_settings):
    """A forgotten @ on one side ran a one-side search without a word, and an option sent as
    a file ran with its default (found checking the README's examples, 2026-12-06)."""
    def post(data: dict):
        return indexed_client.post("/api/searches", data=data, content_type="multipart/form-data")

    back_as_text = post({"front": (io.BytesIO(GOOD_FRONT), "f.png"), "back": "back.png"})
    assert (back_as_text.status_code, back_as_text.get_json()) == (400, {
        "error": "invalid_back", "message": "back came as a text field, not a file (curl: -F "
        "back=@drawing.png, with the @); upload the back drawing, or leave the field out to "
        "search by the other side alone"})
    k_as_file = post({"front": (io.BytesIO(GOOD_FRONT), "f.png"), "k": (io.BytesIO(b"5"), "k")})
    assert (k_as_file.status_code, k_as_file.get_json()) == (400, {
        "error": "invalid_k", "message": "k came as a file, not a text field (curl: -F k=value, "
                                         "without the @)"})
    assert len(Queue(indexed_settings.queue_name, connection=redis)) == 0
    assert list(indexed_settings.upload_dir.iterdir()) == []
    blank = post({"front": (io.BytesIO(GOOD_FRONT), "f.png"), "back": ""})  # an empty field
    assert blank.status_code == 202


def test_a_queued_search_shows_the_options_it_asked_for(indexed_client):
    """Until finished (queued, running, failed) the options came back null: a client could
    not tell what it had asked for (exploratory round 7, finding 14)."""
    queued = post_pair(indexed_client, GOOD_FRONT, GOOD_BACK, k=5, front_weight=0.3,
                       sides="unknown", front_box="0.1,0.1,0.9,0.9").get_json()
    body = indexed_client.get(queued["url"]).get_json()
    assert body["status"] == "queued"
    assert {key: body[key] for key in ("k", "front_weight", "sides_unknown", "front_box",
                                       "back_box", "filters")} == {
        "k": 5, "front_weight": 0.3, "sides_unknown": True, "front_box": [0.1, 0.1, 0.9, 0.9],
        "back_box": None, "filters": {}}
    front_only = post_pair(indexed_client, GOOD_FRONT, None, front_weight=0.3).get_json()
    assert indexed_client.get(front_only["url"]).get_json()["front_weight"] == 1.0  # applied


def test_a_search_queued_whose_cache_key_cannot_be_written_keeps_its_uploads(
        indexed_client, redis, indexed_settings, monkeypatch):
    """The result cache's key was written in the queueing's `try`: Redis refusing it (full)
    deleted the uploads of a search already queued, answered 503, and the job then failed
    on its missing drawings."""
    from redis.exceptions import OutOfMemoryError

    client = indexed_client.application.extensions["redis"]
    real_set = client.set

    def full_for_cache_keys(name, *args, **kwargs):
        if str(name).startswith("pairsearch:cache:"):
            raise OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")
        return real_set(name, *args, **kwargs)

    monkeypatch.setattr(client, "set", full_for_cache_keys)
    response = post_pair(indexed_client, GOOD_FRONT, GOOD_BACK)
    assert response.status_code == 202, response.get_json()
    queue = Queue(indexed_settings.queue_name, connection=redis)
    assert queue.job_ids == [response.get_json()["id"]]
    assert len(list(indexed_settings.upload_dir.iterdir())) == 2  # its job's to read


def test_too_large_upload_is_413(redis, indexed_settings):
    import dataclasses

    from web import create_app

    app = create_app({"SETTINGS": dataclasses.replace(indexed_settings, max_upload_mb=1)})
    response = post_pair(app.test_client(), GOOD_FRONT, b"\0" * (2 * 1024 * 1024))
    assert response.status_code == 413 and response.get_json()["error"] == "too_large"
    assert "the limit is 1 MB a request" in response.get_json()["message"]
    fields = {f"note{i}": "x" for i in range(1500)}  # small, but past werkzeug's 1,000 parts
    response = post_pair(app.test_client(), GOOD_FRONT, GOOD_BACK, **fields)
    assert response.status_code == 413 and "too many fields" in response.get_json()["message"]


def test_unknown_ids_are_404(indexed_client):
    for url in ("/api/searches/0123456789abcdef0123456789abcdef", "/api/searches/nope",
                "/api/searches/0123456789abcdef0123456789abcdef/result.jpg",
                "/api/searches/0123456789abcdef0123456789abcdef/results.csv", "/searches/zz"):
        response = indexed_client.get(url)
        assert response.status_code == 404


def test_the_id_of_another_kind_of_job_is_no_search(indexed_client, redis, indexed_settings):
    """An edit's id has a search id's form and its job the same queue: no search of that id
    (it was a 500 once the edit finished, and told anyone an edit's state without a token)."""
    import uuid

    from rq.results import Result

    from web.designs import REMOVE_DESIGN_FUNC

    queue = Queue(indexed_settings.queue_name, connection=redis)
    edit = queue.enqueue(REMOVE_DESIGN_FUNC, kwargs={"name": "dress-0001"},
                         job_id=uuid.uuid4().hex)  # as the web names and queues an edit
    urls = [f"/api/searches/{edit.id}", f"/api/searches/{edit.id}/result.jpg",
            f"/api/searches/{edit.id}/results.csv", f"/api/searches/{edit.id}/match/1.jpg",
            f"/searches/{edit.id}", f"/searches/{edit.id}/match/1"]
    assert [indexed_client.get(url).status_code for url in urls] == [404] * len(urls)  # queued
    assert edit.get_status(refresh=True) == "queued"
    edit.set_status("finished")
    Result.create(edit, Result.Type.SUCCESSFUL, ttl=60, return_value={"name": "dress-0001",
                                                                       "n_pairs": 59})
    assert [indexed_client.get(url).status_code for url in urls] == [404] * len(urls)


def test_a_finished_search_whose_results_expired_first_is_404(indexed_client, redis,
                                                            indexed_settings):
    """A search's job and its result each live RESULT_TTL, written a moment apart: a read
    between their expiries finds a finished job without a result (it was a 500)."""
    import uuid

    from worker.core.queueing import JOB_FUNC

    search = Queue(indexed_settings.queue_name, connection=redis).enqueue(
        JOB_FUNC, job_id=uuid.uuid4().hex)
    search.set_status("finished")  # and no result
    for url in (f"/api/searches/{search.id}", f"/api/searches/{search.id}/results.csv",
                f"/api/searches/{search.id}/result.jpg", f"/searches/{search.id}"):
        response = indexed_client.get(url)
        assert response.status_code == 404, url
    assert "expired" in indexed_client.get(f"/api/searches/{search.id}").get_json()["message"]


def test_failed_search_reports_its_error(indexed_client, run_worker, indexed_settings):
    url = post_pair(indexed_client, GOOD_FRONT, GOOD_BACK).get_json()["url"]
    for upload in indexed_settings.upload_dir.iterdir():
        upload.unlink()  # the uploads vanish before the worker gets to them
    run_worker()
    body = indexed_client.get(url).get_json()
    assert body["status"] == "failed" and "resubmit" in body["error"]
    for failed in (f"{url}/result.jpg", f"{url}/results.csv"):
        refused = indexed_client.get(failed)
        assert refused.status_code == 409 and refused.get_json()["error"] == "search_failed"


def test_a_drawing_too_faint_to_show_fails_its_search_saying_so(indexed_client, run_worker,
                                                                caplog):
    """A 1 px faint line on a large page passes the web's blank check (it is not one flat
    colour) but averages away on the 224 px canvas: it is not searched as blank paper. The
    worker's log says so in a line, not as an ERROR with a traceback (the upload's fault)."""
    import logging

    from PIL import ImageDraw

    page = Image.new("RGB", (4000, 4000), "white")
    ImageDraw.Draw(page).line([(0, 2000), (3999, 2000)], fill=(230, 230, 230), width=1)
    response = post_pair(indexed_client, encode(page), GOOD_BACK)
    assert response.status_code == 202, response.get_json()
    with caplog.at_level(logging.INFO):
        run_worker()
    body = indexed_client.get(response.get_json()["url"]).get_json()
    assert body["status"] == "failed", body
    assert body["error"].startswith("the front drawing shows nothing at the size designs are "
                                    "compared")
    refused = [r for r in caplog.records if "a drawing was refused" in r.getMessage()]
    assert [r.levelname for r in refused] == ["WARNING"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_catalogue_images_cannot_escape_the_database(indexed_client):
    assert indexed_client.get("/database/images/dress-0001_front.png").status_code == 200
    for path in ("/database/../pyproject.toml", "/database/..%2f..%2fetc/passwd",
                 "/database/pairs.csv", "/database/%2e%2e/%2e%2e/etc/hostname.png",
                 "/database/images/a%00.png", "/catalogue/thumbs/images/a%00.png"):
        assert indexed_client.get(path).status_code == 404, path  # a NUL: 500 before


def test_healthz_reports_redis_workers_and_index(indexed_client, indexed_settings):
    body = indexed_client.get("/healthz").get_json()
    assert body["redis"] is True and body["catalogue_pairs"] == N_PAIRS
    assert body["descriptor"] == DEFAULT_DESCRIPTOR and body["weights"]["id"] == "bsds500"
    assert body["workers"] == 0 and body["status"] == "degraded"


def test_redis_down_gives_503_and_keeps_no_upload(indexed_settings):
    import dataclasses

    from web import create_app
    from worker.dev.processes import free_port

    settings = dataclasses.replace(indexed_settings,
                                   redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = create_app({"SETTINGS": settings}).test_client()
    response = post_pair(client, GOOD_FRONT, GOOD_BACK)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert list(settings.upload_dir.iterdir()) == []
    assert client.get("/healthz").status_code == 503


def test_web_process_never_imports_tensorflow():
    code = ("import sys; from web import create_app; create_app(); import web.api, web.pages;"
            "sys.exit(1 if 'tensorflow' in sys.modules or 'keras' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def finished(client, url) -> dict:
    body = client.get(url).get_json()
    assert body["status"] == "finished", body
    return body


def test_one_side_searches_score_that_side_alone(indexed_client, run_worker):
    front, back = design_pair(5, N_PAIRS)
    front_only = post_pair(indexed_client, front, None, front_weight=0.3).get_json()["url"]
    back_only = post_pair(indexed_client, None, back, front_weight=0.3).get_json()["url"]
    run_worker()
    for url, side in ((front_only, "front"), (back_only, "back")):
        result = finished(indexed_client, url)
        hits = result["results"]
        assert result["front_weight"] == (1.0 if side == "front" else 0.0)  # as applied
        other = "back" if side == "front" else "front"
        assert hits[0]["name"] == "dress-0005"
        assert all(h[f"{other}_score"] is None for h in hits)
        assert all(h["score"] == pytest.approx(h[f"{side}_score"]) for h in hits)
        page = indexed_client.get(url.replace("/api/searches/", "/searches/")).text
        assert "results" in page and "front weight" not in page  # one side: no weight applied
    pair = post_pair(indexed_client, front, back).get_json()
    run_worker()
    assert "front weight 0.5" in indexed_client.get(f"/searches/{pair['id']}").text


def test_sides_unknown_finds_a_pair_uploaded_back_to_front(indexed_client, run_worker):
    front, back = design_pair(5, N_PAIRS)
    known = post_pair(indexed_client, back, front).get_json()["url"]  # sides swapped
    unknown = post_pair(indexed_client, back, front, sides="unknown").get_json()["url"]
    run_worker()
    known_top = finished(indexed_client, known)["results"][0]
    body = finished(indexed_client, unknown)
    top = body["results"][0]
    assert body["sides_unknown"] is True
    assert top["name"] == "dress-0005" and top["swapped"] is True
    assert top["score"] == pytest.approx(1.0, abs=1e-3)
    assert known_top["score"] < top["score"] - 0.01
    page = " ".join(indexed_client.get(f"/searches/{body['id']}").get_data(as_text=True).split())
    assert "each drawing matched against both sides" in page and "(sides swapped)" in page
    # the hits' thumbnails (150 px), linked to the drawings, not 20 full drawings
    assert f'<a href="{top["front_url"]}"><img src="/catalogue/thumbs/{top["front"]}?v=' in page
    known_page = indexed_client.get(known.replace("/api/searches/", "/searches/")).get_data(
        as_text=True)
    assert "both sides" not in known_page


def test_identical_resubmission_is_answered_from_the_cache(indexed_client, run_worker, redis,
                                                          indexed_settings):
    front, back = design_pair(4, N_PAIRS)
    first = post_pair(indexed_client, front, back).get_json()
    queued_twin = post_pair(indexed_client, front, back).get_json()  # not finished: searched too
    assert queued_twin["id"] != first["id"] and queued_twin["status"] == "queued"
    run_worker()
    done = indexed_client.get(first["url"]).get_json()
    again = post_pair(indexed_client, front, back)
    body = again.get_json()
    assert again.status_code == 202 and body["status"] == "finished"
    assert body["id"] not in (first["id"], queued_twin["id"]), "never another client's id"
    copy = indexed_client.get(body["url"]).get_json()
    assert copy["status"] == "finished" and copy["id"] == body["id"]
    assert copy["results"] == done["results"] and copy["image_url"].startswith(body["url"])
    assert copy["stage"] == done["stage"] == "render"  # the copy's meta is stored
    assert copy["timings"] == {} != done["timings"], "the original's timings are not shown"
    assert 0 < redis.ttl(f"rq:job:{body['id']}") <= indexed_settings.result_ttl
    grid = indexed_client.get(copy["image_url"])
    assert grid.status_code == 200
    assert grid.data == indexed_client.get(done["image_url"]).data
    assert len(Queue(indexed_settings.queue_name, connection=redis)) == 0, "nothing recomputed"
    other = post_pair(indexed_client, front, back, k=5).get_json()
    assert other["id"] != first["id"] and other["status"] == "queued", "other options: a search"
    assert done["catalogue"] == current_id(indexed_settings.features_dir)


def test_without_the_result_cache_an_identical_resubmission_is_searched(
        indexed_settings, indexed_client, run_worker):
    """RESULT_CACHE=0: a finished twin does not answer it, so nobody learns it was searched."""
    import dataclasses

    from web import create_app

    front, back = design_pair(6, N_PAIRS)
    post_pair(indexed_client, front, back)
    run_worker()
    assert post_pair(indexed_client, front, back).get_json()["status"] == "finished"
    uncached = create_app({"SETTINGS": dataclasses.replace(indexed_settings, result_cache=False),
                           "TESTING": True}).test_client()
    assert post_pair(uncached, front, back).get_json()["status"] == "queued"


def test_a_result_of_another_catalogue_version_is_not_reused(indexed_client, run_worker,
                                                             monkeypatch):
    """A worker that could not load a new index searched the one before: its result, kept
    under the new index's key, must not answer for it."""
    front, back = design_pair(5, N_PAIRS)
    post_pair(indexed_client, front, back)
    run_worker()
    monkeypatch.setattr("web.resultcache.current_id", lambda features_dir: "another-version")
    assert post_pair(indexed_client, front, back).get_json()["status"] == "queued"


def test_long_poll_answers_when_the_search_finishes(indexed_client, run_worker, monkeypatch):
    import threading
    import time

    monkeypatch.setattr("worker.core.queueing.RECHECK_S", 60.0)  # only the announcement can wake it

    front, back = design_pair(12, N_PAIRS)
    url = post_pair(indexed_client, front, back).get_json()["url"]
    for bad in ("abc", "-1", "31", "nan", "inf"):
        response = indexed_client.get(f"{url}?wait={bad}")
        assert response.status_code == 400 and "wait" in response.get_json()["message"]
        assert response.get_json()["error"] == "invalid_wait"  # named like the other fields
    start = time.monotonic()
    assert indexed_client.get(f"{url}?wait=0.3").get_json()["status"] == "queued"
    assert time.monotonic() - start >= 0.3  # no worker yet: held for the whole wait
    answer = {}
    poll = threading.Thread(target=lambda: answer.update(
        body=indexed_client.get(f"{url}?wait=30").get_json()))  # held until the search ends
    announcements = indexed_client.application.extensions["redis"].pubsub()
    announcements.subscribe(f"pairsearch:done:{url.rsplit('/', 1)[-1]}")
    poll.start()
    redis = indexed_client.application.extensions["redis"]
    channel = f"pairsearch:done:{url.rsplit('/', 1)[-1]}"
    deadline = time.monotonic() + 10  # the poll is waiting (subscribed) before the worker runs
    while dict(redis.pubsub_numsub(channel))[channel.encode()] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dict(redis.pubsub_numsub(channel))[channel.encode()] == 2
    run_worker()  # RQ wants the main thread
    ended = time.monotonic()
    poll.join(timeout=60)
    assert not poll.is_alive(), "the long poll was not released"
    assert time.monotonic() - ended < 5  # released by the announcement, not the 60 s re-read
    body = answer["body"]
    assert body.get("status") == "finished", body
    assert body["results"][0]["name"].endswith("0012")
    # the worker announced the end, which is what releases a long poll at once
    messages = [announcements.get_message(timeout=5) for _ in range(2)]
    assert [m["data"] for m in messages if m and m["type"] == "message"] == [b"done"]


def test_stage_reports_are_written_in_the_background_in_order(indexed_client, run_worker,
                                                              monkeypatch):
    import threading

    from rq.job import Job

    order = ["queued", "preprocess", "extract", "search", "render"]
    written, real = [], Job.save_meta

    def spy(self):
        written.append((threading.current_thread().name, self.meta.get("stage")))
        return real(self)

    monkeypatch.setattr(Job, "save_meta", spy)
    url = post_pair(indexed_client, *design_pair(6, N_PAIRS)).get_json()["url"]
    run_worker()
    body = indexed_client.get(url).get_json()
    assert body["status"] == "finished" and body["stage"] == "render"
    assert written and all(name.startswith("stage-report") for name, _ in written)
    stages = [order.index(stage) for _, stage in written]  # a report may already carry a later
    assert stages == sorted(stages) and stages[-1] == order.index("render")  # stage, never older


def test_an_error_is_recorded_after_the_last_stage_report(redis, monkeypatch):
    # a late stage write carries meta without the error: it must land before record_error
    from rq.job import Job

    from worker.service import process as service
    from worker.service.reports import REPORTS

    job = Job.create("worker.service.jobs.search_pair", connection=redis, meta={"stage": "render"})
    job.save()
    order = []
    monkeypatch.setattr(REPORTS, "flush", lambda: order.append("flush"))
    real_save_meta = job.save_meta
    monkeypatch.setattr(job, "save_meta", lambda: (order.append("error"), real_save_meta())[1])
    service.record_error(job, ValueError, ValueError("the front image is damaged"), None)
    assert order == ["flush", "error"]
    assert Job.fetch(job.id, connection=redis).meta["error"] == "the front image is damaged"


def test_a_recorded_error_names_the_data_folders_by_their_settings(redis, settings):
    from rq.job import Job

    from worker.service import process as service

    job = Job.create("worker.service.jobs.search_pair", connection=redis)
    job.save()
    gone = settings.upload_dir / "up-1.png"
    service.record_error(job, FileNotFoundError, FileNotFoundError(
        2, "No such file or directory", str(gone)), None, settings=settings)
    error = Job.fetch(job.id, connection=redis).meta["error"]
    assert error == "[Errno 2] No such file or directory: 'UPLOAD_DIR/up-1.png'", error


def test_flushing_stage_reports_waits_until_they_are_written():
    import threading
    import time

    from worker.service.reports import StageReports

    written = threading.Event()

    class SlowJob:
        meta: dict = {}

        def save_meta(self):
            time.sleep(0.3)
            written.set()

    reports = StageReports()
    reports.report(SlowJob(), "render")
    assert not written.is_set()  # written in the background: the search did not wait
    reports.flush()
    assert written.is_set()
