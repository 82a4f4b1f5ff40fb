"""How close int8 descriptors are to float32, and how fast, per way of quantising activations.

`python -m benchmarks.int8_fidelity [--pairs 300] [--seed 11] [--compare 96] [--calibrate 16]`

On the canvases of a generated catalogue (as preprocessing makes them), the model columns of
the default descriptor: bfloat16 TensorFlow, and the int8 model with activation ranges fixed
by `--calibrate` catalogue canvases (static, full-integer) or taken per image at run time
(dynamic range, what the index builds), each against float32 on `--compare` other canvases:
the cosine (min, 5th percentile, median) and ms an image at batch 1 and 8 (median of
`--calls` calls of the forward pass alone, `model_rows`; the precisions alternated so that a
drifting machine hits them alike, one batch size at a time so that LiteRT's interpreter is not
resized between calls). The cosine is the model columns' before the index's whitening, which
stretches their quieter directions: the look-alike and re-scan benchmarks at `--precision
int8` are the judges of what int8 costs a search.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from benchmarks.lookalike import table
from worker.core.catalogue import load_catalogue
from worker.dev.sample import sample_catalogue


def canvases(database, trim: bool) -> np.ndarray:
    from worker.pipeline.preprocess import make_canvas

    cat = load_catalogue(database)
    return np.stack([make_canvas(cat.image_path(p), trim=trim)
                     for p in dict.fromkeys([*cat.fronts, *cat.backs])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--compare", type=int, default=96, help="canvases compared")
    parser.add_argument("--calibrate", type=int, default=16, help="canvases fixing static ranges")
    parser.add_argument("--calls", type=int, default=12, help="timed calls per batch size")
    args = parser.parse_args(argv)

    from worker.core.settings import DEFAULT_DESCRIPTOR
    from worker.pipeline.extract import FeatureExtractor
    from worker.pipeline.quantise import quantise

    reference = FeatureExtractor("bsds500", DEFAULT_DESCRIPTOR, "float32")
    with sample_catalogue(args.pairs, args.seed) as database:
        every = canvases(database, reference.trim)
    order = np.random.default_rng(args.seed).permutation(len(every))
    compared, calibrating = every[order[:args.compare]], every[order[-args.calibrate:]]
    model_dims = reference.extract(compared[:1]).shape[1] - sum(
        size for size, _ in reference.appearance)

    def rows(extractor) -> np.ndarray:
        return extractor.extract(compared)[:, :model_dims]

    exact = rows(reference)
    variants = {"bfloat16": FeatureExtractor("bsds500", DEFAULT_DESCRIPTOR, "bfloat16")}
    for name, representative in (("int8, static ranges", calibrating), ("int8, dynamic", None)):
        extractor = FeatureExtractor("bsds500", DEFAULT_DESCRIPTOR, "int8")
        start = time.perf_counter()
        extractor.use_quantised(quantise(reference.model, None if representative is None
                                         else reference.model_input(representative)))
        print(f"{name}: quantised in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        variants[name] = extractor

    times: dict[str, dict[int, list[float]]] = {name: {1: [], 8: []} for name in variants}
    for batch in (1, 8):
        for extractor in variants.values():
            extractor.model_rows(compared[:batch])  # warm-up (traces, sizes the interpreter)
        for _ in range(args.calls):
            for name, extractor in variants.items():
                start = time.perf_counter()
                extractor.model_rows(compared[:batch])
                times[name][batch].append((time.perf_counter() - start) * 1000 / batch)
    out = []
    for name, extractor in variants.items():
        cosines = np.sum(rows(extractor) * exact, axis=1)
        out.append([name, f"{cosines.min():.5f}", f"{np.percentile(cosines, 5):.5f}",
                    f"{np.median(cosines):.5f}",
                    *(f"{np.median(times[name][b]):.1f}" for b in (1, 8))])
    print(f"catalogue seed {args.seed}, {len(compared)} canvases compared with float32 "
          f"(static ranges from {len(calibrating)} others), {args.calls} timed calls\n")
    print(table(["model", "cosine min", "p5", "median", "ms/image batch 1", "batch 8"], out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
