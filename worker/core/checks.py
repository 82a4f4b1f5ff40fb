"""A collection check in Redis: created by the web, advanced by its chunk jobs, read back.

A check of N designs is split into chunks of CHECK_CHUNK_PAIRS designs, each one job
(`worker.service.checks.check_chunk`) on the checks queue, which workers serve after the
search queue: a search submitted during a long check waits for one chunk at most.

Keys, both expiring after RESULT_TTL:
- `pairsearch:check:<id>`: hash of `total`, `names` (JSON list, pairs.csv order), `options`
  (the SearchOptions, JSON), `chunks` (JSON `[[job id, [row, ...]], ...]`), `started`,
  `catalogue` (the index generation the first chunk was compared with: every chunk is),
  `cancelled` (set first by `checkcancel.cancel_check`: a chunk that starts after it checks
  nothing);
- `pairsearch:check:<id>:rows`: hash of row -> `CheckedDesign` JSON, once that design is
  settled (finished or failed). Its length is the progress; the last write announces the end.

The report's CSV is `worker.core.results_csv`; progress and waits, `worker.core.checkwait`.

TensorFlow-free: the web imports it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from enum import StrEnum

from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

from worker.core.contract import CheckChunk, CheckedDesign, ChunkRow, SearchOptions
from worker.core.queueing import announce_done
from worker.core.settings import Settings

KEY = "pairsearch:check:"
CHECK_FUNC = "worker.service.checks.check_chunk"  # enqueued by name: the web never imports it
CHUNK_LOST = "the worker stopped while checking this design; please submit the check again"
CHUNK_EXPIRED = ("not checked: its turn did not come within the time a check is kept (the "
                 "service was busy); please submit the check again")
CANCELLED = "not checked: the check was cancelled before this design's turn"
LOST = frozenset({JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})
WAITING = frozenset({JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED})


class CheckStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"


def collection_upload_name(check_id: str, row: int, side: str) -> str:
    """Where a check's drawing is stored: `<check id>-r<row>-<side>.png` (CHECK_UPLOAD_NAME)."""
    return f"{check_id}-r{row}-{side}.png"


def row_uploads(rows: list[ChunkRow]) -> list[str]:
    """The stored drawings of these designs."""
    return [name for row in rows for name in (row.front, row.back) if name is not None]


def chunk_uploads(chunk: CheckChunk) -> list[str]:
    """The stored drawings of a chunk's designs (what its end deletes)."""
    return row_uploads(chunk.rows)


def design_image_name(check_id: str, row: int) -> str:
    """Where a checked design is kept as the model saw it, front | back (a result, JPEG): what
    the report shows beside its hits, after its uploads are deleted."""
    return f"{check_id}-r{row}-seen.jpg"


@dataclass(frozen=True)
class CheckState:
    id: str
    names: list[str]
    options: SearchOptions
    chunks: list[tuple[str, list[int]]]
    started: bool
    outcomes: dict[int, CheckedDesign]  # read without results: the settled rows, contents unread
    results: bool = True
    cancelled: bool = False

    @property
    def total(self) -> int:
        return len(self.names)

    @property
    def done(self) -> int:
        return len(self.outcomes)

    @property
    def status(self) -> CheckStatus:
        if self.done >= self.total:
            return CheckStatus.FINISHED
        return CheckStatus.RUNNING if self.started else CheckStatus.QUEUED

    def design(self, row: int) -> CheckedDesign:
        if not self.results:
            raise ValueError("this check was read for its progress, without its results")
        return self.outcomes.get(row) or CheckedDesign(name=self.names[row], status="queued")


def plan_chunks(rows: list[ChunkRow], size: int) -> list[tuple[str, list[ChunkRow]]]:
    """The rows in chunks of `size`, each under a new job id."""
    return [(uuid.uuid4().hex, rows[i:i + size]) for i in range(0, len(rows), size)]


def create_check(connection: Redis, check_id: str, names: list[str], options: SearchOptions,
                 chunks: list[tuple[str, list[ChunkRow]]], settled: dict[int, CheckedDesign],
                 ttl: int) -> None:
    """Record a new check, with the designs already settled (refused at upload)."""
    meta = {"total": len(names), "names": json.dumps(names), "options": options.model_dump_json(),
            "chunks": json.dumps([[job_id, [r.row for r in rows]] for job_id, rows in chunks])}
    with connection.pipeline() as pipe:
        pipe.hset(KEY + check_id, mapping=meta)
        pipe.expire(KEY + check_id, ttl)
        if settled:
            pipe.hset(KEY + check_id + ":rows", mapping={
                row: outcome.model_dump_json() for row, outcome in settled.items()})
            pipe.expire(KEY + check_id + ":rows", ttl)
        pipe.execute()


def enqueue_chunks(queue: Queue, settings: Settings, check_id: str, options: SearchOptions,
                   chunks: list[tuple[str, list[ChunkRow]]]) -> None:
    """One job per chunk, in row order (RQ serves a queue first in, first out)."""
    jobs = [Queue.prepare_data(
        CHECK_FUNC, kwargs=CheckChunk(check_id=check_id, rows=rows,
                                      **options.model_dump()).job_kwargs(),
        job_id=job_id, timeout=settings.job_timeout, result_ttl=settings.result_ttl,
        failure_ttl=settings.result_ttl, ttl=settings.result_ttl,
        description=f"collection check {check_id}") for job_id, rows in chunks]
    queue.enqueue_many(jobs)


