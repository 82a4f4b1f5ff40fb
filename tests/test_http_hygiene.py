"""HTTP hygiene: malformed ids, caching of private results, page headers, storage errors."""

from __future__ import annotations

import io

import pytest

HEX = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("suffix", ["%0A", "%0D%0A", "%00", "%20", ""])
@pytest.mark.parametrize("route", ["/api/searches/{}", "/api/searches/{}/result.jpg",
                                   "/api/searches/{}/results.csv", "/api/searches/{}?wait=1",
                                   "/searches/{}"])
def test_malformed_or_unknown_ids_are_404(client, route, suffix):
    response = client.get(route.format(HEX + suffix))
    assert response.status_code == 404, (route, suffix)


def test_upload_names_must_match_whole():
    from worker.core.queueing import UploadRefused, check_upload_name

    assert check_upload_name(f"{HEX}-front.png")
    with pytest.raises(UploadRefused):
        check_upload_name(f"{HEX}-front.png\n")


def test_pages_carry_a_csp_whose_nonce_allows_only_their_own_inline_code(client):
    import re

    page = client.get("/")
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert "'unsafe-inline'" not in csp
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp).group(1)
    html = page.data.decode()
    assert html.count("<script") == html.count(f'<script nonce="{nonce}"') >= 1
    assert html.count("<style") == html.count(f'<style nonce="{nonce}"') >= 1
    assert nonce not in client.get("/").headers["Content-Security-Policy"], "fresh per request"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "same-origin"


def test_a_search_is_never_cached_by_anyone_else(client, settings):
    from PIL import Image

    from tests.http import post_pair
    from tests.images import drawn, encode

    png = encode(drawn(Image.new("RGB", (64, 64), "white")))
    created = post_pair(client, png, png)
    assert created.status_code == 202, created.get_json()
    assert created.headers["Cache-Control"] == "private, no-store"
    for url in (created.get_json()["url"], f"/searches/{created.get_json()['id']}"):
        assert client.get(url).headers["Cache-Control"] == "private, no-store", url


def _disk_full_after_one(app, monkeypatch):
    """The upload folder takes one file, then the disk is full."""
    import errno

    storage = app.extensions["storage"]
    real, calls = storage.put_upload, []

    def put_upload(name, data):
        calls.append(name)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(name, data)

    monkeypatch.setattr(storage, "put_upload", put_upload)
    return calls


JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 60  # only its signature is read


def _png() -> bytes:
    from PIL import Image

    from tests.images import drawn, encode

    return encode(drawn(Image.new("RGB", (64, 64), "white")))


def test_a_full_disk_is_503_and_leaves_no_upload(app, client, settings, monkeypatch):
    from tests.http import post_pair

    calls = _disk_full_after_one(app, monkeypatch)
    response = post_pair(client, _png(), _png())
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["error"] == "storage_unavailable"
    assert len(calls) == 2 and list(settings.upload_dir.iterdir()) == []


def test_a_full_disk_during_a_design_upload_is_503_and_leaves_nothing(settings, redis,
                                                                      monkeypatch):
    import dataclasses
    import io

    from web import create_app, designs

    app = create_app({"SETTINGS": dataclasses.replace(settings, admin_token="t"),
                      "TESTING": True})
    monkeypatch.setattr(designs, "_names", lambda: [])
    calls = _disk_full_after_one(app, monkeypatch)
    response = app.test_client().post(
        "/api/designs", headers={"Authorization": "Bearer t"},
        data={"name": "new-one", "front": (io.BytesIO(_png()), "f.png"),
              "back": (io.BytesIO(_png()), "b.png")}, content_type="multipart/form-data")
    assert response.status_code == 503, response.get_json()
    assert response.get_json()["error"] == "storage_unavailable"
    assert len(calls) == 2 and list(settings.upload_dir.iterdir()) == []


