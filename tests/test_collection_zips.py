"""Collection ZIPs as other tools make them (bsdtar's `./`, a Mac's `:` in names, 7-Zip's AES,
a later ZIP version, a damaged header), a folder on disk read as a ZIP is, and a cancel racing a
poll. Real app, real Redis, no worker."""

from __future__ import annotations

import dataclasses
import io
import struct
import unicodedata
import zipfile

import pytest
from PIL import Image

from tests.images import drawn, encode
from tests.zips import make_zip, pairs_csv, post_collection
from worker.core.archive import ZipLimits
from worker.core.checks import CANCELLED, KEY, read_check
from worker.core.collection import read_collection

PNG = encode(drawn(Image.new("RGB", (64, 80), (30, 60, 90))))
ROWS = [("a", "img/a-f.png", "img/a-b.png"), ("b", "img/b-f.png", "")]
FILES = {"img/a-f.png": PNG, "img/a-b.png": PNG, "img/b-f.png": PNG}


def _client(settings, **limits):
    from web import create_app

    app = create_app({"SETTINGS": dataclasses.replace(settings, **limits), "TESTING": True})
    return app.test_client()


def _designs(client, response) -> list[tuple[str, str, str | None]]:
    assert response.status_code == 202, response.get_json()
    body = client.get(response.get_json()["url"]).get_json()
    return [(d["name"], d["status"], d.get("error")) for d in body["designs"]]


def _headers(data: bytes, name: bytes):
    """The offsets of `name`'s central and local headers."""
    central = data.find(b"PK\x01\x02")
    while data[central + 46:central + 46 + len(name)] != name:
        central = data.find(b"PK\x01\x02", central + 4)
    local = struct.unpack_from("<I", data, central + 42)[0]
    return central, local


def _set(data: bytes, name: str, central_at: int, local_at: int, fmt: str, value: int) -> bytes:
    """A field of `name`'s two headers (offsets in the central and the local one) set."""
    out = bytearray(data)
    central, local = _headers(data, name.encode())
    struct.pack_into(fmt, out, central + central_at, value)
    struct.pack_into(fmt, out, local + local_at, value)
    return bytes(out)


@pytest.mark.parametrize("top", ["", "SS26/"])
def test_a_zip_made_by_tar_with_leading_dot_slashes_is_read(settings, redis, top):
    """`tar -a -cf season.zip .` (Windows' tar.exe, macOS) names every entry `./...`: each row
    failed as 'leaves the collection' (or pairs.csv was 'more than one folder down')."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("./", b"")
        archive.writestr(f"./{top}pairs.csv", pairs_csv(ROWS))
        for name, data in FILES.items():
            archive.writestr(f"./{top}{name}", data)
    client = _client(settings)
    assert _designs(client, post_collection(client, buf.getvalue())) == [
        ("a", "queued", None), ("b", "queued", None)]


def test_a_mac_name_with_a_colon_is_no_absolute_path(settings, redis):
    """A Mac writes a '/' typed in a file name ('S/S26 front.png') as ':'; it looked like a
    Windows drive and refused the whole ZIP. A drive's root still is refused."""
    client = _client(settings)
    data = make_zip({"S:S26 front.png": PNG}, [("robe", "S:S26 front.png", "")])
    assert _designs(client, post_collection(client, data)) == [("robe", "queued", None)]
    for name in ("C:\\evil.png", "c:/evil.png", "C:"):
        refused = post_collection(client, make_zip({name: PNG, **FILES}, ROWS))
        assert (refused.status_code, refused.get_json()["error"]) == (400, "unsafe_entry"), name
        assert "absolute path" in refused.get_json()["message"]


def test_a_password_protected_zip_is_refused_as_encrypted_whatever_its_cipher(settings, redis):
    """7-Zip's and WinZip's AES entries record method 99: they were refused as compressed
    otherwise than deflate, which sent a person to change the compression."""
    client = _client(settings)
    aes = _set(_set(make_zip(FILES, ROWS), "img/a-f.png", 8, 6, "<H", 1),
               "img/a-f.png", 10, 8, "<H", 99)
    refused = post_collection(client, aes)
    assert (refused.status_code, refused.get_json()["error"]) == (400, "unsafe_entry")
    assert "'img/a-f.png' is encrypted (password-protected)" in refused.get_json()["message"]
    assert list(settings.upload_dir.iterdir()) == []


