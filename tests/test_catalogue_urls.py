"""The URLs the pages and the API give a catalogue design's drawings and thumbnails: the same
file however pairs.csv writes its path (in full, `./x`, `a/../x`), and a new URL once the file
is written again (browsers keep each an hour)."""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
from urllib.parse import urlsplit

import pytest

from tests.test_filters import fake_generation
from worker.core.catalogue import Catalogue, load_catalogue, served_path, thumbnail_file


def test_a_path_is_served_as_the_one_under_the_catalogue_a_url_keeps(tmp_path):
    root = str(tmp_path)
    (tmp_path / "images").mkdir()
    os.symlink(tmp_path / "images", tmp_path / "linked")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    os.symlink(tmp_path / "sub" / "deeper", tmp_path / "deep")
    # the index reads `deep/../x.png` where the system does: sub/x.png, not x.png
    assert served_path(root, "deep/../x.png") == "sub/x.png"
    (tmp_path / "store").mkdir()
    os.symlink(tmp_path / "store" / "x.png", tmp_path / "images" / "linked.png")
    for written in ("images/linked.png", "images/../images/linked.png"):  # one URL, one copy
        assert served_path(root, written) == "images/linked.png", written
    for written in ("images/a.png", "./images/a.png", "images/../images/a.png",
                    str(tmp_path / "images" / "a.png"), str(tmp_path / "linked" / ".." / "images/a.png")):
        assert served_path(root, written) == "images/a.png", written
    assert served_path(root, "../elsewhere/a.png") == "../elsewhere/a.png"  # refused by /database/


@pytest.fixture
def hand_written(tmp_path, catalogue_dir, settings):
    """A copy of the sample catalogue whose first rows write their paths as people do."""
    shutil.copytree(catalogue_dir, tmp_path / "db")
    sample = load_catalogue(tmp_path / "db")
    fronts, backs = list(sample.fronts), list(sample.backs)
    fronts[0] = str((tmp_path / "db" / fronts[0]).resolve())
    backs[0] = "./" + backs[0]
    fronts[1] = "images/../" + fronts[1]
    catalogue = Catalogue(sample.root, sample.names, fronts, backs, sample.extra)
    settings = dataclasses.replace(settings, database_dir=tmp_path / "db")
    fake_generation(settings.database_dir, settings.features_dir, catalogue)
    from web import create_app

    return create_app({"SETTINGS": settings, "TESTING": True}).test_client(), catalogue


def test_full_and_dotted_paths_get_urls_that_serve_the_drawing_and_its_thumbnail(
        hand_written, settings):
    """A full path gave /database//full/path (404); `./x` and `a/../x` named thumbnails the
    browser's collapsed URL missed, so a page loaded every full-size scan instead."""
    web, catalogue = hand_written
    listed = web.get("/api/catalogue?per_page=2").get_json()["designs"]
    urls = [listed[0]["front_url"], listed[0]["back_url"], listed[1]["front_url"]]
    assert [urlsplit(u).path for u in urls] == [
        "/database/" + os.path.relpath(catalogue.image_path(rel), catalogue.root)
        for rel in (catalogue.fronts[0], catalogue.backs[0], catalogue.fronts[1])]
    assert all(web.get(u).status_code == 200 for u in urls)
    for design, side in ((0, "front"), (0, "back"), (1, "front")):
        written = getattr(catalogue, f"{side}s")[design]
        made = thumbnail_file(settings.features_dir, written)  # named as the index names it
        made.parent.mkdir(parents=True, exist_ok=True)
        made.write_bytes(b"\xff\xd8thumb of " + written.encode())
        thumb = web.get(listed[design][f"{side}_thumb_url"])
        assert thumb.status_code == 200 and thumb.data == made.read_bytes(), written
    page = web.get("/catalogue?per_page=2").get_data(as_text=True)
    assert "/database//" not in page and "/database/./" not in page and "/../" not in page


def test_search_with_a_design_whose_paths_are_written_in_full(hand_written, redis, settings):
    """Its button answered 404 "the front drawing of ... is missing" (safe_join refuses a
    full path)."""
    web, catalogue = hand_written
    response = web.post(f"/designs/{catalogue.names[0]}/search")
    assert response.status_code == 303, response.get_data(as_text=True)
    assert redis.llen(f"rq:queue:{settings.queue_name}") == 1


