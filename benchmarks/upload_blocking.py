"""Does handling large uploads stall the web's other requests? gunicorn as `make run` starts it
(gevent, WEB_WORKERS=1 here so that every request meets the uploads), a real redis-server, no
worker (REQUIRE_WORKER=0: searches are queued, never run). A prober asks /healthz every 20 ms
while `--uploads` clients each POST a scan-like pair (a sample drawing enlarged to `--side` px
with sensor noise, JPEG quality 90) `--rounds` times, or with `--collection N` a ZIP of N such
pairs to /api/checks; the probe's latency while uploads run is what every other client of that
web process waits.

    .venv/bin/python -m benchmarks.upload_blocking [--uploads 4] [--rounds 3] [--side 2000]
                                                   [--collection N]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from benchmarks.perf.report import md_table
from benchmarks.perf.service import http_up, wait_until
from worker.core.settings import Settings
from worker.dev.processes import free_port, start_redis, stop_process
from worker.dev.sample import draw_side, make_designs
from worker.dev.services import start_web


def scan_pair(index: int, side: int) -> tuple[bytes, bytes]:
    """A sample design's drawings as a scanner would hand them in."""
    rng = np.random.default_rng(index)
    out = []
    design = make_designs(index + 1, seed=7)[index]
    for img in (draw_side(design, "front"), draw_side(design, "back")):
        big = img.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
        noisy = np.asarray(big, np.int16) + rng.normal(0, 3, (side, side, 3)).round().astype(np.int16)
        buf = io.BytesIO()
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out[0], out[1]


def collection_zip(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """A check's upload: pairs.csv and each pair's two JPEGs (stored as a ZIP tool stores
    JPEGs: deflated, which gains them nothing)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        rows = ["name,front,back"]
        for i, (front, back) in enumerate(pairs):
            archive.writestr(f"d{i}-front.jpg", front)
            archive.writestr(f"d{i}-back.jpg", back)
            rows.append(f"design-{i},d{i}-front.jpg,d{i}-back.jpg")
        archive.writestr("pairs.csv", "\n".join(rows) + "\n")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=4, help="concurrent uploading clients")
    parser.add_argument("--rounds", type=int, default=3, help="uploads per client")
    parser.add_argument("--side", type=int, default=2000)
    parser.add_argument("--collection", type=int, default=0,
                        help="POST a ZIP of this many pairs to /api/checks instead of a pair")
    args = parser.parse_args(argv)
    pairs = [scan_pair(i, args.side) for i in range(max(args.uploads, args.collection))]
    if args.collection:
        bundle = collection_zip(pairs[:args.collection])
        request = ("/api/checks", lambda _pair: {"collection": ("c.zip", bundle, "application/zip")})
    else:
        request = ("/api/searches", lambda pair: {"front": ("f.jpg", pair[0], "image/jpeg"),
                                                  "back": ("b.jpg", pair[1], "image/jpeg")})
    tmp = Path(tempfile.mkdtemp(prefix="upload-blocking-"))
    port, web_port = free_port(), free_port()
    redis = start_redis(port, tmp / "redis")
    settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0", database_dir=tmp / "database",
                        features_dir=tmp / "features", upload_dir=tmp / "uploads",
                        output_dir=tmp / "output", require_worker=False, web_workers=1,
                        max_queue_length=1000)
    web = start_web(settings, web_port, log=tmp / "web.log")
    base = f"http://127.0.0.1:{web_port}"
    try:
        wait_until(lambda: http_up(f"{base}/healthz"), 60, "gunicorn answering /healthz", 0.2)
        probes: list[tuple[float, float]] = []  # (start, ms)
        done = threading.Event()

        def probe() -> None:
            with requests.Session() as s:
                while not done.is_set():
                    start = time.perf_counter()
                    s.get(f"{base}/healthz", timeout=30)
                    probes.append((start, (time.perf_counter() - start) * 1000))
                    time.sleep(0.02)

        posts: list[float] = []

        def upload(pair: tuple[bytes, bytes]) -> None:
            with requests.Session() as s:
                for _ in range(args.rounds):
                    start = time.perf_counter()
                    r = s.post(f"{base}{request[0]}", timeout=600, files=request[1](pair))
                    assert r.status_code == 202, r.text
                    posts.append((time.perf_counter() - start) * 1000)

        prober = threading.Thread(target=probe)
        prober.start()
        time.sleep(0.5)
        quiet = [ms for _, ms in probes]
        begin = time.perf_counter()
        clients = [threading.Thread(target=upload, args=(pair,)) for pair in pairs[:args.uploads]]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        end = time.perf_counter()
        done.set()
        prober.join()
    finally:
        stop_process(web)
        stop_process(redis)
    during = [ms for start, ms in probes if begin <= start <= end]
    what = (f"a ZIP of {args.collection} pairs ({len(bundle) >> 20} MiB)" if args.collection
            else "a pair")
    print(f"`python -m benchmarks.upload_blocking --uploads {args.uploads} --rounds "
          f"{args.rounds} --side {args.side} --collection {args.collection}`: {len(posts)} "
          f"POSTs of {what}; two {args.side}-px JPEGs, "
          f"{np.mean([len(f) + len(b) for f, b in pairs]) / 1024:.0f} KiB a pair\n")
    print(md_table(["measure", "n", "p50 ms", "p95 ms", "max ms"], [
        [name, len(xs), *(f"{np.percentile(xs, q):.1f}" for q in (50, 95, 100))]
        for name, xs in (("/healthz, idle", quiet), ("/healthz, while uploading", during),
                         (f"POST {request[0]}", posts))]))
    print(f"\nuploads ran {end - begin:.2f} s; logs in {tmp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
