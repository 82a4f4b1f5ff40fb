"""Adding and removing designs without re-indexing everything.

`python -m worker.cli.catalogue add NAME FRONT BACK | remove NAME | import DIR_OR_CSV`, and the
same as queue jobs for the web's `/api/designs`. New rows are extracted with the model and
projected with the index's existing whitening (a full `make index` re-learns it); removed
rows are dropped. An edit writes a new generation (its pairs.csv, banks, manifest) and
switches to it in one step (worker.core.generations), then rewrites DATABASE_DIR/pairs.csv;
wherever it stops, workers see the old catalogue or the new one. Edits and `make index` take
one lock. Added images are stored under their content's hash: no file in use is overwritten.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from worker.core import generations
from worker.core.bank import (
    REINDEX,
    BankError,
    FeatureBank,
    check_catalogue_matches,
    check_model_matches,
    load_generation,
    write_bank,
)
from worker.core.catalogue import (
    Catalogue,
    catalogue_csv,
    load_catalogue,
    write_catalogue_csv,
)
from worker.core.duplicates import DUPLICATES, DuplicatePairs, read_duplicates
from worker.core.generations import carried_edits, catalogue_lock, current_id
from worker.core.images import load_image
from worker.core.queueing import EXTENSION
from worker.core.settings import Settings
from worker.core.storage import write_aside
from worker.indexing.naming import CatalogueEditError, check_new_designs
from worker.indexing.recovery import STORED_IMAGE, mark_listed, sync_listed, tidy
from worker.indexing.sketches import edited_share
from worker.pipeline.ann import stored_index
from worker.pipeline.appearance import is_sketch
from worker.pipeline.duplicates import after_add, after_remove
from worker.pipeline.preprocess import preprocess_params, to_canvas, to_rgb, visible_canvas
from worker.pipeline.thumbnails import remove_thumbnails, write_thumbnail
from worker.pipeline.verdicts import duplicate_thresholds_in

log = logging.getLogger(__name__)

EDIT_LOCK_WAIT_S = 120  # an edit waits this long for another edit (the CLI's: or a build), then refuses


@contextmanager
def editing(settings: Settings, edit_id: str | None = None
            ) -> Iterator[tuple[Catalogue, FeatureBank]]:
    """Hold the catalogue lock and yield the current generation's catalogue and banks, which
    must match each other and DATABASE_DIR/pairs.csv (a hand edit there needs `make index`
    first: an edit would silently drop it)."""
    with catalogue_lock(settings.features_dir, EDIT_LOCK_WAIT_S, behind_build=edit_id is None):
        tidy(settings)
        catalogue, bank, _ = load_generation(settings.database_dir, settings.features_dir)
        check_catalogue_matches(bank, catalogue.fingerprint(), len(catalogue))
        if not sync_listed(settings):
            listed = load_catalogue(settings.database_dir)
            if listed.fingerprint() == catalogue.fingerprint():
                edited = sorted(c for c in {*listed.extra, *catalogue.extra}
                                if listed.extra.get(c) != catalogue.extra.get(c))
                raise BankError(f"pairs.csv's further columns ({', '.join(edited)}) were "
                                "edited since the index was built, and an edit would put "
                                f"back the index's copy of them; {REINDEX}")
            raise BankError(f"the banks ({len(bank)} pairs) were built from another pairs.csv "
                            f"than the current one ({len(listed)} pairs); {REINDEX}")
        yield catalogue, bank


def _listed_duplicates(settings: Settings) -> DuplicatePairs | None:
    """The current generation's duplicate pairs; None if it has none (built before them)."""
    try:
        return read_duplicates(settings.features_dir)[1]
    except BankError:
        return None


def _save(settings: Settings, bank: FeatureBank, before: Catalogue, after: Catalogue,
          front: np.ndarray, back: np.ndarray, duplicates: DuplicatePairs, edit_id: str | None) -> dict:
    """A new generation with the rows of `after` and their duplicate pairs, switched to, its
    manifest naming `edit_id` (whether an edit that failed after was applied); then
    DATABASE_DIR/pairs.csv."""
    names, fronts, backs, extra = after.names, after.fronts, after.backs, after.extra
    manifest = {**bank.manifest, "n_pairs": len(names), "names": names, "fronts": fronts,
                "backs": backs, "catalogue_fingerprint": after.fingerprint(),
                "edit": {"from": before.fingerprint(), "id": edit_id},
                "recent_edits": carried_edits(bank.manifest),
                "duplicates": duplicates.summary(duplicate_thresholds_in(bank.manifest)),
                "updated": datetime.now(UTC).isoformat(timespec="seconds"),
                **edited_share(fronts, backs, duplicates.sketched)}
    front, back = front.astype(np.float32), back.astype(np.float32)
    coarse, manifest["coarse_index"] = stored_index(front, back, settings.search_ann_min_pairs)
    folder = write_bank(settings.features_dir, front, back, manifest, bank.whitening,
                        catalogue_csv(names, fronts, backs, extra),
                        {DUPLICATES: duplicates.to_bytes(), **coarse}, bank.quantised)
    write_catalogue_csv(settings.database_dir, names, fronts, backs, extra)
    generations.checkpoint("renamed pairs.csv")
    mark_listed(folder)
    return {**manifest, "generation": folder.name}


