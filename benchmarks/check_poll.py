"""What a large finished collection check costs the web process: `GET /api/checks/<id>`
whole, with `?designs=false` (the progress and options alone, what the check page polls
while it runs), its page and its CSV. A real redis-server, the app from its factory (Flask's
test client, in this process: the time is the process's CPU, on or off the gevent loop), a
check written to Redis as the workers write one, each design's hits other designs of a
10,000-design catalogue.

    .venv/bin/python -m benchmarks.check_poll [--designs 500] [--k 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

from redis import Redis

from benchmarks.perf.report import md_table
from worker.core.checks import create_check, record_outcomes
from worker.core.contract import CheckedDesign, Hit, SearchOptions
from worker.core.settings import Settings
from worker.dev.processes import free_port, start_redis, stop_process


def hit(rank: int, design: int = 0) -> Hit:
    name = f"dress-{(design * 37 + rank) % 10_000:04d}"
    return Hit(rank=rank, name=name, score=0.5, front_score=0.5, back_score=0.5, swapped=False,
               front=f"images/{name}_front.png", back=f"images/{name}_back.png", verdict=None,
               similarity=40)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", type=int, default=500, help="CHECK_MAX_PAIRS by default")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    from web import create_app

    with tempfile.TemporaryDirectory() as tmp:
        root, port = Path(tmp), free_port()
        server = start_redis(port, root / "redis")
        try:
            settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0", upload_dir=root / "u",
                                output_dir=root / "o", features_dir=root / "f",
                                database_dir=root / "d")
            client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
            redis, check_id = Redis(port=port), uuid.uuid4().hex
            names = [f"design-{i}" for i in range(args.designs)]
            create_check(redis, check_id, names, SearchOptions(k=args.k), [], {}, 3600)
            record_outcomes(redis, check_id, {i: CheckedDesign(
                name=n, status="finished", results=[hit(rank, i) for rank in range(1, args.k + 1)])
                for i, n in enumerate(names)}, 3600)
            rows = []
            for query in ("", "?designs=false", "/report.csv", "page"):
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    answer = client.get(f"/checks/{check_id}" if query == "page"
                                        else f"/api/checks/{check_id}{query}")
                    times.append(time.perf_counter() - start)
                assert answer.status_code == 200, answer.get_json()
                rows.append([query or "(whole)", f"{len(answer.data):,}",
                             f"{sorted(times)[len(times) // 2] * 1000:.0f}"])
        finally:
            stop_process(server)
    print(f"a finished check of {args.designs} designs, k={args.k}; median of {args.repeats}\n")
    print(md_table(["GET /api/checks/<id>", "bytes", "ms"], rows))  # "page": /checks/<id>
    return 0


if __name__ == "__main__":
    sys.exit(main())
