"""PRECISION=int8 at index time: the layers quantised on the catalogue's own canvases, and
what the manifest says of the model."""

from __future__ import annotations

import logging
import time

import numpy as np

from worker.core.catalogue import Catalogue
from worker.indexing.chunks import prepared
from worker.pipeline.precision import REPRESENTATIVE_IMAGES

log = logging.getLogger(__name__)


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
    batch = next(prepared(catalogue, chosen, max_pixels, extractor.trim, None, len(chosen)), [])
    canvases = [canvas for _, canvas, _ in batch if canvas is not None]
    if not canvases:  # nothing readable: extract_images lists the failures
        return 0
    start = time.perf_counter()
    extractor.quantise_on(np.stack(canvases))
    log.info("int8 model quantised on %d catalogue canvases in %.1f s", len(canvases),
             time.perf_counter() - start)
    return len(canvases)


def quantised_info(extractor) -> dict | None:
    """What the manifest says of an int8 model (its file's sha256 is under "sha256")."""
    model = extractor.quantised
    if extractor.precision != "int8" or model is None:
        return None
    return {"sha256": model.sha256, "bytes": len(model.blob), "layers": list(extractor.layers),
            "weights": "int8, per output channel", "activations": "int8, ranges from "
            f"{model.calibrated_on} catalogue canvases", "float": "the input "
            "(quantised on entry) and the layer outputs (dequantised), then the pooling"}
