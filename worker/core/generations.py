"""Index generations: each build or catalogue edit writes a whole new folder
`FEATURES_DIR/generations/<id>/` (pairs.csv, front.npy, back.npy, whitening.npz, manifest.json)
and then switches one pointer, `FEATURES_DIR/CURRENT`, written aside and renamed: a reader
sees the old generation or the new one, never a mix, whatever point a writer stopped at.

Writers (`make index`, catalogue edits) hold `catalogue_lock`; under it, anything not
pointed to is a leftover of a writer that stopped, and `clean_leftovers` deletes it (the
previous generation is kept, for readers that resolved the pointer just before a switch, and
so is any generation a running collection check or a worker is pinned to: `pin`).
An older flat FEATURES_DIR (banks at its top, no CURRENT) still loads; the next build or edit
writes a generation and the flat files become leftovers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from worker.core.storage import TEMP_GRACE_S, fsync_path, write_aside

log = logging.getLogger(__name__)

GENERATIONS = "generations"
CURRENT = "CURRENT"
LOCK = ".catalogue.lock"
CHUNK_CACHE = "chunks"  # extracted chunks, kept across builds (worker/indexing/chunks.py)
PINS = "pins"  # pins/<check id>: the generation that check is compared with (`pin`)
PIN_TTL_S = 3600  # a pin a check's chunks have not renewed for this long is stale
RECENT_EDITS = 100  # edit ids a generation carries forward: more than land before one is settled
FLAT_FILES = ("front.npy", "back.npy", "whitening.npz", "manifest.json")
TEMP_PREFIXES = tuple(f".{name.split('.')[0]}." for name in (*FLAT_FILES, CURRENT))


class CatalogueBusy(RuntimeError):
    """Another catalogue edit or an index build holds the lock."""


def checkpoint(what: str) -> None:
    """Called after each file written and each rename of a build or an edit; does nothing.
    Tests make it raise, to stop a writer at every step."""


def current_id(features_dir: Path) -> str | None:
    """The generation CURRENT points to; None for a flat (older) FEATURES_DIR or none."""
    try:
        text = (Path(features_dir) / CURRENT).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def current_dir(features_dir: Path) -> Path:
    """The folder holding the banks to load: the current generation's, or FEATURES_DIR itself
    when it has no CURRENT (flat layout, or a generation folder given directly)."""
    gen = current_id(features_dir)
    return Path(features_dir) if gen is None else Path(features_dir) / GENERATIONS / gen


GENERATION = re.compile(r"\d{8}T\d{12}Z-[0-9a-f]{6}")  # a generation folder's name, as below


def new_generation(features_dir: Path) -> Path:
    """A fresh, empty generation folder (not current until `switch_to`)."""
    gen = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"
    folder = Path(features_dir) / GENERATIONS / gen
    folder.mkdir(parents=True)
    return folder


def switch_to(features_dir: Path, folder: Path) -> None:
    """Make `folder` (a complete generation) current: the one atomic step of a write."""
    features_dir = Path(features_dir)
    fsync_path(folder)
    tmp = features_dir / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
    with open(tmp, "w") as f:
        f.write(folder.name + "\n")
        f.flush()
        os.fsync(f.fileno())
    checkpoint(f"written {tmp.name}")
    os.replace(tmp, features_dir / CURRENT)
    fsync_path(features_dir)
    checkpoint(f"renamed {CURRENT} -> {folder.name}")


def pin(features_dir: Path, owner: str, generation: str) -> None:
    """Keep `generation` from `clean_leftovers` for PIN_TTL_S more, for `owner` (a check:
    each of its chunks renews the pin as it starts)."""
    write_aside(Path(features_dir) / PINS, owner, generation.encode())


def unpin(features_dir: Path, owner: str) -> None:
    """`owner` (a check) is done with the generation it pinned."""
    (Path(features_dir) / PINS / owner).unlink(missing_ok=True)


def _pinned(features_dir: Path, now: float) -> set[str]:
    """The generations fresh pins name; stale pins are deleted."""
    pinned = set()
    for path in (features_dir / PINS).glob("[!.]*"):
        try:
            if now - path.stat().st_mtime <= PIN_TTL_S:
                pinned.add(path.read_text().strip())
            else:
                path.unlink()
        except FileNotFoundError:
            pass
    return pinned


def clean_leftovers(features_dir: Path, keep: str | None = None) -> list[str]:
    """Delete what no reader can need: generations other than the current one, `keep` (the
    previous) and pinned ones, temp files, flat banks superseded by a generation. Call under
    the lock."""
    features_dir = Path(features_dir)
    current = current_id(features_dir)
    kept = {current, keep or _previous(features_dir), *_pinned(features_dir, time.time())}
    removed = []
    gens = features_dir / GENERATIONS
    for folder in sorted(gens.iterdir()) if gens.is_dir() else []:
        if folder.name not in kept:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(f"{GENERATIONS}/{folder.name}")
    for path in features_dir.iterdir() if features_dir.is_dir() else []:
        temp = path.name.startswith(TEMP_PREFIXES) and path.is_file()
        if temp or (current is not None and path.name in FLAT_FILES):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    parts = [*features_dir.glob("thumbs/*/.*.part"), *features_dir.glob(f"{CHUNK_CACHE}/*/.*.part"),
             *features_dir.glob(f"{PINS}/.*.part")]
    for path in parts:
        try:
            if time.time() - path.stat().st_mtime > TEMP_GRACE_S:
                path.unlink()
                removed.append(str(path.relative_to(features_dir)))
        except FileNotFoundError:
            pass
    return removed


def kept_folders(features_dir: Path) -> list[Path]:
    """The folders whose manifests a reader may hold: the current one first (FEATURES_DIR
    itself when flat), then every generation folder."""
    gens = Path(features_dir) / GENERATIONS
    return list(dict.fromkeys([current_dir(features_dir),
                               *(sorted(gens.iterdir()) if gens.is_dir() else [])]))


def current_manifest(features_dir: Path) -> dict:
    """The current generation's manifest ({} where there is none or it cannot be read: the
    readers that check it are worker.core.bank's)."""
    return _manifest_in(current_dir(features_dir))


