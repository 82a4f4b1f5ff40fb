"""Offline indexing: `python -m worker.cli.index` builds a new generation of the index from
DATABASE_DIR/pairs.csv (banks, whitening, manifest, the list itself) and switches to it.
It holds the catalogue lock throughout, so an edit waits for it instead of being lost.

Only images whose content the chunk cache lacks are extracted (worker/indexing/chunks.py:
a stopped build resumes, an edited pairs.csv costs only its new images), here or, with
`--distributed`, by the running workers (worker/indexing/distributed.py); either way the
rows meet in the cache and the same code learns the whitening and writes the banks. A batch
is decoded on both cores, then run through the model. If any image is unreadable, every
failure is listed and the run exits non-zero without touching the existing banks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from worker.core.bank import write_bank
from worker.core.catalogue import Catalogue, catalogue_csv, designs_to_index
from worker.core.duplicates import DUPLICATES
from worker.core.generations import carried_edits, catalogue_lock, current_manifest
from worker.core.images import load_image
from worker.core.settings import Settings
from worker.core.whitening import SHRINK, Whitening
from worker.indexing.chunks import (
    Chunk,
    ChunkCache,
    ChunkMissing,
    UnreadableImages,
    extract_batch,
    hash_images,
    model_fingerprint,
    plan_chunks,
    prepared,
    run_chunk,
)
from worker.indexing.copies import cached_copy_rows, copy_rows_here
from worker.indexing.projection import banks_from_cache, banks_from_features
from worker.indexing.quantising import quantise_for_index, quantised_info
from worker.indexing.recovery import tidy
from worker.indexing.sketches import pair_sketches
from worker.pipeline.ann import stored_index
from worker.pipeline.duplicates import find_duplicates
from worker.pipeline.exact import exact_match_for
from worker.pipeline.preprocess import preprocess_params, to_rgb
from worker.pipeline.thumbnails import thumbnail_path, write_thumbnail
from worker.pipeline.verdicts import duplicate_thresholds_for, thresholds_for

log = logging.getLogger(__name__)


def extract_images(extractor, catalogue: Catalogue, batch_size: int = 16,
                   max_pixels: int = 40_000_000, progress: bool = True,
                   thumbs_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Every distinct image path -> (dim,) float32 unit descriptor, without the chunk cache
    (the benchmarks' in-process banks). Raises UnreadableImages."""
    paths = list(dict.fromkeys([*catalogue.fronts, *catalogue.backs]))
    features: dict[str, np.ndarray] = {}
    failures: list[tuple[str, str]] = []
    bar = tqdm(total=len(paths), unit="img", desc="indexing", disable=not progress)
    for batch in prepared(catalogue, paths, max_pixels, extractor.trim, thumbs_dir, batch_size):
        failures += [(rel, error) for rel, _, error in batch if error is not None]
        if not failures:  # after the first failure: only read on, to list every unreadable image
            rows = extract_batch(extractor, [canvas for _, canvas, _ in batch], batch_size)
            features.update(zip([rel for rel, _, _ in batch], rows, strict=True))
        bar.update(len(batch))
    bar.close()
    if failures:
        raise UnreadableImages(failures)
    return features


def compute_banks(extractor, catalogue: Catalogue, batch_size: int = 16,
                  max_pixels: int = 40_000_000, progress: bool = True,
                  thumbs_dir: Path | None = None
                  ) -> tuple[np.ndarray, np.ndarray, Whitening | None]:
    """`banks_from_features` of the whole catalogue extracted in this process, no cache (at
    int8 the layers are first quantised)."""
    quantise_for_index(extractor)
    features = extract_images(extractor, catalogue, batch_size, max_pixels, progress, thumbs_dir)
    copies = None
    if extractor.copies and extractor.whiten:
        hashes, failures = hash_images(catalogue, list(features))
        if failures:
            raise UnreadableImages(failures)
        copies = copy_rows_here(extractor, catalogue, hashes, max_pixels, batch_size)
    return banks_from_features(extractor, catalogue, features, copies)