def test_a_drawing_written_again_gets_a_new_url(hand_written):
    """/database/ and the thumbnails are kept an hour by browsers: a redrawn drawing (and
    the index's new thumbnail of it) must not show the old picture for that hour."""
    web, catalogue = hand_written
    before = web.get("/api/catalogue?per_page=3").get_json()["designs"][2]
    drawing = catalogue.image_path(catalogue.fronts[2])
    stat = drawing.stat()
    os.utime(drawing, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = web.get("/api/catalogue?per_page=3").get_json()["designs"][2]
    assert urlsplit(after["front_url"]).path == urlsplit(before["front_url"]).path
    assert after["front_url"] != before["front_url"]
    assert after["front_thumb_url"] != before["front_thumb_url"]  # no thumbnail: the drawing's
    assert after["back_url"] == before["back_url"]
    os.utime(drawing, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the old one back, `cp -p`
    restored = web.get("/api/catalogue?per_page=3").get_json()["designs"][2]
    assert restored["front_url"] not in (before["front_url"], after["front_url"])


def test_a_design_with_a_blank_placeholder_side_is_searched_by_its_other_side(
        tmp_path, catalogue_dir, settings, redis):
    """pairs.csv needs both sides, so a design without a back drawing lists a blank page: it
    is indexed, and its "Search with this design" answered 422 "the back image was refused:
    the drawing is blank"."""
    from PIL import Image
    from rq import Queue

    from web import create_app

    shutil.copytree(catalogue_dir, tmp_path / "db")
    catalogue = load_catalogue(tmp_path / "db")
    Image.new("RGB", (300, 300), "white").save(catalogue.image_path(catalogue.backs[3]))
    settings = dataclasses.replace(settings, database_dir=tmp_path / "db")
    fake_generation(settings.database_dir, settings.features_dir, catalogue)
    web = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
    response = web.post(f"/designs/{catalogue.names[3]}/search")
    assert response.status_code == 303, response.get_data(as_text=True)
    (job,) = Queue(settings.queue_name, connection=redis).jobs
    assert job.kwargs["front"] is not None and job.kwargs["back"] is None
    both_blank = catalogue.image_path(catalogue.fronts[3])
    Image.new("RGB", (300, 300), "white").save(both_blank)
    refused = web.post(f"/designs/{catalogue.names[3]}/search")
    assert refused.status_code == 422 and "blank" in refused.get_data(as_text=True)


def test_image_urls_are_those_url_for_builds_whatever_the_name(tmp_path, settings):
    """Built from a prefix made once a request (url_for costs a finished check a second)."""
    from flask import url_for
    from PIL import Image

    from web import create_app
    from web.catalogue import drawing_url, thumb_url

    names = ["images/a b.png", "images/été#1?.png", "images/100%.png", "x/;=@$&+,'!()*:.png",
             "images/名前.png", "images/a%2Fb.png"]
    database = tmp_path / "db"
    for number, name in enumerate(names):
        (database / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (number, 0, 0)).save(database / name)
    app = create_app({"SETTINGS": dataclasses.replace(settings, database_dir=database),
                      "TESTING": True})
    for root in ("", "/under"):  # served at the root, or under a prefix (SCRIPT_NAME)
        with app.test_request_context("/", base_url=f"http://127.0.0.1{root}/"):
            for name in names:
                for url, endpoint in ((drawing_url(name), "pages.catalogue_image"),
                                      (thumb_url(name), "browse.thumbnail")):
                    version = urlsplit(url).query.removeprefix("v=")
                    assert version and url == url_for(endpoint, path=name, v=version), url
    client = app.test_client()
    for number, name in enumerate(names):  # and each URL serves the file it was built for
        with app.test_request_context("/"):
            url = drawing_url(name)
        response = client.get(url)
        assert response.status_code == 200, url
        assert Image.open(io.BytesIO(response.data)).getpixel((0, 0)) == (number, 0, 0), url
