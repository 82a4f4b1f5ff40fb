"""The catalogue: `pairs.csv` (name,front,back; paths relative to DATABASE_DIR), read with pandas."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from worker.core.storage import write_aside

COLUMNS = ("name", "front", "back")
DESIGN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # names new designs may take


class CatalogueError(ValueError):
    """pairs.csv is missing or malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class Catalogue:
    """Row i is design i; `fronts[i]` and `backs[i]` are paths relative to `root`."""

    root: Path
    names: list[str]
    fronts: list[str]
    backs: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def image_path(self, relative: str) -> Path:
        """Absolute path of a catalogue image; refuses anything outside `root`."""
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise CatalogueError(f"catalogue path {relative!r} points outside {self.root}")
        return path

    def fingerprint(self) -> str:
        """sha256 of the rows, so a bank can tell it was built from this catalogue."""
        digest = hashlib.sha256()
        for row in zip(self.names, self.fronts, self.backs, strict=True):
            digest.update("\x1f".join(row).encode() + b"\x1e")
        return digest.hexdigest()[:16]


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
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"{csv_path} is not a readable CSV: {exc}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise CatalogueError(f"{csv_path} lacks column(s) {missing}; need {list(COLUMNS)}")
    frame = frame[list(COLUMNS)].apply(lambda col: col.str.strip())
    empty = frame[(frame == "").any(axis=1)]
    if len(empty):
        raise CatalogueError(f"{csv_path}: row(s) {list(empty.index + 2)} have an empty field")
    dupes = frame["name"][frame["name"].duplicated()].tolist()
    if dupes:
        raise CatalogueError(f"{csv_path}: duplicate design name(s) {dupes[:5]}")
    catalogue = Catalogue(root, frame["name"].tolist(), frame["front"].tolist(),
                          frame["back"].tolist())
    for rel in (*catalogue.fronts, *catalogue.backs):
        catalogue.image_path(rel)
    return catalogue


def catalogue_csv(names: list[str], fronts: list[str], backs: list[str]) -> bytes:
    """The text of a pairs.csv with these rows."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    writer.writerows(zip(names, fronts, backs, strict=True))
    return text.getvalue().encode()


def write_catalogue_csv(database_dir: Path, names: list[str], fronts: list[str],
                        backs: list[str]) -> Path:
    """Write `pairs.csv` aside and swap it in, so a reader never sees half a file."""
    return write_aside(Path(database_dir), "pairs.csv", catalogue_csv(names, fronts, backs))
