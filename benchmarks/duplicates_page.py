"""What the catalogue's duplicate list costs the web to answer on a large catalogue: a synthetic
generation (look-alike families, 1 % seeded copies: `benchmarks.perf.duplicates`), the app from
its factory, each URL asked twice (the second shows what a cache keeps), its time and size.

`python -m benchmarks.duplicates_page [--pairs 20000] [--dim 256] [--seed 0]`

No Redis is asked: these answers read the generation's files only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.perf.duplicates import seeded_banks
from worker.core.bank import write_bank
from worker.core.duplicates import DUPLICATES
from worker.core.settings import DEFAULT_DESCRIPTOR, Settings
from worker.pipeline.duplicates import find_duplicates
from worker.pipeline.verdicts import thresholds_for

URLS = ("/duplicates", "/duplicates?min_verdict=similar", "/duplicates?min_verdict=similar&page=2",
        "/api/duplicates?min_verdict=similar", "/api/duplicates.csv?min_verdict=similar")


def write_generation(features_dir: Path, n: int, dim: int, seed: int) -> int:
    """A generation of `n` synthetic designs with its duplicate list; the pairs listed."""
    front, back = seeded_banks(np.random.default_rng(seed), n, dim)
    thresholds = thresholds_for(DEFAULT_DESCRIPTOR)
    names = [f"design-{i:05d}" for i in range(n)]
    manifest = {"n_pairs": n, "dim": dim, "dtype": "float32", "descriptor": DEFAULT_DESCRIPTOR,
                "verdicts": thresholds, "names": names,
                "fronts": [f"images/{name}_front.png" for name in names],
                "backs": [f"images/{name}_back.png" for name in names]}
    pairs = find_duplicates(front, back, thresholds, 0)
    write_bank(features_dir, front, back, manifest, extra_files={DUPLICATES: pairs.to_bytes()})
    return len(pairs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20000, help="designs in the catalogue")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from web import create_app

    with tempfile.TemporaryDirectory(prefix="duplicates-page-") as tmp:
        root = Path(tmp)
        listed = write_generation(root / "features", args.pairs, args.dim, args.seed)
        settings = Settings.from_env({}, features_dir=root / "features", database_dir=root / "db",
                                     upload_dir=root / "uploads", output_dir=root / "output")
        client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
        print(f"# {args.pairs:,} designs, {listed:,} pairs listed (seed {args.seed}, dim "
              f"{args.dim})")
        print("| URL | status | first s | again s | bytes |\n|---|---|---|---|---|")
        for url in URLS:
            times = []
            for _ in range(2):
                start = time.perf_counter()
                response = client.get(url)
                body = response.get_data()
                times.append(time.perf_counter() - start)
            print(f"| `{url}` | {response.status_code} | {times[0]:.2f} | {times[1]:.2f} | "
                  f"{len(body):,} |")
        for verdict in ("near-duplicate", "similar"):
            groups = client.get(f"/api/duplicates?min_verdict={verdict}").get_json()["groups"]
            print(f"# at {verdict}: {len(groups):,} groups, the largest "
                  f"{max(len(g['designs']) for g in groups):,} designs and "
                  f"{max(len(g['pairs']) for g in groups):,} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
