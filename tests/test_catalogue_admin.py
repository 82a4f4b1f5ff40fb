"""Catalogue management: add and remove designs without re-indexing; searches before and
after show the change; the worker picks it up between searches."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image
from rq import Queue
from werkzeug.datastructures import MultiDict

from tests.http import post_pair
from tests.images import N_PAIRS
from worker.core.bank import load_bank
from worker.core.catalogue import CatalogueError, load_catalogue
from worker.dev.sample import draw_side, make_designs
from worker.dev.services import service_env
from worker.indexing.edits import CatalogueEditError, add_designs, remove_design
from worker.pipeline.thumbnails import thumbnail_path

pytestmark = pytest.mark.slow
NEW = make_designs(N_PAIRS + 8, seed=7)[N_PAIRS + 5]  # a design the catalogue lacks


@pytest.fixture
def own_catalogue(indexed_settings, tmp_path, catalogue_dir):
    """A private copy of the catalogue, so edits stay in this test."""
    db = tmp_path / "db"
    shutil.copytree(catalogue_dir, db)
    return dataclasses.replace(indexed_settings, database_dir=db, admin_token="s3cret")


def new_design_files(tmp_path):
    front, back = tmp_path / "new_front.png", tmp_path / "new_back.png"
    draw_side(NEW, "front").save(front)
    draw_side(NEW, "back").save(back)
    return front, back


def top_hit(client, front: bytes, back: bytes, run_worker) -> dict:
    url = post_pair(client, front, back).get_json()["url"]
    run_worker()
    return client.get(url).get_json()["results"][0]


def test_an_index_measured_another_way_is_neither_served_nor_added_to(own_catalogue, extractor,
                                                                       tmp_path):
    """After an upgrade that measures drawings otherwise, a worker refuses the old index and
    an add does not append rows measured the new way to it: both say to rebuild."""
    import json

    from worker.core.bank import BankError
    from worker.core.generations import current_dir
    from worker.service.engine import Engine

    path = current_dir(own_catalogue.features_dir) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["preprocess"]["appearance"]["outline"] = "ink darker than 235 in some channel"
    path.write_text(json.dumps(manifest))
    with pytest.raises(BankError, match="prepared or measured another way.*make index"):
        Engine(own_catalogue, extractor)
    with pytest.raises(BankError, match="prepared or measured another way.*make index"):
        add_designs(own_catalogue, extractor, [("brand-new", *new_design_files(tmp_path))])
    assert load_bank(own_catalogue.features_dir).manifest["n_pairs"] == N_PAIRS
    assert "brand-new" not in load_catalogue(own_catalogue.database_dir).names


def test_add_then_remove_changes_what_searches_find(own_catalogue, extractor, tmp_path, redis):
    from web import create_app
    from worker.service.process import make_worker, start_engine

    client = create_app({"SETTINGS": own_catalogue}).test_client()
    engine = start_engine(own_catalogue, extractor)
    worker = make_worker(own_catalogue, engine, redis)

    def run():
        worker.work(burst=True, with_scheduler=False)

    front, back = new_design_files(tmp_path)
    query = (front.read_bytes(), back.read_bytes())
    before = top_hit(client, *query, run)
    assert before["score"] < 0.99

    manifest = add_designs(own_catalogue, extractor, [("brand-new", front, back)])
    assert manifest["n_pairs"] == N_PAIRS + 1
    assert load_catalogue(own_catalogue.database_dir).names[-1] == "brand-new"
    added = top_hit(client, *query, run)  # the index changed, so no cached answer
    assert added["name"] == "brand-new" and added["score"] == pytest.approx(1.0, abs=1e-3)

    with pytest.raises(CatalogueEditError, match="already used"):
        add_designs(own_catalogue, extractor, [("brand-new", front, back)])
    with pytest.raises(CatalogueError, match="no column 'colour' .its columns: garment, "):
        add_designs(own_catalogue, extractor, [("other-new", front, back)], [{"colour": "red"}])
    with pytest.raises(CatalogueError, match="design 'other-new': season takes one line of "
                                             "text, got 'a\\\\nb': it holds a line break"):
        add_designs(own_catalogue, extractor, [("other-new", front, back)], [{"season": "a\nb"}])

    added_images = [own_catalogue.database_dir / rel for rel in
                    (manifest["fronts"][-1], manifest["backs"][-1])]
    assert all(path.is_file() for path in added_images)
    thumbs = [thumbnail_path(own_catalogue.features_dir, rel)
              for rel in (manifest["fronts"][-1], manifest["backs"][-1])]
    assert all(path.is_file() for path in thumbs)
    remove_design(own_catalogue, "brand-new")
    bank = load_bank(own_catalogue.features_dir)
    assert len(bank) == N_PAIRS and "brand-new" not in bank.manifest["names"]
    assert not any(path.exists() for path in added_images)  # the service's own copies
    assert not any(path.exists() for path in thumbs)  # and their thumbnails
    assert top_hit(client, *query, run)["name"] != "brand-new"
    catalogue = load_catalogue(own_catalogue.database_dir)
    drawn = [own_catalogue.database_dir / catalogue.fronts[0],
             own_catalogue.database_dir / catalogue.backs[0]]  # put there by hand
    remove_design(own_catalogue, catalogue.names[0])
    assert catalogue.names[0] not in load_catalogue(own_catalogue.database_dir).names
    assert all(path.is_file() for path in drawn)  # the team's artwork stays


def test_an_edit_whose_enqueue_failed_leaves_no_upload_and_no_claim(own_catalogue, redis,
                                                                     tmp_path, monkeypatch):
    """The claim stayed 120 s: a retry got 409 edit_pending naming an edit that did not
    exist (404). The uploads went with the failure, as before."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from rq import Queue as RQQueue

    from web import create_app

    client = create_app({"SETTINGS": own_catalogue}).test_client()
    front, back = new_design_files(tmp_path)
    auth = {"Authorization": "Bearer s3cret"}

    def form():
        return {"name": "flaky", "front": (io.BytesIO(front.read_bytes()), "f.png"),
                "back": (io.BytesIO(back.read_bytes()), "b.png")}

    def lost(*args, **kwargs):
        raise RedisConnectionError("Connection reset by peer")

    with monkeypatch.context() as patch:
        patch.setattr(RQQueue, "enqueue", lost)
        assert client.post("/api/designs", data=form(), headers=auth).status_code == 503
    assert list(own_catalogue.upload_dir.iterdir()) == []
    monkeypatch.setattr("web.designs.EDIT_WAIT_S", 0.1)  # no worker: queued, 202
    retried = client.post("/api/designs", data=form(), headers=auth)
    assert retried.status_code == 202, retried.get_json()


