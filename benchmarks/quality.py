"""Retrieval quality of the paired search, deterministic by seed.

`python -m benchmarks.quality [--pairs 200] [--seed 7] [--queries 120] [--database DIR]
[--weights bsds500] [--descriptor flatten] [--front-weights 0,0.25,0.5,0.75,1]
[--ann [--ann-candidates N]]`

Builds the banks in-process with the worker's own code (FeatureExtractor, extract_images),
then, for a seeded sample of catalogue pairs, makes a "re-drawn / re-scanned" copy of both
images (one perturbation family per query pair, families cycled), runs it through
`to_canvas` -> `extractor.extract` -> `top_k` exactly like the search job, and asks whether
the pair it was made from comes back. Every entry whose front image is shared with another
entry is always queried ("shared-front": only the back tells them apart).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from benchmarks.lookalike_edits import as_uploaded_jpeg
from benchmarks.sheets import boxed, captioned, noted, sheet, written_over
from worker.core.bank import FeatureBank
from worker.core.catalogue import Catalogue, load_catalogue
from worker.core.images import load_image
from worker.pipeline.preprocess import to_canvas, to_rgb
from worker.pipeline.ranking import top_k

K = 20
WHITE = (255, 255, 255)
Perturb = Callable[[Image.Image, np.random.Generator], Image.Image]


# --- perturbations: RGB PIL image + Generator -> RGB PIL image ------------------------------

def crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Cut 5-15% off each side (independently)."""
    w, h = img.size
    left, top, right, bottom = rng.uniform(0.05, 0.15, size=4)
    return img.crop((round(w * left), round(h * top), round(w * (1 - right)),
                     round(h * (1 - bottom))))


