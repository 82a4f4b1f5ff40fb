"""Per-stage timing totals the worker keeps in Redis, for the web's `/metrics` to read cheaply.

Redis only (no TensorFlow, no numpy): the web process imports this module. Each finished
search adds its stage durations to one hash of sums (ms, float) and one of counts, keyed by
stage name (`preprocess`, `extract`, `search`, `render`, `total`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

STAGE_MS_SUM = "pairsearch:metrics:stage_ms_sum"
STAGE_COUNT = "pairsearch:metrics:stage_count"
# counts that only go up (RQ's registries lose a result when it expires): searches ended by
# outcome, and the web's 503 refusals by their code
SEARCHES_ENDED = "pairsearch:metrics:searches_ended"
REFUSALS = "pairsearch:metrics:refusals"


def stage_name(timing_key: str) -> str:
    """`extract_ms` -> `extract` (a key without the suffix is kept as it is)."""
    return timing_key.removesuffix("_ms")


def record_timings(connection: Redis | None, timings: Mapping[str, float]) -> None:
    """Add one search's `{"<stage>_ms": ms}` to the totals. Never fails the search: a Redis
    error is logged and the sample dropped. `connection` None (no RQ job) does nothing."""
    if connection is None or not timings:
        return
    try:
        with connection.pipeline(transaction=True) as pipe:
            for key, ms in timings.items():
                stage = stage_name(key)
                pipe.hincrbyfloat(STAGE_MS_SUM, stage, float(ms))
                pipe.hincrby(STAGE_COUNT, stage, 1)
            pipe.execute()
    except (RedisError, TypeError, ValueError) as exc:
        log.warning("stage timings not recorded: %s", exc)


def count(connection: Redis, key: str, field: str) -> None:
    """One more `field` in counter hash `key` (SEARCHES_ENDED, REFUSALS); never fails its
    caller: a Redis error is logged and the count dropped."""
    try:
        connection.hincrby(key, field, 1)
    except RedisError as exc:
        log.warning("%s %s not counted: %s", key, field, exc)


def read_counts(connection: Redis) -> tuple[dict[str, int], dict[str, int]]:
    """(searches ended by outcome, refusals by code); raises RedisError when Redis is away."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.hgetall(SEARCHES_ENDED)
        pipe.hgetall(REFUSALS)
        ended, refused = pipe.execute()
    return ({_text(k): int(v) for k, v in ended.items()},
            {_text(k): int(v) for k, v in refused.items()})


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read_metrics(connection: Redis) -> dict[str, dict[str, float | int]]:
    """`{stage: {"sum_ms": float, "count": int}}` for every stage recorded so far (raises
    RedisError when Redis is away)."""
    with connection.pipeline(transaction=False) as pipe:  # a full Redis refuses MULTI
        pipe.hgetall(STAGE_MS_SUM)
        pipe.hgetall(STAGE_COUNT)
        sums, counts = pipe.execute()
    sums = {_text(k): float(v) for k, v in sums.items()}
    counts = {_text(k): int(v) for k, v in counts.items()}
    return {stage: {"sum_ms": sums.get(stage, 0.0), "count": counts.get(stage, 0)}
            for stage in sorted(sums.keys() | counts.keys())}
