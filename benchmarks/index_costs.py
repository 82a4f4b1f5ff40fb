"""What a full index build and a 1 % change cost at catalogue sizes too large to build here.

    python -m benchmarks.index_costs --pairs 20000 --sample-pairs 48

Measures, on this machine, with the service's own code:
- a real local build of a `--sample-pairs` sample catalogue (decode, model, thumbnails):
  images/s; then the same catalogue with one row changed: what the incremental build costs;
- at `--pairs` (2 images a pair), every step of a build that does not run the model:
  hashing the images (per-image cost of the sample's files, scaled), reading the chunk cache
  (a cache of that many random rows written and read back), learning and applying the
  whitening, writing the banks;
and adds them up: full build = those steps + all images / rate; a 1 % change = those steps +
1 % of the images / rate. The extrapolation assumes the per-image costs stay flat with size.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from worker.core.bank import write_bank
from worker.core.catalogue import load_catalogue, write_catalogue_csv
from worker.core.settings import Settings
from worker.core.whitening import learn_whitening
from worker.dev.sample import write_catalogue
from worker.indexing.build import build_index
from worker.indexing.chunks import ChunkCache, chunk_key, hash_images


def changed(png: bytes) -> bytes:
    """The same drawing with one pixel changed: new bytes, a new content hash."""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    img.putpixel((0, 0), (9, 0, 250))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def sample_builds(tmp: Path, pairs: int, extractor) -> dict:
    """A full local build of a sample catalogue, then one with one row changed."""
    write_catalogue(tmp / "db", pairs, seed=7)
    settings = Settings(database_dir=tmp / "db", features_dir=tmp / "features",
                        vgg16_weights=extractor.weights_id)
    full_s, full = timed(build_index, settings, extractor, progress=False)
    cat = load_catalogue(settings.database_dir)
    fronts, backs = list(cat.fronts), list(cat.backs)
    for side, column in (("front", fronts), ("back", backs)):
        data = changed((settings.database_dir / column[3]).read_bytes())
        column[3] = f"images/changed_{side}.png"
        (settings.database_dir / column[3]).write_bytes(data)
    write_catalogue_csv(settings.database_dir, cat.names, fronts, backs)
    incr_s, incr = timed(build_index, settings, extractor, progress=False)
    hash_s, _ = timed(hash_images, cat, list(dict.fromkeys([*fronts, *backs])))
    return {"images": full["images"]["extracted"], "full_s": full_s,
            "rate": full["images"]["extracted"] / full_s, "incr_s": incr_s,
            "incr_extracted": incr["images"]["extracted"],
            "hash_per_image_s": hash_s / len(set(fronts) | set(backs)), "raw_dim": full["raw_dim"],
            "dim": full["dim"], "whiten": extractor.whiten, "blocks": extractor.appearance}


def fixed_costs(tmp: Path, pairs: int, sample: dict, chunk_images: int) -> dict:
    """The steps of a build at `pairs` pairs that do not run the model, timed on random rows."""
    images = 2 * pairs
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((images, sample["raw_dim"])).astype(np.float32)
    hashes = [f"{i:064x}" for i in range(images)]
    cache = ChunkCache(tmp / "big", "model")
    for start in range(0, images, chunk_images):
        part = hashes[start:start + chunk_images]
        cache.write(chunk_key("model", part), part, rows[start:start + chunk_images])
    read_s, _ = timed(lambda: cache.rows(cache.hashes(), sample["raw_dim"]))
    learn_s, whitening = timed(learn_whitening, rows, sample["whiten"], blocks=sample["blocks"])
    apply_s, banked = timed(whitening.apply, rows)
    write_s, _ = timed(write_bank, tmp / "big-features", banked[:pairs], banked[pairs:],
                       {"n_pairs": pairs}, whitening)
    return {"hash_s": sample["hash_per_image_s"] * images, "cache_read_s": read_s,
            "whiten_s": learn_s + apply_s, "write_s": write_s,
            "cache_mib": sum(p.stat().st_size for p in cache.folder.glob("*.npz")) / 2**20}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--sample-pairs", type=int, default=48)
    parser.add_argument("--weights", default="bsds500")
    args = parser.parse_args(argv)
    from worker.pipeline.extract import FeatureExtractor

    extractor = FeatureExtractor(args.weights, Settings().descriptor, Settings().precision)
    tmp = Path(tempfile.mkdtemp(prefix="index-costs-"))
    sample = sample_builds(tmp, args.sample_pairs, extractor)
    fixed = fixed_costs(tmp, args.pairs, sample, 2 * Settings().index_chunk_pairs)
    print(f"sample ({args.sample_pairs} pairs, {sample['images']} images): full build "
          f"{sample['full_s']:.1f} s = {sample['rate']:.2f} images/s; one row changed: "
          f"{sample['incr_s']:.1f} s, {sample['incr_extracted']} images extracted")
    print(f"\nat {args.pairs} pairs ({2 * args.pairs} images), steps without the model, s:")
    for name, value in fixed.items():
        print(f"  {name}: {value:.2f}")
    steps = fixed["hash_s"] + fixed["whiten_s"] + fixed["write_s"]
    full = steps + 2 * args.pairs / sample["rate"]
    full += fixed["cache_read_s"]  # the rows are read back from the cache in both
    change = steps + fixed["cache_read_s"] + 0.02 * args.pairs / sample["rate"]
    print(f"\nestimate: full build {full / 60:.1f} min; a 1 % change ({args.pairs // 100} pairs, "
          f"{args.pairs // 50} images) {change:.0f} s ({full / change:.0f}x faster)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
