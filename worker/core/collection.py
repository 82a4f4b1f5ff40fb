"""A collection of new designs to check: `pairs.csv` (name,front,back) and the drawings it
names, from a ZIP (the web, the CLI), a folder holding pairs.csv, or a CSV (the CLI); image
paths are relative to the CSV's folder and may not leave it.

The collection as a whole is refused (`CollectionRefused`) when pairs.csv is missing or
malformed; a row whose drawing is missing or refused carries its error and the rest proceed.
TensorFlow-free: the web imports it.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import posixpath
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from worker.core.archive import (
    ABSOLUTE,
    MIB,
    CollectionRefused,
    EntryRefused,
    SafeZip,
    ZipLimits,
    other_readings,
    unsafe_name,
)
from worker.core.contract import SIDES
from worker.core.pairs_csv import malformed, parse_pairs

PAIRS_CSV = "pairs.csv"
SHARED_BYTES = 64 * MIB  # members several rows name, kept: unpacked (and counted) once


@dataclass(frozen=True)
class NewDesign:
    """One row: the bytes of its drawings (None: no such side), or why it cannot be checked."""

    name: str
    front: bytes | None = None
    back: bytes | None = None
    error: str | None = None


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


class SharedMember(bytes):
    """A member several rows name, unpacked once: its sha256, which each row's use would
    otherwise compute again (`StoredForms` keys by it), computed once too."""

    def __init__(self, data: bytes):
        self.digest = hashlib.sha256(data).digest()


@dataclass(frozen=True)
class Collection:
    """The rows' names (pairs.csv order) and their designs, read one at a time in that order
    (a ZIP's members stay packed until their row comes: memory holds the designs being read,
    and the members several rows name, up to SHARED_BYTES)."""

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
    readings = {unicodedata.normalize("NFC", reading): name
                for reading, name in other_readings(archive.cp437_names).items()}
    # pairs.csv's folder as those code pages read it ("Høst 2026/", read as "H¢st 2026/")
    bases = [posixpath.dirname(reading) for reading in other_readings(
        {csv_name} & archive.cp437_names)]

    def found(path: str) -> str | None:
        member = unicodedata.normalize("NFC", _member(base, path))
        return composed.get(member) or readings.get(member) or next(
            filter(None, (readings.get(unicodedata.normalize("NFC", _member(other, path)))
                          for other in bases)), None)

    folded = {name.casefold(): name for name in composed}
    # sorted once: whether a missing path is a folder is a bisection (every folder of every
    # name, listed, grew with the square of a name's depth: 245 MB for one of 16,000 levels)
    names = sorted(composed)

    def is_folder(path: str) -> bool:
        at = bisect.bisect_left(names, path + "/")
        return at < len(names) and names[at].startswith(path + "/")

    shared, kept = _shared(rows, found), {}

    def fetch(path: str) -> bytes:
        member = found(path)
        if member is None:
            raise EntryRefused(f"{path!r} is not in the ZIP{hint(path)}")
        if (data := kept.get(member)) is None:
            data = archive.read(member)  # counted towards ZIP_MAX_MB as it is unpacked
            if member in shared and sum(map(len, kept.values())) + len(data) <= SHARED_BYTES:
                data = kept[member] = SharedMember(data)
        return data

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
        if is_folder(wanted):
            return " (that is a folder in it; name a drawing)"
        return ""

    return Collection([name for name, _, _ in rows], (_design(row, fetch) for row in rows))


def _shared(rows: list[tuple[str, str, str]], found: Callable[[str], str | None]) -> set[str]:
    """The members more than one row names (a shared back; one drawing named by every row):
    a shared member unpacked for each row counted each time, so that a valid ZIP passed
    ZIP_MAX_MB."""
    seen, shared = set(), set()
    for _, *paths in rows:
        for path in filter(None, paths):
            try:
                member = found(path)
            except EntryRefused:  # refused on its row when fetched
                continue
            (shared if member in seen else seen).add(member)
    return shared - {None}


def from_files(csv_path: Path, limits: ZipLimits, max_pairs: int) -> Collection:
    """The designs of a CSV on disk, image paths relative to its folder (and inside it)."""
    base = csv_path.parent.resolve()
    rows = parse_pairs(csv_path.read_bytes(), max_pairs)

    def fetch(path: str) -> bytes:
        path = path.replace("\\", "/")  # as a ZIP's: a pairs.csv written on Windows
        file = (base / path).resolve()
        if not file.is_relative_to(base):
            raise EntryRefused(f"the path {path!r} leaves the collection's folder")
        if not file.is_file():  # a folder copied from a Mac holds café.png decomposed
            file = next((other for form in ("NFC", "NFD")
                         if (other := (base / unicodedata.normalize(form, path)).resolve())
                         .is_relative_to(base) and other.is_file()), file)
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
