"""`python -m worker`: start one search worker (model and banks loaded once)."""

from __future__ import annotations

import argparse
import logging
import sys

from redis import Redis
from redis.exceptions import RedisError
from rq import Worker

from worker.core.bank import BankError
from worker.core.catalogue import CatalogueError
from worker.core.settings import InvalidSetting, Settings
from worker.pipeline.weights import WeightsUnavailable
from worker.service.housekeeping import worker_name
from worker.service.orphans import forget_dead_local_workers
from worker.service.process import served_queues, start_engine
from worker.service.serving import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve paired design searches from the queue.")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--name", default=None,
                        help="worker name (default: host.pid.random, by which a restarted "
                             "worker knows its dead predecessor and runs its search again; a "
                             "given name's searches are failed instead); NAME~N after the Nth "
                             "Redis outage")
    parser.add_argument("--chunks-only", action="store_true",
                        help="serve only a distributed index build's chunks; needs no index "
                             "(the first build of a catalogue on several machines)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        connection = Redis.from_url(settings.redis_url)
        name = args.name or worker_name()
        try:  # before the model loads: /readyz no longer counts a predecessor killed here
            forget_dead_local_workers(connection, name)
            key = Worker.redis_worker_namespace_prefix + name
            if args.name and connection.exists(key) and not connection.hexists(key, "death"):
                # RQ would refuse it after the model loaded, and a restart would load it again
                print(f"worker: cannot start: a worker named {name!r} is registered (a "
                      "killed one's registration lasts until it expires, JOB_TIMEOUT + 60 s at "
                      "most); wait, or start without --name", file=sys.stderr)
                return 2
        except RedisError as exc:  # Redis away: the worker's own loop waits for it
            logging.getLogger("worker").warning("could not tidy the workers' registry: %s", exc)
        engine = start_engine(settings, with_index=not args.chunks_only)
    except (BankError, CatalogueError, InvalidSetting, WeightsUnavailable) as exc:
        print(f"worker: cannot start: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("worker").info(
        "serving %s on %s%s", ", then ".join(repr(q) for q in served_queues(settings, engine)),
        settings.redis_shown, "" if engine.snapshot is None else
        f" with {len(engine.snapshot.catalogue)} pairs")
    try:
        serve(settings, engine, connection, name, args.burst)
    finally:
        engine.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
