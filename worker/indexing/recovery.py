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
from pathlib import Path

from worker.core import generations
from worker.core.bank import BankError, read_manifest
from worker.core.catalogue import CatalogueError, load_catalogue, write_catalogue_csv
from worker.core.generations import CatalogueBusy, catalogue_lock, clean_leftovers, current_dir
from worker.core.settings import Settings

log = logging.getLogger(__name__)
LISTED = "database-updated"  # in a generation: DATABASE_DIR/pairs.csv was rewritten to it


def mark_listed(folder: Path) -> None:
    """Note that DATABASE_DIR/pairs.csv lists generation `folder`; CURRENT is touched so it
    stays newer than pairs.csv (make's rule for re-indexing)."""
    (folder / LISTED).touch()
    os.utime(folder.parent.parent / generations.CURRENT)
    generations.checkpoint(f"written {LISTED}")


def sync_listed(settings: Settings) -> bool | None:
    """Where the current generation is an edit whose pairs.csv rewrite never happened and
    DATABASE_DIR/pairs.csv still lists the designs from before the edit, rewrite it. True:
    pairs.csv lists the current generation; None: it differs (edited by hand since: its rows,
    or only its further columns' values, which an edit's rewrite would drop)."""
    folder = current_dir(settings.features_dir)
    try:
        on_disk = load_catalogue(settings.database_dir)
        listed = on_disk.fingerprint()
        if not (folder / "pairs.csv").is_file():  # a flat FEATURES_DIR: it is its own list
            return True
        current = load_catalogue(settings.database_dir, folder / "pairs.csv")
        before = (read_manifest(folder).get("edit") or {}).get("from")
    except (CatalogueError, BankError):
        return None
    if listed == current.fingerprint():
        return True if on_disk.extra == current.extra else None
    if before != listed or (folder / LISTED).exists():
        return None
    write_catalogue_csv(settings.database_dir, current.names, current.fronts, current.backs,
                        current.extra)
    generations.checkpoint("renamed pairs.csv")
    mark_listed(folder)
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
    return done


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
