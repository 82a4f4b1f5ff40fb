"""A collection of new designs to check: `pairs.csv` (name,front,back) and the drawings it
names, from a ZIP (the web, the CLI), a folder holding pairs.csv, or a CSV (the CLI); image
paths are relative to the CSV's folder and may not leave it.

The collection as a whole is refused (`CollectionRefused`) when pairs.csv is missing or
malformed; a row whose drawing is missing or refused carries its error and the rest proceed.
TensorFlow-free: the web imports it.
"""

from __future__ import annotations

import csv
import io
import posixpath
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from worker.core.archive import (
    ABSOLUTE,
    CollectionRefused,
    EntryRefused,
    SafeZip,
    ZipLimits,
    unsafe_name,
)
from worker.core.contract import SIDES

COLUMNS = ("name", "front", "back")
PAIRS_CSV = "pairs.csv"
NAME_MAX = 200  # characters of a design's name
LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})  # NUL, tab, CR/LF, U+2028/9: not in a name's line
DIRECTION_OVERRIDES = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
BLANK_ROWS = 1000  # a spreadsheet's empty rows skipped; past them a CSV is refused, not read on


@dataclass(frozen=True)
class NewDesign:
    """One row: the bytes of its drawings (None: no such side), or why it cannot be checked."""

    name: str
    front: bytes | None = None
    back: bytes | None = None
    error: str | None = None


def malformed(message: str) -> CollectionRefused:
    return CollectionRefused(400, "invalid_pairs_csv", message)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise malformed("pairs.csv is not UTF-8 text; save it from the spreadsheet as "
                        "\"CSV UTF-8\" (comma-separated)") from None


def _row(number: int, record: dict) -> tuple[str, str, str]:
    name, front, back = ((record.get(c) or "").strip() for c in COLUMNS)
    name = unicodedata.normalize("NFC", name)  # an é typed or composed is one name
    if not name:
        raise malformed(f"pairs.csv row {number} has no name")
    if len(name) > NAME_MAX:
        raise malformed(f"pairs.csv row {number}: the name is longer than {NAME_MAX} characters")
    if any(unicodedata.category(c) in LINE_BREAKING for c in name):
        raise malformed(f"pairs.csv row {number}: the name holds a line break, tab or other "
                        "control character; a name is one line of text")
    if any(c in DIRECTION_OVERRIDES for c in name):
        raise malformed(f"pairs.csv row {number}: the name holds an invisible text-direction "
                        "override, which shows it as other than it is; type it again")
    return name, front, back


