"""`python -m worker.cli.submit FRONT [BACK] [-k 20] [--front-weight 0.5] [--sides-unknown]
[--filter column:value[,value...]]... [--json]`

A command-line search for scripts. It goes through the same queue as the web: the images
are validated and stored in UPLOAD_DIR the same way, the job is enqueued by name, and the
command waits for a worker to finish it. It never loads the model itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import uuid
from pathlib import Path

from pydantic import ValidationError
from redis import Redis
from redis.exceptions import RedisError, WatchError
from rq import Queue
from rq.job import JobStatus

from worker.core.contract import (
    DEFAULT_FRONT_WEIGHT,
    DEFAULT_K,
    SearchOptions,
    SearchRequest,
    problems,
)
from worker.core.images import STORED_FORMAT, ImageRejected, stored_form
from worker.core.queueing import ENDED, enqueue_search, upload_name, wait_until_done
from worker.core.settings import InvalidSetting, Settings
from worker.core.storage import Storage, open_storage


def _store(storage: Storage, settings: Settings, search_id: str, side: str, path: Path) -> str:
    """Store what the web would store of this drawing (its pixels, bounded, as PNG)."""
    try:
        stored, _ = stored_form(path.read_bytes(), settings.max_image_pixels)
    except ImageRejected as exc:
        raise ImageRejected(exc.reason, f"the {side} drawing {str(path)!r}: {exc}") from None
    name = upload_name(search_id, side, STORED_FORMAT)
    storage.put_upload(name, stored)
    return name


def run_search(settings: Settings, storage: Storage, connection: Redis, front: Path | None,
               back: Path | None, options: SearchOptions, timeout: float) -> dict:
    """Enqueue one search and wait for it; returns the job's result. Raises on failure."""
    search_id = uuid.uuid4().hex
    names: dict[str, str] = {}
    try:
        for side, path in (("front", front), ("back", back)):
            if path is not None:
                names[side] = _store(storage, settings, search_id, side, path)
        job = enqueue_search(Queue(settings.queue_name, connection=connection), settings,
                             SearchRequest(search_id=search_id, **names, **options.model_dump()))
    except BaseException:  # a drawing refused, Redis away: nothing of the search is kept
        with contextlib.suppress(OSError, RedisError):
            storage.delete_uploads(list(names.values()))
        raise
    try:
        status = wait_until_done(connection, job, timeout)
    except KeyboardInterrupt:
        _withdraw(storage, job, names)
        raise
    if status == JobStatus.FINISHED:
        return {"id": search_id, **job.return_value()}
    if status in ENDED:  # failed, stopped or cancelled
        job.refresh()
        raise RuntimeError(job.meta.get("error") or "the search failed")
    withdrawn = _withdraw(storage, job, names)
    raise TimeoutError(f"no worker finished the search within {timeout:g} s "
                       "(is `python -m worker` running?)"
                       + ("; it is withdrawn from the queue" if withdrawn else ""))


def _withdraw(storage: Storage, job, names: dict[str, str]) -> bool:
    """Take a search nobody waits for any more out of the queue, with its uploads, unless a
    worker has it already (it ends as any search does); whether it was taken out."""
    with contextlib.suppress(RedisError, OSError), job.connection.pipeline() as pipe:
        try:
            # a worker's start (dropped.start's Lua) writes the job's status: WATCH sees it
            pipe.watch(job.key)
            if pipe.hget(job.key, "status") != JobStatus.QUEUED.value.encode():
                return False
            pipe.multi()
            job.cancel(pipeline=pipe)
            pipe.execute()
        except WatchError:
            return False
        storage.delete_uploads(list(names.values()))
        return True
    return False


def print_hits(result: dict) -> None:
    """The list as the page shows it: rank, verdict and similarity (what a person reads),
    score, name; and what the page says of the list and of each side."""
    print("rank  verdict          similarity  score   name")
    for hit in result["results"]:
        similarity = "" if hit.get("similarity") is None else hit["similarity"]
        print(f"{hit['rank']:>4}  {hit.get('verdict') or '-':<15}  {similarity:>10}  "
              f"{hit['score']:.4f}  {hit['name']}" + ("  (sides swapped)" if hit.get("swapped")
                                                       else ""))
    if result.get("order") == "design":
        print("after the copy found first, the list is ordered by design, not by score")
    for side in result.get("outline_only", []):
        print(f"the {side} is a line sketch: matched by its outline alone, given no verdict")
    for copy in result.get("side_copies", []):
        print(f"the {copy['side']} alone is a {copy['verdict']} of {copy['name']} "
              f"(similarity {copy['similarity']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.cli.submit",
                                     description="Search the catalogue for a design.")
    parser.add_argument("front", type=Path, help="front drawing (or '-' for none)")
    parser.add_argument("back", type=Path, nargs="?", help="back drawing (or '-' for none)")
    parser.add_argument("-k", default=DEFAULT_K)
    parser.add_argument("--front-weight", default=DEFAULT_FRONT_WEIGHT)
    parser.add_argument("--sides-unknown", action="store_true")
    parser.add_argument("--filter", action="append", default=[], metavar="COLUMN:VALUE[,VALUE]",
                        help="only designs with one of these values in that pairs.csv column "
                             "(repeatable: columns AND'ed)")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = parser.parse_args(argv)
    front, back = (None if path is None or str(path) == "-" else path
                   for path in (args.front, args.back))
    if front is None and back is None:
        parser.error("give at least one drawing: FRONT, BACK, or both ('-' stands for none)")
    try:
        options = SearchOptions(k=args.k, front_weight=args.front_weight,
                                sides_unknown=args.sides_unknown, filters=args.filter)
    except ValidationError as exc:
        parser.error("; ".join(message for _, message in problems(exc)))
    try:
        settings = Settings.from_env()
    except InvalidSetting as exc:
        print(f"submit: {exc}", file=sys.stderr)
        return 2
    for side, path in (("front", front), ("back", back)):
        if path is not None and not path.is_file():
            parser.error(f"the {side} drawing {str(path)!r} is not a file")
    connection = Redis.from_url(settings.redis_url)
    storage = open_storage(settings, connection)
    try:
        result = run_search(settings, storage, connection, front, back, options, args.timeout)
    except (ImageRejected, OSError, RuntimeError, TimeoutError) as exc:
        print(f"submit: {exc}", file=sys.stderr)
        return 1
    except RedisError as exc:
        print(f"submit: Redis (REDIS_URL) cannot be reached: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("submit: interrupted; the search is withdrawn unless a worker had it",
              file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print_hits(result)
    grid = storage.export_result(result["image"], settings.output_dir)
    if grid is None:
        print("submit: the grid has already expired", file=sys.stderr)
        return 1
    print(f"grid: {grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
