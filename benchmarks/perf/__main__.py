"""Performance of the paired search: the search stage against bank sizes, and the service end to end.

`python -m benchmarks.perf sizes [--dim 1024] [--sizes 3000,30000,300000,1000000] [--queries 20]`
    Synthetic L2-normalised float32 banks (front and back); times
    `worker.pipeline.ranking.top_k(bank, qf, qb, 20, 0.5)` (and with sides_unknown) per query with
    float32 queries (what the extractor returns), brute force and coarse + exact
    (`worker.pipeline.ann`: index build time, memory, agreement of its top 20 with brute force on
    random and on clustered banks). A size whose estimated cost exceeds `--budget-s` is skipped.

`python -m benchmarks.perf e2e [--pairs 3000] [--searches 50] [--concurrent 100] [--workers 1,2]
[--descriptor D] [--weights bsds500] [--precision auto]`
    In a temporary directory: redis-server on a free port, a sample catalogue, the index built
    by `python -m worker.cli.index` (wall time, images/s, peak RSS), gunicorn + one `python -m
    worker` (start-up time to the first finished search), sequential searches over HTTP (per
    stage p50/p95), process RSS, then bursts of concurrent searches with 1, 2... workers.

`python -m benchmarks.perf model [--batch-sizes 1,2,4,8,16,32] [--repeats 64] [--precision auto]`
    The model alone (`FeatureExtractor.extract`) on random canvases: ms and images/s per batch size.

`python -m benchmarks.perf check [--pairs 300] [--searches 20] [--check-pairs 200] [--chunk-pairs 4]`
    The same service; `--searches` pair searches one after another, then one collection check
    of `--check-pairs` designs (POST /api/checks -> finished), against that many pair searches.

`python -m benchmarks.perf duplicates [--sizes 5000,20000,100000] [--exact-max 20000]
[--recall-at 100000]`
    Listing the catalogue's duplicate pairs (`worker.pipeline.duplicates`) on synthetic
    clustered banks with 1% seeded copies: seconds of the exact and of the coarse (IVF range
    search) pass, pairs listed, the coarse pass's share of the exact pairs.

`python -m benchmarks.perf bankwork [--sizes 100000,1000000] [--queries 20] [--exact-queries 10]`
    A whole search's bank work (its list, then each side alone) after the forward pass,
    through the coarse index and by brute force, on the look-alike sample's banks resampled
    with noise to each size: ms, the coarse index's build time and bytes, agreement.

`python -m benchmarks.perf int8 [--pairs 300] [--rounds 2] [--searches 20] [--concurrent 40]`
    PRECISION=int8 against bfloat16, alternated in one run: the forward pass at batch 1, then
    per precision the service (index build, idle-queue searches, a one-worker burst).

Every subcommand prints its command line and key settings, then markdown tables.
"""

from __future__ import annotations

import argparse
import os
import sys

from benchmarks.perf import bankwork, duplicates
from benchmarks.perf.checks import cmd_check
from benchmarks.perf.e2e import cmd_e2e
from benchmarks.perf.int8 import cmd_int8
from benchmarks.perf.model import cmd_model
from benchmarks.perf.service import WEB_MODES
from benchmarks.perf.sizes import cmd_sizes
from worker.core.settings import Settings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sizes", help="top_k against synthetic banks of several sizes")
    s.add_argument("--dim", type=int, default=1024)
    s.add_argument("--sizes", default="3000,30000,300000,1000000")
    s.add_argument("--queries", type=int, default=20)
    s.add_argument("--budget-s", type=float, default=60.0,
                   help="skip a size estimated to take longer (default 60)")
    s.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("e2e", help="the whole service: index, start-up, searches, bursts")
    e.add_argument("--pairs", type=int, default=3000)
    e.add_argument("--searches", type=int, default=50)
    e.add_argument("--concurrent", type=int, default=100)
    e.add_argument("--workers", default="1,2")
    e.add_argument("--threads", type=int, default=25)
    e.add_argument("--descriptor", default=os.environ.get("DESCRIPTOR") or Settings().descriptor)
    e.add_argument("--weights", default="bsds500")
    e.add_argument("--precision", default="auto")
    e.add_argument("--queue-name", default="perf")
    e.add_argument("--timeout", type=float, default=1800.0,
                   help="seconds any single wait may take (default 1800)")
    e.add_argument("--keep", action="store_true", help="keep the temporary directory and logs")
    e.add_argument("--reuse", metavar="DIR",
                   help="copy database/ and features/ from DIR (a --keep run) instead of "
                        "writing the catalogue and building the index")
    e.add_argument("--storage", choices=("files", "redis"), default="files")
    e.add_argument("--web", choices=WEB_MODES, default="gevent",
                   help="gevent: gunicorn.conf.py, as `make run` serves (default); threads: "
                        "2 processes x 8 threads, as runs before 2026-12-02")
    e.add_argument("--batch-size", type=int, default=Settings().batch_size,
                   help="BATCH_SIZE of the workers (queued searches per forward pass)")
    c = sub.add_parser("check", help="a collection check against single pair searches")
    c.add_argument("--pairs", type=int, default=300)
    c.add_argument("--searches", type=int, default=20)
    c.add_argument("--check-pairs", type=int, default=200)
    c.add_argument("--chunk-pairs", type=int, default=Settings().check_chunk_pairs)
    for name, default in (("--descriptor", Settings().descriptor), ("--weights", "bsds500"),
                          ("--precision", "auto"), ("--queue-name", "perf"),
                          ("--storage", "files"), ("--reuse", None)):
        c.add_argument(name, default=default)
    c.add_argument("--batch-size", type=int, default=Settings().batch_size)
    c.add_argument("--timeout", type=float, default=1800.0)
    c.add_argument("--keep", action="store_true")
    m = sub.add_parser("model", help="the model alone: images/s per batch size")
    m.add_argument("--batch-sizes", default="1,2,4,8,16,32")
    m.add_argument("--precision", default="auto")
    m.add_argument("--descriptor", default=Settings().descriptor)
    m.add_argument("--weights", default="bsds500")
    m.add_argument("--repeats", type=int, default=64, help="images per batch size (about)")
    duplicates.add_parser(sub)
    bankwork.add_parser(sub)
    i = sub.add_parser("int8", help="int8 against bfloat16 (or --against float32), alternated: "
                       "model and service")
    i.add_argument("--against", choices=("bfloat16", "float32"), default="bfloat16",
                   help="the baseline precision (float32 on a CPU without bfloat16 units)")
    i.add_argument("--pairs", type=int, default=300)
    i.add_argument("--rounds", type=int, default=2)
    i.add_argument("--model-calls", type=int, default=24, help="batch-1 calls per round")
    i.add_argument("--searches", type=int, default=20)
    i.add_argument("--concurrent", type=int, default=40)
    i.add_argument("--threads", type=int, default=25)
    i.add_argument("--descriptor", default=Settings().descriptor)
    i.add_argument("--weights", default="bsds500")
    i.add_argument("--timeout", type=float, default=1800.0)
    i.set_defaults(queue_name="perf", keep=False, storage="files",
                   batch_size=Settings().batch_size)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.command == "sizes":
        return cmd_sizes(args, argv)
    if args.command == "duplicates":
        return duplicates.cmd_duplicates(args, argv)
    if args.command == "bankwork":
        return bankwork.cmd_bankwork(args, argv)
    if args.command == "model":
        return cmd_model(args, argv)
    if args.command == "check":
        return cmd_check(args, argv)
    if args.command == "int8":
        return cmd_int8(args, argv)
    return cmd_e2e(args, argv)


if __name__ == "__main__":
    sys.exit(main())