def test_a_zip_of_a_later_version_or_with_a_damaged_name_is_answered_not_a_500(settings, redis):
    """An entry needing ZIP version 6.4 made zipfile raise NotImplementedError (a 500); a local
    header whose name is flagged UTF-8 and is not raised a ValueError while the designs were
    stored (a 500, the drawings stored before it left behind)."""
    client = _client(settings)
    later = _set(make_zip(FILES, ROWS), "img/a-f.png", 6, 4, "<B", 64)
    refused = post_collection(client, later)
    assert (refused.status_code, refused.get_json()["error"]) == (415, "not_a_zip")
    assert "zip file version 6.4" in refused.get_json()["message"]

    data = _set(make_zip(FILES, ROWS), "img/b-f.png", 8, 6, "<H", 0x800)
    _, local = _headers(data, b"img/b-f.png")
    damaged = data[:local + 30] + b"img/b-f.pn\xff" + data[local + 41:]  # the local name only
    assert _designs(client, post_collection(client, damaged)) == [
        ("a", "queued", None),
        ("b", "failed", "front: the ZIP entry 'img/b-f.png' could not be read ('utf-8' codec "
                        "can't decode byte 0xff in position 10: invalid start byte)")]


def test_a_fault_while_storing_keeps_none_of_the_drawings(settings, redis, monkeypatch):
    """Any exception while the designs are stored deletes those stored before it (only a
    refusal, a late bomb or a client gone did)."""
    from web import check_uploads

    stored = check_uploads.stored_design
    calls = []

    def failing_third(design, forms):
        calls.append(design.name)
        if len(calls) == 3:
            raise RuntimeError("a fault")
        return stored(design, forms)

    monkeypatch.setattr(check_uploads, "stored_design", failing_third)
    rows = [(f"d{i}", "img/a-f.png", "img/a-b.png") for i in range(4)]
    with pytest.raises(RuntimeError, match="a fault"):
        post_collection(_client(settings), make_zip(FILES, rows))
    assert len(calls) == 3 and list(settings.upload_dir.iterdir()) == []


def test_a_second_collection_in_one_request_is_refused(settings, redis):
    client = _client(settings)
    response = client.post("/api/checks", data={"collection": [
        (io.BytesIO(make_zip(FILES, ROWS)), "a.zip"), (io.BytesIO(make_zip(FILES, ROWS)), "b.zip")]},
        content_type="multipart/form-data")
    assert (response.status_code, response.get_json()["error"]) == (400, "invalid_collection")
    assert "more than once" in response.get_json()["message"]
    assert list(settings.upload_dir.iterdir()) == []


def test_a_folder_is_read_as_its_zip_would_be(tmp_path):
    """`python -m worker.check folder/`: backslashed paths (a pairs.csv written on Windows) and
    a name stored decomposed (a folder copied from a Mac) were 'not a file', though the same
    files in a ZIP were found."""
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a-f.png").write_bytes(PNG)
    (tmp_path / unicodedata.normalize("NFD", "café.png")).write_bytes(PNG)
    (tmp_path / "pairs.csv").write_bytes(pairs_csv([("a", "img\\a-f.png", "café.png"),
                                                    ("b", "..\\x.png", "")]))
    limits = ZipLimits(5000, 1 << 30, 1 << 26, 1100)
    designs = list(read_collection(tmp_path, limits, 10).designs)
    assert (designs[0].front, designs[0].back, designs[0].error) == (PNG, PNG, None)
    assert designs[1].error == "front: the path '../x.png' leaves the collection's folder"


def test_a_poll_that_read_the_check_before_its_cancel_says_cancelled(settings, redis, monkeypatch):
    """A poll read the check's flag before a cancel set it, and its chunks' jobs after the
    cancel cancelled them: it recorded the designs as 'the worker stopped' for good."""
    from worker.core import checkcancel, checks

    client = _client(settings, check_chunk_pairs=1)
    url = post_collection(client, make_zip(FILES, ROWS)).get_json()["url"]
    check_id = url.rsplit("/", 1)[1]
    before = read_check(redis, check_id, results=False)  # the poll's read of the check
    assert not before.cancelled
    settle = checkcancel.settle_cancelled

    def polled_between(connection, check_id, names, ttl):
        assert connection.hexists(KEY + check_id, "cancelled")
        checks.record_outcomes(connection, check_id, checks.lost_designs(connection, before),
                               ttl)  # the rest of that poll, the jobs read now
        settle(connection, check_id, names, ttl)

    monkeypatch.setattr(checkcancel, "settle_cancelled", polled_between)
    assert client.delete(url).status_code == 200
    assert [d["error"] for d in client.get(url).get_json()["designs"]] == [CANCELLED] * 2


