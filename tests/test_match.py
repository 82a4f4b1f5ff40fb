"""Why two designs match (the match view) and search by a part (boxes), through the real API
with a real worker; the refusals without one."""

from __future__ import annotations

import io
import re
import threading
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw
from rq import Queue
from rq.job import Job

from tests.http import post_pair
from tests.images import N_PAIRS, design_pair, encode
from web.matches import INPUT_ERROR_KEPT
from worker.core.boxes import parse_box
from worker.core.contract import SearchOptions
from worker.core.queueing import match_job_id
from worker.dev.sample import draw_side, make_designs
from worker.pipeline.preprocess import crop_to_box, make_canvas

FRONT, BACK = design_pair(5, N_PAIRS)
NAMES = [d.name for d in make_designs(N_PAIRS, 7)]


def cluttered_query(index: int) -> tuple[bytes, str]:
    """Design `index`'s front pasted into a wider page beside another garment and scribbles;
    (PNG bytes, the box around the pasted front as `x0,y0,x1,y1`)."""
    designs = make_designs(N_PAIRS, 7)
    page = Image.new("RGB", (1000, 440), "white")
    page.paste(draw_side(designs[(index + 7) % N_PAIRS], "front"), (20, 60))
    draw = ImageDraw.Draw(page)
    for i in range(6):
        draw.rectangle([360 + 30 * i, 40 + 50 * i, 420 + 30 * i, 70 + 50 * i], outline="black",
                       width=3, fill=(40 * i, 90, 200 - 30 * i))
    page.paste(draw_side(designs[index], "front"), (640, 60))
    return encode(page), f"{640 / 1000},{60 / 440},{960 / 1000},{380 / 440}"


# --- boxes: refused without a worker or a model ---------------------------------------------

@pytest.mark.parametrize("box, says", [
    ("0.5,0,0.4,1", "0 <= x0 < x1 <= 1"), ("0,0,1.5,1", "0 <= x0 < x1 <= 1"),
    ("0.1,0.2,0.3", "four numbers"), ("a,b,c,d", "four numbers"), ("-0.1,0,1,1", "four numbers"),
    ("0,0,0.02,1", "too small"), ("nan,0,1,1", "four numbers"),
    ("0,0,0.06,0.06", "holds one flat colour alone")])  # the paper's blank corner
def test_bad_boxes_are_refused_naming_the_field(client, settings, box, says):
    for side in ("front", "back"):
        response = post_pair(client, FRONT, BACK, **{f"{side}_box": box})
        body = response.get_json()
        assert response.status_code == 400, body
        assert body["error"] == f"invalid_{side}_box" and says in body["message"]
        assert f"{side}_box" in body["message"]
    assert not any(settings.upload_dir.glob("*")), "nothing stored for a refused search"


def test_a_box_needs_its_side(client):
    response = post_pair(client, FRONT, None, back_box="0,0,0.5,0.5")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_back_box"
    assert "no back image" in response.get_json()["message"]


def test_box_parsing_and_cropping():
    assert parse_box(" 0.25, .5 ,1,1 ", "front_box") == (0.25, 0.5, 1.0, 1.0)
    # the smallest box: 0.0813 - 0.0313 is 0.049999999999999996 in binary floats (refused)
    assert parse_box("0.0313,0.1,0.0813,0.15", "front_box") == (0.0313, 0.1, 0.0813, 0.15)
    with pytest.raises(ValueError, match="too small"):
        parse_box("0.0313,0.1,0.0812,0.9", "front_box")
    assert parse_box("", "front_box") is None and SearchOptions().front_box is None
    assert SearchOptions(front_box=[0, 0, 0.5, 0.5]).front_box == (0, 0, 0.5, 0.5)
    img = Image.new("RGB", (200, 100), "white")
    img.paste((255, 0, 0), (100, 50, 200, 100))  # the bottom-right quarter is red
    part = crop_to_box(img, (0.5, 0.5, 1.0, 1.0))
    assert part.size == (100, 50)
    assert set(part.getdata()) == {(255, 0, 0)}
    assert crop_to_box(img, None) is img


def test_unknown_searches_have_no_match_view(client):
    for url in ("/api/searches/" + "0" * 32 + "/match/1.jpg", "/api/searches/nope/match/1.jpg",
                "/searches/" + "0" * 32 + "/match/1"):
        response = client.get(url)
        assert response.status_code == 404
        assert "no such search" in response.text


