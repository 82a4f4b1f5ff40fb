"""A chunk of a distributed index build, as a queue job (worker/indexing/distributed.py):
extracted with this worker's model, written into the shared chunk cache. At int8 the model
is the build's own: the coordinator quantises it and publishes it beside the chunks, and a
worker whose weights, descriptor and preprocessing match runs it (the one it searches with
is left alone)."""

from __future__ import annotations

import time

from rq import Queue, get_current_job

from worker.core.catalogue import Catalogue
from worker.indexing.chunks import Chunk, ChunkCache, model_fingerprint, run_chunk
from worker.service.engine import current

HOLD_POLL_S = 0.05
_published: tuple | None = None  # (model, this worker's extractor, it running that model)


class ChunkRefused(RuntimeError):
    """The chunk was planned for another model than this worker's."""


def extract_chunk(model: str, key: str, paths: list[str], hashes: list[str],
                  hold: str | None = None) -> dict:
    """Extract catalogue images `paths` (whose bytes must have sha256 `hashes`) into
    FEATURES_DIR's chunk cache; returns {"key", "images", "failures": [(path, reason)]}.
    `hold`: tests only: wait until this Redis key exists first (the chunk held, on purpose)."""
    engine = current()
    settings = engine.settings
    cache = ChunkCache(settings.features_dir, model)
    extractor = extractor_for(engine.extractor, key, cache)
    if hold is not None:
        connection = get_current_job().connection
        while not connection.exists(hold):
            time.sleep(HOLD_POLL_S)
    catalogue = Catalogue(settings.database_dir.resolve(), [], [], [])
    try:
        failures = run_chunk(extractor, catalogue, Chunk(key, paths, hashes), cache,
                             settings.max_image_pixels, settings.features_dir)
    finally:
        release_when_idle(get_current_job())
    return {"key": key, "images": len(paths), "failures": failures}


def release_when_idle(job) -> None:
    """Forget the build's model once no chunk waits on `job`'s queue (None: not a queue job):
    its interpreter and buffers (367 MiB after a batch of 16) are freed with it."""
    global _published
    if job is None:
        _published = None
    else:
        release_if_no_chunks(job.connection, job.origin)


def release_if_no_chunks(connection, queue_name: str) -> None:
    """`release_when_idle` for queue `queue_name`; a worker's maintenance asks it too (one
    whose last chunk ended while others waited, then took searches, kept the model)."""
    global _published
    if _published is not None and not Queue(queue_name, connection=connection).count:
        _published = None


def extractor_for(extractor, key: str, cache: ChunkCache):
    """`extractor` if its fingerprint is the cache's model; at int8, the build's published
    model run by it when that makes the fingerprint; else ChunkRefused saying what differs."""
    global _published
    model, mine = cache.model, model_fingerprint(extractor)
    if model == mine:
        return extractor
    if _published is not None and _published[:2] == (model, extractor):
        return _published[2]
    blob = cache.published_model() if extractor.precision == "int8" else None
    if blob is not None:
        theirs = extractor.with_quantised(blob)
        if model_fingerprint(theirs) == model:
            _published = (model, extractor, theirs)  # one build at a time: its interpreter only
            return theirs
    raise ChunkRefused(f"chunk {key} is for model {model}, this worker's is {mine} (weights "
                       f"{extractor.weights_id} {extractor.weights_fingerprint}, descriptor "
                       f"{extractor.descriptor}, precision {extractor.precision}): set "
                       "VGG16_WEIGHTS, DESCRIPTOR and PRECISION as on the machine that runs "
                       "the build (PRECISION by name: auto picks by each machine's CPU)")