def _manifest_in(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def edit_ids(manifest: dict) -> list[str]:
    """The catalogue edits a generation's manifest names as applied: its own (`edit.id`), then
    those before it (`recent_edits`; `edit.recent` where they were kept before), newest first."""
    edit = manifest.get("edit") if isinstance(manifest.get("edit"), dict) else {}
    before = manifest.get("recent_edits", edit.get("recent"))
    ids = [edit.get("id"), *(before if isinstance(before, list) else [])]
    return [i for i in ids if isinstance(i, str)]


def carried_edits(replaced: dict) -> list[str]:
    """What a new generation (an edit's or a build's) records as `recent_edits`, from the
    manifest of the one it replaces: two more switches delete an edit's own generation, and
    `landed` must still see that it was applied."""
    return edit_ids(replaced)[:RECENT_EDITS]


def landed(features_dir: Path, edit_id: str) -> bool:
    """Whether catalogue edit `edit_id` was applied: a kept generation (the current one, the
    one before, pinned ones) was written by it or names it among the edits before it
    (`edit.id`, `recent_edits`), whatever other writers switched to since."""
    return any(edit_id in edit_ids(_manifest_in(folder)) for folder in kept_folders(features_dir))


def _previous(features_dir: Path) -> str | None:
    """The generation the current one replaced, as its manifest says (None if unknown)."""
    replaces = current_manifest(features_dir).get("replaces")
    return replaces.get("generation") if isinstance(replaces, dict) else None


@contextmanager
def catalogue_lock(features_dir: Path, wait_s: float | None = None, holder: str = "edit",
                   behind_build: bool = True) -> Iterator[None]:
    """Hold the one lock of builds and edits. `wait_s`: None waits as long as it takes, else
    CatalogueBusy after that many seconds (0: do not wait), or at once when a build holds it
    and the writer is not to wait `behind_build` (a worker's edit: its wait holds searches).
    The lock file says who holds it (`holder`: "build" or "edit")."""
    features_dir = Path(features_dir)
    features_dir.mkdir(parents=True, exist_ok=True)
    with open(features_dir / LOCK, "a+") as lock:  # not "w": the holder's word is read
        deadline = None if wait_s is None else time.monotonic() + wait_s
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if wait_s != 0:  # a wait that says nothing looks like a hang
                log.info("waiting for another index build or catalogue edit to finish")
            if deadline is None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            while deadline is not None:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline or not behind_build and _holder(lock) == "build":
                        raise CatalogueBusy("another catalogue edit or an index build is "
                                            "running; try again when it has finished") from None
                    time.sleep(0.1)
        lock.truncate(0)
        lock.write(holder)
        lock.flush()
        try:
            yield
        finally:  # while still held: the next holder's word is not read as this one's
            with contextlib.suppress(OSError):  # a word left: an edit refused once, no more
                lock.truncate(0)


def _holder(lock) -> str:
    """What the lock file says of its holder (a killed holder's word stays: at worst an edit
    is refused once, to be retried)."""
    lock.seek(0)
    return lock.read(16)
