"""A collection's `pairs.csv` (name,front,back, one design a row), read and checked: what a
spreadsheet writes (a BOM, a header in any case, empty rows) is read; what cannot be a list
of designs is refused, naming the row (`CollectionRefused`, 400 `invalid_pairs_csv`).

TensorFlow-free: the web imports it.
"""

from __future__ import annotations

import csv
import io
import unicodedata

from worker.core.archive import CollectionRefused

COLUMNS = ("name", "front", "back")
NAME_MAX = 200  # characters of a design's name
PATH_MAX = 1024  # characters of a drawing's path: its error is kept with the check for a day
LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})  # NUL, tab, CR/LF, U+2028/9: not in a name's line
DIRECTION_OVERRIDES = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
BLANK_ROWS = 1000  # a spreadsheet's empty rows skipped; past them a CSV is refused, not read on


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
    for side, path in (("front", front), ("back", back)):
        if len(path) > PATH_MAX:
            raise malformed(f"pairs.csv row {number}: the {side} path is longer than {PATH_MAX} "
                            "characters")
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
