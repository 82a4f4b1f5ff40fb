"""Catalogue edits as queue jobs, behind POST and DELETE /api/designs (the worker holds the
model, and edits are serialised with searches)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from rq.timeouts import JobTimeoutException

from worker.core.bank import BankError, read_manifest
from worker.core.queueing import check_upload_name
from worker.indexing.edits import add_designs, remove_design
from worker.service.engine import current

log = logging.getLogger(__name__)


def add_design(name: str, front: str, back: str, columns: dict[str, str] | None = None) -> dict:
    """The uploads (wherever STORAGE keeps them) become catalogue design `name`, with its
    values in the catalogue's further `columns`."""
    engine = current()

    def add() -> dict:
        with tempfile.TemporaryDirectory(prefix="design-") as tmp:
            paths = []
            for upload in (front, back):
                paths.append(Path(tmp) / check_upload_name(upload))
                paths[-1].write_bytes(engine.storage.read_upload(upload))
            return add_designs(engine.settings, engine.extractor, [(name, *paths)],
                               [columns or {}])

    return _applied(engine, name, True, add)


def remove_design_by_name(name: str) -> dict:
    """Drop design `name` from the catalogue."""
    engine = current()
    return _applied(engine, name, False, lambda: remove_design(engine.settings, name))


def _names(features_dir: Path) -> list[str] | None:
    try:
        return read_manifest(features_dir).get("names", [])
    except BankError:
        return None


def _applied(engine, name: str, adding: bool, edit: Callable[[], dict]) -> dict:
    """Run `edit`; {"name", "n_pairs"}. One that fails after the catalogue switched (the
    pairs.csv rewrite, a clean-up, the job's time limit) was applied all the same: answered
    as done, as the catalogue shows it, so that a retry is not refused as a duplicate."""
    before = _names(engine.settings.features_dir)
    try:
        manifest = edit()
    except Exception as exc:
        after = _names(engine.settings.features_dir)
        if before is None or after is None or not (
                (name in after and name not in before) if adding
                else (name in before and name not in after)):
            raise
        log.warning("the edit of %s was applied, but failed after the catalogue switched: %s",
                    name, exc)
        manifest = {"n_pairs": len(after)}
    try:
        engine.refresh()
    except JobTimeoutException:  # applied all the same: the next job's refresh loads it
        log.warning("the edit of %s was applied; the index is reloaded by the next job", name)
    return {"name": name, "n_pairs": manifest["n_pairs"]}
