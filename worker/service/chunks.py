"""A chunk of a distributed index build, as a queue job (worker/indexing/distributed.py):
extracted with this worker's model, written into the shared chunk cache."""

from __future__ import annotations

import time

from rq import get_current_job

from worker.core.catalogue import Catalogue
from worker.indexing.chunks import Chunk, ChunkCache, model_fingerprint, run_chunk
from worker.service.engine import current

HOLD_POLL_S = 0.05


class ChunkRefused(RuntimeError):
    """The chunk was planned for another model than this worker's."""


def extract_chunk(model: str, key: str, paths: list[str], hashes: list[str],
                  hold: str | None = None) -> dict:
    """Extract catalogue images `paths` (whose bytes must have sha256 `hashes`) into
    FEATURES_DIR's chunk cache; returns {"key", "images", "failures": [(path, reason)]}.
    `hold`: tests only: wait until this Redis key exists first (the chunk held, on purpose)."""
    engine = current()
    mine = model_fingerprint(engine.extractor)
    if model != mine:
        ex = engine.extractor
        raise ChunkRefused(f"chunk {key} is for model {model}, this worker's is {mine} (weights "
                           f"{ex.weights_id} {ex.weights_fingerprint}, descriptor {ex.descriptor}, "
                           f"precision {ex.precision}): set VGG16_WEIGHTS, DESCRIPTOR and "
                           "PRECISION as on the machine that runs the build")
    if hold is not None:
        connection = get_current_job().connection
        while not connection.exists(hold):
            time.sleep(HOLD_POLL_S)
    settings = engine.settings
    catalogue = Catalogue(settings.database_dir.resolve(), [], [], [])
    failures = run_chunk(engine.extractor, catalogue, Chunk(key, paths, hashes),
                         ChunkCache(settings.features_dir, mine), settings.max_image_pixels,
                         settings.features_dir)
    return {"key": key, "images": len(paths), "failures": failures}
