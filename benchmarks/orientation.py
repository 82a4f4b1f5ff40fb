"""Sideways scans: which query sides the service turns upright, and what that gives back.

`python -m benchmarks.orientation [--seed 11] [--queries 40] [--pairs 300] [--precision auto]`

On the look-alike catalogue (`benchmarks.lookalike`: the service's own index of 300 look-alike
designs), each query side of every edit family, and each catalogue drawing put through the
re-scan families of `benchmarks.quality` (tinted paper, a framed sheet, captions, notes,
crops, ...), is prepared as the job prepares it, as given and turned a quarter either way (a
page fed to the scanner sideways: no EXIF says so), and judged by `orientation.Uprights` with
the index's silhouettes. Per family: upright sides turned (every one a mistake), sideways
sides turned back upright. Then the re-scanned and recoloured copies scanned sideways are
searched as the job searches, turned upright and as given: R@1 / R@20 of the copied design.
Seed 7 is the one TURN_MIN and TURN_MARGIN were chosen on.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.lookalike import K, make_queries, on_sample, sample_parser, table
from benchmarks.lookalike_edits import EDITS, edited_pair
from benchmarks.quality import FAMILIES, MORE_FAMILIES
from worker.core.catalogue import load_catalogue
from worker.core.images import load_image
from worker.dev.sample import make_designs
from worker.pipeline.listing import ranked
from worker.pipeline.orientation import Uprights
from worker.pipeline.preprocess import to_rgb, upright_canvas
from worker.pipeline.ranking import project_query
from worker.pipeline.reading import read_sides

SCANNED = (90, 270)  # counter-clockwise turns of the page; the service must undo each
SEARCHED = ("rescan", "colourway")  # the families searched sideways
TIMES: dict[bool, list[float]] = {False: [], True: []}  # s a side prepared without/with uprights


def judged(uprights: Uprights, sides: list[Image.Image], trim: bool) -> list[int]:
    """[upright sides left as given, then for each of SCANNED the sides turned back]."""
    counts = []
    for scanned in (0, *SCANNED):
        want, right = (360 - scanned) % 360, 0
        for side in sides:
            page = side.rotate(scanned, expand=True)
            for turn in (False, True):  # the preparation as before, then as the job does it
                start = time.perf_counter()
                degrees = upright_canvas(page, trim, "front", uprights=uprights if turn else None)[1]
                TIMES[turn].append(time.perf_counter() - start)
            right += degrees == want
        counts.append(right)
    return counts


def decisions(uprights: Uprights, families: dict[str, list[Image.Image]], trim: bool) -> list:
    rows = []
    for family, sides in families.items():
        kept, *back = judged(uprights, sides, trim)
        rows.append([family, str(len(sides)), str(len(sides) - kept),
                     *(f"{n / len(sides):.3f}" for n in back)])
    return rows


def searched(extractor, bank, uprights, pairs: list[tuple[int, Image.Image, Image.Image]],
             turn: bool) -> tuple[float, float]:
    """R@1, R@K of the copied rows, each pair's front scanned 90 and back 270 degrees."""
    ranks = []
    for row, front, back in pairs:
        canvases = tuple(upright_canvas(side.rotate(scanned, expand=True), extractor.trim, "front",
                                        uprights=uprights if turn else None)[0]
                         for side, scanned in zip((front, back), SCANNED, strict=True))
        rows = tuple(extractor.extract(np.stack(canvases)))
        outline, crops = read_sides(bank, canvases, rows)
        q = [project_query(bank, r, o, c) for r, o, c in zip(rows, outline, crops, strict=True)]
        hits = ranked(bank, q[0], q[1], K, 0.5).hits
        ranks.append(next((h.rank for h in hits if h.index == row), None))
    return (sum(r == 1 for r in ranks) / len(ranks),
            sum(r is not None for r in ranks) / len(ranks))


def run(args: argparse.Namespace, database: Path) -> None:
    from benchmarks.quality import build_bank
    from worker.pipeline.extract import FeatureExtractor

    start = time.perf_counter()
    designs = make_designs(args.pairs, args.seed)
    catalogue = load_catalogue(database)
    extractor = FeatureExtractor(args.weights, args.descriptor, args.precision)
    bank = build_bank(extractor, catalogue)
    uprights = Uprights.of(bank)
    if uprights is None:
        raise SystemExit(f"descriptor {args.descriptor} has no silhouette block: nothing is turned")
    queries = make_queries(designs, args.queries, args.seed)
    edited = {family: [] for family in (*EDITS, "unrelated")}
    pairs = {family: [] for family in SEARCHED}
    for query in queries:
        front, back = edited_pair(query.design, "rescan" if query.row is None else query.family,
                                  query.seed)
        edited[query.family] += [front, back]
        if query.family in SEARCHED:
            pairs[query.family].append((query.row, front, back))
    rng = np.random.default_rng(args.seed)
    rescans = {}
    for name, perturb in {**FAMILIES, **MORE_FAMILIES}.items():
        rows = rng.permutation(len(catalogue))[:args.queries]
        rescans[name] = [perturb(to_rgb(load_image(catalogue.image_path(catalogue.fronts[r]))), rng)
                         for r in rows]
    print(f"look-alike catalogue: {len(catalogue)} pairs, seed {args.seed}; descriptor "
          f"{args.descriptor}; {len(uprights.shapes)} catalogue silhouettes\n")
    header = ["family", "sides", "upright sides turned", *(f"scanned {d}: turned back"
                                                           for d in SCANNED)]
    print(table(["edit family (both sides)", *header[1:]],
                decisions(uprights, edited, extractor.trim)), "\n")
    print(table(["re-scan family (fronts)", *header[1:]],
                decisions(uprights, rescans, extractor.trim)), "\n")
    print(table(["scanned sideways (front 90, back 270)", "pairs", "as given R@1 / R@20",
                 "turned upright R@1 / R@20"],
                [[family, str(len(found)),
                  *("{:.3f} / {:.3f}".format(*searched(extractor, bank, uprights, found, turn))
                    for turn in (False, True))] for family, found in pairs.items()]))
    for turn, what in ((False, "as given"), (True, "turned upright where it should be")):
        print(f"\na side prepared {what}: {np.median(TIMES[turn]) * 1000:.2f} ms median, "
              f"p90 {np.percentile(TIMES[turn], 90) * 1000:.2f} ({len(TIMES[turn])} sides)", end="")
    print(f"\n\n{time.perf_counter() - start:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = sample_parser(__doc__, "--queries", 40, "per family")
    return on_sample(parser.parse_args(argv), run)


if __name__ == "__main__":
    raise SystemExit(main())