# one step: an expired check is not made again, half-filled and without a TTL
_MARK_STARTED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'started', 1)
redis.call('HSETNX', KEYS[1], 'catalogue', ARGV[1])
return redis.call('HGET', KEYS[1], 'catalogue')
"""


def mark_started(connection: Redis, check_id: str, catalogue: str | None = None) -> str | None:
    """Mark the check started; pin it to `catalogue` unless a chunk did: the pinned one."""
    pinned = connection.eval(_MARK_STARTED, 1, KEY + check_id, catalogue or "")
    return (pinned.decode() if isinstance(pinned, bytes) else pinned) or None  # "": flat, unpinned


def record_outcomes(connection: Redis, check_id: str, outcomes: dict[int, CheckedDesign],
                    ttl: int) -> bool:
    """Settle designs not settled yet (the first outcome stays: a chunk judged lost that
    wakes and finishes does not change a check already read as finished); the write that
    settles the last one wakes whoever waits for the check. True when every design is settled. The check
    is kept `ttl` from its last settled design, not from its upload: a check longer than
    RESULT_TTL is not lost while it runs."""
    rows = KEY + check_id + ":rows"
    with connection.pipeline() as pipe:
        for row, outcome in outcomes.items():
            pipe.hsetnx(rows, row, outcome.model_dump_json())
        pipe.expire(rows, ttl)
        pipe.expire(KEY + check_id, ttl)  # only if it is still there: an expired one stays gone
        pipe.hlen(rows)
        pipe.hget(KEY + check_id, "total")
        *_, done, total = pipe.execute()
    finished = total is not None and done >= int(total)
    if finished:
        announce_done(connection, check_id)
    return finished


def read_design(connection: Redis, check_id: str, row: int) -> CheckedDesign | None:
    """One settled design of a check (None: not settled, or no such check): what a design's
    image asks, without parsing every design's hits."""
    value = connection.hget(KEY + check_id + ":rows", str(row))
    return None if value is None else CheckedDesign.model_validate_json(value)


def fetch_check(connection: Redis, check_id: str, results: bool = True) -> tuple[dict, dict | list]:
    """The check's stored fields and its settled rows (with their hits, or only their numbers),
    as bytes: what `parse_check` reads, without a Redis call."""
    with connection.pipeline() as pipe:
        pipe.hgetall(KEY + check_id)
        (pipe.hgetall if results else pipe.hkeys)(KEY + check_id + ":rows")
        meta, rows = pipe.execute()
    return meta, rows


def parse_check(check_id: str, meta: dict, rows: dict | list) -> CheckState | None:
    """The check `fetch_check` read (None: unknown or expired), its lost chunks not looked for."""
    if b"names" not in meta:  # unknown, expired, or a flag set as it expired
        return None
    names, results = json.loads(meta[b"names"]), isinstance(rows, dict)
    return CheckState(
        check_id, names, SearchOptions.model_validate_json(meta[b"options"]),
        [(job_id, chunk_rows) for job_id, chunk_rows in json.loads(meta[b"chunks"])],
        b"started" in meta,
        {int(row): CheckedDesign.model_validate_json(value) for row, value in rows.items()}
        if results else {int(row): CheckedDesign(name=names[int(row)], status="finished")
                         for row in rows}, results, b"cancelled" in meta)


def read_check(connection: Redis, check_id: str, results: bool = True,
               ttl: int | None = None) -> CheckState | None:
    """The check as stored (None: unknown or expired), with the designs of lost chunks failed,
    and (given `ttl`) settled so: their reason is the first one seen, and whoever waits for
    the check is woken. Without `results` only which rows are settled is read (a progress
    bar's poll of a large check: its designs' hits are megabytes to parse)."""
    state = parse_check(check_id, *fetch_check(connection, check_id, results))
    if state is None:
        return None
    lost = lost_designs(connection, state)
    if lost and ttl is not None:
        record_outcomes(connection, check_id, lost, ttl)
    state.outcomes.update(lost)
    return state


def lost_designs(connection: Redis, state: CheckState) -> dict[int, CheckedDesign]:
    """Unsettled designs whose chunk job failed outside the job (its worker died) or is gone
    (it waited past its RESULT_TTL in the queue)."""
    pending = [(job_id, rows) for job_id, rows in state.chunks
               if any(row not in state.outcomes for row in rows)]
    if not pending:
        return {}
    jobs = Job.fetch_many([job_id for job_id, _ in pending], connection=connection)

    def why(job: Job | None) -> str:
        if job is None:
            return CHUNK_EXPIRED
        # a check's cancel sets its flag, cancels its jobs, then settles their designs: read
        # in between (the flag read again: this state may have been read before it was set)
        cancelled = job.get_status(refresh=False) == JobStatus.CANCELED and (
            state.cancelled or connection.hexists(KEY + state.id, "cancelled"))
        return CANCELLED if cancelled else CHUNK_LOST

    return {row: CheckedDesign(name=state.names[row], status="failed", error=why(job))
            for job, (_, rows) in zip(jobs, pending, strict=True)
            if job is None or job.get_status(refresh=False) in LOST
            for row in rows if row not in state.outcomes}