def test_a_full_disk_while_a_large_part_spills_is_503_not_500(client, monkeypatch):
    """A part past SPOOL_BYTES is spilled into UPLOAD_DIR while the form is read: a full disk
    there was a bare 500."""
    import errno
    import tempfile

    from web import submissions
    from web.submissions import SPOOL_BYTES

    class FullDisk(tempfile.SpooledTemporaryFile):
        def rollover(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(submissions, "SpooledTemporaryFile", FullDisk)
    large = _png() + bytes(SPOOL_BYTES)
    response = client.post("/api/searches", data={"front": (io.BytesIO(large), "f.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 503 and response.headers["Retry-After"] == "30"
    assert response.get_json()["error"] == "storage_unavailable"

    from gunicorn.http.errors import NoMoreData

    class ClientLeft(tempfile.SpooledTemporaryFile):  # gunicorn's NoMoreData is an OSError
        def rollover(self):
            raise NoMoreData(b"")

    monkeypatch.setattr(submissions, "SpooledTemporaryFile", ClientLeft)
    response = client.post("/api/searches", data={"front": (io.BytesIO(large), "f.png")},
                           content_type="multipart/form-data")
    assert (response.status_code, response.get_json()["error"]) == (408, "request_timeout")


def test_catalogue_images_are_regular_files_inside_the_catalogue(settings, redis, tmp_path):
    import os

    from web import create_app

    db = settings.database_dir
    outside = tmp_path / "secret.png"
    outside.write_bytes(_png())
    links = {"link-out.png": outside, "link-in.png": db / "images" / "dress-0001_front.png",
             "dir.png": db / "images"}
    made = []
    try:
        for name, target in links.items():
            os.symlink(target, db / name)
            made.append(db / name)
        os.mkfifo(db / "fifo.png")
        made.append(db / "fifo.png")
        client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
        image = client.get("/database/images/dress-0001_front.png")
        assert image.status_code == 200
        assert image.headers["Cache-Control"] == "private, max-age=3600"  # the catalogue's own
        assert client.get("/database/link-in.png").status_code == 200  # a link that stays in
        for name, data in (("images/saved.jfif", JPEG), ("images/no-extension", _png())):
            (db / name).write_bytes(data)  # what the index reads, whatever the name says
            made.append(db / name)
            shown = client.get(f"/database/{name}")
            assert shown.status_code == 200 and shown.data == data, name
            assert shown.mimetype == ("image/jpeg" if data is JPEG else "image/png")
        (db / "notes.png").write_text("not an image")
        made.append(db / "notes.png")
        for name in ("link-out.png", "dir.png", "fifo.png", "notes.png"):
            refused = client.get(f"/database/{name}")
            assert refused.status_code == 404, name
            assert refused.headers["Cache-Control"] == "private, no-store"
        for url in ("/api/catalogue", "/api/duplicates", "/healthz", "/api/checks/" + "0" * 32):
            assert client.get(url).headers["Cache-Control"] == "private, no-store", url
    finally:
        for path in made:
            path.unlink()


def test_a_post_a_browser_sends_for_another_site_is_refused(client):
    """A page elsewhere could make a visitor's browser post collections to a service on
    loopback (a form, or a no-cors fetch, needs no preflight); the browser says where the
    request comes from. The service's own pages, scripts and curl are served as before."""
    from tests.http import post_pair

    for site, status in (("cross-site", 403), ("same-origin", 400), (None, 400)):
        headers = {} if site is None else {"Sec-Fetch-Site": site}
        response = client.post("/api/searches", data={}, headers=headers,
                               content_type="multipart/form-data")
        assert response.status_code == status, (site, response.get_json())
    refused = client.post("/checks", headers={"Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403 and "another site" in refused.get_data(as_text=True)
    assert client.get("/", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200  # a link
    assert post_pair(client, None, None).status_code == 400  # no header: as before
    # the API's document lists both refusals any write may get (a client generated from it
    # knew neither)
    paths = client.get("/openapi.json").get_json()["paths"]
    for path, method, body in (("/api/searches", "post", True), ("/api/checks", "post", True),
                               ("/api/designs", "post", True), ("/api/designs/{name}", "delete",
                                                                 False),
                               ("/api/checks/{check_id}", "delete", False)):
        responses = paths[path][method]["responses"]
        assert "`cross_site`" in responses["403"]["description"], path
        assert ("408" in responses) == body and responses["403"]["content"], path
