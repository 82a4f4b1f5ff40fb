"""Collection uploads (POST /api/checks) without a worker: hostile ZIPs are refused with a 4xx
and a message, and leave nothing behind; a row whose drawing is missing or refused is
reported on that row while the others are queued. Real app, real Redis."""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import time
import zipfile

import pytest
from PIL import Image
from rq import Queue

from tests.images import drawn, encode
from tests.zips import make_zip, pairs_csv, post_collection, symlink_entry
from worker.core.checks import (
    CANCELLED,
    CHUNK_EXPIRED,
    CHUNK_LOST,
    KEY,
    CheckedDesign,
    read_check,
    record_outcomes,
)
from worker.core.contract import Hit, SearchOptions, SideCopy
from worker.core.images import stored_form
from worker.core.results_csv import report_csv

PNG = encode(drawn(Image.new("RGB", (64, 80), (30, 60, 90))))
ROW = [("a", "a-f.png", "a-b.png")]
GOOD = {"a-f.png": PNG, "a-b.png": PNG}


def _client(settings, **limits):
    from web import create_app

    app = create_app({"SETTINGS": dataclasses.replace(settings, **limits), "TESTING": True})
    return app.test_client()


def _two_named(name: str) -> bytes:
    buf = io.BytesIO()
    with pytest.warns(UserWarning), zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("pairs.csv", b"name,front,back\na,a-f.png,a-b.png\n")
        archive.writestr(name, PNG)
        archive.writestr(name, b"another")
    return buf.getvalue()


FIELDS = {"flags": ("<H", 8, 6), "size": ("<I", 24, 22)}  # format, offset in central, local


def _patched(data: bytes, member: str, field: str, value: int) -> bytes:
    """The ZIP with a field of `member`'s two headers (central and local) set to `value`: what
    zipfile will not write (an encryption flag, a false size)."""
    fmt, central, local = FIELDS[field]
    out = bytearray(data)
    for signature, name_at, length_at, offset in ((b"PK\x01\x02", 46, 28, central),
                                                  (b"PK\x03\x04", 30, 26, local)):
        at = out.find(signature)
        while at >= 0:
            length = struct.unpack_from("<H", out, at + length_at)[0]
            if out[at + name_at:at + name_at + length] == member.encode():
                struct.pack_into(fmt, out, at + offset, value)
            at = out.find(signature, at + 4)
    return bytes(out)


def _understated(data: bytes, entries: int) -> bytes:
    """The ZIP with its end record declaring `entries` entries (this disk and in all)."""
    out = bytearray(data)
    struct.pack_into("<HH", out, out.rfind(b"PK\x05\x06") + 8, entries, entries)
    return bytes(out)