def _content_box(img: Image.Image, threshold: int = 250) -> tuple[int, int, int, int]:
    """Bounding box (l, t, r, b) of the non-white pixels; the whole image if all white."""
    ink = np.asarray(img.convert("L")) < threshold
    ys, xs = np.nonzero(ink)
    if xs.size == 0:
        return (0, 0, *img.size)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def margins(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Half the time: white border making each axis 10-60% wider; else crop the white
    down to the drawing plus a 0-5% margin."""
    w, h = img.size
    if rng.random() < 0.5:
        fx, fy = rng.uniform(0.10, 0.60, size=2)
        out = Image.new("RGB", (round(w * (1 + fx)), round(h * (1 + fy))), WHITE)
        out.paste(img, ((out.width - w) // 2, (out.height - h) // 2))
        return out
    left, top, right, bottom = _content_box(img)
    mx, my = (round(s * rng.uniform(0.0, 0.05)) for s in (w, h))
    return img.crop((max(0, left - mx), max(0, top - my), min(w, right + mx), min(h, bottom + my)))


def shift(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Place the image at a random offset on a white canvas 20% larger on each axis."""
    w, h = img.size
    pw, ph = round(w * 0.2), round(h * 0.2)
    out = Image.new("RGB", (w + pw, h + ph), WHITE)
    out.paste(img, (int(rng.integers(0, pw + 1)), int(rng.integers(0, ph + 1))))
    return out


def rotation(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Rotate by up to +-10 degrees about the centre, same size, white fill."""
    return img.rotate(float(rng.uniform(-10, 10)), Image.Resampling.BICUBIC, fillcolor=WHITE)


def scale(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Resize the whole drawing by 0.5-1.4 (a lower / higher resolution scan)."""
    s = rng.uniform(0.5, 1.4)
    size = (max(1, round(img.width * s)), max(1, round(img.height * s)))
    return img.resize(size, Image.Resampling.BICUBIC)


def blur(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Gaussian blur, radius 0.5-2."""
    return img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.0))))


def jpeg(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Re-encode as JPEG quality 35-85 and decode it the way an upload is decoded."""
    return as_uploaded_jpeg(img, int(rng.integers(35, 86)))


def jitter(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Brightness, contrast and colour saturation each scaled by 0.8-1.2."""
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhancer(img).enhance(float(rng.uniform(0.8, 1.2)))
    return img


def grayscale(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Luminance only, back to 3 channels."""
    return img.convert("L").convert("RGB")


def noise(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Additive Gaussian pixel noise, sigma 5-15 (of 255)."""
    arr = np.asarray(img, dtype=np.float32)  # (h, w, 3)
    arr = arr + rng.normal(0.0, rng.uniform(5, 15), size=arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8), "RGB")


def paper(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Scanned on off-white paper (exploratory round 7's scan): turned up to 2 degrees, the
    page multiplied by a paper colour 3-10 % darker than white and warm (blue the darkest),
    sensor noise sigma 2-5, JPEG quality 60-90 decoded like an upload."""
    img = img.rotate(float(rng.uniform(-2, 2)), Image.Resampling.BICUBIC, fillcolor=WHITE)
    colour = 1.0 - rng.uniform(0.03, 0.10) * np.array([0.5, 0.7, 1.0], np.float32)
    arr = np.asarray(img, np.float32) * colour
    arr = arr + rng.normal(0.0, rng.uniform(2, 5), size=arr.shape)
    return as_uploaded_jpeg(Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8), "RGB"),
                            int(rng.integers(60, 91)))


FAMILIES: dict[str, Perturb] = {
    "crop": crop, "margins": margins, "shift": shift, "rotation": rotation, "scale": scale,
    "blur": blur, "jpeg": jpeg, "jitter": jitter, "grayscale": grayscale, "noise": noise,
}
# asked for by name (`--families`): added to the cycle, they would move every other figure
MORE_FAMILIES: dict[str, Perturb] = {"paper": paper, "sheet": sheet, "boxed": boxed,
                                   "caption": captioned, "notes": noted,
                                   "written": written_over}


# --- queries --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Query:
    """Catalogue row `row` re-drawn with `family`; `seed` fixes that query's parameters."""

    row: int
    family: str
    seed: int
    shared_front: bool


def shared_front_rows(catalogue: Catalogue) -> list[int]:
    """Rows whose front image path is also the front of another row."""
    counts = Counter(catalogue.fronts)
    return [i for i, front in enumerate(catalogue.fronts) if counts[front] > 1]


def make_queries(catalogue: Catalogue, n_queries: int, seed: int,
                 families: Sequence[str] = tuple(FAMILIES)) -> list[Query]:
    """All shared-front rows plus random other rows up to `n_queries` in total, shuffled,
    `families` assigned round-robin so each family gets a similar count."""
    rng = np.random.default_rng(seed)
    shared = shared_front_rows(catalogue)
    others = np.setdiff1d(np.arange(len(catalogue)), shared)
    extra = rng.permutation(others)[:max(0, n_queries - len(shared))]
    rows = rng.permutation(np.concatenate([shared, extra]).astype(int))
    names = list(families)
    seeds = rng.integers(0, 2**31, size=len(rows))
    shared_set = set(shared)
    return [Query(int(r), names[i % len(names)], int(s), int(r) in shared_set)
            for i, (r, s) in enumerate(zip(rows, seeds, strict=True))]


def render_query(catalogue: Catalogue, query: Query) -> tuple[Image.Image, Image.Image]:
    """(front, back) RGB PIL images of the perturbed copy of `query.row`."""
    rng = np.random.default_rng(query.seed)
    perturb = {**FAMILIES, **MORE_FAMILIES}[query.family]
    return tuple(perturb(to_rgb(load_image(catalogue.image_path(rel))), rng)
                 for rel in (catalogue.fronts[query.row], catalogue.backs[query.row]))


# --- banks and evaluation -------------------------------------------------------------------

def build_bank(extractor, catalogue: Catalogue, ann_candidates: int | None = None,
               exact: bool = True) -> FeatureBank:
    """In-process banks, built by the indexer's own code: two (n_pairs, dim) float32, scored
    with the descriptor's exact-match bonus unless `exact` is False (as an index built before
    the bonus). With `ann_candidates`, also the coarse index (`worker.pipeline.ann`, whatever
    the bank's size): 0 re-scores the service's max(10 k, 5000) candidates, N > 0 exactly N
    (at least k)."""
    from worker.indexing.build import compute_banks
    from worker.indexing.sketches import sketch_share
    from worker.pipeline.exact import exact_match_for

    front, back, whitening = compute_banks(extractor, catalogue, batch_size=16, progress=False)
    manifest = {"sketch_share": sketch_share(catalogue, 40_000_000, extractor.trim),
                "descriptor": extractor.descriptor,
                "exact_match": exact_match_for(extractor.descriptor) if exact else None}
    bank = FeatureBank(front, back, manifest=manifest, whitening=whitening)
    if ann_candidates is None:
        return bank
    from worker.pipeline.ann import with_coarse_index

    options = {"min_candidates": ann_candidates, "per_k": 0} if ann_candidates > 0 else {}
    return with_coarse_index(bank, 0, **options)


def rank_of(bank: FeatureBank, qf: np.ndarray, qb: np.ndarray, row: int,
            front_weight: float, k: int = K) -> int | None:
    """1-based rank of `row` in the top k for the (dim,) query pair, None if absent."""
    for hit in top_k(bank, qf, qb, k=k, front_weight=front_weight):
        if hit.index == row:
            return hit.rank
    return None


def flagged(bank: FeatureBank, qf: np.ndarray, qb: np.ndarray, row: int,
            front_weight: float) -> bool:
    """Is `row` judged `copy` or `near-duplicate` among the top K, as the job judges its hits
    (the first with its lead over the second; the thresholds the bank's manifest holds)?"""
    from worker.pipeline.verdicts import thresholds_in, verdict_of, verdict_scores

    hits = top_k(bank, qf, qb, k=K, front_weight=front_weight)
    thresholds = thresholds_in(bank.manifest)
    judged = verdict_scores([h.score for h in hits], thresholds)
    return any(h.index == row and verdict_of(s, thresholds) in ("copy", "near-duplicate")
               for h, s in zip(hits, judged, strict=True))


def summarise(ranks: Sequence[int | None]) -> dict:
    """recall@1, recall@K and MRR@K (0 for absent) of a list of ranks."""
    n = len(ranks)
    if n == 0:
        return {"n": 0, "recall@1": float("nan"), f"recall@{K}": float("nan"), "mrr": float("nan")}
    return {"n": n,
            "recall@1": sum(r == 1 for r in ranks) / n,
            f"recall@{K}": sum(r is not None for r in ranks) / n,
            "mrr": sum(1.0 / r for r in ranks if r is not None) / n}


def evaluate(extractor, catalogue: Catalogue, queries: Sequence[Query],
             bank: FeatureBank | None = None, front_weight: float = 0.5,
             front_weights: Sequence[float] = (), progress: bool = True) -> dict:
    """Run every query through to_canvas -> extract -> top_k and score the ranks.

    Returns overall metrics, shared-front recall@1, per-family metrics, timings, and, for
    each of `front_weights`, recall@1/@K re-scored from the same (2, dim) query features.
    """
    from tqdm import tqdm

    bank = bank if bank is not None else build_bank(extractor, catalogue)
    extractor.warm_up()  # trace the (2, 224, 224, 3) graph outside the timed region
    ranks: list[int | None] = []
    flags: list[bool] = []
    feats: list[np.ndarray] = []  # (2, dim) float32 per query
    seconds: list[float] = []
    for query in tqdm(queries, desc="queries", unit="q", disable=not progress):
        front, back = render_query(catalogue, query)
        start = time.perf_counter()
        canvases = np.stack([to_canvas(front, extractor.trim), to_canvas(back, extractor.trim)])
        qfb = bank.project(extractor.extract(canvases))  # (2, dim) float32, unit rows
        ranks.append(rank_of(bank, qfb[0], qfb[1], query.row, front_weight))
        seconds.append(time.perf_counter() - start)
        feats.append(qfb)
        flags.append(flagged(bank, qfb[0], qfb[1], query.row, front_weight))
    shared = [r for r, q in zip(ranks, queries, strict=True) if q.shared_front]
    families = {name: {**summarise([r for r, q in zip(ranks, queries, strict=True)
                                    if q.family == name]),
                       "flagged": float(np.mean([f for f, q in zip(flags, queries, strict=True)
                                                 if q.family == name]))}
                for name in dict.fromkeys(q.family for q in queries)}
    sweep = {w: summarise([rank_of(bank, f[0], f[1], q.row, w)
                           for f, q in zip(feats, queries, strict=True)]) for w in front_weights}
    return {**summarise(ranks), "shared_front": summarise(shared), "families": families,
            "front_weights": sweep, "front_weight": front_weight, "dim": int(bank.front.shape[1]),
            "n_pairs": len(bank), "bytes_per_pair": 2 * bank.front.shape[1] * bank.front.itemsize,
            "ms_per_query": 1000.0 * float(np.mean(seconds)) if seconds else float("nan")}


# --- report ---------------------------------------------------------------------------------

def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def format_report(result: dict) -> str:
    """Markdown tables: overall, per perturbation family, and the front_weight sweep."""
    f3 = "{:.3f}".format
    sf = result["shared_front"]
    main = _table(
        ["recall@1", f"recall@{K}", f"MRR@{K}", "recall@1 shared-front", "queries", "dims",
         "bytes/pair", "ms/query"],
        [[f3(result["recall@1"]), f3(result[f"recall@{K}"]), f3(result["mrr"]),
          f"{f3(sf['recall@1'])} (n={sf['n']})", result["n"], result["dim"],
          result["bytes_per_pair"], f"{result['ms_per_query']:.1f}"]])
    fams = _table(["family", "n", "recall@1", f"recall@{K}", "copy or near-duplicate"],
                  [[name, m["n"], f3(m["recall@1"]), f3(m[f"recall@{K}"]), f3(m["flagged"])]
                   for name, m in result["families"].items()])
    parts = [main, fams]
    if result["front_weights"]:
        parts.append(_table(["front_weight", "recall@1", f"recall@{K}"],
                            [[f"{w:g}", f3(m["recall@1"]), f3(m[f"recall@{K}"])]
                             for w, m in result["front_weights"].items()]))
    return "\n\n".join(parts)


def _weights_list(text: str) -> list[float]:
    values = [float(v) for v in text.split(",") if v.strip()]
    if any(not 0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError("front weights must lie in [0, 1]")
    return values


def _families(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FAMILIES and n not in MORE_FAMILIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown families {unknown}; known: "
                                         f"{', '.join([*FAMILIES, *MORE_FAMILIES])}")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", type=Path, default=None,
                        help="existing catalogue dir with pairs.csv (default: generated sample)")
    parser.add_argument("--pairs", type=int, default=200, help="size of the generated sample")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--queries", type=int, default=120)
    parser.add_argument("--weights", default="bsds500")
    parser.add_argument("--descriptor", default="flatten")
    parser.add_argument("--precision", default="float32", help="float32, bfloat16 or auto")
    parser.add_argument("--front-weight", type=float, default=0.5)
    parser.add_argument("--front-weights", type=_weights_list, default=[],
                        help="comma-separated, e.g. 0,0.25,0.5,0.75,1")
    parser.add_argument("--candidates", default="",
                        help="compare several WEIGHTS/DESCRIPTOR[/PRECISION], e.g. "
                             "bsds500/flatten,random:0/gem45,bsds500/gem45/bfloat16")
    parser.add_argument("--families", type=_families, default=list(FAMILIES),
                        help="comma-separated, cycled over the queries (default: the ten "
                             f"re-scan families; also: {', '.join(MORE_FAMILIES)})")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--ann", action="store_true",
                        help="search through the coarse index + exact re-scoring (worker.pipeline.ann) "
                             "whatever the catalogue size (SEARCH_ANN_MIN_PAIRS=0)")
    parser.add_argument("--ann-candidates", type=int, default=0,
                        help="with --ann: rows re-scored exactly per query vector (default 0: "
                             "the service's max(10 k, 5000), the whole sample when it is small)")
    args = parser.parse_args(argv)
    if args.ann_candidates < 0:
        parser.error("--ann-candidates must be 0 or more")
    return args


def ann_candidates(args: argparse.Namespace) -> int | None:
    return args.ann_candidates if args.ann else None


def run_candidates(args: argparse.Namespace, database: Path) -> list[dict]:
    """Evaluate every WEIGHTS/DESCRIPTOR candidate on the same queries; print one table."""
    from worker.pipeline.extract import FeatureExtractor

    catalogue = load_catalogue(database)
    queries = make_queries(catalogue, args.queries, args.seed, args.families)
    rows, results = [], []
    for candidate in args.candidates.split(","):
        weights, descriptor, *precision = candidate.strip().split("/")
        extractor = FeatureExtractor(weights, descriptor, *(precision or [args.precision]))
        bank = build_bank(extractor, catalogue, ann_candidates(args))
        result = evaluate(extractor, catalogue, queries, bank, args.front_weight,
                          progress=not args.no_progress)
        results.append(result)
        sf = result["shared_front"]
        rows.append([weights, descriptor, extractor.precision, f"{result['recall@1']:.3f}",
                     f"{result[f'recall@{K}']:.3f}", f"{result['mrr']:.3f}",
                     f"{sf['recall@1']:.3f}", result["dim"], result["bytes_per_pair"],
                     f"{result['ms_per_query']:.1f}"])
        worst = sorted(result["families"].items(), key=lambda kv: kv[1]["recall@1"])[:3]
        print(f"{candidate}: recall@1 {result['recall@1']:.3f}; weakest families "
              + ", ".join(f"{name} {m['recall@1']:.2f}" for name, m in worst), file=sys.stderr)
    print(f"catalogue: {len(catalogue)} pairs; {len(queries)} queries; seed {args.seed}; "
          f"front_weight {args.front_weight}; search {search_mode(args)}\n")
    print(_table(["weights", "descriptor", "precision", "recall@1", f"recall@{K}", f"MRR@{K}",
                  "recall@1 shared-front", "dims", "bytes/pair", "ms/query"], rows))
    return results


def search_mode(args: argparse.Namespace) -> str:
    if not args.ann:
        return "brute force"
    return (f"coarse + exact ({args.ann_candidates} candidates)" if args.ann_candidates
            else "coarse + exact (max(10 k, 5000) candidates)")


def run(args: argparse.Namespace, database: Path) -> dict:
    """Load the catalogue at `database`, build extractor + banks, evaluate; print the report."""
    from worker.pipeline.extract import FeatureExtractor

    catalogue = load_catalogue(database)
    extractor = FeatureExtractor(args.weights, args.descriptor, args.precision)
    start = time.perf_counter()
    bank = build_bank(extractor, catalogue, ann_candidates(args))
    index_s = time.perf_counter() - start
    queries = make_queries(catalogue, args.queries, args.seed, args.families)
    result = evaluate(extractor, catalogue, queries, bank, args.front_weight,
                      args.front_weights, progress=not args.no_progress)
    source = str(args.database) if args.database else f"generated sample ({args.pairs} pairs)"
    print(f"catalogue: {source}, {len(catalogue)} pairs; seed {args.seed}; weights "
          f"{extractor.weights_id} ({extractor.weights_fingerprint}); descriptor "
          f"{extractor.descriptor}; front_weight {args.front_weight}; indexing {index_s:.1f} s; "
          f"search {search_mode(args)}\n")
    print(format_report(result))
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    runner = run_candidates if args.candidates else run
    if args.database is not None:
        runner(args, args.database)
    else:
        from worker.dev.sample import sample_catalogue

        with sample_catalogue(args.pairs, args.seed) as database:
            runner(args, database)
    print(f"\ntotal {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
