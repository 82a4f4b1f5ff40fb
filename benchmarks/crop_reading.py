"""How often a side is read as a crop of a design (`worker/pipeline/crops.py`), per family:
the look-alike benchmark's edit families (its `detail` crops should be; nothing else should),
its catalogue's own drawings, and the re-scan benchmark's families (blur, noise, sheets, ...).
No model: canvases only.

    python -m benchmarks.crop_reading --seed 7 [--queries 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.lookalike import make_queries as lookalike_queries
from benchmarks.lookalike_edits import edited_pair
from benchmarks.quality import FAMILIES, MORE_FAMILIES, render_query
from benchmarks.quality import make_queries as rescan_queries
from worker.core.catalogue import load_catalogue
from worker.dev.sample import draw_side, make_designs, write_catalogue
from worker.pipeline.crops import is_crop
from worker.pipeline.preprocess import to_canvas

LOOKALIKE_PAIRS = 300  # as benchmarks.lookalike
RESCAN_PAIRS = 200  # as benchmarks.quality


SECONDS: list[float] = []  # each is_crop call's time


def read(images) -> list[bool]:
    found = []
    for img in images:
        canvas = to_canvas(img, trim=True)
        start = time.perf_counter()
        found.append(is_crop(canvas))
        SECONDS.append(time.perf_counter() - start)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--queries", type=int, default=100, help="queries a family")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    counts: dict[str, list[bool]] = {}
    designs = make_designs(LOOKALIKE_PAIRS, args.seed)
    for q in lookalike_queries(designs, args.queries, args.seed):
        family = "rescan" if q.row is None else q.family
        counts.setdefault(f"look-alike {q.family}", []).extend(
            read(edited_pair(q.design, family, q.seed)))
    counts["look-alike catalogue drawings"] = read(draw_side(d, side) for d in designs
                                                   for side in ("front", "back"))
    with tempfile.TemporaryDirectory() as tmp:
        write_catalogue(Path(tmp), RESCAN_PAIRS, seed=args.seed)
        catalogue = load_catalogue(Path(tmp))
        families = [*FAMILIES, *MORE_FAMILIES]
        for q in rescan_queries(catalogue, args.queries * len(families), args.seed, families):
            counts.setdefault(f"re-scan {q.family}", []).extend(read(render_query(catalogue, q)))
    ms = np.array(SECONDS) * 1e3
    print(f"seed {args.seed}, {time.perf_counter() - start:.0f} s; is_crop per side: p50 "
          f"{np.median(ms):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms, max {ms.max():.2f} ms\n")
    print("| family | sides read as crops |\n|---|---|")
    for family, found in counts.items():
        print(f"| {family} | {sum(found)} / {len(found)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
