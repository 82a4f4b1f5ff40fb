"""Adding and removing designs without re-indexing everything.

`python -m worker.cli.catalogue add NAME FRONT BACK | remove NAME | import DIR_OR_CSV`, and the
same as queue jobs for the web's `/api/designs`. New rows are extracted with the model and
projected with the index's existing whitening (a full `make index` re-learns it); removed
rows are dropped. pairs.csv is swapped in first and the banks + manifest after it (manifest
last), so a worker swaps catalogue and banks together between searches and a search never
sees half an update. One editor at a time (a lock file in FEATURES_DIR).
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from worker.core.bank import FeatureBank, check_catalogue_matches, check_model_matches, load_bank, write_bank
from worker.core.catalogue import DESIGN_NAME, Catalogue, load_catalogue, write_catalogue_csv
from worker.core.images import load_image
from worker.core.queueing import EXTENSION
from worker.core.settings import Settings
from worker.pipeline.preprocess import to_canvas, to_rgb
from worker.pipeline.thumbnails import write_thumbnail


class CatalogueEditError(ValueError):
    """An edit we refuse: duplicate or unknown name, bad image; the message says which."""


@contextmanager
def editing(settings: Settings) -> Iterator[tuple[Catalogue, FeatureBank]]:
    """Hold the edit lock and yield the current catalogue and its banks, which must match
    (an edit of mismatched banks would stamp them as matching)."""
    settings.features_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.features_dir / ".catalogue.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        catalogue, bank = load_catalogue(settings.database_dir), load_bank(settings.features_dir)
        check_catalogue_matches(bank, catalogue.fingerprint(), len(catalogue))
        yield catalogue, bank


def _save(settings: Settings, bank: FeatureBank, names: list[str], fronts: list[str],
          backs: list[str], front: np.ndarray, back: np.ndarray) -> dict:
    catalogue = Catalogue(settings.database_dir.resolve(), names, fronts, backs)
    write_catalogue_csv(settings.database_dir, names, fronts, backs)
    manifest = {**bank.manifest, "n_pairs": len(names), "names": names, "fronts": fronts,
                "backs": backs, "catalogue_fingerprint": catalogue.fingerprint(),
                "updated": datetime.now(UTC).isoformat(timespec="seconds")}
    write_bank(settings.features_dir, front.astype(np.float32), back.astype(np.float32),
               manifest, bank.whitening)
    return manifest


def _copy_in(settings: Settings, name: str, side: str, source: Path) -> str:
    """Validate an image and copy it to images/<name>_<side>.<ext>; returns its catalogue path."""
    image = load_image(source, settings.max_image_pixels)
    relative = f"images/{name}_{side}.{EXTENSION[image.format]}"
    target = settings.database_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return relative


def add_designs(settings: Settings, extractor, designs: list[tuple[str, Path, Path]]) -> dict:
    """Append designs (name, front image, back image); returns the new manifest."""
    with editing(settings) as (catalogue, bank):
        check_model_matches(bank, extractor.weights_fingerprint, extractor.descriptor)
        names = [name for name, _, _ in designs]
        bad = [n for n in names if not DESIGN_NAME.fullmatch(n)]
        if bad:
            raise CatalogueEditError(f"invalid design name(s) {bad[:5]}: use letters, digits, "
                                     "'.', '_' and '-' (at most 100)")
        taken = sorted(set(names) & set(catalogue.names) | {n for n in names if names.count(n) > 1})
        if taken:
            raise CatalogueEditError(f"design name(s) already used: {taken[:5]}")
        rows = [(name, _copy_in(settings, name, "front", f), _copy_in(settings, name, "back", b))
                for name, f, b in designs]
        rels = [rel for _, f, b in rows for rel in (f, b)]
        features = _extract(settings, extractor, bank, rels)  # (2 * n_new, dim)
        front = np.vstack([bank.front, features[0::2]])
        back = np.vstack([bank.back, features[1::2]])
        return _save(settings, bank, catalogue.names + [r[0] for r in rows],
                     catalogue.fronts + [r[1] for r in rows], catalogue.backs + [r[2] for r in rows],
                     front, back)


def _extract(settings: Settings, extractor, bank: FeatureBank, rels: list[str],
             batch: int = 16) -> np.ndarray:
    """Catalogue images -> (n, dim) rows in the bank's space; writes their thumbnails."""
    rows = []
    for start in tqdm(range(0, len(rels), batch), desc="adding", unit="batch",
                      disable=len(rels) <= batch):
        canvases = []
        for rel in rels[start:start + batch]:
            rgb = to_rgb(load_image(settings.database_dir / rel, settings.max_image_pixels))
            write_thumbnail(settings.features_dir, rel, rgb)
            canvases.append(to_canvas(rgb, extractor.trim))
        rows.append(bank.project(extractor.extract(np.stack(canvases))))
    return np.vstack(rows)


def remove_design(settings: Settings, name: str) -> dict:
    """Drop a design's row (and its image files, unless another design uses them)."""
    with editing(settings) as (catalogue, bank):
        if name not in catalogue.names:
            raise CatalogueEditError(f"no design named {name!r} in the catalogue")
        i = catalogue.names.index(name)
        keep = [j for j in range(len(catalogue)) if j != i]
        names, fronts, backs = ([col[j] for j in keep] for col in
                                (catalogue.names, catalogue.fronts, catalogue.backs))
        manifest = _save(settings, bank, names, fronts, backs, bank.front[keep], bank.back[keep])
        for rel in {catalogue.fronts[i], catalogue.backs[i]} - set(fronts) - set(backs):
            catalogue.image_path(rel).unlink(missing_ok=True)
        return manifest


def read_import(source: Path) -> list[tuple[str, Path, Path]]:
    """Designs to import from a folder with pairs.csv, or from a name,front,back CSV; image
    paths are relative to the CSV's folder."""
    csv_path = source / "pairs.csv" if source.is_dir() else source
    batch = load_catalogue(csv_path.parent, csv_path)
    return [(name, batch.image_path(front), batch.image_path(back))
            for name, front, back in zip(batch.names, batch.fronts, batch.backs, strict=True)]
