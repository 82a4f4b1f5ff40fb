"""What a worker does between jobs (worker.service.process's maintenance), and the uploads
a job leaves: none of it may stop the worker serving, so each step logs what it cannot do and
the next maintenance (every MAINTENANCE_S) tries again."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from pydantic import ValidationError
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job

from worker.core.checks import chunk_uploads, read_check
from worker.core.contract import CheckChunk
from worker.core.generations import PINS, pin, unpin
from worker.core.queueing import UploadRefused, check_upload_name
from worker.service.dropped import sweep
from worker.service.orphans import settle_orphaned_jobs

log = logging.getLogger(__name__)
CHECK_ID = re.compile(r"[0-9a-f]{32}")  # a check's pin is named by its id


def discard_uploads(storage, job: Job) -> None:
    """A job has ended (a search, a design edit, a check's chunk): its uploads are no longer
    needed. A chunk deletes its rows' drawings itself; this also covers a chunk whose worker
    died (failed as orphaned), whose drawings were otherwise kept until RESULT_TTL's sweep."""
    kwargs = job.kwargs or {}
    try:
        if "rows" in kwargs:  # a check's chunk: the contract checks each row's upload names
            names = chunk_uploads(CheckChunk.model_validate(kwargs))
        else:
            names = [check_upload_name(name) for side, name in kwargs.items()
                     if side in ("front", "back") and isinstance(name, str)]
        storage.delete_uploads(names)
    except (OSError, RedisError, UploadRefused, ValidationError) as exc:  # the sweep gets them
        log.warning("could not delete the uploads of %s: %s", job.id, exc)


def settle_dead_workers_jobs(connection: Redis, queues: list[Queue], own_name: str,
                             engine) -> None:
    """Put back the jobs a worker popped and never started (worker.service.dropped), and end
    those a dead worker left started (worker.service.orphans), their uploads deleted."""
    settings = engine.settings
    try:  # a key or reply it cannot read must not stop the worker serving
        sweep(connection, [queue.name for queue in queues], own_name, settings.job_timeout)
    except (RedisError, ValueError, NoSuchJobError) as exc:
        log.warning("could not sweep for dropped jobs: %s", exc)
    for queue in queues:
        try:  # nor must one job it cannot settle stop RQ's clean-up after this
            for job_id in settle_orphaned_jobs(queue, settings.result_ttl, own_name,
                                               settings.job_timeout, settings.features_dir):
                try:
                    discard_uploads(engine.storage, Job.fetch(job_id, connection=connection))
                except NoSuchJobError:
                    continue
        except Exception as exc:  # noqa: BLE001 - logged; the next maintenance tries again
            log.warning("could not settle the jobs of dead workers on %s: %s", queue.name, exc)


def keep_check_pins(engine, connection: Redis) -> None:
    """A check's pin of its catalogue version is renewed by each chunk as it starts, and let
    go of by the chunk that settles its last design. Renewed here too while the check is
    under way (its next chunk may wait past PIN_TTL_S behind searches: a later edit would
    then delete the version its first chunks compared with), and let go of where it is
    settled or gone otherwise (cancelled, its chunks lost, expired: no chunk of it unpins)."""
    settings = engine.settings
    try:
        owners = [p.name for p in (Path(settings.features_dir) / PINS).glob("[!.]*")]
    except OSError as exc:
        log.warning("could not read the checks' pins: %s", exc)
        return
    for check_id in filter(CHECK_ID.fullmatch, owners):  # not a worker's own (ReadingPin)
        try:  # read as a poll reads it: the designs of lost chunks settled
            state = read_check(connection, check_id, results=False, ttl=settings.result_ttl)
            if state is None or len(state.outcomes) >= len(state.names):
                unpin(settings.features_dir, check_id)
            else:
                generation = (Path(settings.features_dir) / PINS / check_id).read_text().strip()
                pin(settings.features_dir, check_id, generation)
        except FileNotFoundError:  # its last chunk let go of it meanwhile
            continue
        except (OSError, RedisError, ValueError) as exc:
            log.warning("could not keep the pin of check %s: %s", check_id, exc)


def delete_expired_files(engine) -> None:
    """Uploads and results past RESULT_TTL (worker.core.storage's sweep)."""
    try:
        removed = engine.storage.sweep(engine.settings.result_ttl)
    except (OSError, RedisError) as exc:
        log.warning("could not delete expired files: %s", exc)
        return
    if removed:
        log.info("deleted %d expired upload/result files", removed)
