"""How well the catalogue's duplicate list (worker/pipeline/duplicates.py) finds copies filed
as designs of their own, and how much of what it lists is a copy. Deterministic by seed.

`python -m benchmarks.catalogue_duplicates [--pairs 300] [--seed 11] [--copies 10]
[--descriptor D] [--weights bsds500] [--precision auto]`

A look-alike catalogue (the sample generator, as `benchmarks.lookalike`) gets, for each edit
family (`benchmarks.lookalike_edits`), `--copies` of its designs copied with that edit, lightly
re-scanned and filed under new names (each original copied once). The index is built with the
worker's own code and the list found as a generation's is (`find_duplicates`, the manifest's
thresholds). Reported: per family, the share of copies listed with their original at each
verdict or better (recall); per verdict, how many pairs got it or better and the share that
are what it promises (precision: `copy` and `near-duplicate` an original and its copy;
`similar` also two designs of the same garment and pattern). Two kinds of pair are counted
apart, neither a copy nor a stranger: the generator's shared-front variants (two designs, one
front drawing) and twins, two designs the generator drew alike (the same garment, ground
colour and front and back patterns: they differ in the pattern's colour, the logo and the
cut, as a copier's changes would).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.lookalike import on_sample, sample_parser, table
from benchmarks.lookalike_edits import EDITS, edited_pair
from worker.core.catalogue import load_catalogue, write_catalogue_csv
from worker.core.duplicates import VERDICTS
from worker.dev.sample import Design, make_designs


def file_copies(database: Path, designs: list[Design], per_family: int, seed: int
                ) -> dict[int, tuple[int, str]]:
    """Append the copies to the catalogue's pairs.csv; {copy row: (original row, family)}."""
    import pandas as pd

    table_ = pd.read_csv(database / "pairs.csv", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    used: set[int] = set()
    copies: dict[int, tuple[int, str]] = {}
    rows = table_.to_dict("records")
    for family, (_, eligible) in EDITS.items():
        pool = [i for i, d in enumerate(designs) if eligible(d) and i not in used]
        for original in rng.permutation(pool)[:per_family]:
            original = int(original)
            used.add(original)
            name = f"copy-{family}-{designs[original].name}"
            sides = edited_pair(designs[original], family, int(rng.integers(1 << 30)))
            paths = {}
            for side, img in zip(("front", "back"), sides, strict=True):
                paths[side] = f"images/{name}_{side}.png"
                img.save(database / paths[side])
            copies[len(rows)] = (original, family)
            rows.append({**rows[original], "name": name, **paths})
    extra = [c for c in table_.columns if c not in ("name", "front", "back")]
    write_catalogue_csv(database, [r["name"] for r in rows], [r["front"] for r in rows],
                        [r["back"] for r in rows], {c: [r[c] for r in rows] for c in extra})
    return copies


RELEVANCE = {"copy": 3, "similar": 2, "garment": 1, "other": 0}  # as the look-alike benchmark's


def relation(a: int, b: int, designs: list[Design], copies: dict[int, tuple[int, str]]) -> str:
    """What catalogue rows a and b are to each other: `copy` (an original and its copy),
    `variant`, `twin`, `similar` (same garment and pattern), `garment`, or `other`."""
    da, db = (copies[r][0] if r in copies else r for r in (a, b))
    if da == db:
        return "copy"
    x, y = designs[da], designs[db]
    if x.variant_of == y.name or y.variant_of == x.name or (
            x.variant_of is not None and x.variant_of == y.variant_of):
        return "variant"
    if (x.garment, x.colour, x.pattern, x.back_pattern) == (
            y.garment, y.colour, y.pattern, y.back_pattern):
        return "twin"
    if x.garment != y.garment:
        return "other"
    return "similar" if x.pattern == y.pattern else "garment"


def evaluate(pairs, designs: list[Design], copies: dict[int, tuple[int, str]]
             ) -> tuple[list[list[str]], list[list[str]]]:
    """(per family recall rows, per verdict precision rows) of a DuplicatePairs."""
    listed: dict[tuple[int, int], int] = {}  # (a, b) -> verdict index (0: most serious)
    for a, b, v in zip(pairs.a.tolist(), pairs.b.tolist(), pairs.verdict.tolist(), strict=True):
        listed[(a, b)] = v

    recall = []
    for family in EDITS:
        found = [listed.get((min(o, c), max(o, c))) for c, (o, f) in copies.items() if f == family]
        if found:
            recall.append([family, str(len(found))] + [
                f"{sum(v is not None and v <= i for v in found) / len(found):.2f}"
                for i in range(len(VERDICTS))])
    precision = []
    for i, name in enumerate(VERDICTS):
        given = [relation(a, b, designs, copies) for (a, b), v in listed.items() if v <= i]
        judged = [r for r in given if r not in ("variant", "twin")]
        good = ("copy",) if name != "similar" else ("copy", "similar")
        precision.append([f"{name} or better", str(len(given)), str(given.count("copy")),
                          str(given.count("variant")), str(given.count("twin")),
                          f"{np.mean([r in good for r in judged]):.3f}" if judged else "n/a",
                          str(sum(r not in good for r in judged))])
    return recall, precision


def sketches(catalogue, trim: bool) -> np.ndarray:
    """(n, 2) bool: which sides are line sketches, as a build records them."""
    from worker.indexing.sketches import read_sketches

    read = read_sketches(catalogue, list(dict.fromkeys([*catalogue.fronts, *catalogue.backs])),
                         40_000_000, trim)
    return np.array([[read[f], read[b]] for f, b in zip(catalogue.fronts, catalogue.backs,
                                                        strict=True)], bool).reshape(-1, 2)


def calibrated(bank, designs: list[Design], copies: dict[int, tuple[int, str]],
               margin_weight: float, floor: float | None, sketched: np.ndarray
               ) -> dict[str, float]:
    """The list's thresholds from this catalogue: every pair judged >= 0.3 (with this weight
    of the nearest's lead, over a second counted at least `floor`, the list's current one;
    None: the whole lead) graded as the look-alike benchmark grades hits, variants and twins
    left out; each verdict's lowest threshold that keeps its calibrated precision. Their own
    `floor` (the graded pairs' median) may differ a little from the one judged by."""
    from worker.pipeline.duplicates import find_duplicates
    from worker.pipeline.verdicts import calibrate

    low = {"copy": 0.3, "near-duplicate": 0.3, "similar": 0.3, "floor": floor,
           "margin_weight": margin_weight}
    pairs = find_duplicates(bank.front, bank.back, low, len(bank) + 1, sketched=sketched)
    graded = [(float(j), RELEVANCE[r]) for a, b, j in zip(pairs.a.tolist(), pairs.b.tolist(),
                                                         pairs.judged.tolist(), strict=True)
              if (r := relation(a, b, designs, copies)) in RELEVANCE]
    return {**calibrate(graded), "margin_weight": margin_weight}


def run(args: argparse.Namespace, database: Path) -> None:
    from benchmarks.quality import build_bank
    from worker.pipeline.duplicates import find_duplicates
    from worker.pipeline.extract import FeatureExtractor
    from worker.pipeline.verdicts import duplicate_thresholds_for

    designs = make_designs(args.pairs, args.seed)
    copies = file_copies(database, designs, args.copies, args.seed)
    catalogue = load_catalogue(database)
    extractor = FeatureExtractor(args.weights, args.descriptor, args.precision)
    start = time.perf_counter()
    bank, sketched = build_bank(extractor, catalogue), sketches(catalogue, extractor.trim)
    current = duplicate_thresholds_for(extractor.descriptor)  # as a build lists them
    thresholds = (calibrated(bank, designs, copies, args.margin_weight,
                             current["floor"] if current else None, sketched)
                  if args.calibrate else current)
    pairs = find_duplicates(bank.front, bank.back, thresholds, len(catalogue) + 1,
                            sketched=sketched)
    recall, precision = evaluate(pairs, designs, copies)
    print(f"look-alike catalogue: {args.pairs} designs and {len(copies)} copies filed as designs, "
          f"seed {args.seed}; descriptor {args.descriptor}; weights {extractor.weights_id}; "
          f"precision {extractor.precision}; thresholds {thresholds}; "
          f"{time.perf_counter() - start:.0f} s\n")
    print(table(["family", "copies"] + [f"listed with its original, {v} or better"
                                        for v in VERDICTS], recall), "\n")
    print(table(["verdict", "pairs listed", "original and copy", "shared-front variants",
                 "twins", "precision (variants and twins left out)", "wrong pairs"], precision))


def main(argv: list[str] | None = None) -> int:
    parser = sample_parser(__doc__, "--copies", 10, "per edit family")
    parser.add_argument("--calibrate", action="store_true",
                        help="derive the list's thresholds from this run (tuning seed only)")
    parser.add_argument("--margin-weight", type=float, default=0.25,
                        help="with --calibrate: the weight of a nearest design's lead")
    return on_sample(parser.parse_args(argv), run)


if __name__ == "__main__":
    sys.exit(main())