NOISE = os.urandom(3 * 1024 * 1024)  # does not compress: within any ratio
HOSTILE = {  # name: (ZIP, settings, status, error code, words of the message)
    "dot-dot entry": (make_zip({"../evil.png": PNG, **GOOD}, ROW), {}, 400, "unsafe_entry", ".."),
    "nested dot-dot": (make_zip({"img/../../evil.png": PNG, **GOOD}, ROW), {}, 400,
                       "unsafe_entry", ".."),
    "absolute entry": (make_zip({"/etc/evil.png": PNG, **GOOD}, ROW), {}, 400, "unsafe_entry",
                       "absolute"),
    "windows drive entry": (make_zip({"C:\\evil.png": PNG, **GOOD}, ROW), {}, 400,
                            "unsafe_entry", "absolute"),
    "symlink entry": (make_zip({symlink_entry("a-f.png"): b"/etc/passwd", "a-b.png": PNG}, ROW),
                      {}, 400, "unsafe_entry", "symbolic link"),
    "encrypted entry": (_patched(make_zip(GOOD, ROW), "a-f.png", "flags", 1), {}, 400,
                        "unsafe_entry", "encrypted"),
    "entry named twice": (_two_named("a-f.png"), {}, 400, "unsafe_entry", "two entries"),
    "too many entries": (make_zip({f"x{i}.png": PNG for i in range(12)} | GOOD, ROW),
                         {"zip_max_entries": 10}, 413, "too_many_entries", "at most 10"),
    # 300 entries' list takes ~16 KiB, past 10 KiB; listed whole, they would say "holds 303"
    "an end record understating its entries": (
        _understated(make_zip({f"x{i}.png": b"" for i in range(300)} | GOOD, ROW), 2),
        {"zip_max_entries": 10}, 413, "too_many_entries", "more than 10 entries need (its end "
        "record says 2); at most 10"),
    "bzip2 bomb": (make_zip({"a-f.png": b"\0" * (40 * 1024 * 1024), "a-b.png": PNG}, ROW,
                            zipfile.ZIP_BZIP2), {}, 415, "unsupported_compression",
                   "'pairs.csv' is compressed with bzip2; save the ZIP with the usual"),
    "LZMA": (make_zip(GOOD, ROW, zipfile.ZIP_LZMA), {}, 415, "unsupported_compression",
             "compressed with LZMA"),
    "a ZIP64 locator naming another disk": (struct.pack("<4sLQL", b"PK\x06\x07", 0, 0, 2)
                                            + struct.pack("<4s4H2LH", b"PK\x05\x06",
                                                          *[0] * 7), {}, 415, "not_a_zip",
                                            "not a ZIP"),
    "deflated bomb": (make_zip({"a-f.png": b"\0" * (40 * 1024 * 1024), "a-b.png": PNG}, ROW),
                      {"zip_max_ratio": 200}, 413, "zip_bomb", "over 200 times its packed"),
    "declared past the limit": (_patched(make_zip(GOOD, ROW), "a-f.png", "size", 0xFFFF0000), {}, 413,
                                "collection_too_large", "says it unpacks to 4,"),
    "read past the limit": (make_zip({f"{n}.png": NOISE for n in "abc"},
                                     [(n, f"{n}.png", "") for n in "abc"]),
                            {"zip_max_mb": 8}, 413, "collection_too_large", "at most 8 MiB"),
    "no pairs.csv": (make_zip(GOOD), {}, 400, "invalid_pairs_csv", "no pairs.csv"),
    "two collections": (make_zip({"a/pairs.csv": pairs_csv(ROW), "b/pairs.csv": pairs_csv(ROW),
                                  **GOOD}), {}, 400, "invalid_pairs_csv",
                        "holds 2 pairs.csv, a/pairs.csv, b/pairs.csv; check one collection"),
    "one at the top, one in a folder": (make_zip({"b/pairs.csv": pairs_csv(ROW), **GOOD}, ROW),
                                        {}, 400, "invalid_pairs_csv",
                                        "holds 2 pairs.csv, b/pairs.csv, pairs.csv; check one"),
    "two folders down": (make_zip({"a/b/pairs.csv": pairs_csv(ROW), **GOOD}), {}, 400,
                         "invalid_pairs_csv", "it holds a/b/pairs.csv: more than one folder"),
    "PAIRS.CSV": (make_zip({"PAIRS.CSV": pairs_csv(ROW), **GOOD}), {}, 400, "invalid_pairs_csv",
                  "it holds PAIRS.CSV: the name must be exactly pairs.csv, lower case"),
    "a ZIP of the ZIP": (make_zip({"season.zip": make_zip(GOOD, ROW),
                                   "__MACOSX/._season.zip": b"\0\5\26\7"}), {}, 400,
                         "invalid_pairs_csv", "(it holds season.zip: upload that ZIP itself"),
    "pairs.csv a folder": (make_zip({"pairs.csv/x.csv": pairs_csv(ROW), **GOOD}), {}, 400,
                           "invalid_pairs_csv", "pairs.csv is a folder in it"),
    "semicolons": (make_zip({"pairs.csv": b"name;front;back\na;a-f.png;a-b.png\n", **GOOD}),
                   {}, 400, "invalid_pairs_csv", "its header is split by ';', not commas"),
    "missing column": (make_zip({"pairs.csv": b"name,front\na,a-f.png\n", **GOOD}), {}, 400,
                       "invalid_pairs_csv", "lacks the column(s) back"),
    "duplicate names": (make_zip(GOOD, ROW * 2), {}, 400, "invalid_pairs_csv", "more than once"),
    "zero rows": (make_zip(GOOD, []), {}, 400, "invalid_pairs_csv", "no rows"),
    "a name composed and decomposed": (make_zip(GOOD, [("caf\u00e9", "a-f.png", ""),
                                                       ("cafe\u0301", "a-b.png", "")]),
                                       {}, 400, "invalid_pairs_csv", "more than once: café"),
    "only empty rows": (make_zip({"pairs.csv": b"name,front,back\n,,\n , , \n", **GOOD}), {},
                        400, "invalid_pairs_csv", "no rows"),
    "endless empty rows": (make_zip({"pairs.csv": pairs_csv(ROW) + b",,\n" * 1001, **GOOD}), {},
                           400, "invalid_pairs_csv", "more than 1000 empty rows"),
    "endless blank lines": (make_zip({"pairs.csv": pairs_csv(ROW) + b"\n" * 1001, **GOOD}), {},
                            400, "invalid_pairs_csv", "more than 1000 empty rows"),
    "no usable design": (make_zip(GOOD, [("a", "nowhere.png", "")]), {}, 400,
                         "no_usable_designs", "the one design in pairs.csv cannot be checked "
                         "('a': front: 'nowhere.png' is not in the ZIP)"),
    "no usable designs": (make_zip({"t.png": b"words"}, [(n, "t.png", "") for n in "abcde"]),
                          {}, 400, "no_usable_designs", "none of the 5 designs in pairs.csv "
                          "can be checked ('a': front: not a JPEG or PNG image"),
    "a name with a line break": (make_zip(GOOD, [("a\nb", "a-f.png", "a-b.png")]), {}, 400,
                                 "invalid_pairs_csv", "row 2: the name holds a line break"),
    "a name with a NUL": (make_zip(GOOD, [("a\x00b", "a-f.png", "a-b.png")]), {}, 400,
                          "invalid_pairs_csv", "row 2: the name holds a line break, tab or "
                          "other control character"),
    "a name reversed by an override": (make_zip(GOOD, [("tee-\u202egnp.exe", "a-f.png", "")]),
                                       {}, 400, "invalid_pairs_csv", "row 2: the name holds an "
                                       "invisible text-direction override"),
    "row without a name": (make_zip(GOOD, [("", "a-f.png", "a-b.png")]), {}, 400,
                           "invalid_pairs_csv", "row 2 has no name"),
    "not utf-8": (make_zip({"pairs.csv": "name,front,back\né,a,b\n".encode("latin-1")}), {},
                  400, "invalid_pairs_csv", "not UTF-8 text; save it from the spreadsheet as "
                  '"CSV UTF-8"'),
    "too many rows": (make_zip(GOOD, [(f"d{i}", "a-f.png", "a-b.png") for i in range(4)]),
                      {"check_max_pairs": 3}, 413, "too_many_pairs", "more than 3 rows"),
    "not a zip": (PNG, {}, 415, "not_a_zip", "not a ZIP"),
    "truncated zip": (make_zip(GOOD, ROW)[:-30], {}, 415, "not_a_zip", "not a ZIP"),
    "empty file": (b"", {}, 400, "empty_collection", "empty"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_zip_is_refused_and_leaves_nothing(case, settings, redis):
    data, limits, status, error, words = HOSTILE[case]
    response = post_collection(_client(settings, **limits), data)
    body = response.get_json()
    assert (response.status_code, body["error"]) == (status, error), body
    assert words in body["message"]
    assert list(settings.upload_dir.iterdir()) == []
    assert len(Queue(settings.check_queue_name, connection=redis)) == 0
    assert redis.keys("pairsearch:check:*") == []


def test_a_form_without_a_collection_or_with_a_bad_option_is_refused(client, redis):
    response = client.post("/api/checks", data={"k": "5"}, content_type="multipart/form-data")
    assert (response.status_code, response.get_json()["error"]) == (400, "missing_collection")
    response = post_collection(client, make_zip(GOOD, ROW), k="0")
    assert (response.status_code, response.get_json()["error"]) == (400, "invalid_k")
    response = post_collection(client, make_zip(GOOD, ROW), front_weight="2")
    assert (response.status_code, response.get_json()["error"]) == (400, "invalid_front_weight")
    response = post_collection(client, make_zip(GOOD, ROW), front_box="0.1,0.1,0.9,0.9")
    assert (response.status_code, response.get_json()["error"]) == (400, "invalid_front_box")
    assert "single search" in response.get_json()["message"]
    nameless = client.post("/api/checks", data={  # werkzeug gives such a part no length
        "collection": (io.BytesIO(make_zip(GOOD, ROW)), "")}, content_type="multipart/form-data")
    assert nameless.status_code == 202, nameless.get_json()
    for field in ("k", "filter"):  # an option sent as a file (curl's @) was dropped silently
        response = client.post("/api/checks", data={
            "collection": (io.BytesIO(make_zip(GOOD, ROW)), "c.zip"),
            field: (io.BytesIO(b"5"), "options.txt")}, content_type="multipart/form-data")
        assert (response.status_code, response.get_json()["error"]) == (400, f"invalid_{field}")
        assert "came as a file" in response.get_json()["message"]
    assert Queue(client.application.config["SETTINGS"].check_queue_name,
                 connection=redis).count == 1  # the nameless ZIP's check alone


def test_rows_with_a_missing_or_refused_drawing_fail_on_their_own(settings, redis):
    files = {**GOOD, "big.png": NOISE[:2 * 1024 * 1024], "text.png": b"just some words",
             "tiny.png": encode(Image.new("RGB", (4, 4))), "lie.png": PNG,
             "blank.png": encode(Image.new("RGB", (64, 64), "white")), "empty.png": b""}
    rows = [("good", "a-f.png", "a-b.png"), ("missing", "a-f.png", "nowhere.png"),
            ("text", "text.png", "a-b.png"), ("too-big", "big.png", "a-b.png"),
            ("too-small", "a-f.png", "tiny.png"), ("climbs", "../a-f.png", ""),
            ("detour", "x/../a-f.png", "a-b.png"), ("climbs-later", "x/../../a-f.png", ""),
            ("front-only", "a-f.png", ""), ("no-drawing", "", ""), ("lying", "lie.png", ""),
            ("blank", "a-f.png", "blank.png"), ("empty", "a-f.png", "empty.png")]
    data = _patched(make_zip(files, rows), "lie.png", "size", 10)  # its header says 10 bytes
    response = post_collection(_client(settings, zip_max_entry_mb=1), data, k=3)
    assert response.status_code == 202, response.get_json()
    check_id = response.get_json()["id"]
    assert response.headers["Location"] == response.get_json()["url"] == f"/api/checks/{check_id}"
    body = _client(settings).get(f"/api/checks/{check_id}").get_json()
    assert (body["status"], body["done"], body["total"], body["k"]) == ("queued", 10, 13, 3)
    designs = {d["name"]: d for d in body["designs"]}
    assert [d["name"] for d in body["designs"]] == [name for name, _, _ in rows]
    assert [designs[n]["status"] for n in ("good", "front-only", "detour")] == ["queued"] * 3
    errors = {name: d["error"] for name, d in designs.items() if d["status"] == "failed"}
    assert "'nowhere.png' is not in the ZIP" in errors.pop("missing")
    assert "not a JPEG or PNG" in errors.pop("text")
    assert "larger than 1 MiB" in errors.pop("too-big")
    assert "each side must be >= 16px" in errors.pop("too-small")
    assert "leaves the collection" in errors.pop("climbs")
    assert "leaves the collection" in errors.pop("climbs-later")
    assert "neither a front nor a back" in errors.pop("no-drawing")
    assert "'lie.png' could not be read" in errors.pop("lying")  # zipfile stops at 10 bytes
    assert errors.pop("blank").startswith("back: the drawing is blank")
    assert errors.pop("empty") == "back: the file is empty"
    assert errors == {}
    stored = sorted(p.name for p in settings.upload_dir.iterdir())
    assert stored == sorted([f"{check_id}-r0-front.png", f"{check_id}-r0-back.png",
                             f"{check_id}-r6-front.png", f"{check_id}-r6-back.png",
                             f"{check_id}-r8-front.png"])
    assert len(Queue(settings.check_queue_name, connection=redis)) == 1  # one chunk of 3 rows


def test_a_drawing_saved_as_an_uncompressed_png_is_no_zip_bomb(settings, redis):
    """Photoshop's "None" compression: a white drawing's raw pixels pack 400-1000:1 in the
    ZIP, like a bomb's zeros; it is checked (the bomb test above is bzip2's)."""
    image = drawn(Image.new("RGB", (1600, 1800), "white"))
    raw = io.BytesIO()
    image.save(raw, format="PNG", compress_level=0)
    data = make_zip({"a-f.png": raw.getvalue(), "a-b.png": PNG}, ROW)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("a-f.png")
    assert info.file_size > 300 * info.compress_size  # past the old ZIP_MAX_RATIO of 200
    response = post_collection(_client(settings), data)
    assert response.status_code == 202, response.get_json()
    body = _client(settings).get(response.get_json()["url"]).get_json()
    assert [(d["name"], d["status"]) for d in body["designs"]] == [("a", "queued")]


def test_a_drawing_many_rows_name_counts_once_towards_the_zip_limit(settings, redis):
    """A 1.4 MiB back named by four rows was unpacked, and counted, four times: the ZIP, 1.4 MiB
    and a bit unpacked, was refused past ZIP_MAX_MB=3 as a collection too large."""
    back = encode(drawn(Image.frombytes("RGB", (700, 700), os.urandom(700 * 700 * 3))))
    assert len(back) > 1024 * 1024
    rows = [(f"d{i}", f"f{i}.png", "back.png") for i in range(4)]
    data = make_zip({"back.png": back, **{f"f{i}.png": PNG for i in range(4)}}, rows)
    response = post_collection(_client(settings, zip_max_mb=3), data)
    assert response.status_code == 202, response.get_json()
    body = _client(settings).get(response.get_json()["url"]).get_json()
    assert [(d["name"], d["status"]) for d in body["designs"]] == [
        (f"d{i}", "queued") for i in range(4)]
    too_much = make_zip({f"b{i}.png": back for i in range(4)} | {"f.png": PNG},
                        [(f"d{i}", "f.png", f"b{i}.png") for i in range(4)])
    refused = post_collection(_client(settings, zip_max_mb=3), too_much)  # four drawings
    assert (refused.status_code, refused.get_json()["error"]) == (413, "collection_too_large")


def test_a_drawing_many_rows_name_is_decoded_once(monkeypatch):
    """A shared back, or one drawing named by every row: decoded once, not once a row (a
    6000 x 6000 drawing named by 40 rows was decoded 80 times); a refused one fails each row."""
    from worker.core import storedforms
    from worker.core.collection import NewDesign

    decoded = []

    def counted(data, max_pixels):
        decoded.append(data)
        return stored_form(data, max_pixels)

    monkeypatch.setattr(storedforms, "stored_form", counted)
    forms = storedforms.StoredForms(40_000_000)
    text = b"just some words"
    designs = [storedforms.stored_design(NewDesign(f"d{i}", PNG, text if i % 2 else PNG), forms)
               for i in range(40)]
    assert [d.error for d in designs[:2]] == [None, "back: not a JPEG or PNG image (only "
                                                    "JPEG and PNG are accepted; save it as one "
                                                    "of them)"]
    assert all(d.error == designs[1].error for d in designs[1::2])
    assert designs[0].front == designs[0].back == stored_form(PNG, 40_000_000)[0]
    assert decoded == [PNG, text]
    others = [encode(drawn(Image.new("RGB", (64, 80), (i, 60, 90)))) for i in range(20)]
    for other in others[:10]:  # a shared back among other fronts stays kept
        forms(other)
        forms(PNG)
    assert decoded == [PNG, text, *others[:10]]
    for other in others[10:]:  # only the FORMS_KEPT used last are kept
        forms(other)
    forms(PNG)
    assert decoded == [PNG, text, *others, PNG]


def test_pairs_csv_may_sit_in_one_top_folder(client):
    data = make_zip({"season/pairs.csv": b"name,front,back\na,img/a-f.png,img/a-b.png\n"
                                         b"b,../x.png,\n", "x.png": PNG,
                     "season/img/a-f.png": PNG, "season/img/a-b.png": PNG})
    response = post_collection(client, data)
    assert response.status_code == 202, response.get_json()
    body = client.get(response.get_json()["url"]).get_json()
    assert (body["status"], body["designs"][0]["status"]) == ("queued", "queued")
    assert "leaves the collection" in body["designs"][1]["error"]  # beside, not inside, season/


def test_a_spreadsheet_s_header_and_empty_rows_are_read_and_root_paths_get_a_hint(client):
    data = make_zip({"season/pairs.csv": b" Name, Front ,BACK\r\na,img/a-f.png,img/a-b.png\r\n"
                                         b",,\r\nb,season/img/a-f.png,\r\n,,\r\n",
                     "season/img/a-f.png": PNG, "season/img/a-b.png": PNG})
    response = post_collection(client, data)
    assert response.status_code == 202, response.get_json()
    designs = client.get(response.get_json()["url"]).get_json()["designs"]
    assert [(d["name"], d["status"]) for d in designs] == [("a", "queued"), ("b", "failed")]
    assert designs[1]["error"] == ("front: 'season/img/a-f.png' is not in the ZIP (paths are "
                                   "relative to the folder of season/pairs.csv: 'img/a-f.png')")
    climbing = make_zip({"season/pairs.csv": b"name,front,back\nc,season/../a.png,\n",
                         "season/x.png": PNG})
    refused = post_collection(client, climbing).get_json()  # its one row fails: the ZIP is
    assert refused["error"] == "no_usable_designs"
    assert "('c': front: 'season/../a.png' is not in the ZIP)" in refused["message"]  # no hint
    decomposed = "cafe\u0301.png"  # as a Mac's ZIP stores it; typed composed in pairs.csv
    mac = make_zip({decomposed: PNG}, [("c", "caf\u00e9.png", "")])
    design = client.get(post_collection(client, mac).get_json()["url"]).get_json()["designs"][0]
    assert design["status"] == "queued", design


def test_utf8_names_written_without_the_zip_flag_are_found(client):
    """Info-ZIP's `zip` writes UTF-8 names without the UTF-8 flag, which zipfile reads as
    cp437: the drawings were 'not in the ZIP'."""
    placeholder, name = "ZZZZZ", "été"  # as many bytes: the archive's offsets stay right
    assert len(placeholder) == len(name.encode())
    data = make_zip({f"robe/{placeholder}_front.png": PNG, f"robe/{placeholder}_back.png": PNG},
                    [("robe été", f"robe/{name}_front.png", f"robe/{name}_back.png")])
    data = data.replace(placeholder.encode(), name.encode())  # no flag: zipfile wrote ASCII
    response = post_collection(client, data)
    assert response.status_code == 202, response.get_json()
    design = client.get(response.get_json()["url"]).get_json()["designs"][0]
    assert (design["name"], design["status"]) == ("robe été", "queued"), design


def test_backslashed_entry_names_are_folders(client):
    """Older Windows tools write a ZIP's folders with backslashes: the drawings and even
    pairs.csv inside a folder were 'not in the ZIP'."""
    rows = [("robe", "img/robe_front.png", "img\\robe_back.png")]  # either way in pairs.csv
    data = make_zip({"season\\pairs.csv": pairs_csv(rows), "season\\img\\robe_front.png": PNG,
                     "season\\img\\robe_back.png": PNG})
    response = post_collection(client, data)
    assert response.status_code == 202, response.get_json()
    design = client.get(response.get_json()["url"]).get_json()["designs"][0]
    assert (design["name"], design["status"]) == ("robe", "queued"), design
    climbing = make_zip({"season\\..\\..\\x.png": PNG}, [("c", "x.png", "")])
    refused = post_collection(client, climbing)
    assert (refused.status_code, refused.get_json()["error"]) == (400, "unsafe_entry")


def test_unknown_checks_are_404_and_an_unfinished_report_is_409(client, redis):
    for check_id in ("0" * 32, "not-an-id", "A" * 32):
        assert client.get(f"/api/checks/{check_id}").status_code == 404
        assert client.get(f"/api/checks/{check_id}/report.csv").status_code == 404
    url = post_collection(client, make_zip(GOOD, ROW)).get_json()["url"]
    report = client.get(f"{url}/report.csv")
    assert (report.status_code, report.get_json()["error"]) == (409, "not_ready")
    assert client.get(f"{url}?wait=31").status_code == 400
    assert client.get(f"{url}?wait=0.2").get_json()["status"] == "queued"  # held, then answered


def test_the_report_has_a_row_per_hit_and_keeps_formulas_out():
    hit = Hit(rank=1, name="dress-0001", score=0.9, front_score=0.91, back_score=-0.2,
              swapped=False, front="f.png", back="b.png", verdict="copy", similarity=96)
    swapped = hit.model_copy(update={"rank": 2, "swapped": True, "verdict": None})
    designs = [CheckedDesign(name="=HYPERLINK(1)", status="finished", results=[hit, swapped],
                             catalogue="20261203T100133340595Z-2d86e7"),
               CheckedDesign(name="b", status="failed", error="front: not a JPEG or PNG image"),
               CheckedDesign(name="sketch", status="finished", results=[swapped],
                             outline_only=["front", "back"])]
    lines = report_csv(designs).splitlines()
    assert lines[0] == ("design,rank,match,similarity,verdict,front_score,back_score,error,"
                        "filters,swapped,outline_only,score,front_weight,catalogue_version,"
                        "side_copies,order,turned")
    assert lines[1] == ("'=HYPERLINK(1),1,dress-0001,96,copy,0.91,-0.2,,,false,,0.9,0.5,"
                        "20261203T100133340595Z-2d86e7,,score,")  # the version it was compared with
    assert lines[2] == ("'=HYPERLINK(1),2,dress-0001,96,,0.91,-0.2,,,true,,0.9,0.5,"
                        "20261203T100133340595Z-2d86e7,,score,")
    assert lines[3] == "b,,,,,,,front: not a JPEG or PNG image,,,,,0.5,,,,"  # no list: no order
    assert len(lines) == 5 and \
        lines[4] == "sketch,2,dress-0001,96,,0.91,-0.2,,,true,front back,0.9,0.5,,,score,"
    options = SearchOptions(filters=["garment:dress,jacket", "season:SS26"], front_weight=0.7)
    filtered = report_csv(designs, options)
    assert all(',"garment:dress,jacket; season:SS26",' in line and ",0.7," in line
               for line in filtered.splitlines()[1:])
    described = hit.model_copy(update={"columns": {"garment": "dress", "rank": "A"}})
    lines = report_csv([designs[1], CheckedDesign(name="a", status="finished",
                                                  results=[described])]).splitlines()
    assert lines[0].endswith(",catalogue_version,side_copies,order,turned,garment,"
                             "catalogue:rank")
    assert lines[1:] == ["b,,,,,,,front: not a JPEG or PNG image,,,,,0.5,,,,,,",
                         "a,1,dress-0001,96,copy,0.91,-0.2,,,false,,0.9,0.5,,,score,,dress,A"]
    turned = CheckedDesign(name="t", status="finished", results=[hit],
                           turned={"front": 270, "back": 90})
    assert report_csv([turned]).splitlines()[1].endswith(",score,front: 270; back: 90")
    # a design made of two designs' sides: every row of it says which side copies which
    copied = [SideCopy(side="front", name="jacket-0002", verdict="copy", similarity=98,
                       score=1.0),
              SideCopy(side="back", name="dress-0001", verdict="near-duplicate", similarity=80,
                       score=0.9)]
    lines = report_csv([CheckedDesign(name="two", status="finished", results=[hit],
                                      side_copies=copied, order="design")]).splitlines()
    assert lines[1].endswith(",0.5,,front: jacket-0002 copy 98; back: dress-0001 "
                             "near-duplicate 80,design,")
    # with sides=unknown a side may copy the design's other side: the cell says so, as the page
    swapped = [copied[0].model_copy(update={"swapped": True})]
    lines = report_csv([CheckedDesign(name="two", status="finished", results=[hit],
                                      side_copies=swapped)]).splitlines()
    assert ",front: jacket-0002 (its back) copy 98," in lines[1]
    # a design of one side is ranked by that side alone, whatever the check's front_weight
    back_only = hit.model_copy(update={"front_score": None, "score": -0.2})
    front_only = hit.model_copy(update={"back_score": None, "score": 0.91})
    lines = report_csv([CheckedDesign(name="back", status="finished", results=[back_only]),
                        CheckedDesign(name="front", status="finished", results=[front_only])],
                       options).splitlines()
    compared = '"garment:dress,jacket; season:SS26"'
    assert lines[1] == f"back,1,dress-0001,96,copy,,-0.2,,{compared},false,,-0.2,0.0,,,score,"
    assert lines[2] == f"front,1,dress-0001,96,copy,0.91,,,{compared},false,,0.91,1.0,,,score,"
    # filters that each name a value but no design passes together: the design still has a row
    lines = report_csv([CheckedDesign(name="none", status="finished", catalogue="v1")],
                       options).splitlines()
    assert lines[1:] == [f"none,,,,,,,no catalogue design passes the filters,{compared},,,,0.7,"
                         "v1,,,"]


def test_the_form_takes_a_zip_and_shows_its_progress_or_its_refusal(client, redis):
    form = client.get("/").get_data(as_text=True)
    check_form = form[form.index('id="check-collection"'):]
    for field in ('name="collection"', 'name="k"', 'name="front_weight"', 'name="sides"'):
        assert field in check_form, field  # what the API takes, the page offers
    response = post_collection(client, make_zip(GOOD, ROW * 2), url="/checks", front_weight=0.7)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    search_form, check_form = html.split('id="check-collection"')
    assert "names these designs more than once: a" in check_form.split("<form")[0]  # by its form
    assert 'value="0.7"' in check_form and 'value="0.7"' not in search_form  # its values
    assert 'id="form-error" hidden></p>' in search_form  # empty: it read "None" when hidden
    response = post_collection(client, make_zip(GOOD, [*ROW, ("b", "a-b.png", "")]),
                               url="/checks", k=4, front_weight=0.7, sides="unknown")
    assert response.status_code == 303
    options = client.get("/api" + response.headers["Location"] + "?designs=false").get_json()
    assert (options["k"], options["front_weight"], options["sides_unknown"]) == (4, 0.7, True)
    page = client.get(response.headers["Location"])
    assert page.headers["Cache-Control"] == "private, no-store"
    html = page.get_data(as_text=True)
    assert '<progress id="check-progress" max="2" value="0"' in html
    assert "0 of 2 designs done." in html
    assert client.get("/checks/" + "0" * 32).status_code == 404


def test_checks_past_the_waiting_designs_bound_are_refused_and_leave_nothing(settings, redis):
    client = _client(settings, max_check_queue_pairs=3, check_chunk_pairs=1)
    rows = [("a", "a-f.png", "a-b.png"), ("b", "a-f.png", "a-b.png")]
    first = post_collection(client, make_zip(GOOD, rows))
    assert first.status_code == 202, first.get_json()  # nothing waited: it starts
    queue = Queue(settings.check_queue_name, connection=redis)
    stored = sorted(settings.upload_dir.iterdir())
    checks = redis.keys("pairsearch:check:*")
    second = post_collection(client, make_zip(GOOD, rows))  # 2 waiting + 2 > 3
    body = second.get_json()
    assert (second.status_code, body["error"]) == (503, "queue_full"), body
    assert "2 designs wait" in body["message"] and second.headers["Retry-After"] == "60"
    assert sorted(settings.upload_dir.iterdir()) == stored and len(queue) == 2
    assert redis.keys("pairsearch:check:*") == checks
    third = post_collection(client, make_zip(GOOD, rows[:1]))  # 2 waiting + 1 fits
    assert third.status_code == 202, third.get_json()


def test_checks_queued_while_a_collection_was_stored_count_against_the_bound(settings, redis,
                                                                             monkeypatch):
    """The bound was checked only before the drawings were stored (seconds for a large ZIP):
    uploads from several web processes at once all passed it."""
    from web import check_uploads

    client = _client(settings, max_check_queue_pairs=3, check_chunk_pairs=1)
    rows = [("a", "a-f.png", "a-b.png"), ("b", "a-f.png", "a-b.png")]
    assert post_collection(client, make_zip(GOOD, rows)).status_code == 202  # 2 designs wait
    queue = Queue(settings.check_queue_name, connection=redis)
    queue.empty()  # ... and are taken: a new collection may start
    store, others = check_uploads._store, []

    def stored_while_another_is_queued(*args, **kwargs):
        stored = store(*args, **kwargs)
        if not others:  # meanwhile another process queued a collection (its store: this one)
            others.append(None)
            others[0] = post_collection(client, make_zip(GOOD, rows))
        return stored

    monkeypatch.setattr(check_uploads, "_store", stored_while_another_is_queued)
    before = sorted(settings.upload_dir.iterdir())
    late = post_collection(client, make_zip(GOOD, rows))
    monkeypatch.undo()
    body = late.get_json()
    assert others[0].status_code == 202  # stored and queued within the late one's store
    assert (late.status_code, body["error"]) == (503, "queue_full"), body
    assert len(queue) == 2  # the other's two designs, not the late one's
    assert len(sorted(settings.upload_dir.iterdir())) == len(before) + 4  # the other's alone


def test_a_check_that_expires_as_it_starts_or_is_cancelled_is_not_made_again(settings, redis):
    """A chunk's start or a cancel wrote its flag into a check that had just expired: the key
    came back without its names (every poll of it a 500) and without a TTL (kept for good)."""
    from worker.core.checkcancel import cancel_check
    from worker.core.checks import mark_started, read_check

    client = _client(settings)
    check_id = post_collection(client, make_zip(GOOD, ROW)).get_json()["id"]
    state = read_check(redis, check_id)
    assert mark_started(redis, check_id, "g1") == "g1" and read_check(redis, check_id).started
    for key in redis.keys(f"pairsearch:check:{check_id}*"):
        redis.delete(key)  # expired
    assert mark_started(redis, check_id, "g2") is None
    cancel_check(redis, state, settings.result_ttl)
    assert redis.keys(f"pairsearch:check:{check_id}") == []
    assert read_check(redis, check_id) is None
    redis.hset(f"pairsearch:check:{check_id}", "cancelled", 1)  # as code before wrote it
    assert read_check(redis, check_id) is None
    assert client.get(f"/api/checks/{check_id}").status_code == 404


def test_a_worker_s_maintenance_renews_running_checks_pins_and_drops_settled_ones(
        settings, redis):
    """A check's pin was renewed only as its chunks started (a chunk waiting past PIN_TTL_S
    behind searches lost its catalogue version to the next edit), and let go of only by the
    chunk settling its last design (a cancelled or expired check's stayed an hour)."""
    from types import SimpleNamespace

    from worker.core.checks import record_outcomes
    from worker.core.generations import PIN_TTL_S, PINS, pin
    from worker.service.maintenance import keep_check_pins

    check_id = post_collection(_client(settings), make_zip(GOOD, ROW)).get_json()["id"]
    gone, worker_pin = "f" * 32, "worker-host-1-abcdef"
    for owner in (check_id, gone, worker_pin):
        pin(settings.features_dir, owner, "g1")
    pins = settings.features_dir / PINS
    old = time.time() - PIN_TTL_S + 60
    for path in pins.iterdir():
        os.utime(path, (old, old))
    engine = SimpleNamespace(settings=settings)
    keep_check_pins(engine, redis)
    assert sorted(p.name for p in pins.iterdir()) == sorted([check_id, worker_pin])
    assert (pins / check_id).stat().st_mtime > old + 30 and (pins / check_id).read_text() == "g1"
    assert (pins / worker_pin).stat().st_mtime == old  # a worker's own: not ours to keep
    record_outcomes(redis, check_id, {0: CheckedDesign(name="a", status="failed", error="x")},
                    settings.result_ttl)
    keep_check_pins(engine, redis)
    assert [p.name for p in pins.iterdir()] == [worker_pin]


def test_a_check_cancelled_before_its_turn_checks_nothing_and_keeps_nothing(settings, redis,
                                                                             monkeypatch):
    client = _client(settings, check_chunk_pairs=1)
    rows = [("a", "a-f.png", "a-b.png"), ("gone", "a-f.png", "nowhere.png"),
            ("b", "a-b.png", "a-f.png")]
    url = post_collection(client, make_zip(GOOD, rows)).get_json()["url"]
    queue = Queue(settings.check_queue_name, connection=redis)
    assert len(queue) == 2 and len(list(settings.upload_dir.iterdir())) == 4
    from web import checks

    reads = []
    real_read = checks.read_check
    monkeypatch.setattr(checks, "read_check", lambda *args: reads.append(args[2]) or
                        real_read(*args))
    page = client.get(url.removeprefix("/api")).get_data(as_text=True)
    assert 'id="cancel-form"' in page  # offered while it runs
    assert reads == [False]  # its progress alone: no design's hits read on each refresh
    monkeypatch.undo()
    cancelled = client.delete(url)
    assert cancelled.status_code == 200, cancelled.get_json()
    body = cancelled.get_json()
    assert (body["status"], body["done"], body["total"], body["cancelled"]) == \
        ("finished", 3, 3, True)
    assert "designs" not in body
    assert len(queue) == 0 and list(settings.upload_dir.iterdir()) == []
    designs = client.get(url).get_json()["designs"]
    assert [d["status"] for d in designs] == ["failed"] * 3
    assert designs[0]["error"] == designs[2]["error"] == CANCELLED
    assert "'nowhere.png' is not in the ZIP" in designs[1]["error"]  # refused at upload: kept
    report = client.get(f"{url}/report.csv").get_data(as_text=True)
    assert report.count(CANCELLED) == 2
    again = client.delete(url)
    assert (again.status_code, again.get_json()["error"]) == (409, "finished")
    assert client.delete("/api/checks/" + "0" * 32).status_code == 404
    page = client.get(url.removeprefix("/api")).get_data(as_text=True)
    assert "This check was cancelled: the 2 designs it had not started are listed" in \
        " ".join(page.split())
    assert 'id="cancel-form"' not in page


def test_a_cancel_that_stopped_nothing_leaves_no_cancelled_banner(settings, redis):
    """A cancel asked once every chunk had started stops nothing: each design is checked, and
    the finished report said "This check was cancelled" all the same."""
    from rq.job import Job, JobStatus

    from worker.core.checks import record_outcomes

    client = _client(settings)
    url = post_collection(client, make_zip(GOOD, ROW)).get_json()["url"]
    queue = Queue(settings.check_queue_name, connection=redis)
    (job_id,) = queue.job_ids
    Job.fetch(job_id, connection=redis).set_status(JobStatus.STARTED)  # a worker took it
    assert client.delete(url).get_json()["cancelled"] is True  # asked: the flag is kept
    record_outcomes(redis, url.rsplit("/", 1)[1],
                    {0: CheckedDesign(name=ROW[0][0], status="finished")}, settings.result_ttl)
    body = client.get(url).get_json()
    assert body["status"] == "finished" and body["designs"][0]["error"] is None
    page = client.get(url.removeprefix("/api")).get_data(as_text=True)
    assert 'id="summary">1 of 1 designs checked' in page and "was cancelled" not in page


def test_a_poll_between_a_cancel_s_job_cancels_and_its_settling_says_cancelled(
        settings, redis, monkeypatch):
    """The page polls while a cancel runs: the poll saw the chunks CANCELED and no design
    settled, took them for lost, and the designs read "the worker stopped"."""
    from worker.core import checkcancel, checks

    client = _client(settings, check_chunk_pairs=1)
    url = post_collection(client, make_zip(GOOD, [("a", "a-f.png", "a-b.png"),
                                                  ("b", "a-b.png", "a-f.png")])).get_json()["url"]
    settle = checkcancel.settle_cancelled

    def polled_first(connection, check_id, names, ttl):
        checks.read_check(connection, check_id, ttl=ttl)  # the page's poll, in between
        settle(connection, check_id, names, ttl)

    monkeypatch.setattr(checkcancel, "settle_cancelled", polled_first)
    assert client.delete(url).status_code == 200
    assert [d["error"] for d in client.get(url).get_json()["designs"]] == [CANCELLED] * 2


def test_the_page_cancels_a_check_and_goes_back_to_it(settings, redis):
    client = _client(settings)
    url = post_collection(client, make_zip(GOOD, ROW)).get_json()["url"]
    page_url = url.removeprefix("/api")
    response = client.post(f"{page_url}/cancel")
    assert response.status_code == 303 and response.headers["Location"] == page_url
    assert client.get(url).get_json()["cancelled"] is True
    assert client.post(f"{page_url}/cancel").status_code == 303  # finished: nothing more to do
    assert client.post("/checks/" + "0" * 32 + "/cancel").status_code == 404


def test_a_cancel_while_a_chunk_runs_lets_it_finish_and_the_page_says_so(settings, redis):
    from rq.job import Job, JobStatus

    client = _client(settings)
    url = post_collection(client, make_zip(GOOD, ROW)).get_json()["url"]
    (job_id,) = Queue(settings.check_queue_name, connection=redis).job_ids
    Job.fetch(job_id, connection=redis).set_status(JobStatus.STARTED)  # a worker has it
    for _ in range(2):  # again before it ends: still 200
        body = client.delete(url).get_json()
        assert (body["status"], body["done"], body["cancelled"]) == ("queued", 0, True)
    assert len(list(settings.upload_dir.iterdir())) == 2  # the running chunk reads them
    page = client.get(url.removeprefix("/api")).get_data(as_text=True)
    assert "Cancelling: finishing the designs already started" in page
    assert 'id="cancel-form"' not in page


def test_a_check_is_kept_result_ttl_after_its_last_design_not_after_its_upload(settings, redis):
    """A check running longer than RESULT_TTL (a deep queue, a short TTL) was lost midway:
    its record expired RESULT_TTL after the upload while its chunks still ran."""
    client = _client(settings, result_ttl=600)
    check = post_collection(client, make_zip(GOOD, ROW + [("b", "a-f.png", "")])).get_json()
    for key in (KEY + check["id"], KEY + check["id"] + ":rows"):
        redis.expire(key, 5)  # as if 595 s had passed since the upload
    record_outcomes(redis, check["id"], {0: CheckedDesign(name="a", status="finished")}, 600)
    assert redis.ttl(KEY + check["id"]) > 590
    assert client.get(check["url"]).get_json()["done"] == 1


def test_designs_whose_chunk_expired_or_died_in_the_queue_say_which(settings, redis):
    from rq.job import Job, JobStatus

    client = _client(settings, check_chunk_pairs=1)
    check = post_collection(client, make_zip(GOOD, ROW + [("b", "a-f.png", "")])).get_json()
    (died, _), (expired, _) = read_check(redis, check["id"]).chunks
    Job.fetch(died, connection=redis).set_status(JobStatus.FAILED)  # as a killed worker's
    redis.delete(Job.key_for(expired))  # as RQ's queued-job TTL (RESULT_TTL) does
    designs = client.get(check["url"]).get_json()["designs"]
    assert [d["error"] for d in designs] == [CHUNK_LOST, CHUNK_EXPIRED]
    assert "within the time a check is kept" in CHUNK_EXPIRED
    redis.delete(Job.key_for(died))  # its failure expired since: the reason first seen stays
    body = client.get(check["url"]).get_json()
    assert [d["error"] for d in body["designs"]] == [CHUNK_LOST, CHUNK_EXPIRED]
    assert body["status"] == "finished" and redis.hlen(KEY + check["id"] + ":rows") == 2
    # the died chunk wakes and finishes: the check already read as finished stays as it was
    record_outcomes(redis, check["id"], {0: CheckedDesign(name="a", status="finished")}, 600)
    assert client.get(check["url"]).get_json() == body


def test_a_queued_check_says_how_many_designs_of_other_checks_go_first(settings, redis):
    client = _client(settings, check_chunk_pairs=2)
    three = ROW + [("b", "a-f.png", ""), ("c", "a-b.png", "")]  # two chunks: 2 + 1 designs
    first = post_collection(client, make_zip(GOOD, three)).get_json()
    second = post_collection(client, make_zip(GOOD, ROW)).get_json()
    assert client.get(first["url"] + "?designs=false").get_json()["designs_ahead"] == 0
    assert client.get(second["url"]).get_json()["designs_ahead"] == 4  # 2 chunks of up to 2
    page = " ".join(client.get(f"/checks/{second['id']}").get_data(as_text=True).split())
    assert "Waiting: about 4 designs of other checks go first. 0 of 1 designs done." in page
    redis.hset(KEY + second["id"], "started", 1)  # running: no longer waiting
    assert "designs_ahead" not in client.get(second["url"]).get_json()


def test_a_path_in_other_case_or_naming_a_folder_gets_a_hint(client):
    data = make_zip({"season/pairs.csv": b"name,front,back\na,A-F.PNG,\nb,img,\nc,img/x.png,\n",
                     "season/a-f.png": PNG, "season/img/x.png": PNG})
    designs = client.get(post_collection(client, data).get_json()["url"]).get_json()["designs"]
    assert [d["error"] for d in designs] == [
        "front: 'A-F.PNG' is not in the ZIP (it holds 'a-f.png': upper and lower case must "
        "match)", "front: 'img' is not in the ZIP (that is a folder in it; name a drawing)",
        None]


def test_a_collection_gets_its_own_size_limit_not_a_search_s(settings, redis):
    """The ZIP of a 500-design collection had to fit MAX_UPLOAD_MB (20: about 300 small
    drawings), a search's limit; it has MAX_CHECK_UPLOAD_MB, and a search keeps its own."""
    import os

    client = _client(settings, max_upload_mb=1, max_check_upload_mb=3)
    rows = [("a", "a-f.png", "a-b.png")]
    filler = {"scans/notes.bin": os.urandom(2 * 1024 * 1024)}  # incompressible: 2 MB packed
    accepted = post_collection(client, make_zip({**GOOD, **filler}, rows))
    assert accepted.status_code == 202, accepted.get_json()
    for url in ("/api/checks", "/checks"):
        refused = post_collection(client, make_zip({**GOOD, "big.bin": os.urandom(4 << 20)},
                                                   rows), url=url)
        assert refused.status_code == 413, url
        assert "the limit is 3 MB a ZIP" in refused.get_data(as_text=True), url
    search = client.post("/api/searches", data={"front": (io.BytesIO(os.urandom(2 << 20)), "f.png"),
                                                "back": (io.BytesIO(PNG), "b.png")},
                         content_type="multipart/form-data")
    assert search.status_code == 413
    assert "the limit is 1 MB a request" in search.get_json()["message"]
