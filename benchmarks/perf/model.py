"""`model`: the forward pass alone (FeatureExtractor.extract) per batch size; and the model
alone on each search's pair for `e2e`, the floor of a search."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.perf.report import emit, fmt, ints, md_table, preamble


def time_extract(extractor, batches: Sequence[np.ndarray], calls: int) -> list[float]:
    """Seconds per forward pass (`model_rows`: not the appearance columns, numpy work that
    noise canvases make slow), cycling through `batches`, after two warm-ups."""
    extractor.model_rows(batches[0])
    extractor.model_rows(batches[0])
    times = []
    for i in range(calls):
        start = time.perf_counter()
        extractor.model_rows(batches[i % len(batches)])
        times.append(time.perf_counter() - start)
    return times


class PairPasses:
    """The model alone on a search's own pair, in this process, timed right after the search
    with the service idle, so that both see the machine at the same moment: two batch-1
    passes (the latency target's unit) and one batch-2 pass (what the worker runs). At int8
    with the quantised model of the index in `features_dir`, as the worker runs it."""

    def __init__(self, args: argparse.Namespace, features_dir: Path):
        from worker.core.bank import load_bank
        from worker.core.generations import current_dir
        from worker.pipeline.extract import FeatureExtractor

        self.extractor = FeatureExtractor(args.weights, args.descriptor, args.precision)
        if self.extractor.precision == "int8":
            self.extractor.use_quantised(load_bank(current_dir(features_dir)).quantised)

    def __call__(self, front: bytes, back: bytes) -> tuple[float, float]:
        """(two batch-1 passes, one batch-2 pass) in ms on this pair's canvases."""
        from worker.pipeline.preprocess import make_canvas

        pair = np.stack([make_canvas(side, trim=self.extractor.trim) for side in (front, back)])
        # each size called once untimed first: the first call traces the graph, and an int8
        # interpreter resizes whenever the batch size changes
        passes = self.extractor.model_rows  # the forward passes alone, not the appearance
        passes(pair[:1])
        start = time.perf_counter()
        passes(pair[:1])
        passes(pair[1:])
        singles = time.perf_counter() - start
        passes(pair)
        start = time.perf_counter()
        passes(pair)
        return singles * 1000, (time.perf_counter() - start) * 1000


def cmd_model(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """What the model itself does per batch size: the ceiling for index builds and searches."""
    from worker.indexing.quantising import quantise_for_index
    from worker.pipeline.extract import FeatureExtractor

    extractor = FeatureExtractor(args.weights, args.descriptor, args.precision)
    quantise_for_index(extractor)  # at int8: no index here, its layers quantised as one's would be
    preamble("The model alone (FeatureExtractor.model_rows: preprocess_input + VGG16 + pooling)",
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