def read_drawing(settings: Settings, source: Path | bytes, side: str,
                 trim: bool) -> tuple[str, bytes]:
    """A design's drawing checked as a search's is: decoded within the limits, and something
    showing on the canvas the model sees, which is what the index extracts (a blank page, or
    a blank scan of tinted paper, is refused saying so); (its catalogue path
    images/<sha256[:16]>.<ext>, its bytes)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    image = load_image(data, settings.max_image_pixels)
    visible_canvas(to_rgb(image), trim, side)  # decoded once: the same image
    return f"images/{_content_name(data)}.{EXTENSION[image.format]}", data


def _content_name(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _store(settings: Settings, image: tuple[str, bytes], created: list[Path]) -> str:
    """Put a validated image at its content address (already there: the same bytes)."""
    relative, data = image
    target = settings.database_dir / relative
    if target.is_file():
        held = target.read_bytes()
        if held == data:
            return relative
        if _content_name(held) == target.stem:  # two drawings whose hashes begin alike
            raise CatalogueEditError(f"{relative} exists with other content; not overwritten")
        log.warning("%s does not hold the content it is named by (damaged); written again",
                    relative)
    else:  # one written again stays: a design may list it
        created.append(target)
    write_aside(target.parent, target.name, data, durable=True)
    generations.checkpoint(f"renamed {relative}")
    return relative


def add_designs(settings: Settings, extractor, designs: list[tuple[str, Path | bytes, Path | bytes]],
                columns: list[dict[str, str]] | None = None, edit_id: str | None = None) -> dict:
    """Append designs (name, front image, back image: files or their bytes), each with its
    values in the catalogue's further columns (`columns[i]`; a column left out: empty); returns
    the new manifest. Every name, column and image is checked before anything is written."""
    values = columns or [{} for _ in designs]
    if len(values) != len(designs):
        raise ValueError(f"{len(designs)} designs but column values for {len(values)}")
    with editing(settings, edit_id) as (catalogue, bank):
        names = [name for name, _, _ in designs]
        check_new_designs(catalogue, names, values)
        check_model_matches(bank, extractor.weights_fingerprint, extractor.descriptor,
                            extractor.precision, preprocess_params(extractor.trim))
        if bank.quantised is not None and bank.manifest["sha256"]["quantised_model"] != \
                extractor.model_id:  # new rows extracted with the model that built the others
            extractor.use_quantised(bank.quantised)
        images = [(read_drawing(settings, f, "front", extractor.trim),
                   read_drawing(settings, b, "back", extractor.trim)) for _, f, b in designs]
        created: list[Path] = []
        before = current_id(settings.features_dir)
        try:
            rows = [(name, _store(settings, f, created), _store(settings, b, created))
                    for name, (f, b) in zip(names, images, strict=True)]
            rels = [rel for _, f, b in rows for rel in (f, b)]
            features, sketched = _extract(settings, extractor, bank, rels)  # (2 * n_new, dim)
            after = Catalogue(catalogue.root, catalogue.names + names,
                              catalogue.fronts + [r[1] for r in rows],
                              catalogue.backs + [r[2] for r in rows],
                              {c: v + [given.get(c, "") for given in values]
                               for c, v in catalogue.extra.items()})
            front = np.vstack([bank.front, features[0::2]]).astype(np.float32)
            back = np.vstack([bank.back, features[1::2]]).astype(np.float32)
            duplicates = after_add(_listed_duplicates(settings), front, back, len(catalogue),
                                   duplicate_thresholds_in(bank.manifest),
                                   settings.search_ann_min_pairs, sketched.reshape(-1, 2))
            return _save(settings, bank, catalogue, after, front, back, duplicates, edit_id)
        except BaseException:
            if current_id(settings.features_dir) == before:  # not switched: no design uses them
                for path in created:
                    path.unlink(missing_ok=True)
                    try:  # the edit's own error is the one to raise
                        remove_thumbnails(settings.features_dir,
                                          path.relative_to(settings.database_dir).as_posix())
                    except OSError:
                        pass
            raise


def _extract(settings: Settings, extractor, bank: FeatureBank, rels: list[str],
             batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Catalogue images -> (n, dim) rows in the bank's space and (n,) bool, which are line
    sketches; writes their thumbnails."""
    rows, sketched = [], []
    for start in tqdm(range(0, len(rels), batch), desc="adding", unit="batch",
                      disable=len(rels) <= batch):
        canvases = []
        for rel in rels[start:start + batch]:
            rgb = to_rgb(load_image(settings.database_dir / rel, settings.max_image_pixels))
            write_thumbnail(settings.features_dir, rel, rgb)
            canvases.append(to_canvas(rgb, extractor.trim))
        sketched += map(is_sketch, canvases)
        rows.append(bank.project(extractor.extract(np.stack(canvases))))
    return np.vstack(rows), np.array(sketched, bool)


def remove_design(settings: Settings, name: str, edit_id: str | None = None) -> dict:
    """Drop a design's row, and the image files an add stored for it (named by their content,
    STORED_IMAGE) and their thumbnails unless another design uses them; drawings put in the
    catalogue by hand stay (they are the team's artwork, not the service's copies)."""
    with editing(settings, edit_id) as (catalogue, bank):
        if name not in catalogue.names:
            raise CatalogueEditError(f"no design named {name!r} in the catalogue")
        i = catalogue.names.index(name)
        keep = [j for j in range(len(catalogue)) if j != i]
        after = catalogue.rows(keep)
        front, back = bank.front[keep], bank.back[keep]
        duplicates = after_remove(_listed_duplicates(settings), front, back, i,
                                  duplicate_thresholds_in(bank.manifest),
                                  settings.search_ann_min_pairs)
        manifest = _save(settings, bank, catalogue, after, front, back, duplicates, edit_id)
        used = {after.location(rel) for rel in (*after.fronts, *after.backs)}  # ./x, /full/x
        for rel in {catalogue.fronts[i], catalogue.backs[i]}:
            if not STORED_IMAGE.fullmatch(rel) or catalogue.location(rel) in used:
                continue
            catalogue.image_path(rel).unlink(missing_ok=True)
            remove_thumbnails(settings.features_dir, rel)
            generations.checkpoint(f"deleted {rel}")
        return manifest

