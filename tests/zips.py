"""Collection ZIPs made in the test: honest ones (re-scanned copies of catalogue designs and
unrelated drawings) and hostile ones, and submitting them through the Flask test client."""

from __future__ import annotations

import csv
import io
import stat
import zipfile

from benchmarks.lookalike_edits import edited_pair
from tests.images import N_PAIRS, encode, unrelated_drawing
from worker.dev.sample import make_designs

EDIT_FAMILIES = ("rescan", "rescan", "logo", "mirror")  # the copies: most re-scanned, some edited


def pairs_csv(rows: list[tuple[str, str, str]], header: tuple[str, ...] = ("name", "front",
                                                                          "back")) -> bytes:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue().encode()


def make_zip(files: dict[str, bytes], rows: list[tuple[str, str, str]] | None = None,
             compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP of `files` (name -> bytes; a zipfile.ZipInfo name keeps its attributes), with a
    pairs.csv of `rows` first when given."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as archive:
        if rows is not None:
            archive.writestr("pairs.csv", pairs_csv(rows))
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def post_collection(client, data: bytes, url: str = "/api/checks", **fields):
    """POST a collection ZIP (and form fields) as the multipart field `collection`."""
    form = {k: str(v) for k, v in fields.items()}
    form["collection"] = (io.BytesIO(data), "collection.zip")
    return client.post(url, data=form, content_type="multipart/form-data")


def unrelated_pair(seed: int) -> tuple[bytes, bytes]:
    """Scattered circles and bars (no garment), a front and a back."""
    return unrelated_drawing(1000 + 2 * seed), unrelated_drawing(1001 + 2 * seed)


def copied_pair(index: int, seed: int) -> tuple[bytes, bytes]:
    """Catalogue design `index` re-scanned (or edited, then re-scanned), as JPEGs."""
    design = make_designs(N_PAIRS, seed=7)[index]
    front, back = edited_pair(design, EDIT_FAMILIES[index % len(EDIT_FAMILIES)], seed)
    return encode(front, "JPEG", quality=90), encode(back, "JPEG", quality=90)


def season_files(copies: list[int], unrelated: int) -> tuple[dict[str, bytes], list[tuple]]:
    """Files and pairs.csv rows of a collection: copies of catalogue designs `copies` (named
    `copy-of-<catalogue name>`), then `unrelated` new designs (`new-<i>`)."""
    designs = make_designs(N_PAIRS, seed=7)
    files, rows = {}, []
    for i in copies:
        name = f"copy-of-{designs[i].name}"
        files[f"img/{name}-f.jpg"], files[f"img/{name}-b.jpg"] = copied_pair(i, seed=100 + i)
        rows.append((name, f"img/{name}-f.jpg", f"img/{name}-b.jpg"))
    for i in range(unrelated):
        name = f"new-{i:02d}"
        files[f"img/{name}-f.png"], files[f"img/{name}-b.png"] = unrelated_pair(i)
        rows.append((name, f"img/{name}-f.png", f"img/{name}-b.png"))
    return files, rows
