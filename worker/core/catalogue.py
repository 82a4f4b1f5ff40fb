"""The catalogue: `pairs.csv` (name,front,back; paths relative to DATABASE_DIR), read with pandas.

Any further columns (garment, season, collection, ...) are kept as strings (empty allowed):
searches filter on them (worker.core.filters). They are not part of the fingerprint, so a
change of them alone needs no new banks, only a new generation listing them (`make index`)."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from worker.core import generations
from worker.core.pairs_csv import DIRECTION_OVERRIDES, LINE_BREAKING
from worker.core.storage import write_aside

COLUMNS = ("name", "front", "back")
THUMB_DIR = "thumbs"  # in FEATURES_DIR, shared by all generations
THUMB_PX = 150  # one side of a catalogue thumbnail, as the grid draws it
MAX_COLUMN_VALUE = 200  # characters of a design's value in a further column, when added
NO_COLUMNS = "none besides name, front and back"  # the further columns of a bare catalogue
# what a value may not hold: line breaks and controls, lone surrogates (not UTF-8: the rewrite
# of pairs.csv failed) and direction overrides; other invisible characters are text (Thai's
# zero-width spaces, Hebrew's and Arabic's marks, a soft hyphen, emoji's joiners and tags)
HIDDEN = LINE_BREAKING | {"Cs"}
DESIGN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # names new designs may take


class CatalogueError(ValueError):
    """pairs.csv is missing or malformed; the message names the file and the problem."""


class ColumnValueError(CatalogueError):
    """A new design's value in a further column refused: `code` says why (for the API)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def check_column_values(columns: list[str], values: list[dict[str, str]],
                        names: list[str] | None = None) -> None:
    """Refuse a value in a column the catalogue (`columns`) lacks: a new column is a change to
    pairs.csv for every design (edit it, then re-index); or one a pairs.csv row should not
    hold: more than MAX_COLUMN_VALUE characters, a line break, control character, lone
    surrogate or text-direction override (any space is fine: U+00A0, U+3000).
    ColumnValueError, naming the design (`names`, in the order of `values`) when given."""
    for i, given in enumerate(values):
        whose = f"design {names[i]!r}: " if names else ""
        for column, value in given.items():
            if column not in columns:
                have = ", ".join(columns) or NO_COLUMNS
                raise ColumnValueError("unknown_column", f"{whose}the catalogue has no column "
                                       f"{column[:80]!r} (its columns: {have}); add it to "
                                       "pairs.csv and re-index first, or leave it out")
            if len(value) > MAX_COLUMN_VALUE:
                raise ColumnValueError("invalid_column_value", f"{whose}{column} takes at most "
                                       f"{MAX_COLUMN_VALUE} characters, got {len(value)}")
            if any(unicodedata.category(c) in HIDDEN or c in DIRECTION_OVERRIDES for c in value):
                raise ColumnValueError("invalid_column_value", f"{whose}{column} takes one line "
                                       f"of text, got {value[:80]!r}: it holds a line break, "
                                       "a control character, a lone surrogate or an invisible "
                                       "text-direction override")


@dataclass(frozen=True)
class Catalogue:
    """Row i is design i; `fronts[i]` and `backs[i]` are paths relative to `root`."""

    root: Path
    names: list[str]
    fronts: list[str]
    backs: list[str]
    extra: dict[str, list[str]] = field(default_factory=dict)  # further column -> value per row

    def __len__(self) -> int:
        return len(self.names)

    def image_path(self, relative: str) -> Path:
        """Absolute path of a catalogue image; refuses anything outside `root`."""
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise CatalogueError(f"catalogue path {relative!r} points outside {self.root}")
        return path

    def location(self, relative: str) -> str:
        """The file `relative` names, normalised without touching the disk: `images/x.png`,
        `./images/x.png` and its full path are one (`image_path` resolves, a stat a part)."""
        return os.path.normpath(os.path.join(self.root, relative))

    @cached_property
    def written_as(self) -> dict[str, str]:
        """`served_path` of each image path -> the path as pairs.csv writes it (what its
        thumbnail is named by)."""
        return {served_path(str(self.root), rel): rel for rel in (*self.fronts, *self.backs)}

    def fingerprint(self) -> str:
        """sha256 of the rows, so a bank can tell it was built from this catalogue."""
        digest = hashlib.sha256()
        for row in zip(self.names, self.fronts, self.backs, strict=True):
            digest.update("\x1f".join(row).encode() + b"\x1e")
        return digest.hexdigest()[:16]

    @cached_property
    def codes(self) -> dict[str, tuple[np.ndarray, list[str]]]:
        """Further column -> ((n_pairs,) int32 code of each row's value, the sorted distinct
        values the codes index): what filters compare, once per catalogue."""
        out = {}
        for column, values in self.extra.items():
            uniques = sorted(set(values))
            index = {value: i for i, value in enumerate(uniques)}
            out[column] = (np.fromiter((index[v] for v in values), np.int32, len(values)), uniques)
        return out

    def columns_of(self, row: int) -> dict[str, str]:
        """The further columns' values of one row."""
        return {column: values[row] for column, values in self.extra.items()}

    def rows(self, keep: list[int]) -> Catalogue:
        """The catalogue of these rows only, in this order."""
        def pick(col: list[str]) -> list[str]:
            return [col[i] for i in keep]
        return Catalogue(self.root, pick(self.names), pick(self.fronts), pick(self.backs),
                         {column: pick(values) for column, values in self.extra.items()})