def test_api_edits_need_the_token_and_refuse_duplicates(own_catalogue, redis, tmp_path,
                                                        extractor, monkeypatch):
    from web import create_app
    from worker.service.process import make_worker, start_engine

    client = create_app({"SETTINGS": own_catalogue}).test_client()
    front, back = new_design_files(tmp_path)

    def form(name):
        return {"name": name, "front": (io.BytesIO(front.read_bytes()), "f.png"),
                "back": (io.BytesIO(back.read_bytes()), "b.png")}

    assert client.post("/api/designs", data=form("x")).status_code == 401
    assert client.post("/api/designs", data=form("x"),
                       headers={"Authorization": "Bearer wrong"}).status_code == 401
    auth = {"Authorization": "Bearer s3cret"}
    assert client.post("/api/designs", data=form("../evil"), headers=auth).status_code == 400
    as_json = client.post("/api/designs", json={"name": "x"}, headers=auth)  # not "a bad name"
    assert (as_json.status_code, as_json.get_json()["error"]) == (400, "not_multipart")
    existing = load_catalogue(own_catalogue.database_dir).names[0]
    assert client.post("/api/designs", data=form(existing), headers=auth).status_code == 409

    engine = start_engine(own_catalogue, extractor)
    worker = make_worker(own_catalogue, engine, redis)
    queue = Queue(own_catalogue.queue_name, connection=redis)

    def served(request):
        """Send `request` from a thread (it waits for its job); serve the job right here."""
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(request)
            deadline = time.monotonic() + 30
            while len(queue) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            worker.work(burst=True, with_scheduler=False)  # RQ wants the main thread
            return answer.result(timeout=90)

    artwork = io.BytesIO()  # kept as sent, at its own resolution (not as a search's upload)
    Image.open(front).resize((1600, 1600)).save(artwork, "JPEG", quality=95)
    for fields, error in (({"colour": "red"}, "unknown_column"),
                          ({"season": "SS26\nSS27"}, "invalid_column_value"),
                          ({"season": ["SS26", "SS27"]}, "invalid_column_value"),
                          ({"season": "x" * 201}, "invalid_column_value"),
                          ({"season": "SS26\u202e"}, "invalid_column_value"),
                          ({"back": "not a file"}, "missing_back")):  # a side sent as text
        refused = client.post("/api/designs", data={**form("via-api"), **fields}, headers=auth)
        assert (refused.status_code, refused.get_json()["error"]) == (400, error), fields
    for field, error in (("season", "invalid_column_value"), ("name", "invalid_name")):
        as_file = {**form("via-api"), field: (io.BytesIO(b"SS26"), "x.txt")}  # season: dropped
        refused = client.post("/api/designs", data=as_file, headers=auth)
        assert (refused.status_code, refused.get_json()["error"]) == (400, error), field
        assert "came as a file" in refused.get_json()["message"]
    twice = MultiDict([*form("via-api").items(), ("front", (io.BytesIO(front.read_bytes()), "f2.png"))])
    refused = client.post("/api/designs", data=twice, headers=auth)
    assert (refused.status_code, refused.get_json()["error"]) == (400, "invalid_front")
    assert "its columns: garment, season" in client.post(
        "/api/designs", data={**form("via-api"), "colour": "red"}, headers=auth).get_json()["message"]
    sent = {**form("via-api"), "front": (io.BytesIO(artwork.getvalue()), "f.jpg"),
            "garment": "dress", "season": " SS\u00a026\t"}  # its values in the catalogue's columns
    made = []  # the drawings were copied into a folder in TMPDIR while the edit ran
    real_mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: made.append(k) or real_mkdtemp(*a, **k))
    created = served(lambda: client.post("/api/designs", data=sent, headers=auth))
    assert created.status_code == 201, created.get_json()
    assert made == []
    assert created.get_json() == {"name": "via-api", "n_pairs": N_PAIRS + 1}
    added = load_catalogue(own_catalogue.database_dir)
    assert {column: values[-1] for column, values in added.extra.items()} == {
        "garment": "dress", "season": "SS\u00a026"}  # a filtered search can find it (a
    # non-breaking space, as a pasted cell holds, was refused as not printable)
    stored_front = own_catalogue.database_dir / added.fronts[-1]
    assert stored_front.suffix == ".jpg" and stored_front.read_bytes() == artwork.getvalue()
    assert (own_catalogue.database_dir / added.backs[-1]).read_bytes() == back.read_bytes()
    deleted = served(lambda: client.delete("/api/designs/via-api", headers=auth))
    assert deleted.status_code == 200 and deleted.get_json()["n_pairs"] == N_PAIRS
    assert client.delete("/api/designs/via-api", headers=auth).status_code == 404

    monkeypatch.setattr("web.designs.EDIT_WAIT_S", 0.2)  # no worker answers in time: 202
    pending = client.post("/api/designs", data=form("later-one"), headers=auth)
    body = pending.get_json()
    assert pending.status_code == 202 and body["status"] == "queued", body
    assert body["url"] == f"/api/edits/{body['id']}" == pending.headers["Location"]
    assert client.get(body["url"]).status_code == 401
    assert client.get(body["url"], headers=auth).get_json() == {"id": body["id"],
                                                                "status": "queued"}
    retried = client.post("/api/designs", data=form("later-one"), headers=auth)
    assert retried.status_code == 409 and retried.get_json()["error"] == "edit_pending"
    assert body["url"] in retried.get_json()["message"]  # not queued a second time
    assert len(queue) == 1
    worker.work(burst=True, with_scheduler=False)
    assert client.get(body["url"], headers=auth).get_json() == {
        "id": body["id"], "status": "finished",
        "result": {"name": "later-one", "n_pairs": N_PAIRS + 1}}
    again = client.post("/api/designs", data=form("later-one"), headers=auth)
    assert again.status_code == 409 and again.get_json()["error"] == "duplicate_name"
    removing = client.delete("/api/designs/later-one", headers=auth).get_json()
    remove_design(own_catalogue, "later-one")  # meanwhile, from the command line
    worker.work(burst=True, with_scheduler=False)
    assert client.get(removing["url"], headers=auth).get_json() == {  # not its own: failed
        "id": removing["id"], "status": "failed", "reason": "edit_failed", "retry": False,
        "error": "no design named 'later-one' in the catalogue"}
    for unknown in ("0" * 32, "not-an-id"):
        assert client.get(f"/api/edits/{unknown}", headers=auth).status_code == 404