def test_a_design_name_with_dollar_signs_is_drawn_as_text():
    """matplotlib read `$...$` in the title as TeX: `$25 ... $30` lost its signs, and a name
    with `$^$` raised, the view never drawn (and asked again at every visit)."""
    from worker.pipeline.matchview import Panel, render_match_view

    canvas = np.full((224, 224, 3), 255, np.uint8)
    for title in ("#1  tee $^$ x  similarity 41", "#2  Tee $25 promo, $30 later  copy 97"):
        jpeg = render_match_view([Panel("front", "front", canvas, canvas, [])], title)
        assert Image.open(io.BytesIO(jpeg)).format == "JPEG"


def test_a_long_design_name_leaves_the_rank_and_verdict_in_the_view_s_title():
    """The title is centred on the view's 800 px: a 200-character name (names may be that
    long) ran off both sides, taking "#1" and "copy 93" with it."""
    from worker.core.contract import Hit
    from worker.pipeline.matchview import Panel, render_match_view
    from worker.service.matches import match_title

    hit = Hit(rank=1, name="long-name-" * 20, score=0.9, front_score=0.9, back_score=0.9,
              swapped=False, front="f.png", back="b.png", verdict="copy", similarity=93)
    canvas = np.full((224, 224, 3), 255, np.uint8)
    for name in ("long-name-" * 20, "W" * 200, "WIDE-" * 40 + "i" * 200):
        title = match_title(hit.model_copy(update={"name": name}))
        assert title.startswith(f"#1  {name[:20]}") and title.endswith("…  copy 93"), title
        view = np.asarray(Image.open(io.BytesIO(render_match_view(
            [Panel("front", "front", canvas, canvas, [])], title))).convert("L"))
        band = view[:45]  # the title's
        assert (band < 128).any() and (band[:, :5] > 200).all() and (band[:, -5:] > 200).all()
    short = hit.model_copy(update={"name": "tee-0001", "verdict": None})
    assert match_title(short) == "#1  tee-0001  similarity 93"


def finished_search(app, redis, hits: list[dict]) -> str:
    """A search made finished in Redis as a worker leaves one, its grid and query drawing
    stored (no model): the web's match routes read only these."""
    import uuid

    from worker.core.queueing import JOB_FUNC, query_canvas_name

    search_id, settings = uuid.uuid4().hex, app.config["SETTINGS"]
    job = Job.create(JOB_FUNC, id=search_id, connection=redis, origin=settings.queue_name,
                     result_ttl=600, ttl=600, failure_ttl=600)
    job._result = {"results": hits, "image": f"{search_id}.jpg", "k": len(hits),
                   "front_weight": 1.0, "order": "score"}
    with redis.pipeline() as pipe:
        job._handle_success(600, pipeline=pipe)
        job.cleanup(600, pipeline=pipe, remove_from_queue=False)
        pipe.execute()
    with app.app_context():
        app.extensions["storage"].put_result(query_canvas_name(search_id, "front"), FRONT)
        app.extensions["storage"].put_result(f"{search_id}.jpg", b"\xff\xd8\xff")
    return search_id


def test_a_match_view_with_no_worker_running_is_refused_and_its_page_shows_the_similarity(
        settings, redis):
    """With every worker gone a view was queued and its page said "Drawing..." for about 20
    minutes; a hit without a verdict had its 0-100 similarity left off the page alone."""
    import dataclasses

    from web import create_app

    app = create_app({"SETTINGS": dataclasses.replace(settings, require_worker=True),
                      "TESTING": True})
    hit = {"rank": 1, "name": "d1", "score": 0.4, "front_score": 0.4, "back_score": None,
           "swapped": False, "front": "a.png", "back": "b.png", "verdict": None,
           "similarity": 41, "columns": {}}
    search_id = finished_search(app, redis, [hit])
    client = app.test_client()
    page = client.get(f"/searches/{search_id}/match/1")
    assert page.status_code == 200 and re.search(r"similarity\s+41\b", page.text), page.text
    answer = client.get(f"/api/searches/{search_id}/match/1.jpg")
    assert answer.status_code == 503 and answer.get_json()["error"] == "no_worker"
    assert answer.headers["Retry-After"] == "30"
    assert not Queue(settings.match_queue_name, connection=redis).job_ids  # nothing queued


# --- with a real worker -----------------------------------------------------------------------

