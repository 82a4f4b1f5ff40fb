"""Line sketches searched in a catalogue of coloured drawings that also files some sketches
and some white garments marked only in black. Deterministic by seed.

`python -m benchmarks.filed_sketches [--pairs 300] [--seed 11] [--queries 100] [--sketches 30]
[--white 40] [--descriptor D] [--weights bsds500] [--precision auto]`

A look-alike catalogue (the sample generator, as `benchmarks.lookalike`) gets `--sketches`
of its designs filed again as line sketches (`lookalike_edits.lineart`, re-scanned) and
`--white` designs drawn white with black stripes, dots, print and logo (a white garment
reads as a sketch: `appearance.is_sketch`), under new names. The index is built with the
worker's own code; each query is searched as the job searches it (`reading.read_sides`,
`listing.ranked`, no verdicts where every side is matched by its outline). Families:
`lineart` (a sketch of a design filed only as its drawing: its design is right), `resketch`
(another sketch of a design filed as a sketch too: its drawing or its sketch is right),
`white` (a re-scan of a filed white garment: that row), `unrelated` (sketches of designs
drawn at another seed: nothing is right). Reported per family: the share compared whole (not
by the outline alone), R@1, R@20, the share whose first hit is right and judged `copy` or
`near-duplicate`, and the share with any hit so judged that is not right.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.lookalike import UNRELATED_SEED_OFFSET, K, on_sample, sample_parser, table
from benchmarks.lookalike_edits import edited_pair
from worker.core.catalogue import load_catalogue, write_catalogue_csv
from worker.dev.sample import Design, make_designs

FAMILIES = ("lineart", "resketch", "white", "unrelated")
BLACK, WHITE = (25, 25, 25), (255, 255, 255)
FLAGGED = ("copy", "near-duplicate")


def white_garment(d: Design) -> Design:
    """`d` drawn white, its pattern, accent and logo black."""
    return dataclasses.replace(d, colour=WHITE, accent=BLACK, logo_colour=BLACK)


def file_drawings(database: Path, filed: list[tuple[str, Design, str]], seed: int
                  ) -> list[str]:
    """Append (name, design, edit) rows to the catalogue's pairs.csv, each design drawn with
    `edit` (`lookalike_edits.EDITS`) and re-scanned, its further columns its design's; their
    names in the catalogue's order."""
    import pandas as pd

    listed = pd.read_csv(database / "pairs.csv", dtype=str, keep_default_na=False)
    rows = listed.to_dict("records")
    by_name = {r["name"]: r for r in rows}
    rng = np.random.default_rng(seed)
    for name, design, edit in filed:
        paths = {}
        for side, img in zip(("front", "back"), edited_pair(design, edit, int(rng.integers(1 << 30))),
                             strict=True):
            paths[side] = f"images/{name}_{side}.png"
            img.save(database / paths[side])
        rows.append({**by_name[design.name], "name": name, **paths})
    extra = [c for c in listed.columns if c not in ("name", "front", "back")]
    write_catalogue_csv(database, [r["name"] for r in rows], [r["front"] for r in rows],
                        [r["back"] for r in rows], {c: [r[c] for r in rows] for c in extra})
    return [r["name"] for r in rows]


def queries(designs: list[Design], args: argparse.Namespace
            ) -> tuple[list[tuple[str, Design, str, set[str]]], list[tuple[str, Design, str]]]:
    """The queries (family, design, edit, the catalogue names that are right) and the rows
    to file (name, design, edit)."""
    rng = np.random.default_rng(args.seed + 5)
    order = [int(i) for i in rng.permutation(len(designs))]
    sketched = order[:args.sketches]
    white = order[args.sketches:args.sketches + args.white]
    plain = order[args.sketches + args.white:][:args.queries]
    filed = [(f"sketch-{designs[i].name}", designs[i], "lineart") for i in sketched]
    filed += [(f"white-{designs[i].name}", white_garment(designs[i]), "rescan") for i in white]
    asked = [("lineart", designs[i], "lineart", {designs[i].name}) for i in plain]
    asked += [("resketch", designs[i], "lineart", {designs[i].name, f"sketch-{designs[i].name}"})
              for i in sketched]
    asked += [("white", white_garment(designs[i]), "rescan", {f"white-{designs[i].name}"})
              for i in white]
    strangers = make_designs(args.queries, args.seed + UNRELATED_SEED_OFFSET, variant_every=0)
    asked += [("unrelated", d, "lineart", set()) for d in strangers]
    return asked, filed


