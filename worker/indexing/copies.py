"""The synthetic copies a descriptor with `copies` learns its whitening from.

Each chosen catalogue image is prepared as for the banks, changed as a copier would change it
(worker/pipeline/copies.py, seeded by the image's sha256, so every build makes the same copy)
and run through the model. The rows are kept in the chunk cache beside the model's own
(`chunks/<model>-copies/`): a resumed or incremental build extracts only copies it lacks. In
a distributed build the coordinator extracts them itself.
"""

from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm

from worker.core.catalogue import Catalogue
from worker.indexing.chunks import (
    ChunkCache,
    UnreadableImages,
    extract_chunk,
    plan_chunks,
    run_chunk,
)
from worker.pipeline.copies import synthetic_copy

log = logging.getLogger(__name__)
COPY_IMAGES = 2000  # copies of at most this many distinct images: bounded cost on any catalogue
SUFFIX = "-copies"


def chosen(hashes: dict[str, str], limit: int = COPY_IMAGES) -> dict[str, str]:
    """sha256 -> a path with that content, for the `limit` smallest hashes: a sample that an
    edit of a few rows leaves almost as it was, so their cached copies are used again."""
    first = {}
    for rel, digest in hashes.items():
        first.setdefault(digest, rel)
    return {digest: first[digest] for digest in sorted(first)[:limit]}


def copy_of(extractor):
    """The transform run on each chosen canvas: (canvas, sha256) -> the copy's canvas."""
    return lambda canvas, digest: synthetic_copy(canvas, int(digest[:15], 16), extractor.trim)


def cached_copy_rows(extractor, catalogue: Catalogue, hashes: dict[str, str], cache: ChunkCache,
                     max_pixels: int, chunk_images: int, batch_size: int = 16,
                     progress: bool = True) -> tuple[list[str], np.ndarray]:
    """(a path of each copied image, (m, raw dim) rows of their copies), extracting the copies
    `cache`'s companion folder lacks. Raises UnreadableImages."""
    copies = ChunkCache(cache.root.parent, cache.model + SUFFIX)
    wanted = chosen(hashes)
    todo = plan_chunks(copies.model, {rel: d for d, rel in wanted.items()}, copies.hashes(),
                       chunk_images)
    failures = []
    bar = tqdm(total=sum(len(c.paths) for c in todo), unit="img", desc="copies",
               disable=not progress or not todo)
    for chunk in todo:
        failures += run_chunk(extractor, catalogue, chunk, copies, max_pixels, None, batch_size,
                              decode_only=bool(failures), transform=copy_of(extractor))
        bar.update(len(chunk.paths))
    bar.close()
    if failures:
        raise UnreadableImages(failures)
    rows = copies.rows(set(wanted), extractor.dim)
    digests = [d for d in wanted if d in rows]
    try:
        copies.prune(set(wanted), extractor.dim, chunk_images, others=False)
    except OSError as exc:  # only disk space: the next build prunes
        log.warning("could not prune the copies' cache: %s", exc)
    return [wanted[d] for d in digests], np.stack([rows[d] for d in digests])


def copy_rows_here(extractor, catalogue: Catalogue, hashes: dict[str, str],
                   max_pixels: int = 40_000_000, batch_size: int = 16
                   ) -> tuple[list[str], np.ndarray]:
    """As `cached_copy_rows`, without a cache (the benchmarks' in-process banks)."""
    wanted = chosen(hashes)
    chunks = plan_chunks(SUFFIX, {rel: d for d, rel in wanted.items()}, set(), len(wanted))
    if not chunks:
        return [], np.zeros((0, extractor.dim), np.float32)
    chunk = chunks[0]  # every chosen image in one chunk
    rows, _, failures = extract_chunk(extractor, catalogue, chunk, max_pixels, None, batch_size,
                                      transform=copy_of(extractor))
    if failures:
        raise UnreadableImages(failures)
    return chunk.paths, rows