def fetch_while_the_worker_runs(client, run_worker, queue: Queue, urls: list[str]) -> list:
    """GET each URL in a thread (each waits for its match job), run a burst worker once they
    are all queued (RQ wants the main thread), and return the answers in order."""
    answers: list = [None] * len(urls)

    def get(i: int, url: str) -> None:
        answers[i] = client.get(url)

    threads = [threading.Thread(target=get, args=(i, url)) for i, url in enumerate(urls)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(queue) < len(urls) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(queue) == len(urls), "each request enqueued its match job"
    run_worker()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def centre(box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


@pytest.mark.slow
def test_match_view_of_a_copy_highlights_the_same_regions(indexed_client, run_worker,
                                                         indexed_settings, redis):
    search = post_pair(indexed_client, FRONT, BACK, k=20).get_json()
    run_worker()
    hits = indexed_client.get(search["url"]).get_json()["results"]
    assert hits[0]["name"] == NAMES[5]
    cached = post_pair(indexed_client, FRONT, BACK, k=20).get_json()  # a copy keeps the query too
    assert cached["status"] == "finished"
    assert (indexed_settings.output_dir / f"{cached['id']}-query-front.png").read_bytes() == \
        (indexed_settings.output_dir / f"{search['id']}-query-front.png").read_bytes()
    queue = Queue(indexed_settings.match_queue_name, connection=redis)
    base = f"/api/searches/{search['id']}/match"
    first, last = fetch_while_the_worker_runs(indexed_client, run_worker, queue,
                                              [f"{base}/1.jpg", f"{base}/20.jpg"])
    for answer in (first, last):
        assert answer.status_code == 200 and answer.mimetype == "image/jpeg"
        assert answer.headers["Cache-Control"] == "private, no-store"
        view = Image.open(io.BytesIO(answer.data))
        assert view.format == "JPEG" and view.width >= 600 and view.height >= 600
    reports = [Job.fetch(f"match-{search['id']}-{rank}", connection=redis).return_value()
               for rank in (1, 20)]
    copy, far = ({s["query_side"]: s for s in report["sides"]} for report in reports)
    for side in ("front", "back"):
        matches = copy[side]["matches"]
        assert copy[side]["hit_side"] == side and copy[side]["count"] >= 40
        shifts = [np.abs(centre(m["query"]) - centre(m["hit"])).max() for m in matches]
        assert np.mean(np.array(shifts) <= 2 / 28) >= 0.9, "a copy matches where it is"
        assert all(m["similarity"] >= 0.8 for m in matches)
        assert far[side]["count"] < copy[side]["count"] / 2, "the 20th design matches less"
    stored = indexed_settings.output_dir / f"{search['id']}-match-1.jpg"
    assert stored.read_bytes() == first.data
    again = indexed_client.get(f"{base}/1.jpg")  # drawn once: no new job, no worker needed
    assert again.status_code == 200 and again.data == first.data and len(queue) == 0
    page = indexed_client.get(f"/searches/{search['id']}/match/1")
    assert page.status_code == 200 and f"{base}/1.jpg" in page.text and NAMES[5] in page.text


@pytest.mark.slow
def test_match_views_refuse_ranks_and_unfinished_searches(indexed_client, run_worker):
    done = post_pair(indexed_client, FRONT, BACK, k=3).get_json()
    run_worker()
    queued = post_pair(indexed_client, FRONT, BACK, k=4).get_json()
    for rank in (0, 4, 99):
        for url in (f"/api/searches/{done['id']}/match/{rank}.jpg",
                    f"/searches/{done['id']}/match/{rank}"):
            response = indexed_client.get(url)
            assert response.status_code == 404 and "ranked 1 to 3" in response.text
    assert indexed_client.get(f"/api/searches/{done['id']}/match/-1.jpg").status_code == 404
    response = indexed_client.get(f"/api/searches/{queued['id']}/match/1.jpg")
    assert response.status_code == 409 and response.get_json()["error"] == "not_ready"


@pytest.mark.slow
def test_a_hit_removed_from_the_catalogue_since_the_search_says_so(indexed_client, run_worker,
                                                                   indexed_settings, redis):
    search = post_pair(indexed_client, FRONT, BACK, k=3).get_json()
    run_worker()
    hit = indexed_client.get(search["url"]).get_json()["results"][0]
    drawing = indexed_settings.database_dir / hit["front"]
    moved = drawing.rename(drawing.with_name(f".{drawing.name}.away"))  # as a removal does
    try:
        queue = Queue(indexed_settings.match_queue_name, connection=redis)
        answer, = fetch_while_the_worker_runs(
            indexed_client, run_worker, queue, [f"/api/searches/{search['id']}/match/1.jpg"])
        again = indexed_client.get(f"/api/searches/{search['id']}/match/1.jpg")
        assert len(queue) == 0  # the failed view is not drawn again at every request
    finally:
        moved.rename(drawing)
    assert answer.status_code == 409 and answer.get_json()["error"] == "match_failed"
    assert again.status_code == 409 and again.get_json() == answer.get_json()
    failed = Job.fetch(match_job_id(search["id"], 1), connection=redis)
    failed.ended_at -= INPUT_ERROR_KEPT  # later (the drawing back): drawn again
    failed.save()
    later, = fetch_while_the_worker_runs(
        indexed_client, run_worker, queue, [f"/api/searches/{search['id']}/match/1.jpg"])
    assert later.status_code == 200 and later.mimetype == "image/jpeg"
    message = answer.get_json()["message"]
    assert f"{hit['name']} is no longer in the catalogue as it was when you searched" in message
    assert str(indexed_settings.database_dir) not in message  # no server folders shown


@pytest.mark.slow
def test_a_boxed_search_finds_the_design_the_box_was_cut_from(indexed_client, run_worker,
                                                             indexed_settings):
    page, box = cluttered_query(9)
    boxed = post_pair(indexed_client, page, None, front_box=box, k=24).get_json()
    whole = post_pair(indexed_client, page, None, k=24).get_json()
    run_worker()
    boxed_body = indexed_client.get(boxed["url"]).get_json()
    whole_hits = indexed_client.get(whole["url"]).get_json()["results"]
    assert boxed_body["front_box"] == [float(v) for v in box.split(",")]
    assert boxed_body["results"][0]["name"] == NAMES[9]
    html = " ".join(indexed_client.get(f"/searches/{boxed['id']}").get_data(as_text=True).split())
    assert "by a part of the front only: 64-96 % across, 14-86 % down" in html
    assert "compare the part in the box with whole designs" in html  # what its verdicts mean
    assert "part of the" not in indexed_client.get(f"/searches/{whole['id']}").get_data(
        as_text=True)
    boxed_score = boxed_body["results"][0]["score"]
    whole_rank = next(h for h in whole_hits if h["name"] == NAMES[9])
    # without the box the clutter is searched too: the design may still rank first in this
    # small catalogue, but far from a copy
    assert whole_rank["score"] < boxed_score - 0.2, (whole_rank, boxed_score)
    assert whole_rank["similarity"] < boxed_body["results"][0]["similarity"]
    searched = np.asarray(Image.open(
        indexed_settings.output_dir / f"{boxed['id']}-query-front.png").convert("RGB"))
    cut = make_canvas(page, trim=True, box=parse_box(box, "front_box"))
    assert np.array_equal(searched, cut), "the box's crop is what was searched"


@pytest.mark.slow
def test_many_match_views_asked_and_abandoned_delay_no_search(indexed_settings, run_worker,
                                                              redis):
    """A client asks for every hit's view and hangs up at once (no long poll to wait in): at
    most MAX_QUEUED_MATCHES views wait, on their own queue; searches are still accepted, and
    the worker serves a search before the views that were asked for earlier."""
    import dataclasses

    from web import create_app
    from web.matches import MAX_QUEUED_MATCHES

    settings = dataclasses.replace(indexed_settings, max_long_polls=0)
    client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
    done = post_pair(client, FRONT, BACK, k=20).get_json()
    run_worker(settings)
    answers = [client.get(f"/api/searches/{done['id']}/match/{rank}.jpg")
               for rank in range(1, MAX_QUEUED_MATCHES + 3)]
    assert [a.get_json()["error"] for a in answers] == \
        ["match_pending"] * MAX_QUEUED_MATCHES + ["queue_full"] * 2
    assert all(a.status_code == 503 and a.headers["Retry-After"] for a in answers)
    matches = Queue(settings.match_queue_name, connection=redis)
    assert len(matches) == MAX_QUEUED_MATCHES
    assert len(Queue(settings.queue_name, connection=redis)) == 0
    search = post_pair(client, BACK, FRONT, k=3)  # asked for after the views
    assert search.status_code == 202
    run_worker(settings)
    served = Job.fetch(search.get_json()["id"], connection=redis)
    views = [Job.fetch(f"match-{done['id']}-{rank}", connection=redis)
             for rank in range(1, MAX_QUEUED_MATCHES + 1)]
    assert served.get_status() == "finished" and all(v.get_status() == "finished" for v in views)
    assert served.ended_at <= min(v.started_at for v in views)
