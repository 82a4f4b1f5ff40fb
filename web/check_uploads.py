"""Turning a collection upload (a ZIP) into a queued check: validate, store, enqueue.

The ZIP is read with limits (worker.core.archive) straight from the request's stream, its
pairs.csv on an upload thread (web/offload.py); its members are read into memory on the loop,
two designs at a time, each design's drawings then converted on a thread of its own; never
extracted to disk. Each drawing is kept as a search's upload is (`stored_form`: RGB PNG,
bounded) under a name of the check's own (`<check id>-r<row>-<side>.png`); a row whose drawing
is missing or refused is settled at once as failed, with its error, and the rest go on.
"""

from __future__ import annotations

import uuid
from functools import partial
from itertools import islice

from flask import current_app
from redis.exceptions import RedisError
from werkzeug.datastructures import FileStorage, ImmutableMultiDict

from web.errors import RequestRefused, queue_unavailable
from web.formfields import refuse_options_as_files, refuse_repeated, sent
from web.offload import OFFLOAD_THREADS, off_loop
from web.submissions import (
    check_capacity,
    discard_uploads,
    parse_options,
    require_client,
    require_multipart,
    store_uploads,
)
from worker.core.archive import CollectionRefused, ZipLimits
from worker.core.checks import (
    collection_upload_name,
    create_check,
    enqueue_chunks,
    plan_chunks,
    row_uploads,
)
from worker.core.collection import Collection, from_zip
from worker.core.contract import SIDES, CheckedDesign, ChunkRow
from worker.core.storedforms import StoredForms, stored_design

MISSING = ("no collection was uploaded; upload a ZIP holding pairs.csv (columns name,front,"
           "back) and the drawings it names")


def _collection(upload: FileStorage | None, settings) -> Collection:
    """The ZIP's pairs.csv, checked; RequestRefused naming what is wrong."""
    if not sent(upload):
        raise RequestRefused(400, "missing_collection", MISSING)
    stream = upload.stream
    if not stream.read(1):
        raise RequestRefused(400, "empty_collection", "the collection file is empty")
    stream.seek(0)
    try:  # inflating and parsing pairs.csv off the loop too
        return off_loop([partial(from_zip, stream, ZipLimits.of(settings),
                                 settings.check_max_pairs)])[0]
    except CollectionRefused as exc:
        raise RequestRefused(exc.status, exc.reason, str(exc)) from None


def _store(check_id: str, collection: Collection, settings
           ) -> tuple[list[ChunkRow], dict[int, CheckedDesign]]:
    """Store each design's drawings (all or none: a refusal deletes what was stored); the rows
    to check, and the rows settled as failed (a drawing missing or refused)."""
    rows: list[ChunkRow] = []
    settled: dict[int, CheckedDesign] = {}
    stored: list[str] = []
    forms = StoredForms(settings.max_image_pixels)
    designs = enumerate(collection.designs)
    try:
        # read off the loop too: a member's inflating takes up to 0.3 s (64 MiB)
        while batch := off_loop([lambda: list(islice(designs, OFFLOAD_THREADS))])[0]:
            require_client()  # a client that left stops the work, not just its answer
            done = off_loop([partial(stored_design, design, forms)
                             for _, design in batch])
            for (row, _), design in zip(batch, done, strict=True):
                if design.error:
                    settled[row] = CheckedDesign(name=design.name, status="failed",
                                                 error=design.error)
                    continue
                names = {side: collection_upload_name(check_id, row, side) for side in SIDES
                         if getattr(design, side) is not None}
                store_uploads({name: getattr(design, side) for side, name in names.items()})
                stored += names.values()
                rows.append(ChunkRow(row=row, name=design.name, **names))
        require_client()  # once more, the last moment before the check is queued
    except BaseException as exc:  # a late bomb, a full disk, a client gone, a fault: none kept
        discard_uploads(stored)
        # only drawings stored in Redis (STORAGE=redis) write to it here: this collection may
        # be what fills it
        if isinstance(exc, RequestRefused) and exc.error == "redis_full":
            raise RequestRefused(503, "redis_full", f"the service's store (Redis) filled up "
                                 f"after {len(rows)} of the collection's {len(collection.names)} "
                                 "designs were stored (their drawings wait there until checked); "
                                 "check the collection in smaller parts, or retry later",
                                 retry_after=exc.retry_after) from None
        if not isinstance(exc, CollectionRefused):
            raise
        raise RequestRefused(exc.status, exc.reason, str(exc)) from None
    return rows, settled


def _none_usable(settled: dict[int, CheckedDesign]) -> str:
    """Why a collection none of whose designs can be checked is refused: the first errors."""
    shown = [f"{d.name!r}: {d.error}" for d in list(settled.values())[:3]]
    more = f"; and {len(settled) - 3} more" if len(settled) > 3 else ""
    which = ("the one design in pairs.csv cannot" if len(settled) == 1
             else f"none of the {len(settled)} designs in pairs.csv can")
    return (f"{which} be checked ({'; '.join(shown)}{more}); correct the ZIP and upload it "
            "again")


def check_waiting_designs(settings, designs: int) -> None:
    """Refuse (503, Retry-After) a check that would put more than MAX_CHECK_QUEUE_PAIRS designs
    in the check queue; with none waiting, any collection (CHECK_MAX_PAIRS bounds it) starts."""
    waiting = len(current_app.extensions["check_queue"]) * settings.check_chunk_pairs
    if waiting and waiting + designs > settings.max_check_queue_pairs:
        raise RequestRefused(503, "queue_full", f"the service is busy checking other "
                             f"collections (about {waiting} designs wait); please retry in a "
                             "few minutes", retry_after=60)


def submit_check(files: ImmutableMultiDict, form: ImmutableMultiDict) -> str:
    """Validate the options and the ZIP, store its drawings, enqueue its chunks; the check's id."""
    settings = current_app.config["SETTINGS"]
    require_multipart()
    refuse_options_as_files(files)  # else `-F k=@x` would check with the default, silently
    options = parse_options(form)
    for side in ("front_box", "back_box"):  # a box belongs to one drawing, not a collection
        if getattr(options, side) is not None:
            raise RequestRefused(400, f"invalid_{side}", f"{side} applies to a single search, "
                                 "not to a collection check")
    refuse_repeated(files, ("collection",), "; upload one ZIP a check (or put the designs in "
                    "one pairs.csv)")
    collection = _collection(files.get("collection"), settings)
    try:
        check_capacity(settings)
        check_waiting_designs(settings, len(collection.names))
    except RedisError as exc:
        raise queue_unavailable(exc) from None
    check_id = uuid.uuid4().hex  # 122 random bits: unguessable
    rows, settled = _store(check_id, collection, settings)
    if not rows:
        raise RequestRefused(400, "no_usable_designs", _none_usable(settled))
    chunks = plan_chunks(rows, settings.check_chunk_pairs)
    redis = current_app.extensions["redis"]
    try:
        # again: collections stored beside this one (seconds each) may have been queued since
        check_waiting_designs(settings, len(collection.names))
        create_check(redis, check_id, collection.names, options, chunks, settled,
                     settings.result_ttl)
        enqueue_chunks(current_app.extensions["check_queue"], settings, check_id, options, chunks)
    except (RedisError, RequestRefused) as exc:
        discard_uploads(row_uploads(rows))
        raise exc if isinstance(exc, RequestRefused) else queue_unavailable(exc) from None
    return check_id
