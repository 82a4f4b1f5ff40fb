"""nginx/default.conf.template, as docker compose runs it in front of gunicorn: the real nginx
(Debian's nginx, installed by `make test`), the template filled in by envsubst as the
official image does, the real app under gunicorn; all on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import subprocess
import zipfile

import pytest
import requests

from tests.load_clients import wait_for_http
from worker.core.settings import REPO_ROOT
from worker.dev.processes import free_port, stop_process
from worker.dev.services import start_web

pytestmark = pytest.mark.slow
NGINX = "/usr/sbin/nginx"


@pytest.fixture
def proxied(settings, redis, tmp_path):
    """(nginx's base URL, the settings, the gunicorn process) with MAX_UPLOAD_MB=1 and
    MAX_CHECK_UPLOAD_MB=3."""
    if not os.access(NGINX, os.X_OK):
        pytest.fail(f"{NGINX} is missing: `make test` installs Debian's nginx")
    settings = dataclasses.replace(settings, max_upload_mb=1, max_check_upload_mb=3)
    web_port, port = free_port(), free_port()
    env = {**os.environ, "MAX_UPLOAD_MB": "1", "MAX_CHECK_UPLOAD_MB": "3",
           "NGINX_LISTEN": f"127.0.0.1:{port}", "WEB_UPSTREAM": f"127.0.0.1:{web_port}"}
    names = "${MAX_UPLOAD_MB} ${MAX_CHECK_UPLOAD_MB} ${NGINX_LISTEN} ${WEB_UPSTREAM}"
    site = subprocess.run([shutil.which("envsubst") or "envsubst", names], env=env, text=True,
                          input=(REPO_ROOT / "nginx/default.conf.template").read_text(),
                          capture_output=True, check=True).stdout
    (tmp_path / "site.conf").write_text(site)
    root = "user root; " if os.geteuid() == 0 else ""  # its workers read the temp files
    (tmp_path / "nginx.conf").write_text(
        f"{root}daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; "
        f"events {{}} http {{ access_log off; client_body_temp_path {tmp_path}/body; "
        f"proxy_temp_path {tmp_path}/proxy; include {tmp_path}/site.conf; }}")
    web = start_web(settings, web_port, log=tmp_path / "web.log")
    nginx = subprocess.Popen([NGINX, "-c", str(tmp_path / "nginx.conf")],
                             stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}", settings, web
    finally:
        stop_process(nginx)
        stop_process(web)


def _zip(size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("pairs.csv", "name,front,back\n")
        archive.writestr("scans/notes.bin", os.urandom(size))  # incompressible: `size` sent
    return buf.getvalue()


def test_a_collection_passes_nginx_up_to_its_own_limit_and_a_search_up_to_its(proxied):
    """nginx refused every body over MAX_UPLOAD_MB, a collection's ZIP too, before the app
    (which now gives a collection MAX_CHECK_UPLOAD_MB) saw it."""
    base, _, _ = proxied
    for url in ("/api/checks", "/checks"):
        passed = requests.post(base + url, files={"collection": ("c.zip", _zip(2 << 20))},
                               timeout=60)
        assert passed.status_code == 400, url  # the app's answer: its pairs.csv lists nothing
        assert "pairs.csv has no rows" in passed.text, url
    refused = requests.post(base + "/api/checks", files={"collection": ("c.zip", _zip(4 << 20))},
                            timeout=60)
    assert refused.status_code == 413
    assert refused.json()["message"].startswith("the collection is too large; the limit is 3 MB")
    page = requests.post(base + "/checks", files={"collection": ("c.zip", _zip(4 << 20))},
                         timeout=60)
    assert page.status_code == 413 and page.headers["Content-Type"].startswith("text/html")
    assert "The limit is 3 MB a ZIP" in page.text
    search = requests.post(base + "/api/searches", timeout=60, files={
        "front": ("f.png", os.urandom(2 << 20)), "back": ("b.png", b"x")})
    assert search.status_code == 413
    assert "the limit is 1 MB a request" in search.json()["message"]
    under = requests.post(base + "/api/searches", timeout=60, files={
        "front": ("f.png", os.urandom(512 << 10)), "back": ("b.png", b"x")})
    assert (under.status_code, under.json()["error"]) == (415, "unsupported_format")  # the app's


def test_a_web_that_does_not_answer_is_a_json_503_to_the_api_and_a_page_to_people(proxied):
    """A collection's location has its own 413 page, and nginx then dropped the server's other
    error pages there: its 502 was nginx's bare HTML, without Retry-After."""
    base, _, web = proxied
    stop_process(web)
    for url, post in (("/api/searches/" + "0" * 32, False), ("/api/checks", True)):
        api = (requests.post(base + url, files={"collection": ("c.zip", _zip(10))}, timeout=30)
               if post else requests.get(base + url, timeout=30))
        assert (api.status_code, api.json()["error"]) == (503, "queue_unavailable"), url
        assert api.headers["Retry-After"] == "5"
    for url, post in (("/", False), ("/checks", True)):
        page = (requests.post(base + url, files={"collection": ("c.zip", _zip(10))}, timeout=30)
                if post else requests.get(base + url, timeout=30))
        assert page.status_code == 503 and page.headers["Content-Type"].startswith("text/html")
        assert "Retry-After" in page.headers, url
