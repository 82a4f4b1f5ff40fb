"""PRECISION=int8 at index time: the layers quantised for the index, and what the manifest
says of the model."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


def quantise_for_index(extractor) -> bool:
    """At int8: quantise the extractor's layers for the index being built (its activations
    take each image's range at run time: no representative set); False for a float one."""
    if extractor.precision != "int8":
        return False
    start = time.perf_counter()
    extractor.quantise()
    log.info("int8 model quantised in %.1f s", time.perf_counter() - start)
    return True


def quantised_info(extractor) -> dict | None:
    """What the manifest says of an int8 model (its file's sha256 is under "sha256")."""
    model = extractor.quantised
    if extractor.precision != "int8" or model is None:
        return None
    return {"sha256": model.sha256, "bytes": len(model.blob), "layers": list(extractor.layers),
            "weights": "int8, per output channel", "activations": "int8, each image's "
            "own range at run time (dynamic range)", "float": "between the "
            "layers: each convolution quantises its input per image and dequantises its "
            "output; bias, ReLU and max pooling, then the descriptor's pooling"}