def build_index(settings: Settings, extractor, batch_size: int = 16, progress: bool = True,
                distributed: bool = False, hold: str | None = None,
                still_needed: Callable[[], str | None] | None = None) -> dict | None:
    """Index the catalogue and switch to a new generation; returns its manifest. Images
    already in the chunk cache are not extracted again; the rest are extracted here, or with
    `distributed` by the running workers (`hold`: tests only, see distributed.py). Given
    `still_needed` (why to build, None: no need), judged once the lock is held: None, nothing
    built, when a build that held it made the index current."""
    with catalogue_lock(settings.features_dir, holder="build"):
        tidy(settings)
        if still_needed is not None and still_needed() is None:
            return None
        return _build(settings, extractor, batch_size, progress, distributed, hold)


@dataclass
class Gathered:
    """Every distinct image's content in the chunk cache, and where they came from."""

    hashes: dict[str, str]  # path -> sha256 of its bytes
    extracted: int  # distinct contents extracted by this build
    cache: ChunkCache

    @property
    def contents(self) -> set[str]:
        """The sha256 of every image the catalogue uses."""
        return set(self.hashes.values())


def gather_features(settings: Settings, extractor, catalogue: Catalogue, batch_size: int,
                    progress: bool, distributed: bool = False, hold: str | None = None
                    ) -> Gathered:
    """The images' rows in the chunk cache, the missing ones extracted first (here, or by
    workers). Raises UnreadableImages listing every image that cannot be read."""
    paths = list(dict.fromkeys([*catalogue.fronts, *catalogue.backs]))
    hashes, failures = hash_images(catalogue, paths)
    cache = ChunkCache(settings.features_dir, model_fingerprint(extractor))
    chunks = plan_chunks(cache.model, hashes, cache.hashes(), 2 * settings.index_chunk_pairs)
    if distributed and chunks and not failures:
        from worker.indexing.distributed import extract_distributed

        if extractor.quantised is not None:  # the workers extract with this build's int8 model
            cache.publish_model(extractor.quantised.blob)
        failures += extract_distributed(settings, cache, chunks, progress, hold)
    else:
        failures += _extract_here(settings, extractor, catalogue, cache, chunks, batch_size,
                                  progress, bool(failures))
    if failures:
        raise UnreadableImages(failures)
    lost = set(hashes.values()) - cache.held()
    if lost:  # a worker wrote its chunk to a FEATURES_DIR this machine does not see
        raise ChunkMissing(f"{len(lost)} extracted image(s) are not in {cache.folder}: every "
                           "worker of a distributed build must share this FEATURES_DIR")
    extracted = {rel for chunk in chunks for rel in chunk.paths}
    refresh_thumbnails(catalogue, [p for p in paths if p not in extracted], settings)
    return Gathered(hashes, len(extracted), cache)


def _extract_here(settings: Settings, extractor, catalogue: Catalogue, cache: ChunkCache,
                  chunks: list[Chunk], batch_size: int, progress: bool, failed: bool
                  ) -> list[tuple[str, str]]:
    """Extract chunk by chunk, each stored as soon as it is done; after a failure the rest
    are only decoded, to list every unreadable image."""
    failures: list[tuple[str, str]] = []
    bar = tqdm(total=sum(len(c.paths) for c in chunks), unit="img", desc="indexing",
               disable=not progress)
    for chunk in chunks:
        failures += run_chunk(extractor, catalogue, chunk, cache, settings.max_image_pixels,
                              settings.features_dir, batch_size, decode_only=failed or bool(failures))
        bar.update(len(chunk.paths))
    bar.close()
    return failures


