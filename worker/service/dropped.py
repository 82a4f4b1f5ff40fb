"""Jobs a worker took off its queue and never started: claimed when taken, put back when
nobody runs them.

A worker serving several queues (ours serve four) pops with BLPOP, of which RQ keeps no copy
(its BLMOVE to a recovery list is for one-queue workers): a job popped by a worker that then
froze, was killed or lost Redis's reply is in no queue and no registry, 'queued' until it
expires. So a worker claims each job it pops before anything else (`take`: only while the
job is still 'queued' and nobody else holds it, in one atomic step), and starts it only
through `start`, one atomic step that marks it 'started' and lets the claim go, done only if
the claim is still its own and the job still 'queued'. One worker a minute per queue
(`sweep`) puts back, at the head of the queue, each job that is 'queued' and in no list whose
claim is held by a worker that is gone, or that has no claim and has been seen so for
DROPPED_GRACE_S (a live worker may be between its pop and its claim); each put-back is one
atomic step, done only if the job is still 'queued' and its claim still the one the sweep
read, and it deletes the claim. So a worker that wakes after its job was put back runs it
only if it had not claimed it yet and nobody has claimed the copy (the copy is then refused);
one that had claimed it is refused at its start, and the copy runs: a job runs once.
"""

from __future__ import annotations

import logging
import time

from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.registry import StartedJobRegistry

from worker.service.housekeeping import gone

log = logging.getLogger(__name__)
POPPED_PREFIX = "pairsearch:popped:"  # job id -> the worker that took it off its queue
POPPED_TTL_S = 3600  # a taken job starts within milliseconds; the claim outlives that widely
SUSPECTS = "pairsearch:dropped:"  # + queue: job id -> when first seen dropped (epoch s)
SWEEP_LOCK = "pairsearch:dropped-sweep:"  # + queue: whose turn it is to sweep it
SWEEP_EVERY_S = 55  # one worker a minute walks a queue's jobs (a SCAN of the keyspace)
DROPPED_GRACE_S = 30  # between a pop and its claim RQ only reads the job's hash
# the claim, atomically: only a job still 'queued', and not one another worker holds unless
# it is the holder the caller judged gone (ARGV[3]; "" for none)
_TAKE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] and holder ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return 1
"""
# a put-back, atomically: only a job still 'queued' whose claim is still the one the sweep
# read (ARGV[1]; "" for none), at the head of its queue (KEYS[3])
_PUT_BACK = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
local holder = redis.call('GET', KEYS[2]) or ''
if holder ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('LPUSH', KEYS[3], ARGV[2])
return 1
"""
# of the job keys given, those of jobs 'queued' in one of the queues ARGV names, each followed
# by its queue (a key that is not a job's hash, such as a dependents set, is skipped)
_QUEUED = """
local wanted = {}
for _, name in ipairs(ARGV) do wanted[name] = true end
local out = {}
for _, key in ipairs(KEYS) do
  local fields = redis.pcall('HMGET', key, 'status', 'origin')
  if fields[1] == 'queued' and fields[2] and wanted[fields[2]] then
    out[#out + 1] = key
    out[#out + 1] = fields[2]
  end
end
return out
"""
# the start, atomically: only by the claim's holder, of a job still 'queued'; with its
# worker, so that one lost before RQ's own marks leaves an orphan the orphan sweep fails
_START = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'started', 'worker_name', ARGV[1])
return 1
"""


def _text(value: bytes | str | None) -> str | None:
    """A reply as text, whether or not the connection decodes its replies."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def take(connection: Redis, job_id: str, worker: str, job_timeout: int) -> bool:
    """Claim `job_id` for `worker`, which has just taken it off its queue. False when the job
    is no longer 'queued' (another worker ran or runs it) or another worker that is running
    holds it; a claim of a worker that is gone (killed after its pop) is taken over."""
    key = POPPED_PREFIX + job_id
    holder = _text(connection.get(key))
    dead = holder if holder not in (None, worker) and gone(connection, holder, worker,
                                                           job_timeout) else ""
    return bool(connection.eval(_TAKE, 2, Job.key_for(job_id), key, worker, POPPED_TTL_S, dead))


def start(connection: Redis, job_id: str, worker: str) -> bool:
    """Mark the job `worker` claimed 'started' (nobody can take it again; the sweep leaves it)
    and let its claim go. False when the claim is no longer its own (the job was put back
    while it was stopped, and perhaps taken by another), or the job is no longer 'queued'
    (a check's chunk cancelled meanwhile: its own claim is then let go)."""
    return bool(connection.eval(_START, 2, Job.key_for(job_id), POPPED_PREFIX + job_id, worker))


