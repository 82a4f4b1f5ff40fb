"""Offline indexing: `python -m worker.cli.index` builds a new generation of the index from
DATABASE_DIR/pairs.csv (banks, whitening, manifest, the list itself) and switches to it.
It holds the catalogue lock throughout, so an edit waits for it instead of being lost.

Images are decoded in a thread pool while the model runs on the previous batch. If any
image is unreadable, every failure is listed and the run exits non-zero without touching
the existing banks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from worker.core.bank import write_bank
from worker.core.catalogue import Catalogue, catalogue_csv, load_catalogue
from worker.core.generations import catalogue_lock
from worker.core.images import ImageRejected, load_image
from worker.core.settings import Settings
from worker.core.whitening import SHRINK, Whitening, learn_whitening
from worker.indexing.recovery import tidy
from worker.pipeline.precision import REPRESENTATIVE_IMAGES
from worker.pipeline.preprocess import preprocess_params, to_canvas, to_rgb
from worker.pipeline.thumbnails import write_thumbnail
from worker.pipeline.verdicts import thresholds_for

log = logging.getLogger(__name__)


class UnreadableImages(RuntimeError):
    """Some catalogue images could not be read; `failures` lists (path, reason)."""

    def __init__(self, failures: list[tuple[str, str]]):
        lines = "\n".join(f"  {path}: {reason}" for path, reason in failures)
        super().__init__(f"{len(failures)} catalogue image(s) could not be read:\n{lines}")
        self.failures = failures


def _prepared(catalogue: Catalogue, paths: list[str], max_pixels: int, trim: bool,
              thumbs_dir: Path | None, batch_size: int
              ) -> Iterator[list[tuple[str, np.ndarray | None, str | None]]]:
    """Per batch of paths: (path, (224, 224, 3) uint8 canvas or None, error or None) each, in
    order; writes each image's grid thumbnail on the way when `thumbs_dir` is given.

    A batch is decoded on both cores and only then handed to the model, which also uses both
    cores: the two take turns rather than compete for them (docs/performance.md)."""
    def load(rel: str):
        try:
            rgb = to_rgb(load_image(catalogue.image_path(rel), max_pixels))
            if thumbs_dir is not None:
                write_thumbnail(thumbs_dir, rel, rgb)
            return rel, to_canvas(rgb, trim), None
        except ImageRejected as exc:
            return rel, None, str(exc)
        except OSError as exc:  # missing file, permission denied
            return rel, None, exc.strerror or str(exc)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for start in range(0, len(paths), batch_size):
            yield list(pool.map(load, paths[start:start + batch_size]))


def extract_images(extractor, catalogue: Catalogue, batch_size: int = 16,
                   max_pixels: int = 40_000_000, progress: bool = True,
                   thumbs_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Every distinct image path -> (dim,) float32 unit descriptor. Raises UnreadableImages."""
    paths = list(dict.fromkeys([*catalogue.fronts, *catalogue.backs]))
    features: dict[str, np.ndarray] = {}
    failures: list[tuple[str, str]] = []
    bar = tqdm(total=len(paths), unit="img", desc="indexing", disable=not progress)
    for batch in _prepared(catalogue, paths, max_pixels, extractor.trim, thumbs_dir, batch_size):
        failures += [(rel, error) for rel, _, error in batch if error is not None]
        if not failures:  # after the first failure: only read on, to list every unreadable image
            canvases = np.stack([canvas for _, canvas, _ in batch])
            if len(batch) < batch_size:  # the last batch, padded: one traced graph for the run
                canvases = np.concatenate([canvases, np.repeat(canvases[-1:], batch_size - len(batch),
                                                               axis=0)])
            rows = extractor.extract(canvases)[:len(batch)]
            features.update(zip([rel for rel, _, _ in batch], rows, strict=True))
        bar.update(len(batch))
    bar.close()
    if failures:
        raise UnreadableImages(failures)
    return features