def parse_pairs(data: bytes, max_pairs: int) -> list[tuple[str, str, str]]:
    """(name, front path, back path) of each row of a pairs.csv; CollectionRefused naming the
    problem: missing columns, a row without a name, names seen twice, no rows, too many."""
    try:
        # csv.reader, not DictReader: it yields a blank line as [], which the limit counts
        reader = csv.reader(io.StringIO(_decode(data), newline=""))
        # "Name", " front": a spreadsheet's header means the columns all the same
        header = [field.strip().lower() for field in next(reader, [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            other = next((sep for sep in ";\t|" if len(header) == 1 and sep in header[0]), None)
            hint = f"; its header is split by {other!r}, not commas" if other else ""
            raise malformed(f"pairs.csv lacks the column(s) {', '.join(missing)}; it needs "
                            f"{', '.join(COLUMNS)} (a header row first, comma-separated){hint}")
        rows, blank = [], 0
        for number, fields in enumerate(reader, start=2):
            # a short row lacks its last columns (blank); a long one's extra fields are ignored
            record = dict(zip(header, fields, strict=False))
            if not any(v.strip() for v in record.values()):
                blank += 1  # ",,": a spreadsheet's empty row, or a blank line
                if blank > BLANK_ROWS:
                    raise malformed(f"pairs.csv has more than {BLANK_ROWS} empty rows; delete "
                                    "them and upload it again")
                continue
            if len(rows) == max_pairs:
                raise CollectionRefused(413, "too_many_pairs", f"pairs.csv has more than "
                                        f"{max_pairs} rows; check at most {max_pairs} at once")
            rows.append(_row(number, record))
    except csv.Error as exc:
        raise malformed(f"pairs.csv is not a readable CSV ({exc})") from None
    if not rows:
        raise malformed("pairs.csv has no rows: list one design per row under the header")
    names = [name for name, _, _ in rows]
    dupes = sorted({name for name in names if names.count(name) > 1})
    if dupes:
        raise malformed(f"pairs.csv names these designs more than once: {', '.join(dupes[:5])}")
    return rows


def _design(row: tuple[str, str, str], fetch: Callable[[str], bytes]) -> NewDesign:
    """A row's drawings through `fetch` (EntryRefused: the row reports why)."""
    name, *paths = row
    if not any(paths):
        return NewDesign(name, error="the row names neither a front nor a back drawing")
    sides: dict[str, bytes | None] = {}
    for side, path in zip(SIDES, paths, strict=True):
        try:
            sides[side] = fetch(path) if path else None
        except EntryRefused as exc:
            return NewDesign(name, error=f"{side}: {exc}")
    return NewDesign(name, **sides)


def _member(base: str, path: str) -> str:
    """The ZIP member a CSV path names (relative to the CSV's folder in the archive;
    `img/../a.png` is `a.png`), EntryRefused for one outside that folder (`..` left after
    normalising: it climbs out), as for a folder on disk."""
    path = path.replace("\\", "/")
    member = posixpath.normpath(posixpath.join(base, path))
    if ABSOLUTE.match(path) or unsafe_name(member) or (base and not member.startswith(base + "/")):
        raise EntryRefused(f"the path {path!r} leaves the collection")
    return member


def _pairs_csv(members: dict) -> str:
    """`pairs.csv` at the top of the archive, else the one in a single top folder; refused
    when there are more (which collection is meant?) or none, saying what is there."""
    found = [name for name in members if name.count("/") <= 1
             and (name == PAIRS_CSV or name.endswith("/" + PAIRS_CSV))]
    if len(found) > 1:
        raise malformed(f"the ZIP holds {len(found)} pairs.csv, {_listed(found)}; check "
                        "one collection at a time (one pairs.csv, at the top or in one folder)")
    if not found:
        near = [name for name in members
                if name.count("/") <= 1 and posixpath.basename(name).lower() == PAIRS_CSV]
        deep = [name for name in members if posixpath.basename(name) == PAIRS_CSV]
        hint = (f" (it holds {_listed(near)}: the name must be exactly pairs.csv, lower case)"
                if near else f" (it holds {_listed(deep)}: more than one folder down)"
                if deep else " (pairs.csv is a folder in it, not a file)"
                if any(name.startswith(PAIRS_CSV + "/") for name in members)
                else f" (it holds {_listed(zips)}: upload that ZIP itself, not a ZIP of it)"
                if (zips := [name for name in members if name.lower().endswith(".zip")
                             and not name.startswith("__MACOSX/")])  # a Mac's ._ shadows
                else "")
        raise malformed("the ZIP holds no pairs.csv at its top (columns name,front,back; "
                        f"image paths relative to it){hint}")
    return found[0]


def _listed(names: list[str]) -> str:
    return ", ".join(sorted(names)[:3]) + (" …" if len(names) > 3 else "")


@dataclass(frozen=True)
class Collection:
    """The rows' names (pairs.csv order) and their designs, read one at a time in that order
    (a ZIP's members stay packed until their row comes: memory holds the designs being read)."""

    names: list[str]
    designs: Iterator[NewDesign]


def from_zip(source: BinaryIO, limits: ZipLimits, max_pairs: int) -> Collection:
    """The designs of a ZIP (a seekable binary file, open while the designs are read).
    CollectionRefused at once for the archive and pairs.csv, and while the designs are read
    for the total size and the ratio (each read is counted)."""
    archive = SafeZip(source, limits)
    csv_name = _pairs_csv(archive.members)
    try:
        rows = parse_pairs(archive.read(csv_name), max_pairs)
    except EntryRefused as exc:
        raise malformed(str(exc)) from None
    base = posixpath.dirname(csv_name)
    # a Mac's ZIP stores café.png decomposed, a CSV typed elsewhere composed: one name
    composed = {unicodedata.normalize("NFC", name): name for name in archive.members}

    def found(path: str) -> str | None:
        return composed.get(unicodedata.normalize("NFC", _member(base, path)))

    folded = {name.casefold(): name for name in composed}
    folders = {"/".join(parts[:i]) for parts in (name.split("/") for name in composed)
               for i in range(1, len(parts))}  # once: a hint per missing path stays O(1)

    def fetch(path: str) -> bytes:
        member = found(path)
        if member is None:
            raise EntryRefused(f"{path!r} is not in the ZIP{hint(path)}")
        return archive.read(member)

    def hint(path: str) -> str:
        """What the ZIP holds that the person may have meant."""
        wanted = unicodedata.normalize("NFC", _member(base, path))
        inner = path[len(base) + 1:] if base and path.startswith(base + "/") else None
        try:
            if inner and found(inner):
                return f" (paths are relative to the folder of {csv_name}: {inner!r})"
        except EntryRefused:  # the shortened path would leave the folder: no such hint
            pass
        if (other := folded.get(wanted.casefold())) is not None:
            shown = other[len(base) + 1:] if base and other.startswith(base + "/") else other
            return f" (it holds {shown!r}: upper and lower case must match)"
        if wanted in folders:
            return " (that is a folder in it; name a drawing)"
        return ""

    return Collection([name for name, _, _ in rows], (_design(row, fetch) for row in rows))


def from_files(csv_path: Path, limits: ZipLimits, max_pairs: int) -> Collection:
    """The designs of a CSV on disk, image paths relative to its folder (and inside it)."""
    base = csv_path.parent.resolve()
    rows = parse_pairs(csv_path.read_bytes(), max_pairs)

    def fetch(path: str) -> bytes:
        file = (base / path).resolve()
        if not file.is_relative_to(base):
            raise EntryRefused(f"the path {path!r} leaves the collection's folder")
        if not file.is_file():
            raise EntryRefused(f"{path!r} is not a file in {base}")
        if file.stat().st_size > limits.max_entry_bytes:
            raise EntryRefused(f"{path!r} is larger than {limits.max_entry_bytes >> 20} MiB")
        return file.read_bytes()

    return Collection([name for name, _, _ in rows], (_design(row, fetch) for row in rows))


def read_collection(path: Path, limits: ZipLimits, max_pairs: int) -> Collection:
    """A ZIP, a folder holding pairs.csv, or a CSV (the CLI's PATH); OSError if unreadable."""
    if path.is_dir():
        return from_files(path / PAIRS_CSV, limits, max_pairs)
    with open(path, "rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"  # a ZIP whatever its name says
    if path.suffix.lower() == ".zip" or zipped:
        return from_zip(io.BytesIO(path.read_bytes()), limits, max_pairs)
    if path.suffix.lower() not in (".csv", ".txt"):
        raise CollectionRefused(400, "invalid_collection", f"{path.name} is not a ZIP, a "
                                "folder holding pairs.csv, or a CSV of name,front,back rows")
    return from_files(path, limits, max_pairs)