def sweep(connection: Redis, queue_names: list[str], own_name: str, job_timeout: int,
          now_s: float | None = None) -> list[str]:
    """Put back the dropped jobs (module doc) of those of `queue_names` whose turn this worker
    gets (one sweep a queue every SWEEP_EVERY_S, whoever serves it); their ids. First
    sightings are kept in Redis, per queue, so any sweeper counts them."""
    mine = [name for name in queue_names if _my_turn(connection, name, own_name, job_timeout)]
    if not mine:
        return []
    now_s = time.time() if now_s is None else now_s
    queued = _queued_jobs(connection, mine)
    return [job_id for name in mine
            for job_id in _sweep_queue(Queue(name, connection=connection), own_name, job_timeout,
                                       [j for j, origin in queued.items() if origin == name], now_s)]


def _queued_jobs(connection: Redis, queue_names: list[str]) -> dict[str, str]:
    """Every job 'queued' in one of `queue_names`, in or out of a list: id -> queue. Each SCAN
    page read in one Lua step (about 5 ms of Redis's time; one HMGET a job from here cost
    2-3 s of this worker's time at 100k jobs: docs/performance.md)."""
    found: dict[str, str] = {}
    cursor = 0
    while True:
        cursor, keys = connection.scan(cursor, match=f"{Job.redis_job_namespace_prefix}*",
                                       count=1000)
        found.update(_queued_in(connection, keys, queue_names))
        if not cursor:
            return found


def _queued_in(connection: Redis, keys: list[bytes], queue_names: list[str]) -> dict[str, str]:
    if not keys:
        return {}
    reply = connection.eval(_QUEUED, len(keys), *keys, *queue_names)
    prefix = len(Job.redis_job_namespace_prefix)
    return {_text(key)[prefix:]: _text(origin) for key, origin in zip(reply[::2], reply[1::2], strict=True)}


def _my_turn(connection: Redis, queue: str, own_name: str, job_timeout: int) -> bool:
    if connection.set(SWEEP_LOCK + queue, own_name, nx=True, ex=SWEEP_EVERY_S):
        return True
    sweeper = _text(connection.get(SWEEP_LOCK + queue))  # a sweeper killed since: its turn passes
    if sweeper in (None, own_name) or not gone(connection, sweeper, own_name, job_timeout):
        return False
    connection.set(SWEEP_LOCK + queue, own_name, ex=SWEEP_EVERY_S)
    return True


def _put_back(queue: Queue, job_id: str, holder: str | None) -> bool:
    """Put the job back unless it changed since the sweep read it; then the gone holder's
    execution of it is dropped (RQ would otherwise fail the job as abandoned while another
    runs it), and only its: a holder that woke meanwhile runs the job and keeps its own."""
    connection = queue.connection
    if not connection.eval(_PUT_BACK, 3, Job.key_for(job_id), POPPED_PREFIX + job_id,
                           queue.key, holder or "", job_id):
        return False
    if holder is not None:
        try:
            job = Job.fetch(job_id, connection=connection)
        except NoSuchJobError:  # expired since
            return True
        ids = [e.composite_key for e in job.get_executions() if e.worker_name == holder]
        if ids:
            connection.zrem(StartedJobRegistry(queue=queue).key, *ids)
    return True


def _sweep_queue(queue: Queue, own_name: str, job_timeout: int, queued: list[str],
                 now_s: float) -> list[str]:
    connection = queue.connection
    waiting = {*queue.get_job_ids(),  # RQ cleans up its own recovery list
               *IntermediateQueue(queue.key, connection).get_job_ids()}
    candidates = [job_id for job_id in queued if job_id not in waiting]
    with connection.pipeline(transaction=False) as pipe:
        for job_id in candidates:
            pipe.get(POPPED_PREFIX + job_id)
        holders = [_text(holder) for holder in pipe.execute()]
    held = dict(zip(candidates, holders, strict=True))
    unclaimed = [job_id for job_id, holder in held.items() if holder is None]
    abandoned = [job_id for job_id, holder in held.items()
                 if holder is not None and gone(connection, holder, own_name, job_timeout)]
    first = {_text(k): float(v) for k, v in connection.hgetall(SUSPECTS + queue.name).items()}
    seen = {job_id: first.get(job_id, now_s) for job_id in unclaimed}
    # a claim of a worker that is gone needs no grace: no live worker is about to start it
    put_back = abandoned + [job_id for job_id, since in seen.items()
                            if now_s - since >= DROPPED_GRACE_S]
    put_back = [job_id for job_id in put_back if _put_back(queue, job_id, held[job_id])]
    with connection.pipeline() as pipe:
        pipe.delete(SUSPECTS + queue.name)
        if rest := {job_id: since for job_id, since in seen.items() if job_id not in put_back}:
            pipe.hset(SUSPECTS + queue.name, mapping=rest)
        pipe.execute()
    for job_id in put_back:
        log.warning("job %s was taken off %s by a worker that never started it: put back",
                    job_id, queue.name)
    return put_back