def quantise_on_catalogue(extractor, catalogue: Catalogue, max_pixels: int = 40_000_000,
                          count: int | None = None) -> int:
    """At int8: quantise the extractor's layers with `count` of the catalogue's canvases
    (evenly spread over its distinct images, prepared as for the banks) as the representative
    set; the number used (0 for a float extractor)."""
    if extractor.precision != "int8":
        return 0
    count = count or REPRESENTATIVE_IMAGES
    paths = list(dict.fromkeys([*catalogue.fronts, *catalogue.backs]))
    chosen = paths[::max(1, len(paths) // count)][:count]
    batch = next(_prepared(catalogue, chosen, max_pixels, extractor.trim, None, len(chosen)), [])
    canvases = [canvas for _, canvas, _ in batch if canvas is not None]
    if not canvases:  # nothing readable: extract_images lists the failures
        return 0
    start = time.perf_counter()
    extractor.quantise_on(np.stack(canvases))
    log.info("int8 model quantised on %d catalogue canvases in %.1f s", len(canvases),
             time.perf_counter() - start)
    return len(canvases)


def compute_banks(extractor, catalogue: Catalogue, batch_size: int = 16,
                  max_pixels: int = 40_000_000, progress: bool = True,
                  thumbs_dir: Path | None = None
                  ) -> tuple[np.ndarray, np.ndarray, Whitening | None]:
    """Front and back banks, (n_pairs, dim) float32 with unit rows, and the whitening learned
    on the catalogue's distinct images when the descriptor asks for one. At int8 the
    layers are first quantised on the catalogue (`quantise_on_catalogue`)."""
    quantise_on_catalogue(extractor, catalogue, max_pixels)
    features = extract_images(extractor, catalogue, batch_size, max_pixels, progress, thumbs_dir)
    whitening = None
    if extractor.whiten:
        paths = list(features)
        rows = np.stack([features[p] for p in paths])
        whitening = learn_whitening(rows, extractor.whiten, blocks=extractor.appearance)
        features = dict(zip(paths, whitening.apply(rows), strict=True))
    front = np.stack([features[p] for p in catalogue.fronts]).astype(np.float32)
    back = np.stack([features[p] for p in catalogue.backs]).astype(np.float32)
    return front, back, whitening


def build_index(settings: Settings, extractor, batch_size: int = 16,
                progress: bool = True) -> dict:
    """Extract the whole catalogue and switch to a new generation; returns its manifest."""
    with catalogue_lock(settings.features_dir):
        tidy(settings)
        return _build(settings, extractor, batch_size, progress)


def _build(settings: Settings, extractor, batch_size: int, progress: bool) -> dict:
    start = time.perf_counter()
    catalogue = load_catalogue(settings.database_dir)
    front, back, whitening = compute_banks(extractor, catalogue, batch_size,
                                           settings.max_image_pixels, progress,
                                           thumbs_dir=settings.features_dir)
    manifest = {
        "n_pairs": len(catalogue), "dim": int(front.shape[1]), "raw_dim": extractor.dim,
        "dtype": "float32",
        "whitening": None if whitening is None else {"dims": whitening.dim, "shrink": SHRINK,
                                                     "learned_on_images": len(set(
                                                         catalogue.fronts + catalogue.backs))},
        "descriptor": extractor.descriptor,
        "verdicts": thresholds_for(extractor.descriptor),
        "weights": {"id": extractor.weights_id, "fingerprint": extractor.weights_fingerprint},
        "precision": extractor.precision, "precision_reason": extractor.precision_reason,
        "quantised_model": quantised_info(extractor),
        "preprocess": preprocess_params(extractor.trim),
        "catalogue_fingerprint": catalogue.fingerprint(),
        "names": catalogue.names, "fronts": catalogue.fronts, "backs": catalogue.backs,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": round(time.perf_counter() - start, 2),
    }
    folder = write_bank(settings.features_dir, front, back, manifest, whitening,
                        catalogue_csv(catalogue.names, catalogue.fronts, catalogue.backs),
                        None if extractor.quantised is None else extractor.quantised.blob)
    return {**manifest, "generation": folder.name}


def quantised_info(extractor) -> dict | None:
    """What the manifest says of an int8 model (its file's sha256 is under "sha256")."""
    model = extractor.quantised
    if extractor.precision != "int8" or model is None:
        return None
    return {"sha256": model.sha256, "bytes": len(model.blob), "layers": list(extractor.layers),
            "weights": "int8, per output channel", "activations": "int8, ranges from "
            f"{model.calibrated_on} catalogue canvases", "float": "the input "
            "(quantised on entry) and the layer outputs (dequantised), then the pooling"}
