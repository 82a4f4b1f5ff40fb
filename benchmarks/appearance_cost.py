"""What the model-free appearance blocks cost a search, beside the forward pass they ride on.

    python -m benchmarks.appearance_cost [--images 48] [--repeats 5] [--precision auto]

Times `worker.pipeline.appearance.appearance` on canvases of the sample generator's drawings
(as preprocessing makes them) with the first two blocks (silhouette, colours) and with all
three (the pattern's edges too), then the default descriptor's whole `extract` of the same
canvases one at a time (the model and the blocks, as a search runs them). Median of
`--repeats` passes over the images, in ms an image.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from worker.dev.sample import draw_side, make_designs
from worker.pipeline.appearance import appearance
from worker.pipeline.preprocess import to_canvas


def ms_per_image(run, canvases: np.ndarray, repeats: int) -> float:
    """Median over `repeats` passes of `run(one canvas)` over every canvas, ms an image."""
    run(canvases[:1])  # warm up (a model traces its graph on the first call)
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(len(canvases)):
            run(canvases[i:i + 1])
        passes.append((time.perf_counter() - start) * 1000 / len(canvases))
    return statistics.median(passes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    designs = make_designs(args.images // 2 + 1, seed=7)
    canvases = np.stack([to_canvas(draw_side(d, side), trim=True)
                         for d in designs for side in ("front", "back")][:args.images])
    blocks2 = ms_per_image(lambda c: appearance(c, 2), canvases, args.repeats)
    blocks3 = ms_per_image(lambda c: appearance(c, 3), canvases, args.repeats)
    from worker.core.settings import DEFAULT_DESCRIPTOR
    from worker.indexing.quantising import quantise_for_index
    from worker.pipeline.extract import FeatureExtractor

    extractor = FeatureExtractor("bsds500", DEFAULT_DESCRIPTOR, args.precision)
    quantise_for_index(extractor)  # at int8: no index here, its layers quantised as one's would be
    whole = ms_per_image(extractor.extract, canvases, args.repeats)
    print(f"{len(canvases)} canvases, median of {args.repeats} passes, ms an image\n")
    print("| step | ms an image |\n|---|---|")
    print(f"| silhouette + colours | {blocks2:.2f} |")
    print(f"| silhouette + colours + pattern's edges | {blocks3:.2f} |")
    print(f"| `extract` with {DEFAULT_DESCRIPTOR} ({extractor.precision}, batch 1) | {whole:.2f} |")
    print(f"\nthe pattern's edges: {blocks3 - blocks2:.2f} ms an image, "
          f"{(blocks3 - blocks2) / whole:.1%} of extract")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