def test_names_windows_wrote_in_its_own_code_page_are_found(settings, redis):
    """Explorer's 'Compressed (zipped) folder' writes names in the system's OEM code page
    without the UTF-8 flag (cp850 in western Europe, cp932 in Japan): zipfile reads them as
    cp437, and every such drawing was 'not in the ZIP'."""
    names = {"Bjørn front.png": "cp850", "ドレス.png": "cp932"}
    placeholders = {name: "Z" * len(name.encode(page)) for name, page in names.items()}
    data = make_zip({f"img/{placeholders[name]}-{i}": PNG for i, name in enumerate(names)},
                    [("bjørn", "img/Bjørn front.png-0", "img/ドレス.png-1")],
                    zipfile.ZIP_STORED)
    for name, page in names.items():
        data = data.replace(placeholders[name].encode(), name.encode(page))
    assert all(not info.flag_bits & 0x800 for info in zipfile.ZipFile(io.BytesIO(data)).infolist())
    client = _client(settings)
    assert _designs(client, post_collection(client, data)) == [("bjørn", "queued", None)]
    # Explorer zips the folder itself: pairs.csv's folder is read as cp437 too ("H¢st 2026")
    folder, hidden = "Høst 2026", "Y" * len("Høst 2026".encode("cp850"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{hidden}/pairs.csv", pairs_csv([("bjørn", "Bjørn front.png", "")]))
        archive.writestr(f"{hidden}/{placeholders['Bjørn front.png']}", PNG)
    data = buf.getvalue().replace(hidden.encode(), folder.encode("cp850")).replace(
        placeholders["Bjørn front.png"].encode(), "Bjørn front.png".encode("cp850"))
    assert _designs(client, post_collection(client, data)) == [("bjørn", "queued", None)]


def test_deeply_nested_entry_names_cost_no_more_than_their_bytes(tmp_path):
    """Every folder of every entry name was listed for the hints: a 64 KB upload of one name
    16,000 folders deep took 2.5 s and 245 MB in the web (the square of its depth), 78 such
    names in a 10 MB ZIP about 80 GB. The hints are the same: measured as the peak RSS of a
    process of its own."""
    import subprocess
    import sys

    deep = "/".join(["a"] * 16_000) + "/x.png"
    (tmp_path / "deep.zip").write_bytes(make_zip({"img/a-f.png": PNG, deep: PNG}, [
        ("a", "img/a-f.png", "img"), ("b", "img/a-f.png", "a/a/a")]))
    measure = (
        "import resource, sys; from pathlib import Path; "
        "from worker.core.archive import ZipLimits; "
        "from worker.core.collection import read_collection; "
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
        "designs = list(read_collection(Path(sys.argv[1]), ZipLimits(5000, 1 << 30, 1 << 26, "
        "100_000), 10).designs); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before); "
        "[print(d.error) for d in designs]")
    out = subprocess.run([sys.executable, "-c", measure, str(tmp_path / "deep.zip")],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    grown_kib, *errors = out.splitlines()
    assert errors == ["back: 'img' is not in the ZIP (that is a folder in it; name a drawing)",
                      "back: 'a/a/a' is not in the ZIP (that is a folder in it; name a drawing)"]
    assert int(grown_kib) < 64 * 1024, f"{int(grown_kib) / 1024:.0f} MiB"


def test_a_pairs_csv_path_past_1024_characters_is_refused_naming_its_row():
    """Each missing path's error, the path in it, is kept with the check for a day: 50 rows
    of 128 KB paths (a 23 KB upload) put 6.7 MB into Redis, 16 such checks filled it."""
    from worker.core.archive import CollectionRefused
    from worker.core.pairs_csv import parse_pairs

    with pytest.raises(CollectionRefused, match="row 3: the back path is longer than 1024"):
        parse_pairs(pairs_csv([("a", "a.png", "b.png"), ("b", "a.png", "x" * 1025)]), 10)
