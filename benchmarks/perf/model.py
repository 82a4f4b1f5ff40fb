"""`model`: the forward pass alone (FeatureExtractor.extract) per batch size; and the model
alone on query pairs for `e2e`, the floor of a search."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.perf.report import emit, fmt, ints, md_table, preamble

if TYPE_CHECKING:
    from benchmarks.perf.catalogue import QueryImages


def time_extract(extractor, batches: Sequence[np.ndarray], calls: int) -> list[float]:
    """Seconds per `extractor.extract` call, cycling through `batches`, after two warm-ups."""
    extractor.extract(batches[0])
    extractor.extract(batches[0])
    times = []
    for i in range(calls):
        start = time.perf_counter()
        extractor.extract(batches[i % len(batches)])
        times.append(time.perf_counter() - start)
    return times


def model_alone_ms(args: argparse.Namespace, images: QueryImages, calls: int,
                   features_dir: Path) -> list[float]:
    """The model alone on query pairs (batch of 2), in this process, with the service idle:
    the floor of a search, measured in the same run as the searches (at int8 with the
    quantised model of the index in `features_dir`, as the worker runs it)."""
    from worker.core.bank import load_bank
    from worker.core.generations import current_dir
    from worker.pipeline.extract import FeatureExtractor
    from worker.pipeline.preprocess import make_canvas

    extractor = FeatureExtractor(args.weights, args.descriptor, args.precision)
    if extractor.precision == "int8":
        extractor.use_quantised(load_bank(current_dir(features_dir)).quantised)
    pairs = [np.stack([make_canvas(side, trim=extractor.trim) for side in images.next()])
             for _ in range(8)]
    return [s * 1000 for s in time_extract(extractor, pairs, calls)]


def cmd_model(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """What the model itself does per batch size: the ceiling for index builds and searches."""
    from worker.pipeline.extract import FeatureExtractor

    extractor = FeatureExtractor(args.weights, args.descriptor, args.precision)
    preamble("The model alone (FeatureExtractor.extract: preprocess_input + VGG16 + pooling)",
             argv, {"descriptor": args.descriptor, "weights": args.weights,
                    "precision": extractor.precision, "input": "random 224x224 uint8 canvases",
                    "timing": "median over repeated calls after two warm-up calls"})
    rng = np.random.default_rng(0)
    rows = []
    for size in ints(args.batch_sizes):
        canvases = rng.integers(0, 256, (size, 224, 224, 3), dtype=np.uint8)
        times = time_extract(extractor, [canvases], max(3, args.repeats // size))
        batch_s = float(np.median(times))
        rows.append([size, len(times), fmt(batch_s * 1000), fmt(batch_s / size * 1000),
                     fmt(size / batch_s, 2), fmt(size / 2 / batch_s, 2)])
    emit(md_table(["batch (images)", "calls", "ms per batch", "ms per image", "images/s",
                   "pair searches/s (2 images each)"], rows))
    return 0