def served_path(root: str, relative: str) -> str:
    """Catalogue image `relative` as a path under `root` that a URL keeps as it is: `./x`,
    `a/../x` and the full path of x are all `x` (a browser collapses the dots; /database/
    refuses a full path)."""
    parts = relative.split("/")
    if os.pardir not in parts and os.curdir not in parts and "" not in parts:
        return relative  # `images/x.png`, the common case: as written, no call to the disk
    joined = os.path.join(root, relative)
    plain = os.path.normpath(joined)
    # its folders' links resolved, not the file's own; `link/..` is where the target's parent is
    folder = os.path.join(os.path.realpath(os.path.dirname(joined)), os.path.basename(joined))
    for place in ((folder, plain) if os.pardir in parts else (plain, folder)):
        inside = os.path.relpath(place, root)
        if inside.split(os.sep)[0] not in (os.curdir, os.pardir):
            return inside.replace(os.sep, "/")
    return relative  # outside: the index refused it, and /database/ will 404


def thumbnail_file(features_dir: Path, relative: str, size: int = THUMB_PX) -> Path:
    """Where the `size`-pixel thumbnail of catalogue image `relative` lives (its name hashes
    the path, its folder names the size)."""
    name = f"{hashlib.sha1(relative.encode()).hexdigest()[:20]}.jpg"
    return Path(features_dir) / THUMB_DIR / f"{size}px" / name


def load_catalogue(database_dir: Path, csv_path: Path | None = None) -> Catalogue:
    """Read and check `database_dir/pairs.csv` (or another CSV of the same columns whose
    image paths are relative to `database_dir`)."""
    root = Path(database_dir).resolve()
    csv_path = csv_path or root / "pairs.csv"
    if not csv_path.is_file():
        raise CatalogueError(
            f"no catalogue at {csv_path}; run `python -m worker.cli.sample` for a sample one"
        )
    try:
        # index_col=False: rows ending in a comma the header lacks were shifted a column
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False, index_col=False)
    except pd.errors.EmptyDataError:
        raise CatalogueError(f"{csv_path} is empty; it needs the header name,front,back "
                             "and a row per design") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"{csv_path} is not a readable CSV: {exc}") from None
    # a hand-edited header's spaces ("name, front, back, season"): the column is "season";
    # pandas renames a repeated name ("season.1"), so the header is read as written
    # Name,Front,Back as a spreadsheet capitalises them (as a check's pairs.csv reads them)
    fold = {c.casefold(): c for c in COLUMNS}
    with open(csv_path, encoding="utf-8-sig", newline="") as text:
        header = [fold.get(c.strip().casefold(), c.strip()) for c in next(csv.reader(text), [])]
    frame.columns = [fold.get(str(c).strip().casefold(), str(c).strip()) for c in frame.columns]
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise CatalogueError(f"{csv_path}: column(s) {twice} appear twice in its header")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise CatalogueError(f"{csv_path} lacks column(s) {missing}; need {list(COLUMNS)}")
    frame = frame.apply(lambda col: col.str.strip())
    frame = frame[(frame != "").any(axis=1)]  # a spreadsheet's empty rows (",,,"): no design
    extra = {str(c): frame[c].tolist() for c in frame.columns
             if c not in COLUMNS and str(c).strip() and not str(c).startswith("Unnamed:")}
    frame = frame[list(COLUMNS)]
    empty = frame[(frame == "").any(axis=1)]
    if len(empty):
        raise CatalogueError(f"{csv_path}: row(s) {list(empty.index + 2)} have an empty field")
    dupes = frame["name"][frame["name"].duplicated()].tolist()
    if dupes:
        raise CatalogueError(f"{csv_path}: duplicate design name(s) {dupes[:5]}")
    catalogue = Catalogue(root, frame["name"].tolist(), frame["front"].tolist(),
                          frame["back"].tolist(), extra)
    for rel in (*catalogue.fronts, *catalogue.backs):
        catalogue.image_path(rel)
    return catalogue


def designs_to_index(database_dir: Path) -> Catalogue:
    """`load_catalogue`, refusing one of no designs: there is nothing to index (and a build
    would prune its caches to nothing first)."""
    catalogue = load_catalogue(database_dir)
    if not len(catalogue):
        raise CatalogueError(f"{Path(database_dir) / 'pairs.csv'} lists no designs: nothing "
                             "to index")
    return catalogue


def catalogue_csv(names: list[str], fronts: list[str], backs: list[str],
                  extra: dict[str, list[str]] | None = None) -> bytes:
    """The text of a pairs.csv with these rows (and further columns, one value per row)."""
    extra = extra or {}
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow([*COLUMNS, *extra])
    writer.writerows(zip(names, fronts, backs, *extra.values(), strict=True))
    return text.getvalue().encode()


def write_catalogue_csv(database_dir: Path, names: list[str], fronts: list[str],
                        backs: list[str], extra: dict[str, list[str]] | None = None) -> Path:
    """Write `pairs.csv` aside and swap it in, so a reader never sees half a file; with the
    byte-order mark it began with (Excel's "CSV UTF-8": without it Excel reads Été as Ã‰tÃ©)."""
    try:
        with open(Path(database_dir) / "pairs.csv", "rb") as old:
            mark = codecs.BOM_UTF8 if old.read(3) == codecs.BOM_UTF8 else b""
    except OSError:  # none yet
        mark = b""
    return write_aside(Path(database_dir), "pairs.csv",
                       mark + catalogue_csv(names, fronts, backs, extra), durable=True)


def listed_catalogue(features_dir: Path, database_dir: Path) -> Catalogue:
    """The catalogue the current generation lists (DATABASE_DIR's pairs.csv for a flat
    FEATURES_DIR): what a search is filtered over."""
    listed = generations.current_dir(features_dir) / "pairs.csv"
    return load_catalogue(database_dir, listed if listed.is_file() else None)
