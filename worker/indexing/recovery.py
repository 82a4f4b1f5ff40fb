"""Cleaning up after a build or catalogue edit that stopped part-way (killed, disk full, RQ's
job timeout): done under the catalogue lock by every build and edit before it starts, and by
a worker at start when no writer holds the lock.

Whatever point a writer stopped at, CURRENT names a complete generation, so this never has to
repair the index: it deletes what no reader uses, and brings DATABASE_DIR/pairs.csv up to
date when an edit stopped after its switch but before it rewrote that list.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

from worker.core import generations
from worker.core.bank import BankError, read_manifest
from worker.core.catalogue import Catalogue, CatalogueError, load_catalogue, write_catalogue_csv
from worker.core.generations import (
    CatalogueBusy,
    catalogue_lock,
    clean_leftovers,
    current_dir,
    kept_folders,
)
from worker.core.settings import Settings
from worker.core.storage import TEMP_GRACE_S
from worker.pipeline.thumbnails import remove_thumbnails

log = logging.getLogger(__name__)
LISTED = "database-updated"  # in a generation: DATABASE_DIR/pairs.csv was rewritten to it
STORED_IMAGE = re.compile(r"images/[0-9a-f]{16}\.(png|jpg)")  # where an add stores a drawing


def mark_listed(folder: Path) -> None:
    """Note that DATABASE_DIR/pairs.csv lists generation `folder`; CURRENT is touched so it
    stays newer than pairs.csv (make's rule for re-indexing)."""
    (folder / LISTED).touch()
    os.utime(folder.parent.parent / generations.CURRENT)
    generations.checkpoint(f"written {LISTED}")


def listed_state(settings: Settings) -> tuple[str, Catalogue | None]:
    """How DATABASE_DIR/pairs.csv stands against the current generation: "same"; "pending"
    (an edit switched and never rewrote it: it still lists the designs from before that
    edit); "columns" (the same designs, other values in the further columns: edited by hand,
    which an edit's rewrite would drop); "designs" (other designs: edited by hand, or
    restored with old file times). With the generation's own copy of the list (None for a
    flat FEATURES_DIR, compared by its manifest's fingerprint). Raises CatalogueError and
    BankError as reading them does."""
    folder = current_dir(settings.features_dir)
    on_disk = load_catalogue(settings.database_dir)
    manifest = read_manifest(folder)
    copy = folder / "pairs.csv"
    current = load_catalogue(settings.database_dir, copy) if copy.is_file() else None
    indexed = manifest.get("catalogue_fingerprint") if current is None else current.fingerprint()
    if indexed is None or on_disk.fingerprint() == indexed:
        return ("columns" if current is not None and on_disk.extra != current.extra
                else "same"), current
    before = (manifest.get("edit") or {}).get("from")
    pending = before == on_disk.fingerprint() and not (folder / LISTED).exists()
    return ("pending" if pending and current is not None else "designs"), current


def sync_listed(settings: Settings) -> bool | None:
    """Where the current generation is an edit whose pairs.csv rewrite never happened
    (`listed_state` "pending"), rewrite it. True: pairs.csv lists the current generation;
    None: it differs (edited by hand since)."""
    try:
        state, current = listed_state(settings)
    except (CatalogueError, BankError):
        return None
    if state != "pending":
        return True if state == "same" else None
    write_catalogue_csv(settings.database_dir, current.names, current.fronts, current.backs,
                        current.extra)
    generations.checkpoint("renamed pairs.csv")
    mark_listed(current_dir(settings.features_dir))
    return True


def tidy(settings: Settings) -> list[str]:
    """Under the lock: delete leftovers of a stopped writer; what was done."""
    done = clean_leftovers(settings.features_dir)
    database = Path(settings.database_dir)
    for tmp in [*database.glob(".pairs.csv.*.part"), *database.glob("images/.*.part")]:
        tmp.unlink(missing_ok=True)
        done.append(str(tmp.relative_to(database)))
    listed = load_catalogue_text(database)
    if sync_listed(settings) and listed != load_catalogue_text(database):
        done.append("pairs.csv brought up to date with the last edit")
    for rel in unlisted_drawings(settings):
        try:
            (database / rel).unlink(missing_ok=True)
            remove_thumbnails(settings.features_dir, rel)
        except OSError as exc:  # only disk: the writer that tidies goes on
            log.warning("could not delete %s, which no list names: %s", rel, exc)
            continue
        done.append(rel)
    return done


def unlisted_drawings(settings: Settings) -> list[str]:
    """Drawings an add stored (STORED_IMAGE) that neither pairs.csv nor a kept generation
    lists, written over TEMP_GRACE_S ago: left by an add stopped before its switch or a removal
    stopped after it. Empty while any list cannot be read: nothing is then known unused."""
    database = Path(settings.database_dir)
    try:
        on_disk = load_catalogue(database)
        manifests = [read_manifest(folder) for folder in kept_folders(settings.features_dir)]
    except (CatalogueError, BankError, OSError):
        return []
    listed = [*on_disk.fronts, *on_disk.backs]
    for manifest in manifests:
        listed += [*(manifest.get("fronts") or ()), *(manifest.get("backs") or ())]
    used = {on_disk.location(rel) for rel in listed}  # "./images/x.png", a full path: it too
    stored = (f"images/{p.name}" for p in database.glob("images/*"))
    return sorted(rel for rel in stored if STORED_IMAGE.fullmatch(rel)
                  and on_disk.location(rel) not in used
                  and time.time() - (database / rel).stat().st_mtime > TEMP_GRACE_S)


def load_catalogue_text(database: Path) -> bytes | None:
    try:
        return (database / "pairs.csv").read_bytes()
    except OSError:
        return None


def recover_at_start(settings: Settings) -> None:
    """A worker's start: tidy up if no build or edit is running (else that writer will)."""
    try:
        with catalogue_lock(settings.features_dir, wait_s=0):
            done = tidy(settings)
    except CatalogueBusy:
        log.info("a build or catalogue edit is running; it cleans up after itself")
        return
    except OSError as exc:
        log.warning("could not clean up after an earlier build or edit: %s", exc)
        return
    if done:
        log.info("cleaned up after a build or edit that stopped: %s", ", ".join(done))
