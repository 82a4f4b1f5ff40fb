"""A collection ZIP, read with Python's `zipfile` and explicit limits (ZIP_MAX_* settings).

Nothing is ever extracted to disk: members are read into memory, and the bytes are counted
while they are read (a header's sizes may lie). Refused before any member is read: entries
named with `..` or an absolute path, symbolic links, encrypted entries, names seen twice,
more than ZIP_MAX_ENTRIES entries (declared, or a list of entries longer than that many
need), declared sizes past ZIP_MAX_MB. Refused while reading:
more than ZIP_MAX_MB in all, or an entry past ZIP_MAX_RATIO times its compressed size (a ZIP
bomb). An entry past ZIP_MAX_ENTRY_MB, or one that cannot be read, is refused on its own
(`EntryRefused`): the row that names it reports it.

TensorFlow-free: the web reads uploads with it, the CLI reads files with it.
"""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from worker.core.settings import Settings

MIB = 1024 * 1024
CHUNK = 64 * 1024
RATIO_FROM = MIB  # entries this large (uncompressed) must keep within the ratio
# /x, \x, C:\x, C:; not S:S26 front.png (a Mac writes a '/' typed in a file name as ':')
ABSOLUTE = re.compile(r"^([/\\]|[A-Za-z]:([/\\]|$))")
# an entry's record in the central directory: 46 bytes, its name, extra fields (timestamps,
# ZIP64 sizes) and comment; honest archives use 60-300 bytes, so 1 KiB an entry is generous
DIRECTORY_BYTES_PER_ENTRY = 1024


class CollectionRefused(ValueError):
    """The whole collection is refused: an HTTP status, a short code, a message for people."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason = status, reason


class EntryRefused(ValueError):
    """One member cannot be used (too large, damaged); the message is for people."""


@dataclass(frozen=True)
class ZipLimits:
    max_entries: int
    max_bytes: int
    max_entry_bytes: int
    max_ratio: int

    @classmethod
    def of(cls, settings: Settings) -> ZipLimits:
        return cls(settings.zip_max_entries, settings.zip_max_mb * MIB,
                   settings.zip_max_entry_mb * MIB, settings.zip_max_ratio)


def unsafe_name(name: str) -> str | None:
    """Why an entry's name is refused, or None: absolute, `..`, a NUL."""
    if "\x00" in name:
        return "contains a NUL character"
    if ABSOLUTE.match(name):
        return "is an absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "climbs out of the archive with '..'"
    return None


def _entry_name(info: zipfile.ZipInfo) -> str:
    """An entry's name as its maker meant it, folders separated by '/' (older Windows tools
    write backslashes, against the ZIP standard; pairs.csv's paths are read the same way),
    without the leading `./` that bsdtar (`tar -a -cf x.zip .`: Windows' and macOS's tar)
    writes."""
    name = _utf8_name(info).replace("\\", "/")
    while name.startswith("./") and len(name) > 2:
        name = name[2:]
    return name


