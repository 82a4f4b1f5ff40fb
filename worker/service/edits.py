"""Catalogue edits as queue jobs, behind POST and DELETE /api/designs (the worker holds the
model, and edits are serialised with searches)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from rq import get_current_job
from rq.timeouts import JobTimeoutException

from worker.core.bank import BankError, read_manifest
from worker.core.generations import landed
from worker.core.queueing import check_upload_name
from worker.indexing.edits import add_designs, remove_design
from worker.service.engine import current

log = logging.getLogger(__name__)


def add_design(name: str, front: str, back: str, columns: dict[str, str] | None = None) -> dict:
    """The uploads (wherever STORAGE keeps them) become catalogue design `name`, with its
    values in the catalogue's further `columns`."""
    engine = current()

    def add(edit_id: str | None) -> dict:  # the bytes themselves: no copy in TMPDIR
        sides = [engine.storage.read_upload(check_upload_name(upload)) for upload in (front, back)]
        return add_designs(engine.settings, engine.extractor, [(name, *sides)], [columns or {}],
                           edit_id)

    return _applied(engine, name, add)


def remove_design_by_name(name: str) -> dict:
    """Drop design `name` from the catalogue."""
    engine = current()
    return _applied(engine, name, lambda edit_id: remove_design(engine.settings, name, edit_id))


def _applied(engine, name: str, edit: Callable[[str | None], dict],
             edit_id: str | None = None) -> dict:
    """Run `edit` with this job's id (or `edit_id`); {"name", "n_pairs"}. One that fails after
    the catalogue switched to its generation (the pairs.csv rewrite, a clean-up, the job's
    time limit) was applied all the same: answered as done, as the catalogue shows it, so that
    a retry is not refused as a duplicate. Only its own generation says so (`landed`): the
    same name added or removed meanwhile by another writer (the CLI, a build) is not this
    edit."""
    job = get_current_job()
    edit_id = edit_id or (job.id if job is not None else None)
    try:
        manifest = edit(edit_id)
    except Exception as exc:
        if edit_id is None or not landed(engine.settings.features_dir, edit_id):
            raise
        try:
            manifest = read_manifest(engine.settings.features_dir)
        except BankError:
            raise exc from None
        log.warning("the edit of %s was applied, but failed after the catalogue switched: %s",
                    name, exc)
    try:
        engine.refresh()
    except JobTimeoutException:  # applied all the same: the next job's refresh loads it
        log.warning("the edit of %s was applied; the index is reloaded by the next job", name)
    return {"name": name, "n_pairs": manifest["n_pairs"]}
