"""`check`: a collection check end to end against the same worker's single pair searches.

In a temporary directory (as `e2e`): redis-server, a sample catalogue and its index, gunicorn
and one `python -m worker`. First `--searches` pair searches one after another over HTTP (each
POST -> finished seen by long poll), then one check of `--check-pairs` designs (a ZIP of
catalogue drawings, one pixel changed each: no cache) from its POST to its finished status.
The check's time is compared with `--check-pairs` x the pair search's mean and p50.
"""

from __future__ import annotations

import argparse
import io
import os
import time
import zipfile
from collections.abc import Sequence

from benchmarks.perf.catalogue import QueryImages
from benchmarks.perf.e2e import prepare_index
from benchmarks.perf.report import emit, fmt, md_table, percentile, preamble
from benchmarks.perf.searches import all_finished, sequential_searches
from benchmarks.perf.service import Service, start_web, started_service, wait_until


def collection_zip(images: QueryImages, pairs: int) -> bytes:
    """A ZIP of `pairs` designs: pairs.csv and each design's two PNGs."""
    buf = io.BytesIO()
    rows = ["name,front,back"]
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(pairs):
            front, back = images.next()
            archive.writestr(f"img/{i:04d}-f.png", front)
            archive.writestr(f"img/{i:04d}-b.png", back)
            rows.append(f"new-{i:04d},img/{i:04d}-f.png,img/{i:04d}-b.png")
        archive.writestr("pairs.csv", "\n".join(rows) + "\n")
    return buf.getvalue()


def run_check(service: Service, data: bytes, timeout: float) -> tuple[float, float, dict]:
    """POST the ZIP, long-poll the check to its end: (POST s, POST start -> finished s, body)."""
    import requests

    session = requests.Session()
    start = time.perf_counter()
    response = session.post(f"{service.base}/api/checks", timeout=600,
                            files={"collection": ("season.zip", data, "application/zip")})
    posted = time.perf_counter() - start
    if response.status_code != 202:
        raise RuntimeError(f"check refused: {response.status_code} {response.text[:300]}")
    url, deadline = response.json()["url"], time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = session.get(f"{service.base}{url}?wait=30", timeout=60).json()
        if body["status"] == "finished":
            return posted, time.perf_counter() - start, body
    raise TimeoutError(f"the check did not finish within {timeout:.0f} s")


def cmd_check(args: argparse.Namespace, argv: Sequence[str]) -> int:
    os.environ["CHECK_CHUNK_PAIRS"] = str(args.chunk_pairs)  # read by the web's Settings.from_env
    preamble("Collection check end to end", argv, {
        "pairs in the catalogue": args.pairs, "pair searches": args.searches,
        "designs in the check": args.check_pairs, "CHECK_CHUNK_PAIRS": args.chunk_pairs,
        "descriptor": args.descriptor, "weights": args.weights, "workers": 1,
        "queries": "catalogue drawings, one pixel changed each (no cache hits)"})
    with started_service(args) as service:
        prepare_index(service, args)
        start_web(service, args.timeout)
        service.start_worker()
        wait_until(lambda: service.worker_count() >= 1, args.timeout, "worker registered")
        images = QueryImages(service.tmp / "database")
        sequential_searches(service, images, 3, args.timeout)  # warm: not counted
        samples = [s.e2e_ms for s in all_finished(sequential_searches(
            service, images, args.searches, args.timeout))]
        posted, wall, body = run_check(service, collection_zip(images, args.check_pairs),
                                       args.timeout)
    failed = sum(d["status"] == "failed" for d in body["designs"])
    mean, p50 = sum(samples) / len(samples), percentile(samples, 50)
    emit(md_table(
        ["check: designs (failed)", "POST (validate + store) s", "POST -> finished s",
         "per design ms", f"pair search mean / p50 ms (n={len(samples)})",
         f"{args.check_pairs} x pair search mean / p50 s", "check / (n x mean)"],
        [[f"{body['total']} ({failed})", fmt(posted, 2), fmt(wall, 2),
          fmt(1000 * wall / body["total"]), f"{fmt(mean)} / {fmt(p50)}",
          f"{fmt(args.check_pairs * mean / 1000, 2)} / {fmt(args.check_pairs * p50 / 1000, 2)}",
          fmt(wall / (args.check_pairs * mean / 1000), 2)]]))
    return 0
