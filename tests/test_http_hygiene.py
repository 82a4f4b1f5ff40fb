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
