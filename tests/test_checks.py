"""Collection checks end to end: real app, real Redis, a real worker with the real model.
A season of copies and new designs is checked through the batched passes; a search
submitted while a check runs is served before the check's remaining chunks; the CLI writes
the same report from a folder."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw
from rq.job import Job

from benchmarks.lookalike_edits import lineart
from tests.http import csv_text, post_pair
from tests.images import N_PAIRS, design_pair, encode
from tests.zips import make_zip, pairs_csv, post_collection, season_files
from worker.core.contract import CheckedDesign
from worker.dev.sample import make_designs
from worker.dev.services import service_env

pytestmark = pytest.mark.slow
FLAGGED = ("copy", "near-duplicate")
HIT_FIELDS = {"rank", "name", "score", "front_score", "back_score", "swapped", "front", "back",
              "verdict", "similarity", "front_url", "back_url", "columns"}


def _finished(client, url: str) -> dict:
    body = client.get(url).get_json()
    assert body["status"] == "finished", body
    return body


def test_a_season_of_copies_and_new_designs(indexed_client, indexed_settings, extractor,
                                            run_worker, monkeypatch):
    passes = []
    real = extractor.extract
    monkeypatch.setattr(extractor, "extract", lambda canvases: passes.append(len(canvases))
                        or real(canvases))  # counts the forward passes, computes as before
    files, rows = season_files(list(range(20)), unrelated=10)
    response = post_collection(indexed_client, make_zip(files, rows))
    assert response.status_code == 202, response.get_json()
    run_worker()
    body = _finished(indexed_client, response.get_json()["url"])
    assert (body["done"], body["total"], body["k"]) == (30, 30, 20)
    assert passes == [2] + [8] * 7 + [4]  # the warm-up, then 4 pairs (8 drawings) a pass
    for design in body["designs"][:20]:
        top = design["results"][0]
        assert design["status"] == "finished" and len(design["results"]) == 20
        assert top["name"] == design["name"].removeprefix("copy-of-"), design["name"]
        assert top["verdict"] in FLAGGED, (design["name"], top)
        assert set(top) == HIT_FIELDS
        assert design["order"] == "design"  # a copy found: the rest ordered by design
    for design in body["designs"][20:]:
        assert not [h for h in design["results"] if h["verdict"] in FLAGGED], design["name"]
        assert design["order"] == "score"
    report = list(csv.DictReader(io.StringIO(csv_text(indexed_client.get(body["report_url"])))))
    assert len(report) == 30 * 20
    firsts = {r["design"]: r for r in report if r["rank"] == "1"}
    assert firsts["copy-of-dress-0013"]["match"] == "dress-0013"
    assert firsts["copy-of-dress-0013"]["garment"] == "dress"  # the hit's catalogue columns
    assert firsts["copy-of-dress-0013"]["verdict"] in FLAGGED
    assert {r["order"] for r in report if r["design"].startswith("copy-of-")} == {"design"}
    assert list(indexed_settings.upload_dir.iterdir()) == []  # each chunk dropped its drawings

    # each design is kept as the model saw it (front | back) and shown on the report page
    design = body["designs"][13]
    seen = indexed_client.get(design["image_url"])
    assert seen.status_code == 200 and seen.mimetype == "image/jpeg"
    assert seen.headers["Cache-Control"] == "private, no-store"  # a team's unreleased design
    image = Image.open(io.BytesIO(seen.data))
    assert image.size == (448, 224)
    page = indexed_client.get(f"/checks/{body['id']}").get_data(as_text=True)
    assert all(f'src="{d["image_url"]}"' in page for d in body["designs"])
    assert 'src="/catalogue/thumbs/' in page and 'src="/database/' not in page  # thumbnails
    assert page.count('class="muted design-order"') == 20  # each copy's list says its order
    assert indexed_client.get(f"/api/checks/{body['id']}/designs/30.jpg").status_code == 404
    parsed = []  # one design's image reads that design, not all 30 (a page shows every one)
    parse = CheckedDesign.model_validate_json
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CheckedDesign, "model_validate_json",
                      lambda value: parsed.append(1) or parse(value))
        assert indexed_client.get(design["image_url"]).status_code == 200
    assert len(parsed) == 1

    # a design checked in a collection gets the hits a search of its pair gets
    search = post_pair(indexed_client, files["img/copy-of-dress-0013-f.jpg"],
                       files["img/copy-of-dress-0013-b.jpg"]).get_json()
    run_worker()
    finished = _finished(indexed_client, search["url"])
    searched = finished["results"]
    assert finished["order"] == body["designs"][13]["order"]
    checked = body["designs"][13]["results"]
    assert [h["name"] for h in checked] == [h["name"] for h in searched]
    for a, b in zip(checked, searched, strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
        assert (a["verdict"], a["similarity"]) == (b["verdict"], b["similarity"])


def test_a_missing_drawing_fails_its_row_and_the_others_are_checked(indexed_client, run_worker):
    """Also what a search says of a design, a check says too: a line sketch is matched by its
    outline alone (no verdict, and the JSON, CSV and page say why), sides given the wrong way
    round are matched swapped."""
    front, back = design_pair(5, N_PAIRS)
    design = make_designs(N_PAIRS, seed=7)[5]
    faint = Image.new("RGB", (4000, 4000), "white")  # not flat, but nothing shows at 224 px
    ImageDraw.Draw(faint).line([(0, 2000), (3999, 2000)], fill=(230, 230, 230), width=1)
    files = {"f.png": front, "b.png": back, "faint.png": encode(faint), **{
        f"sketch-{side}.png": encode(lineart(design, side, np.random.default_rng(3)))
        for side in ("front", "back")}}
    rows = [("one", "f.png", "b.png"), ("lost", "f.png", "gone.png"), ("two", "b.png", "f.png"),
            ("sketch", "sketch-front.png", "sketch-back.png"), ("half", "sketch-front.png", "b.png"),
            ("faint", "f.png", "faint.png")]
    response = post_collection(indexed_client, make_zip(files, rows), k=3, sides="unknown")
    run_worker()
    body = _finished(indexed_client, response.get_json()["url"])
    assert [d["status"] for d in body["designs"]] == ["finished", "failed"] + ["finished"] * 3 \
        + ["failed"]
    assert body["designs"][5]["error"].startswith("the back drawing shows nothing at the size")
    assert body["designs"][1]["image_url"] is None
    assert indexed_client.get(f"/api/checks/{body['id']}/designs/1.jpg").status_code == 404
    assert "'gone.png' is not in the ZIP" in body["designs"][1]["error"]
    one, _, two, sketch, half, _ = body["designs"]
    assert one["results"][0]["name"] == two["results"][0]["name"] == "dress-0005"
    assert (one["results"][0]["swapped"], two["results"][0]["swapped"]) == (False, True)
    assert [d["outline_only"] for d in (one, two, sketch)] == [[], [], ["front", "back"]]
    assert "dress-0005" in [hit["name"] for hit in sketch["results"]]
    assert all(hit["verdict"] is None for hit in sketch["results"])
    assert half["outline_only"] == ["front"]  # its coloured back is judged: it may get verdicts
    assert all(hit["similarity"] is not None for hit in half["results"])
    report = indexed_client.get(body["report_url"])
    assert report.mimetype == "text/csv" and "attachment" in report.headers["Content-Disposition"]
    lines = csv_text(report).splitlines()
    assert len(lines) == 1 + 3 + 1 + 3 + 3 + 3 + 1
    assert [ln for ln in lines if ln.startswith("lost,")] == [
        "lost,,,,,,,back: 'gone.png' is not in the ZIP,,,,,0.5,,,,,,"]  # no version, order, turn, cols
    rows = list(csv.DictReader(io.StringIO(csv_text(report))))
    firsts = {r["design"]: r for r in rows if r["rank"] == "1"}
    assert (firsts["one"]["swapped"], firsts["two"]["swapped"]) == ("false", "true")
    assert {r["outline_only"] for r in rows if r["design"] == "sketch"} == {"front back"}
    page = " ".join(indexed_client.get(f"/checks/{body['id']}").get_data(as_text=True).split())
    assert "front and back are line sketches: matched by the garment's outline alone" in page
    assert "<strong>1</strong> design is drawn as line sketches only" in page and "(sides swapped)" in page
    assert "the front is a line sketch, matched by its outline" in page  # half: judged


def test_a_search_submitted_during_a_check_is_served_before_the_check_ends(
        indexed_settings, extractor, redis):
    from web import create_app
    from worker.service.process import make_worker, start_engine

    settings = dataclasses.replace(indexed_settings, check_chunk_pairs=2)
    client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()  # 2 per chunk
    files, rows = season_files(list(range(12)), unrelated=0)
    check = post_collection(client, make_zip(files, rows)).get_json()
    worker = make_worker(settings, start_engine(settings, extractor), redis)
    worker.work(burst=True, max_jobs=1, with_scheduler=False)  # the check's first chunk
    running = client.get(check["url"]).get_json()
    assert (running["status"], running["done"], running["total"]) == ("running", 2, 12)

    search = post_pair(client, *design_pair(4, N_PAIRS)).get_json()
    make_worker(settings, worker.engine, redis).work(burst=True, with_scheduler=False)
    assert _finished(client, check["url"])["done"] == 12
    searched = Job.fetch(search["id"], connection=redis)
    assert searched.return_value()["results"][0]["name"] == "tshirt-0004"
    chunk_ids = [job_id for job_id, _ in _chunks(redis, check["id"])]
    ended = [Job.fetch(job_id, connection=redis).ended_at for job_id in chunk_ids]
    # served after the chunk that ran, before all five chunks still queued when it came
    assert sum(at < searched.ended_at for at in ended) == 1
    assert sum(at > searched.ended_at for at in ended) == 5


def _chunks(redis, check_id: str) -> list:
    import json

    return json.loads(redis.hget(f"pairsearch:check:{check_id}", "chunks"))


def test_the_cli_checks_a_folder_in_process(indexed_settings, tmp_path):
    files, rows = season_files([2, 9], unrelated=1)
    rows.append(("broken", "img/nothing.png", ""))
    for name, data in files.items():
        (tmp_path / "season" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "season" / name).write_bytes(data)
    (tmp_path / "season" / "pairs.csv").write_bytes(pairs_csv(rows))
    out = tmp_path / "report.csv"
    proc = subprocess.run([sys.executable, "-m", "worker.check", str(tmp_path / "season"),
                           "-k", "5", "--filter", "garment:jacket,dress", "--out", str(out)],
                          env=service_env(indexed_settings),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "4/4" in proc.stderr  # the progress bar reached the end
    assert "checked 3 of 4 designs (1 failed" in proc.stderr
    assert out.read_bytes().startswith("\ufeff".encode())  # for Excel, as the download
    report = list(csv.DictReader(out.open(newline="", encoding="utf-8-sig")))
    assert len(report) == 3 * 5 + 1
    firsts = {r["design"]: r for r in report if r["rank"] == "1"}
    assert firsts["copy-of-jacket-0002"]["match"] == "jacket-0002"
    assert firsts["copy-of-jacket-0002"]["garment"] == "jacket"
    assert firsts["copy-of-dress-0009"]["verdict"] in FLAGGED
    assert firsts["new-00"]["verdict"] not in FLAGGED
    assert {r["match"].split("-")[0] for r in report if r["match"]} <= {"jacket", "dress"}
    assert {r["filters"] for r in report} == {"garment:dress,jacket"}  # as parsed: sorted
    assert [r["error"] for r in report if r["design"] == "broken"] == [
        "front: 'img/nothing.png' is not a file in " + str((tmp_path / "season").resolve())]
    # none of them could be checked (paths written from another folder): not a success
    (tmp_path / "season" / "pairs.csv").write_bytes(pairs_csv([rows[-1]]))
    proc = subprocess.run([sys.executable, "-m", "worker.check", str(tmp_path / "season"),
                           "--no-progress", "--out", str(out)], env=service_env(indexed_settings),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "checked 0 of 1 designs (1 failed" in proc.stderr
    assert "is not a file in" in out.read_text(encoding="utf-8-sig")  # the report says why


def test_a_report_the_cli_cannot_write_goes_to_standard_output(indexed_settings, tmp_path):
    """--out passed the check before the model loaded, then the write failed (a full disk):
    the hour's check is not lost."""
    files, rows = season_files([2], unrelated=0)
    for name, data in files.items():
        (tmp_path / "season" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "season" / name).write_bytes(data)
    (tmp_path / "season" / "pairs.csv").write_bytes(pairs_csv(rows))
    proc = subprocess.run([sys.executable, "-m", "worker.check", str(tmp_path / "season"),
                           "-k", "3", "--no-progress", "--out", "/dev/full"],
                          env=service_env(indexed_settings),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "check: could not write /dev/full (No space left on device); the report follows " \
        "on standard output" in proc.stderr
    report = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [(r["design"], r["rank"]) for r in report] == [("copy-of-jacket-0002", "1"),
                                                         ("copy-of-jacket-0002", "2"),
                                                         ("copy-of-jacket-0002", "3")]
    assert report[0]["match"] == "jacket-0002"


def test_the_cli_refuses_bad_arguments_before_loading_the_model(indexed_settings, tmp_path):
    files, rows = season_files([2], unrelated=0)
    for name, data in files.items():
        (tmp_path / "season" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "season" / name).write_bytes(data)
    (tmp_path / "season" / "pairs.csv").write_bytes(pairs_csv(rows))
    blocked = tmp_path / "no-model" / "tensorflow"  # importing the model's library fails
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('the model was loaded')\n")
    env = service_env(indexed_settings)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(blocked.parent),
                                                      env.get("PYTHONPATH")]))
    (tmp_path / "sketch.png").write_bytes(files[next(iter(files))])
    for args, says in (
            (["--filter", "colour:red"], "check: unknown filter column 'colour'"),
            (["--out", str(tmp_path / "gone" / "r.csv")], f"there is no folder {tmp_path / 'gone'}"),
            (["--out", str(tmp_path)], "names a folder; name the report's file"),
            (["--out", f"{tmp_path / 'new'}/"], "names a folder; name the report's file")):
        proc = subprocess.run([sys.executable, "-m", "worker.check", str(tmp_path / "season"),
                               *args], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, proc.stderr[-2000:]
        assert says in proc.stderr  # refused before the model: no hour's check lost
    proc = subprocess.run([sys.executable, "-m", "worker.check", str(tmp_path / "sketch.png")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "sketch.png is not a ZIP, a folder holding pairs.csv, or " \
        "a CSV" in proc.stderr


def test_a_filtered_check_returns_k_hits_all_passing(indexed_client, run_worker, catalogue_dir):
    """`filter` on a check is applied before top-k, as on a search: a dress checked with
    garment:jacket gets k jackets, and its own design (a dress) is not among them."""
    from worker.core.catalogue import load_catalogue

    catalogue = load_catalogue(catalogue_dir)
    jackets = {name for i, name in enumerate(catalogue.names)
               if catalogue.extra["garment"][i] == "jacket"}
    front, back = design_pair(5, N_PAIRS)  # dress-0005
    files = {"f.png": front, "b.png": back}
    k = len(jackets) - 2
    response = post_collection(indexed_client, make_zip(files, [("dress", "f.png", "b.png")]),
                               k=k, filter="garment:jacket")
    assert response.status_code == 202, response.get_json()
    url = response.get_json()["url"]
    progress = indexed_client.get(f"{url}?designs=false").get_json()  # what the page polls
    assert (progress["status"], progress["done"], progress["total"]) == ("queued", 0, 1)
    assert progress["filters"] == {"garment": ["jacket"]} and "designs" not in progress
    bad = indexed_client.get(f"{url}?designs=maybe")
    assert (bad.status_code, bad.get_json()["error"]) == (400, "invalid_designs")
    run_worker()
    body = _finished(indexed_client, url)
    assert body["filters"] == {"garment": ["jacket"]}  # a report says what it compared with
    progress = indexed_client.get(f"{url}?designs=false").get_json()
    assert (progress["status"], progress["done"], progress["total"]) == ("finished", 1, 1)
    names = [hit["name"] for hit in body["designs"][0]["results"]]
    assert len(names) == k and set(names) <= jackets, names
    page = indexed_client.get(f"/checks/{body['id']}").get_data(as_text=True)
    assert "compared only with designs whose garment is jacket" in page
    assert "1 of 1 designs checked" in page
    report = list(csv.DictReader(io.StringIO(csv_text(indexed_client.get(f"{url}/report.csv")))))
    assert len(report) == k and {row["filters"] for row in report} == {"garment:jacket"}
    refused = post_collection(indexed_client, make_zip(files, [("dress", "f.png", "b.png")]),
                              filter="colour:red")
    assert (refused.status_code, refused.get_json()["error"]) == (400, "unknown_filter")
    assert "colour" in refused.get_json()["message"]


def test_a_chunk_that_starts_after_its_check_was_cancelled_checks_nothing(
        indexed_client, indexed_settings, run_worker, redis):
    """The cancel's flag is set, then a worker takes the chunk before the cancel reads its
    status (so the cancel settles none of its designs): the chunk reads the flag, checks
    nothing, deletes the drawings and settles its designs as cancelled, and the check ends;
    the catalogue version it was pinned to is let go."""
    from worker.core.checks import CANCELLED
    from worker.core.generations import PINS, current_id, pin

    front, back = design_pair(5, N_PAIRS)
    url = post_collection(indexed_client, make_zip({"f.png": front, "b.png": back},
                                                   [("one", "f.png", "b.png")])).get_json()["url"]
    check_id = url.rsplit("/", 1)[1]
    redis.hset(f"pairsearch:check:{check_id}", "cancelled", 1)  # what cancel_check writes first
    pinned = indexed_settings.features_dir / PINS / check_id  # as if an earlier chunk had run
    pin(indexed_settings.features_dir, check_id, current_id(indexed_settings.features_dir))
    run_worker()
    assert not pinned.exists()  # nothing is compared any more
    body = indexed_client.get(url).get_json()
    assert (body["status"], body["cancelled"]) == ("finished", True)
    (design,) = body["designs"]
    assert (design["status"], design["error"], design["image_url"]) == ("failed", CANCELLED, None)
    assert list(indexed_settings.upload_dir.iterdir()) == []
    assert indexed_client.get(f"{url}/report.csv").status_code == 200


def _rescanned(index: int, side: str, seed: int) -> bytes:
    from benchmarks.lookalike_edits import edited_pair

    pair = edited_pair(make_designs(N_PAIRS, seed=7)[index], "rescan", seed)
    return encode(pair[0 if side == "front" else 1], "JPEG", quality=90)


def test_a_design_made_of_two_catalogue_designs_sides_is_flagged_side_by_side(
        indexed_client, run_worker):
    """Exploratory round 7: a front copied from one design and a back from another scored
    about half against each (the pair's score averages the sides): no verdict for either."""
    names = [d.name for d in make_designs(N_PAIRS, seed=7)]
    front, back = _rescanned(2, "front", 31), _rescanned(13, "back", 32)
    created = post_pair(indexed_client, front, back).get_json()
    run_worker()
    body = _finished(indexed_client, created["url"])
    assert [(s["side"], s["name"]) for s in body["side_copies"]] == [("front", names[2]),
                                                                      ("back", names[13])]
    assert all(s["verdict"] in FLAGGED and s["similarity"] >= 75 for s in body["side_copies"])
    assert not any(h["verdict"] in FLAGGED for h in body["results"][:2]), body["results"][:2]
    page = " ".join(indexed_client.get(f"/searches/{body['id']}").get_data(as_text=True).split())
    assert "Searched alone, the front is a" in page and f"of {names[13]}" in page
    assert 'id="page-hint"' not in page  # not "no design here is judged a copy"
    table = csv_text(indexed_client.get(body["csv_url"]))
    assert f"front: {names[2]} " in table.splitlines()[1]
    # the same design's two sides: each side alone finds it, which its pair's hit already says
    copy = post_pair(indexed_client, _rescanned(2, "front", 31), _rescanned(2, "back", 33))
    # the back weighted 0: the person compares the front alone, nothing to add
    weighted = post_pair(indexed_client, front, back, front_weight="1")
    run_worker()
    body = _finished(indexed_client, copy.get_json()["url"])
    assert body["results"][0]["name"] == names[2] and body["results"][0]["verdict"] in FLAGGED
    assert {s["name"] for s in body["side_copies"]} == {names[2]}
    page = indexed_client.get(f"/searches/{body['id']}").get_data(as_text=True)
    assert 'id="side-copies"' not in page
    assert _finished(indexed_client, weighted.get_json()["url"])["side_copies"] == []

    # in a collection: reported with the copies, before designs with no verdict
    files, rows = season_files([5], unrelated=2)
    files.update({"img/mixed-f.jpg": front, "img/mixed-b.jpg": back})
    rows.append(("mixed", "img/mixed-f.jpg", "img/mixed-b.jpg"))
    response = post_collection(indexed_client, make_zip(files, rows))
    assert response.status_code == 202, response.get_json()
    run_worker()
    check = _finished(indexed_client, response.get_json()["url"])
    mixed = next(d for d in check["designs"] if d["name"] == "mixed")
    assert [s["name"] for s in mixed["side_copies"]] == [names[2], names[13]]
    page = " ".join(indexed_client.get(f"/checks/{check['id']}").get_data(as_text=True).split())
    assert "<strong>2</strong> with a copy or near-duplicate" in page
    order = [page.index(f'data-name="{name}"') for name in
             (f"copy-of-{names[5]}", "mixed", "new-00", "new-01")]
    assert order[1] < order[2] and order[1] < order[3], order
    report = indexed_client.get(check["report_url"]).get_data(as_text=True)
    assert all(f"front: {names[2]} " in line for line in report.splitlines()
               if line.startswith("mixed,"))