def refresh_thumbnails(catalogue: Catalogue, paths: list[str], settings: Settings) -> None:
    """Write the thumbnails that are missing or older than their image (an image whose rows
    came from the cache was not decoded by this build). Older than its inode's change time:
    a drawing renamed into place or restored with its old mtime (`cp -p`) changed it."""
    def refresh(rel: str) -> None:
        thumb = thumbnail_path(settings.features_dir, rel)
        try:
            if thumb.stat().st_mtime_ns >= catalogue.image_path(rel).stat().st_ctime_ns:
                return
        except FileNotFoundError:
            pass
        write_thumbnail(settings.features_dir, rel,
                        to_rgb(load_image(catalogue.image_path(rel), settings.max_image_pixels)))

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(refresh, paths))


def _build(settings: Settings, extractor, batch_size: int, progress: bool, distributed: bool,
           hold: str | None) -> dict:
    start = time.perf_counter()
    catalogue = designs_to_index(settings.database_dir)
    quantise_for_index(extractor)
    gathered = gather_features(settings, extractor, catalogue, batch_size, progress,
                               distributed, hold)
    copies = None
    if extractor.copies and extractor.whiten:
        copies = cached_copy_rows(extractor, catalogue, gathered.hashes, gathered.cache,
                                  settings.max_image_pixels, 2 * settings.index_chunk_pairs,
                                  batch_size, progress)
    front, back, whitening = banks_from_cache(extractor, catalogue, gathered.hashes,
                                              gathered.cache, copies)
    sketched, share = pair_sketches(catalogue, gathered.hashes, gathered.cache,
                                    settings.max_image_pixels, extractor.trim, progress)
    listing = duplicate_thresholds_for(extractor.descriptor)  # the list's own, on that score
    # listed once per generation, here and by edits: the web reads them, never the banks
    duplicates = find_duplicates(front, back, listing, settings.search_ann_min_pairs,
                                 sketched=sketched)
    manifest = {
        "n_pairs": len(catalogue), "dim": int(front.shape[1]), "raw_dim": extractor.dim,
        "dtype": "float32", "whitening": None if whitening is None else {
            "dims": whitening.dim, "shrink": SHRINK, "learned_on_images": len(gathered.hashes),
            "synthetic_copies": 0 if copies is None else len(copies[0])},
        "descriptor": extractor.descriptor, "duplicates": duplicates.summary(listing),
        "verdicts": thresholds_for(extractor.descriptor),  # the plain score's
        "exact_match": exact_match_for(extractor.descriptor),
        "sketch_share": share,
        "weights": {"id": extractor.weights_id, "fingerprint": extractor.weights_fingerprint,
                    "file": extractor.weights_file},
        "precision": extractor.precision, "precision_reason": extractor.precision_reason,
        "quantised_model": quantised_info(extractor),
        "preprocess": preprocess_params(extractor.trim),
        "catalogue_fingerprint": catalogue.fingerprint(),
        # `landed` sees edits past a build
        "recent_edits": carried_edits(current_manifest(settings.features_dir)),
        "names": catalogue.names, "fronts": catalogue.fronts, "backs": catalogue.backs,
        "images": {"extracted": gathered.extracted,
                   "reused": len(gathered.contents) - gathered.extracted,
                   "distributed": distributed, "model": gathered.cache.model},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": round(time.perf_counter() - start, 2),
    }
    coarse, manifest["coarse_index"] = stored_index(front, back, settings.search_ann_min_pairs)
    folder = write_bank(settings.features_dir, front, back, manifest, whitening,
                        catalogue_csv(catalogue.names, catalogue.fronts, catalogue.backs,
                                      catalogue.extra),
                        {DUPLICATES: duplicates.to_bytes(), **coarse},
                        None if extractor.quantised is None else extractor.quantised.blob)
    try:
        gathered.cache.prune(gathered.contents, extractor.dim, 2 * settings.index_chunk_pairs)
    except OSError as exc:  # the switch is done; the next build prunes
        log.warning("could not prune the chunk cache: %s", exc)
    return {**manifest, "generation": folder.name}
