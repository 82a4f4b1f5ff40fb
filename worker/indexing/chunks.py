"""Chunks: the unit of work of an index build (their cache: worker.indexing.chunkcache).

A build hashes the bytes of every catalogue image, takes the rows it already has from the
chunk cache (`FEATURES_DIR/chunks/<model>/<key>.npz`), and extracts only the images it lacks,
INDEX_CHUNK_PAIRS pairs' worth (2 images a pair) per chunk; each chunk is written aside and
renamed as soon as it is done, here or by a worker of a distributed build. So a build that
stopped resumes from its finished chunks, and after pairs.csv changes only new or changed
images are extracted. `<model>` is the model fingerprint (weights, descriptor, precision,
preprocessing, int8's quantised model, published beside its chunks for a distributed build's
workers): rows of another model are never mixed in. A chunk's key is the hash of its model
and its images' hashes. The rows are the extractor's output before whitening.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worker.core.catalogue import Catalogue
from worker.core.images import ImageRejected, load_image
from worker.indexing.chunkcache import ChunkCache, chunk_key
from worker.pipeline.appearance import is_sketch
from worker.pipeline.preprocess import preprocess_params, to_canvas, to_rgb
from worker.pipeline.thumbnails import write_thumbnail

log = logging.getLogger(__name__)
Failure = tuple[str, str]  # (catalogue path, reason)
Transform = Callable[[np.ndarray, str], np.ndarray]  # (canvas, its image's sha256) -> canvas


class UnreadableImages(RuntimeError):
    """Some catalogue images could not be read; `failures` lists (path, reason)."""

    def __init__(self, failures: list[Failure]):
        lines = "\n".join(f"  {path}: {reason}" for path, reason in failures)
        super().__init__(f"{len(failures)} catalogue image(s) could not be read:\n{lines}")
        self.failures = failures


class ChunkMissing(RuntimeError):
    """A chunk reported done is not in this FEATURES_DIR (workers must share it), or its rows
    could not be read when the banks were made."""


@dataclass(frozen=True)
class Chunk:
    """Images to extract together: one path for each distinct content (`hashes`: sha256 hex)."""

    key: str
    paths: list[str]
    hashes: list[str]


ROWS_VERSION = 1  # raise it with a change to what a descriptor's rows hold (cached ones go)


def model_fingerprint(extractor) -> str:
    """What makes two extractors' rows the same: weights, descriptor, its rows' width and
    version (a descriptor redefined under its name: its old chunks would read as held and be
    skipped as misshapen, so that the build failed the same way each time), precision,
    preprocessing and, at int8, the quantised model (its sha256)."""
    text = json.dumps([extractor.weights_fingerprint, extractor.descriptor, extractor.precision,
                       preprocess_params(extractor.trim), getattr(extractor, "model_id", None),
                       getattr(extractor, "dim", None), ROWS_VERSION], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_images(catalogue: Catalogue, paths: list[str]) -> tuple[dict[str, str], list[Failure]]:
    """Path -> sha256 of its bytes, for every path that can be read; the rest as failures."""
    def read(rel: str) -> tuple[str, str | None, str | None]:
        try:
            return rel, content_hash(catalogue.image_path(rel).read_bytes()), None
        except OSError as exc:  # missing file, permission denied
            return rel, None, exc.strerror or str(exc)

    with ThreadPoolExecutor(max_workers=4) as pool:  # hashlib lets go of the GIL
        results = list(pool.map(read, paths))
    return ({rel: digest for rel, digest, _ in results if digest is not None},
            [(rel, error) for rel, _, error in results if error is not None])


def plan_chunks(model: str, hashes: dict[str, str], have: set[str], chunk_images: int) -> list[Chunk]:
    """The images whose content is not in `have`, each content once, in catalogue order."""
    todo = {digest: rel for rel, digest in reversed(hashes.items()) if digest not in have}
    todo = dict(reversed(todo.items()))  # first path of each content, in catalogue order
    digests = list(todo)
    return [Chunk(chunk_key(model, part), [todo[d] for d in part], part)
            for part in (digests[i:i + chunk_images] for i in range(0, len(digests), chunk_images))]


def _load(catalogue: Catalogue, rel: str, digest: str | None, max_pixels: int, trim: bool,
          thumbs_dir: Path | None) -> tuple[str, np.ndarray | None, str | None]:
    """(path, (224, 224, 3) uint8 canvas or None, error or None); the thumbnail on the way."""
    try:
        data = catalogue.image_path(rel).read_bytes()
        if digest is not None and content_hash(data) != digest:
            return rel, None, "changed while indexing (or this worker's copy differs)"
        rgb = to_rgb(load_image(data, max_pixels))
        canvas = to_canvas(rgb, trim)
    except ImageRejected as exc:
        return rel, None, str(exc)
    except OSError as exc:  # missing file, permission denied
        return rel, None, exc.strerror or str(exc)
    if thumbs_dir is not None:  # FEATURES_DIR full or not writable: the build stops, saying so
        write_thumbnail(thumbs_dir, rel, rgb)  # (it was each drawing's "unreadable" in turn)
    return rel, canvas, None


def prepared(catalogue: Catalogue, paths: list[str], max_pixels: int, trim: bool,
             thumbs_dir: Path | None, batch_size: int, hashes: list[str] | None = None
             ) -> Iterator[list[tuple[str, np.ndarray | None, str | None]]]:
    """Per batch of paths: (path, canvas or None, error or None) each, in order; an image
    whose bytes no longer have its expected hash (`hashes`) is an error.

    A batch is decoded on both cores and only then handed to the model, which also uses both
    cores: the two take turns rather than compete for them (docs/performance.md)."""
    digests = hashes or [None] * len(paths)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for start in range(0, len(paths), batch_size):
            batch = range(start, min(start + batch_size, len(paths)))
            yield list(pool.map(lambda i: _load(catalogue, paths[i], digests[i], max_pixels, trim,
                                                thumbs_dir), batch))


def extract_batch(extractor, canvases: list[np.ndarray], batch_size: int) -> np.ndarray:
    """(n <= batch_size) canvases -> (n, dim) rows; a short batch is padded to the batch size
    so that a whole build runs one traced graph."""
    stacked = np.stack(canvases)
    if len(canvases) < batch_size:
        stacked = np.concatenate([stacked, np.repeat(stacked[-1:], batch_size - len(canvases),
                                                     axis=0)])
    return extractor.extract(stacked)[:len(canvases)]


def extract_chunk(extractor, catalogue: Catalogue, chunk: Chunk, max_pixels: int,
                  thumbs_dir: Path | None, batch_size: int = 16, decode_only: bool = False,
                  transform: Transform | None = None
                  ) -> tuple[np.ndarray | None, np.ndarray | None, list[Failure]]:
    """A chunk's (n, raw dim) rows and (n,) int8 sketch flags (`appearance.is_sketch` of the
    canvas the model sees; None with a `transform`, whose canvases are not their contents'),
    or None for both when one of its images cannot be read (then every image is still
    decoded, to list them all) or with `decode_only`; and the failures.
    `transform(canvas, sha256)` changes each canvas before the model sees it."""
    rows, flags, failures, done = [], [], [], 0
    for batch in prepared(catalogue, chunk.paths, max_pixels, extractor.trim, thumbs_dir,
                          batch_size, chunk.hashes):
        failures += [(rel, error) for rel, _, error in batch if error is not None]
        digests, done = chunk.hashes[done:done + len(batch)], done + len(batch)
        if not failures and not decode_only:
            canvases = [canvas for _, canvas, _ in batch]
            if transform is None:
                flags += map(is_sketch, canvases)
            else:
                canvases = [transform(c, d) for c, d in zip(canvases, digests, strict=True)]
            rows.append(extract_batch(extractor, canvases, batch_size))
    if not rows or failures:
        return None, None, failures
    return np.vstack(rows), None if transform is not None else np.array(flags, np.int8), failures


def run_chunk(extractor, catalogue: Catalogue, chunk: Chunk, cache: ChunkCache, max_pixels: int,
              thumbs_dir: Path | None, batch_size: int = 16, decode_only: bool = False,
              transform: Transform | None = None) -> list[Failure]:
    """`extract_chunk`, its rows and sketch flags stored in `cache` when there are any."""
    rows, sketched, failures = extract_chunk(extractor, catalogue, chunk, max_pixels, thumbs_dir,
                                             batch_size, decode_only, transform)
    if rows is not None:
        cache.write(chunk.key, chunk.hashes, rows, sketched)
    return failures
