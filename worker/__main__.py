"""`python -m worker`: start one search worker (model and banks loaded once)."""

from __future__ import annotations

import argparse
import logging
import sys

from redis import Redis

from worker.core.bank import BankError
from worker.core.catalogue import CatalogueError
from worker.core.settings import InvalidSetting, Settings
from worker.pipeline.weights import WeightsUnavailable
from worker.service.process import serve, start_engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve paired design searches from the queue.")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--name", default=None, help="worker name (default: RQ's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        engine = start_engine(settings)
    except (BankError, CatalogueError, InvalidSetting, WeightsUnavailable) as exc:
        print(f"worker: cannot start: {exc}", file=sys.stderr)
        return 2
    connection = Redis.from_url(settings.redis_url)
    logging.getLogger("worker").info(
        "serving queues %r, then %r, on %s with %d pairs", settings.queue_name,
        settings.check_queue_name, settings.redis_url,
        len(engine.snapshot.catalogue))
    serve(settings, engine, connection, args.name, args.burst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