def test_cli_import_adds_a_batch(own_catalogue, tmp_path):
    from worker.dev.sample import write_catalogue

    batch = tmp_path / "batch"
    write_catalogue(batch, 3, seed=99)
    rows = (batch / "pairs.csv").read_text().splitlines()
    renamed = [f"imported-{i}," + row.split(",", 1)[1] for i, row in enumerate(rows[1:])]
    (batch / "pairs.csv").write_text("\n".join([rows[0], *renamed]) + "\n")
    proc = subprocess.run([sys.executable, "-m", "worker.cli.catalogue", "import", str(batch)],
                          env=service_env(own_catalogue), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    catalogue = load_catalogue(own_catalogue.database_dir)
    assert catalogue.names[-3:] == ["imported-0", "imported-1", "imported-2"]
    imported = load_catalogue(batch)  # the batch's own garment and season came along
    assert {c: v[-3:] for c, v in catalogue.extra.items()} == imported.extra
    with_column = subprocess.run([sys.executable, "-m", "worker.cli.catalogue", "add", "x",
                                  "f.png", "b.png", "--column", "garment"],
                                 env=service_env(own_catalogue), capture_output=True, text=True,
                                 timeout=120)
    assert with_column.returncode == 2 and "expected COLUMN=VALUE" in with_column.stderr
    twice = subprocess.run([sys.executable, "-m", "worker.cli.catalogue", "add", "x", "f.png",
                            "b.png", "--column", "garment=dress", "--column", "garment=coat"],
                           env=service_env(own_catalogue), capture_output=True, text=True,
                           timeout=120)
    assert twice.returncode == 1 and "more than once" in twice.stderr
    again = subprocess.run([sys.executable, "-m", "worker.cli.catalogue", "remove", "nope"],
                           env=service_env(own_catalogue), capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 1 and "no design named 'nope'" in again.stderr
    missing = subprocess.run([sys.executable, "-m", "worker.cli.catalogue", "import",
                              str(tmp_path / "missing")], env=service_env(own_catalogue),
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "nothing to import at" in missing.stderr
    assert "worker.cli.sample" not in missing.stderr
    Image.new("RGB", (300, 200), "white").save(tmp_path / "empty.png")  # an empty layer
    grain = np.random.default_rng(1).normal(235, 3, (2000, 3000, 3))  # blank tinted paper
    Image.fromarray(np.clip(grain, 0, 255).astype(np.uint8)).save(tmp_path / "tinted.jpg")
    blocked = tmp_path / "no-model" / "tensorflow"  # refused before the model loads
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('the model was loaded')\n")
    env = {**service_env(own_catalogue), "PYTHONPATH": str(blocked.parent)}
    for drawing in ("empty.png", "tinted.jpg"):
        blank = subprocess.run([sys.executable, "-m", "worker.cli.catalogue", "add", "blank-one",
                                str(tmp_path / drawing), str(batch / rows[1].split(",")[2])],
                               env=env, capture_output=True, text=True, timeout=120)
        assert blank.returncode == 1, blank.stderr[-2000:]
        assert f"{drawing}: the front drawing shows nothing at the size" in blank.stderr
    drawings = [str(batch / rows[1].split(",")[i]) for i in (1, 2)]
    for name, extra, said in (("imported-0", [], "design name(s) already used: ['imported-0']"),
                              ("new one", [], "invalid design name(s) ['new one']"),
                              ("fresh", ["--column", "colour=red"], "has no column 'colour'")):
        named = subprocess.run([sys.executable, "-m", "worker.cli.catalogue", "add", name,
                                *drawings, *extra], env=env, capture_output=True, text=True,
                               timeout=120)  # refused before the model loads, as the drawings
        assert named.returncode == 1 and said in named.stderr, named.stderr[-2000:]
    assert load_catalogue(own_catalogue.database_dir).names[-1] == "imported-2"  # as the API


def test_an_edit_refuses_banks_that_no_longer_match_pairs_csv(own_catalogue):
    # pairs.csv edited by hand (its last design dropped): removing a design must not slice the
    # stale banks by the new row numbers and stamp them as matching
    from worker.core.bank import BankError
    from worker.core.catalogue import write_catalogue_csv

    catalogue = load_catalogue(own_catalogue.database_dir)
    write_catalogue_csv(own_catalogue.database_dir, catalogue.names[:-1], catalogue.fronts[:-1],
                        catalogue.backs[:-1])
    current = (own_catalogue.features_dir / "CURRENT").read_bytes()
    with pytest.raises(BankError, match="another pairs.csv"):
        remove_design(own_catalogue, catalogue.names[0])
    assert (own_catalogue.features_dir / "CURRENT").read_bytes() == current


def test_an_edit_refuses_while_the_further_columns_were_edited_by_hand(own_catalogue):
    """Rows unchanged, a season changed by hand: the edit rewrote pairs.csv from the index's
    copy and the hand edit was gone without a word."""
    from worker.core.bank import BankError
    from worker.core.catalogue import write_catalogue_csv

    catalogue = load_catalogue(own_catalogue.database_dir)
    seasons = ["AW99"] + catalogue.extra["season"][1:]
    write_catalogue_csv(own_catalogue.database_dir, catalogue.names, catalogue.fronts,
                        catalogue.backs, {**catalogue.extra, "season": seasons})
    current = (own_catalogue.features_dir / "CURRENT").read_bytes()
    with pytest.raises(BankError, match=r"further columns \(season\) were edited"):
        remove_design(own_catalogue, catalogue.names[0])
    assert (own_catalogue.features_dir / "CURRENT").read_bytes() == current
    assert load_catalogue(own_catalogue.database_dir).extra["season"][0] == "AW99"  # kept


def test_a_check_an_edit_lands_in_keeps_to_the_catalogue_it_began_with(own_catalogue, redis,
                                                                      extractor, tmp_path):
    """The designs of a check run in chunks; an edit between two chunks would change what the
    later ones are compared with. The check is pinned to the version its first chunk saw,
    kept on disk for it; if that version is gone all the same, each design says which it saw."""
    from tests.zips import make_zip, post_collection, season_files
    from web import create_app
    from worker.core.generations import GENERATIONS, PINS, current_id
    from worker.service.process import make_worker, start_engine

    settings = dataclasses.replace(own_catalogue, check_chunk_pairs=1)
    client = create_app({"SETTINGS": settings}).test_client()
    files, rows = season_files([2, 9, 5], unrelated=0)
    url = post_collection(client, make_zip(files, rows)).get_json()["url"]
    worker = make_worker(settings, start_engine(settings, extractor), redis)
    worker.work(burst=True, max_jobs=1, with_scheduler=False)  # the first design
    before = current_id(settings.features_dir)
    copied = []  # the second design's own drawings, added as a catalogue design
    for rel in rows[1][1:]:
        (tmp_path / rel.split("/")[-1]).write_bytes(files[rel])
        copied.append(tmp_path / rel.split("/")[-1])
    add_designs(settings, extractor, [("mid-check", *copied)])
    after = current_id(settings.features_dir)
    remove_design(settings, "mid-check")  # a second edit: `before` is no longer the previous
    assert (settings.features_dir / GENERATIONS / before).is_dir()  # pinned
    assert (settings.features_dir / PINS / url.rsplit("/", 1)[1]).read_text() == before
    worker.work(burst=True, max_jobs=1, with_scheduler=False)  # the second, as at the start
    shutil.rmtree(settings.features_dir / GENERATIONS / before)  # lost all the same
    restarted = make_worker(settings, start_engine(settings, extractor), redis)
    restarted.work(burst=True, with_scheduler=False)  # the third: the current catalogue
    now = current_id(settings.features_dir)
    body = client.get(url).get_json()
    assert body["status"] == "finished" and len({before, after, now}) == 3
    assert [d["catalogue"] for d in body["designs"]] == [before, before, now]
    assert "mid-check" not in [hit["name"] for hit in body["designs"][1]["results"]]
    assert body["catalogues"] == [before, now]  # oldest first
    assert not (settings.features_dir / PINS / body["id"]).exists()  # let go at its end
    page = client.get(url.replace("/api/checks/", "/checks/")).get_data(as_text=True)
    assert 'id="catalogue-changed"' in page and "2 versions were compared with" in page
    report = client.get(body["report_url"]).get_data(as_text=True).splitlines()
    assert report[0].split(",").index("catalogue_version") == 13
    assert {line.split(",")[13] for line in report[1:]} == {before, now}


def test_an_edit_that_fails_after_the_catalogue_switched_is_answered_as_applied(
        tmp_path, catalogue_dir):
    """The pairs.csv rewrite failing after the switch made the job fail (422 edit_failed),
    though the design was gone, and the retry was refused as an unknown name. Only the edit's
    own generation counts: the name removed meanwhile by another writer (the CLI) answered a
    failed edit as done."""
    from dataclasses import replace
    from types import SimpleNamespace

    from tests.test_filters import fake_generation
    from worker.service.edits import _applied

    catalogue = load_catalogue(catalogue_dir)

    features = tmp_path / "features"
    fake_generation(catalogue_dir, features, catalogue)
    refreshed = []
    engine = SimpleNamespace(settings=SimpleNamespace(features_dir=features),
                             refresh=lambda: refreshed.append(1))
    gone = catalogue.names[0]
    kept = replace(catalogue, names=catalogue.names[1:], fronts=catalogue.fronts[1:],
                   backs=catalogue.backs[1:],
                   extra={c: v[1:] for c, v in catalogue.extra.items()})

    def switched_then_failed(edit_id):
        fake_generation(catalogue_dir, features, kept, edit={"from": "x", "id": edit_id})
        raise OSError(28, "No space left on device")

    assert _applied(engine, gone, switched_then_failed, "edit-1") == \
        {"name": gone, "n_pairs": len(catalogue) - 1}
    assert refreshed == [1]

    def failed_before_switching(edit_id):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):  # nothing changed: the edit failed, and says so
        _applied(engine, catalogue.names[1], failed_before_switching, "edit-2")

    def another_writer_removed_it(edit_id):
        fake_generation(catalogue_dir, features, kept, edit={"from": "x", "id": None})
        raise CatalogueEditError(f"no design named {gone!r} in the catalogue")

    with pytest.raises(CatalogueEditError):  # gone, but not by this edit: it failed
        _applied(engine, gone, another_writer_removed_it, "edit-3")


def test_a_check_that_no_design_passes_the_filters_of_after_an_edit_says_so(own_catalogue,
                                                                            redis, extractor):
    """Filters no design passes are refused at submission; the catalogue can change under a
    queued check all the same. Its design then finds nothing, and the page, the JSON and the
    report say why, rather than reading as a design with no copy."""
    from tests.zips import make_zip, season_files
    from web import create_app
    from worker.core.results_csv import NO_HITS
    from worker.service.process import make_worker, start_engine

    catalogue = load_catalogue(own_catalogue.database_dir)
    garments, seasons = catalogue.extra["garment"], catalogue.extra["season"]
    both = [n for n, g, s in zip(catalogue.names, garments, seasons, strict=True)
            if (g, s) == ("jacket", seasons[0])]
    assert 0 < len(both) < garments.count("jacket")  # jackets and the season stay apart
    client = create_app({"SETTINGS": own_catalogue}).test_client()
    files, rows = season_files([2], unrelated=0)
    response = client.post("/api/checks", content_type="multipart/form-data", data={
        "collection": (io.BytesIO(make_zip(files, rows)), "collection.zip"),
        "filter": ["garment:jacket", f"season:{seasons[0]}"]})
    assert response.status_code == 202, response.get_json()
    url = response.get_json()["url"]
    for name in both:  # before any chunk ran: nothing pins the version it was accepted for
        remove_design(own_catalogue, name)
    make_worker(own_catalogue, start_engine(own_catalogue, extractor), redis).work(
        burst=True, with_scheduler=False)
    body = client.get(url).get_json()
    (design,) = body["designs"]
    assert (body["status"], design["status"], design["results"]) == ("finished", "finished", [])
    page = " ".join(client.get(url.replace("/api/checks/", "/checks/")).get_data(
        as_text=True).split())
    assert ('<span class="error no-hits">no catalogue design passed the filters: nothing was '
            'compared</span>') in page
    assert "<span class=\"muted\">none</span>" not in page  # not a clean design
    report = client.get(body["report_url"]).get_data(as_text=True).splitlines()
    assert len(report) == 2 and NO_HITS in report[1]
