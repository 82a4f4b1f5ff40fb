"""`python -m benchmarks.render_speed [--renders 10]`: time one grid render (query + 20 hits)."""

from __future__ import annotations

import argparse
import statistics
import time

from worker.dev.sample import draw_side, make_designs
from worker.pipeline.render import GridCell, render_grid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=10)
    args = parser.parse_args(argv)
    import numpy as np

    cells = [GridCell(np.asarray(draw_side(d, "front").resize((150, 150))),
                      np.asarray(draw_side(d, "back").resize((150, 150))), f"#{i}  {d.name}",
                      "0.123  (F 0.456 | B 0.789)") for i, d in enumerate(make_designs(21))]
    render_grid(cells)  # fonts, glyphs and the page warm
    times = []
    for _ in range(args.renders):
        start = time.perf_counter()
        render_grid(cells)
        times.append((time.perf_counter() - start) * 1000)
    print(f"| renders | p50 ms | max ms |\n|---|---|---|\n| {args.renders} | "
          f"{statistics.median(times):.1f} | {max(times):.1f} |")


if __name__ == "__main__":
    main()