def _utf8_name(info: zipfile.ZipInfo) -> str:
    """An entry's name as its maker wrote it. Without the UTF-8 flag the ZIP standard says
    cp437, which zipfile reads; but Info-ZIP's `zip` and others write UTF-8 names without the
    flag. Bytes that decode as UTF-8 almost never come from a cp437 name with accents (its
    accented letters are lone continuation bytes in UTF-8), so those are read as UTF-8."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


# what else a name written without the UTF-8 flag may be in: Windows' Explorer writes the
# system's OEM code page (cp850 in western Europe, cp932 in Japan, ...), not cp437
CODE_PAGES = ("cp850", "cp852", "cp866", "cp932", "cp936", "cp949", "cp950")


def other_readings(cp437_names: set[str]) -> dict[str, str]:
    """Each name read as cp437 as the code pages above read its bytes -> the name (the first
    name a reading gives keeps it)."""
    readings: dict[str, str] = {}
    for name in sorted(cp437_names):
        raw = name.encode("cp437")
        for page in CODE_PAGES:
            try:
                readings.setdefault(raw.decode(page), name)
            except UnicodeDecodeError:
                continue
    return readings


# stored and deflated members only: zipfile unpacks a bzip2 or LZMA read whole, without a
# bound (a few bytes of one can take gigabytes before a limit is counted)
READABLE = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}


def _refuse_entry(info: zipfile.ZipInfo) -> None:
    why = unsafe_name(info.filename)
    if why is None and stat.S_ISLNK(info.external_attr >> 16):
        why = "is a symbolic link"
    if why is None and info.flag_bits & 0x1:  # before the method: AES is method 99
        why = "is encrypted (password-protected)"
    if why is not None:
        raise CollectionRefused(400, "unsafe_entry", f"the ZIP entry {info.filename!r} {why}; "
                                "such archives are refused")
    if info.compress_type not in READABLE and not info.is_dir():
        method = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA"}.get(
            info.compress_type, f"method {info.compress_type}")
        raise CollectionRefused(415, "unsupported_compression", f"the ZIP entry "
                                f"{info.filename!r} is compressed with {method}; save the "
                                "ZIP with the usual (deflate) compression or none")


class SafeZip:
    """The members of a ZIP, checked as a whole at opening, each read within the limits."""

    def __init__(self, source: BinaryIO, limits: ZipLimits):
        self.limits = limits
        self.read_total = 0
        self.cp437_names: set[str] = set()  # names without the UTF-8 flag, not UTF-8
        self._count_entries(source)
        try:
            self._zip = zipfile.ZipFile(source)
        # NotImplementedError: an entry needs a later ZIP version than zipfile reads
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
            raise CollectionRefused(415, "not_a_zip", f"the collection is not a readable ZIP "
                                    f"archive ({exc})") from None
        self.members = self._check_entries(self._zip.infolist())

    def _count_entries(self, source: BinaryIO) -> None:
        """Refuse too many entries from the end record, before zipfile lists them all."""
        try:
            # the only way to read the declared count before zipfile parses every entry
            end = zipfile._EndRecData(source)
        except (OSError, zipfile.BadZipFile, EOFError, ValueError):  # a lying ZIP64 locator
            end = None
        if end is None:
            raise CollectionRefused(415, "not_a_zip", "the collection is not a ZIP archive "
                                    "(upload a .zip holding pairs.csv and the drawings)")
        declared = end[zipfile._ECD_ENTRIES_TOTAL]
        if declared > self.limits.max_entries:
            raise CollectionRefused(413, "too_many_entries", f"the ZIP holds {declared} "
                                    f"entries; at most {self.limits.max_entries} are accepted")
        # an end record may understate its count: zipfile lists the whole directory it sizes
        listed = end[zipfile._ECD_SIZE]
        if listed > self.limits.max_entries * DIRECTORY_BYTES_PER_ENTRY:
            raise CollectionRefused(413, "too_many_entries", f"the ZIP's list of entries takes "
                                    f"{listed:,} bytes, more than {self.limits.max_entries} "
                                    f"entries need (its end record says {declared}); at most "
                                    f"{self.limits.max_entries} are accepted")
        source.seek(0)

    def _check_entries(self, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
        if len(infos) > self.limits.max_entries:
            raise CollectionRefused(413, "too_many_entries", f"the ZIP holds {len(infos)} "
                                    f"entries; at most {self.limits.max_entries} are accepted")
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = _entry_name(info)
            if not info.flag_bits & 0x800 and not info.filename.isascii() and \
                    _utf8_name(info) == info.filename:  # its bytes are not UTF-8: read as cp437
                self.cp437_names.add(name)
            info.filename = name
            _refuse_entry(info)
            if info.filename in members:
                raise CollectionRefused(400, "unsafe_entry", f"the ZIP holds two entries named "
                                        f"{info.filename!r}; which one is meant is unclear")
            members[info.filename] = info
        declared = sum(info.file_size for info in infos)
        if declared > self.limits.max_bytes:
            raise CollectionRefused(413, "collection_too_large", self._too_large(declared))
        return {name: info for name, info in members.items() if not info.is_dir()}

    def _too_large(self, declared: int | None = None) -> str:
        """Why: its entries' declared sizes, or what was read so far, passed ZIP_MAX_MB."""
        unpacked = (f"says it unpacks to {declared / MIB:,.0f} MiB" if declared is not None
                    else f"unpacks to more than {self.limits.max_bytes // MIB} MiB")
        return f"the ZIP {unpacked}; at most {self.limits.max_bytes // MIB} MiB are accepted"

    def read(self, name: str) -> bytes:
        """A member's bytes, counted while read; EntryRefused past the entry limit or when
        damaged, CollectionRefused past the total or the ratio (a bomb)."""
        info = self.members[name]
        out = bytearray()
        try:
            with self._zip.open(info) as member:
                while chunk := member.read(CHUNK):
                    out += chunk
                    self._count(info, len(chunk), len(out))
        except (CollectionRefused, EntryRefused):  # the limits' own (ValueErrors too)
            raise
        # ValueError: a local header's name flagged UTF-8 that is not
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError,
                RuntimeError, ValueError) as exc:
            raise EntryRefused(f"the ZIP entry {name!r} could not be read ({exc})") from None
        return bytes(out)

    def _count(self, info: zipfile.ZipInfo, chunk: int, so_far: int) -> None:
        self.read_total += chunk
        if self.read_total > self.limits.max_bytes:
            raise CollectionRefused(413, "collection_too_large", self._too_large())
        if so_far > RATIO_FROM and so_far > self.limits.max_ratio * max(info.compress_size, 1):
            raise CollectionRefused(413, "zip_bomb", f"the ZIP entry {info.filename!r} unpacks to "
                                    f"over {self.limits.max_ratio} times its packed size; "
                                    "such archives (ZIP bombs) are refused")
        if so_far > self.limits.max_entry_bytes:
            raise EntryRefused(f"the ZIP entry {info.filename!r} is larger than "
                               f"{self.limits.max_entry_bytes // MIB} MiB")
