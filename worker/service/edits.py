"""Catalogue edits as queue jobs, behind POST and DELETE /api/designs (the worker holds the
model, and edits are serialised with searches)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from worker.core.queueing import check_upload_name
from worker.indexing.edits import add_designs, remove_design
from worker.service.engine import current


def add_design(name: str, front: str, back: str, columns: dict[str, str] | None = None) -> dict:
    """The uploads (wherever STORAGE keeps them) become catalogue design `name`, with its
    values in the catalogue's further `columns`."""
    engine = current()
    with tempfile.TemporaryDirectory(prefix="design-") as tmp:
        paths = []
        for upload in (front, back):
            paths.append(Path(tmp) / check_upload_name(upload))
            paths[-1].write_bytes(engine.storage.read_upload(upload))
        manifest = add_designs(engine.settings, engine.extractor, [(name, *paths)],
                               [columns or {}])
    engine.refresh()
    return {"name": name, "n_pairs": manifest["n_pairs"]}


def remove_design_by_name(name: str) -> dict:
    """Drop design `name` from the catalogue."""
    engine = current()
    manifest = remove_design(engine.settings, name)
    engine.refresh()
    return {"name": name, "n_pairs": manifest["n_pairs"]}