def search(extractor, bank, names: list[str], asked, seed: int) -> dict[str, list[dict]]:
    """Each query searched as the job does; per family, one outcome a query."""
    from worker.pipeline.listing import ranked
    from worker.pipeline.preprocess import to_canvas
    from worker.pipeline.ranking import project_query
    from worker.pipeline.reading import read_sides
    from worker.pipeline.verdicts import thresholds_in, verdict_of

    rng = np.random.default_rng(seed + 9)
    thresholds = thresholds_in(bank.manifest)
    found: dict[str, list[dict]] = {family: [] for family in FAMILIES}
    for family, design, edit, right in asked:
        pair = edited_pair(design, edit, int(rng.integers(1 << 30)))
        canvases = np.stack([to_canvas(img, extractor.trim) for img in pair])
        rows = tuple(extractor.extract(canvases))
        outline, crops = read_sides(bank, canvases, rows)
        q = [project_query(bank, row, o, c) for row, o, c in zip(rows, outline, crops, strict=True)]
        judged_by = None if all(outline) else thresholds
        listing = ranked(bank, q[0], q[1], K, 0.5, thresholds=judged_by)
        hits = [(names[h.index], verdict_of(s, judged_by))
                for h, s in zip(listing.hits, listing.judged, strict=True)]
        found[family].append({"whole": not all(outline), "first": hits[0][0] in right,
                              "top": any(name in right for name, _ in hits),
                              "flagged": hits[0][0] in right and hits[0][1] in FLAGGED,
                              "wrong": any(v in FLAGGED and n not in right for n, v in hits)})
    return found


def run(args: argparse.Namespace, database: Path) -> dict[str, list[dict]]:
    from benchmarks.catalogue_duplicates import sketches
    from benchmarks.quality import build_bank
    from worker.indexing.sketches import edited_share
    from worker.pipeline.extract import FeatureExtractor

    start = time.perf_counter()
    designs = make_designs(args.pairs, args.seed)
    asked, filed = queries(designs, args)
    names = file_drawings(database, filed, args.seed)
    extractor = FeatureExtractor(args.weights, args.descriptor, args.precision)
    catalogue = load_catalogue(database)
    bank = build_bank(extractor, catalogue)
    # counted over every drawing, as a build does (`build_bank` samples 200, few of them the
    # rows filed last)
    bank.manifest.update(edited_share(catalogue.fronts, catalogue.backs,
                                      sketches(catalogue, extractor.trim)))
    found = search(extractor, bank, names, asked, args.seed)
    print(f"catalogue: {args.pairs} look-alike designs, seed {args.seed}, {args.sketches} also "
          f"filed as line sketches, {args.white} white garments marked in black; sketch share "
          f"{bank.manifest['sketch_share']}; descriptor {args.descriptor}; precision "
          f"{extractor.precision}; {time.perf_counter() - start:.0f} s\n")
    print(table(["family", "n", "compared whole", "R@1", f"R@{K}", "first right and flagged",
                 "a wrong hit flagged"],
                [[family, str(len(o)), *(f"{np.mean([x[key] for x in o]):.3f}" for key in
                                          ("whole", "first", "top", "flagged", "wrong"))]
                 for family, o in found.items() if o]))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = sample_parser(__doc__, "--queries", 100, "line sketches of designs filed only "
                           "as drawings, and as many of unrelated designs")
    parser.add_argument("--sketches", type=int, default=30, help="designs filed as sketches too")
    parser.add_argument("--white", type=int, default=40, help="white garments filed")
    return on_sample(parser.parse_args(argv), run)


if __name__ == "__main__":
    sys.exit(main())
