"""`e2e`: the sample catalogue, its index (built and timed) and the query images."""

from __future__ import annotations

import io
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.perf.report import emit, fmt, md_table
from benchmarks.perf.service import Service, tail
from worker.core.bank import read_manifest
from worker.core.catalogue import load_catalogue
from worker.core.settings import REPO_ROOT


def catalogue_paths(database: Path) -> list[tuple[str, str]]:
    catalogue = load_catalogue(database)
    return list(zip(catalogue.fronts, catalogue.backs, strict=True))


@dataclass(frozen=True)
class IndexBuild:
    images: int
    wall_s: float
    build_s: float | None
    peak_rss_kb: int


def build_index(service: Service) -> IndexBuild:
    pairs = catalogue_paths(service.tmp / "database")
    images = len({p for pair in pairs for p in pair})
    log = service.logs / "index.log"
    start = time.perf_counter()
    with log.open("ab") as out:
        rc = subprocess.run([sys.executable, "-m", "worker.cli.index"], env=service.env, cwd=REPO_ROOT,
                            stdout=out, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    if rc != 0:
        raise RuntimeError(f"python -m worker.cli.index exited with {rc}:\n{tail(log)}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KB on Linux
    manifest = read_manifest(service.tmp / "features")
    return IndexBuild(images, wall, manifest.get("build_seconds"), peak)


def index_settings(service: Service) -> dict[str, object]:
    m = read_manifest(service.tmp / "features")
    return {"pairs": m.get("n_pairs"), "dim": m.get("dim"), "descriptor": m.get("descriptor"),
            "weights": (m.get("weights") or {}).get("id"), "precision": m.get("precision")}


def report_index(build: IndexBuild, service: Service) -> None:
    emit("### Index build (`python -m worker.cli.index`, subprocess)\n")
    emit(md_table(
        ["images", "wall s", "build s (manifest)", "images/s (wall)", "images/s (build)",
         "peak RSS MiB"],
        [[build.images, fmt(build.wall_s, 2), fmt(build.build_s, 2),
          fmt(build.images / build.wall_s, 2),
          fmt(build.images / build.build_s if build.build_s else None, 2),
          fmt(build.peak_rss_kb / 1024)]]))
    emit(f"\nindex: {index_settings(service)}\n")


class QueryImages:
    """Catalogue drawings as PNG bytes, each with one pixel changed so no two searches (and
    no catalogue image) share bytes: the service's result cache never answers them."""

    def __init__(self, database: Path):
        self.database = database
        self.pairs = catalogue_paths(database)
        self.count = 0
        self._cache: dict[str, np.ndarray] = {}

    def _pixels(self, rel: str) -> np.ndarray:
        from PIL import Image

        if rel not in self._cache:
            with Image.open(self.database / rel) as img:
                self._cache[rel] = np.asarray(img.convert("RGB"))
        return self._cache[rel]

    @staticmethod
    def _png(pixels: np.ndarray) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        return buf.getvalue()

    def next(self) -> tuple[bytes, bytes]:
        i = self.count
        self.count += 1
        front_rel, back_rel = self.pairs[i % len(self.pairs)]
        front = self._pixels(front_rel).copy()
        h, w, _ = front.shape
        y, x = divmod(i % (h * w), w)
        front[y, x] ^= 0x55  # a different pixel per search
        return self._png(front), self._png(self._pixels(back_rel))
