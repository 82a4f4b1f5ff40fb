"""HTTP hygiene: malformed ids, caching of private results, page headers, storage errors."""

from __future__ import annotations

import pytest

HEX = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("suffix", ["%0A", "%0D%0A", "%00", "%20", ""])
@pytest.mark.parametrize("route", ["/api/searches/{}", "/api/searches/{}/result.jpg",
                                   "/api/searches/{}?wait=1", "/searches/{}"])
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
    from tests.images import encode

    png = encode(Image.new("RGB", (64, 64), "white"))
    created = post_pair(client, png, png)
    assert created.status_code == 202, created.get_json()
    assert created.headers["Cache-Control"] == "private, no-store"
    for url in (created.get_json()["url"], f"/searches/{created.get_json()['id']}"):
        assert client.get(url).headers["Cache-Control"] == "private, no-store", url
