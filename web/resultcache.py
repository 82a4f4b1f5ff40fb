"""The result cache: an identical resubmission (same bytes, same options, same index) of a
finished search is answered at once, without recomputing, by a *new* search of its own: the
finished result and its grid copied under a fresh id. A second uploader never learns another
client's search id; that the answer is finished at once does say that the same drawings were
searched (RESULT_CACHE=0 turns the cache off)."""

from __future__ import annotations

import hashlib

from flask import current_app
from redis.exceptions import RedisError
from rq.job import Job

from web.searches import SearchStatus, fetch_search, search_status
from worker.core.bank import BankError
from worker.core.contract import SIDES, SearchOptions
from worker.core.generations import current_id
from worker.core.queueing import JOB_FUNC, query_canvas_name
from worker.core.readcache import read_manifest_cached

KEY_PREFIX = "pairsearch:cache:"


def cache_key(sides: dict[str, bytes], options: SearchOptions, settings) -> str | None:
    """Same bytes, same options, same index -> same key; None when there is no index."""
    try:
        manifest = read_manifest_cached(settings.features_dir)
    except BankError:
        return None
    digest = hashlib.sha256(repr((options, manifest.get("created"),
                                  manifest.get("sha256"))).encode())
    for side in SIDES:
        digest.update(side.encode() + hashlib.sha256(sides[side]).digest() if side in sides
                      else b"-")
    return f"{KEY_PREFIX}{digest.hexdigest()}"


def remember_search(key: str | None, search_id: str, ttl: int) -> None:
    """Let an identical resubmission find queued search `search_id`. A Redis error costs only
    the cache: the search is queued, and its uploads are its job's (deleting them as for a
    refused search left a job that failed on them)."""
    if key is None:
        return
    try:
        current_app.extensions["redis"].set(key, search_id, ex=ttl)
    except RedisError as exc:
        current_app.logger.warning("could not keep search %s in the result cache: %s",
                                   search_id, exc)


def finished_search(key: str | None, features_dir) -> Job | None:
    """The finished search with this key whose grid is still stored, if any (a queued or
    running one is not reused: the new search is queued as any other), and that searched the
    catalogue version the key was made for: a worker that could not load a new index serves
    the one before, and its result must not be kept as the new one's."""
    if key is None:
        return None
    search_id = current_app.extensions["redis"].get(key)
    job = None if search_id is None else fetch_search(search_id.decode())
    if job is None or search_status(job) != SearchStatus.FINISHED:
        return None
    result = job.return_value()
    try:
        current = current_id(features_dir)
    except (OSError, UnicodeDecodeError):  # which version is current cannot be told: search
        return None
    if not isinstance(result, dict) or result.get("catalogue") != current:
        return None
    return job


def copy_search(source: Job, search_id: str, settings) -> bool:
    """Make `search_id` a finished search with `source`'s results and a copy of its grid;
    False if the source's result or grid is gone by now (then search as usual)."""
    result = source.return_value()
    storage = current_app.extensions["storage"]
    grid = storage.read_result(f"{source.id}.jpg")
    if not isinstance(result, dict) or grid is None:
        return False
    storage.put_result(f"{search_id}.jpg", grid)
    for side in SIDES:  # what its match views compare
        if (query := storage.read_result(query_canvas_name(source.id, side))) is not None:
            storage.put_result(query_canvas_name(search_id, side), query)
    redis = current_app.extensions["redis"]
    job = Job.create(JOB_FUNC, id=search_id, connection=redis, origin=settings.queue_name,
                     result_ttl=settings.result_ttl, ttl=settings.result_ttl,
                     failure_ttl=settings.result_ttl, description="paired design search",
                     meta={"stage": source.meta.get("stage"), "cached": True})
    # the original's timings (its queue wait) would tell when and how it ran: not copied
    job._result = {**result, "image": f"{search_id}.jpg", "timings": {}}
    with redis.pipeline() as pipe:
        job._handle_success(settings.result_ttl, pipeline=pipe)
        job.cleanup(settings.result_ttl, pipeline=pipe, remove_from_queue=False)
        pipe.execute()
    job.save_meta()  # the stage; _handle_success saves the job without its meta
    return True
