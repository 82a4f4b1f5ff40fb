"""Peak memory of an index build's last step, the banks from the chunk cache, at catalogue
sizes too large to extract here.

    python -m benchmarks.index_memory --pairs 100000

Writes a chunk cache of 2 x --pairs random raw rows of the default descriptor's width (1,500
float32 columns, in the build's chunks of 128 images) and 2,000 synthetic copies' rows; then,
each in a fresh process, makes the whitened banks from it two ways and reports the process's
peak resident memory (VmHWM, which the allocator's reuse of freed memory moves by a few
hundred MiB from run to run), the peak of what was allocated meanwhile (tracemalloc, which
numpy reports its arrays to) and the time:

- `held`: every row read into memory (`ChunkCache.rows`), then `banks_from_features`, as
  builds did until 2026-12-06 (with today's whitening code, which copies the rows to float64
  once where the code before did twice; this script copied into a checkout of the code
  before runs `--run held` on it, as docs/performance.md did);
- `streamed`: as builds do now: `banks_from_cache`, which reads the cache chunk by chunk,
  twice (the whitening's sums, then the projection).

Then whether both give the same scores (a search's products of 20 query rows with every
bank row). No model is loaded: the rows are random, the steps are the build's own code.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from worker.pipeline.appearance import BLOCKS, PATTERN_DIMS, PROPORTION_DIMS

MODEL_DIMS = 1280  # the default descriptor's pooled block3-5 columns
# the default descriptor's appearance blocks (worker/pipeline/descriptors.py), without TensorFlow
APPEARANCE = ((BLOCKS[0], 0.5), (BLOCKS[1], 0.4), (PATTERN_DIMS, 0.375), (PROPORTION_DIMS, 0.0))
EXTRACTOR = SimpleNamespace(whiten=256, appearance=APPEARANCE,
                            dim=MODEL_DIMS + sum(size for size, _ in APPEARANCE))
CHUNK_IMAGES = 128  # 2 x the default INDEX_CHUNK_PAIRS
COPIES = 2000  # worker/indexing/copies.py: COPY_IMAGES


def layout(pairs: int) -> tuple[SimpleNamespace, dict[str, str]]:
    """A catalogue of `pairs` designs, each drawing its own content."""
    fronts = [f"images/f{i}.png" for i in range(pairs)]
    backs = [f"images/b{i}.png" for i in range(pairs)]
    hashes = {path: f"{i:064x}" for i, path in enumerate(fronts + backs)}
    return SimpleNamespace(fronts=fronts, backs=backs), hashes


def rows_of(start: int, count: int) -> np.ndarray:
    """Rows `start`.. of the catalogue: the same every time they are asked for."""
    rng = np.random.default_rng(start)
    rows = rng.standard_normal((count, EXTRACTOR.dim), dtype=np.float32)
    rows[:, :MODEL_DIMS] = np.abs(rows[:, :MODEL_DIMS])  # pooled activations are positive
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def write_cache(folder: Path, pairs: int) -> None:
    from worker.indexing.chunkcache import ChunkCache

    _, hashes = layout(pairs)
    contents = list(hashes.values())
    cache = ChunkCache(folder / "features", "model")
    for start in range(0, len(contents), CHUNK_IMAGES):
        part = contents[start:start + CHUNK_IMAGES]
        cache.write(f"c{start:09d}", part, rows_of(start, len(part)))
    originals = np.vstack([rows_of(i - i % CHUNK_IMAGES, CHUNK_IMAGES)[i % CHUNK_IMAGES]
                           for i in copied_rows(pairs)])
    np.save(folder / "copies.npy", originals + 0.05 * rows_of(10**9, len(originals)))


def copied_rows(pairs: int) -> list[int]:
    """The rows whose copies the whitening learns from: spread over the catalogue, as the
    smallest content hashes are (worker/indexing/copies.py: `chosen`)."""
    return list(range(0, pairs, max(1, pairs // COPIES)))[:COPIES]


def run(folder: Path, pairs: int, how: str) -> dict:
    """The banks made `how`; this process's peak memory and time, and the scores saved."""
    from worker.indexing.chunkcache import ChunkCache

    catalogue, hashes = layout(pairs)
    cache = ChunkCache(folder / "features", "model")
    copies = ([catalogue.fronts[i] for i in copied_rows(pairs)], np.load(folder / "copies.npy"))
    tracemalloc.start()  # numpy reports its arrays to it: a figure the allocator cannot blur
    start = time.perf_counter()
    if how == "held":
        try:
            from worker.indexing.projection import banks_from_features
        except ImportError:  # the code before 2026-12-06
            from worker.indexing.build import banks_from_features
        rows = cache.rows(set(hashes.values()), EXTRACTOR.dim)
        features = {path: rows[digest] for path, digest in hashes.items()}
        front, back, whitening = banks_from_features(EXTRACTOR, catalogue, features, copies)
    else:
        from worker.indexing.projection import banks_from_cache

        front, back, whitening = banks_from_cache(EXTRACTOR, catalogue, hashes, cache, copies)
    seconds = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    queries = whitening.apply(rows_of(7 * 10**8, 20))
    np.save(folder / f"scores-{how}.npy", np.hstack([queries @ front.T, queries @ back.T]))
    return {"how": how, "seconds": round(seconds, 1), "dim": int(front.shape[1]),
            "peak_rss_mib": round(peak_rss_kib() / 1024),
            "peak_allocated_mib": round(traced / 2**20)}


def peak_rss_kib() -> int:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not the parent's
    before the exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--run", choices=("held", "streamed"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        print(json.dumps(run(args.folder, args.pairs, args.run)))
        return 0
    with tempfile.TemporaryDirectory(prefix="index-memory-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        write_cache(folder, args.pairs)
        print(f"{args.pairs} pairs: a cache of {2 * args.pairs} raw rows of {EXTRACTOR.dim} "
              f"columns written in {time.perf_counter() - start:.1f} s")
        for how in ("held", "streamed"):
            proc = subprocess.run([sys.executable, "-m", "benchmarks.index_memory", "--pairs",
                                   str(args.pairs), "--run", how, "--folder", str(folder)],
                                  capture_output=True, text=True, check=True)
            print(proc.stdout.strip().splitlines()[-1], flush=True)
        held, streamed = (np.load(folder / f"scores-{how}.npy") for how in ("held", "streamed"))
        same = all(set(np.argsort(-h)[:20]) == set(np.argsort(-s)[:20])
                   for h, s in zip(held, streamed, strict=True))
        print(f"scores: largest difference {np.abs(held - streamed).max():.2e}; "
              f"top-20 rows of each query the same: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
