"""Jobs left started by a worker that died: run again (searches, check chunks, match views,
when the worker is certainly dead), settled from the catalogue (edits), or failed telling
the user what to do; dead workers of this host unregistered first."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from redis import Redis
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.results import Result
from rq.utils import now, utcformat

from worker.core.bank import BankError, read_manifest
from worker.core.checks import CHECK_FUNC
from worker.core.contract import ABANDONED
from worker.core.generations import landed
from worker.core.metrics import SEARCHES_ENDED, count
from worker.core.queueing import EDIT_FUNCS, JOB_FUNC, MATCH_FUNC, announce_done
from worker.service.housekeeping import dead_local_worker, is_orphaned

log = logging.getLogger(__name__)
RERUNNABLE = (JOB_FUNC, CHECK_FUNC, MATCH_FUNC)  # jobs that write only their own outputs
RERUN_AFTER = "pairsearch:rerun:"  # + job id: the dead worker after which it was queued again
# a rerun, atomically: only a job still 'started' by the dead worker (ARGV[1], else 0: another
# worker's maintenance saw to it) and never rerun (else -1: fail it); the marker kept ARGV[2] s,
# that worker's executions (ARGV[5..]) dropped
_RERUN = """
if redis.call('HGET', KEYS[1], 'status') ~= 'started' then return 0 end
if redis.call('HGET', KEYS[1], 'worker_name') ~= ARGV[1] then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2]) == false then return -1 end
redis.call('HSET', KEYS[1], 'status', 'queued', 'enqueued_at', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[2])
for i = 5, #ARGV do redis.call('ZREM', KEYS[4], ARGV[i]) end
redis.call('LPUSH', KEYS[3], ARGV[3])
return 1
"""
EDIT_LOST = ("the worker stopped during this edit, before it changed the catalogue: nothing "
             "was changed; try the edit again")
EDIT_UNSURE = ("the worker stopped answering during this edit, which the catalogue does not "
               "show yet: look for the design in the catalogue before trying the edit again")


def forget_dead_local_workers(connection: Redis, own_name: str) -> list[str]:
    """Unregister this host's workers whose process is gone (killed, crashed), or that carry
    our pid under another name (a restarted container's worker is pid 1 again): a restarted
    worker calls it, under the name it will register, before it loads its model, so that
    /readyz does not count the dead one as serving while the new one is still loading. Their
    started jobs that can run again are queued again first (`_rerun`: once its registration
    is gone, a worker on another machine would judge it only silent and fail them); the rest
    are ended later, by `settle_orphaned_jobs`."""
    forgotten = []
    for key in Worker.all_keys(connection=connection):
        name = key.removeprefix(Worker.redis_worker_namespace_prefix)
        if dead_local_worker(name, own_name):
            worker = Worker.find_by_key(key, connection=connection)
            if worker is not None:
                for queue in worker.queues:
                    _rerun_jobs_of(queue, name, own_name)
                worker.register_death()
                forgotten.append(name)
    return forgotten


def _rerun_jobs_of(queue: Queue, name: str, own_name: str) -> None:
    for job in _started_jobs(queue):
        if job.worker_name == name:
            _rerun(queue, job, own_name)


def _started_jobs(queue: Queue) -> Iterator[Job]:
    """The jobs of `queue`'s started registry still marked started (one gone is skipped)."""
    for job_id in StartedJobRegistry(queue=queue).get_job_ids(cleanup=False):
        try:
            job = Job.fetch(job_id, connection=queue.connection)
        except NoSuchJobError:
            continue
        if job.get_status() == JobStatus.STARTED:
            yield job


def settle_edit(job: Job, features_dir: Path | None, own_name: str | None
                ) -> tuple[dict | None, str]:
    """An abandoned catalogue edit read from the catalogue: (what it returned had its worker
    lived, {"name", "n_pairs"}, n_pairs as now) when a kept generation is its own
    (`generations.landed`: not when another writer, the CLI, added or removed the same name),
    else (None, why it failed): "nothing changed" only when its worker is certainly dead (a
    silent one may yet apply it)."""
    name = (job.kwargs or {}).get("name")
    try:
        names = None if features_dir is None else read_manifest(features_dir).get("names", [])
    except BankError:
        names = None
    if names is not None and landed(features_dir, job.id):
        return {"name": name, "n_pairs": len(names)}, ""
    certain = names is not None and dead_local_worker(job.worker_name or "", own_name)
    return None, EDIT_LOST if certain else EDIT_UNSURE


def _rerun(queue: Queue, job: Job, own_name: str | None) -> int:
    """Put a job its worker left back at the head of its queue, once, when that worker is
    certainly dead (on this host: its process gone, or its pid reused) rather than silent (a
    frozen one may wake and finish it), and the job only writes its own outputs (a search, a
    check's chunk, a match view): a worker killed under it (OOM, a deploy) costs the user a
    wait, not a resubmission; a job that kills its worker twice fails. One atomic step
    (`_RERUN`), so two workers' maintenance never put it back twice. 1: queued again; 0: not
    this job's state any more (leave it); -1: not to be rerun (fail it)."""
    dead = job.worker_name or ""
    if job.func_name not in RERUNNABLE or not dead_local_worker(dead, own_name):
        return -1
    done = put_back(queue, job, dead)
    if done == 1:
        log.warning("job %s was abandoned by dead worker %s: queued again, once", job.id, dead)
    return done


def put_back(queue: Queue, job: Job, worker: str) -> int:
    """`job`, started by `worker`, back at the head of its queue, once (`_RERUN`): 1 queued
    again; 0 not started by `worker` any more; -1 queued again once already."""
    executions = [e.composite_key for e in job.get_executions() if e.worker_name == worker]
    return int(queue.connection.eval(
        _RERUN, 4, job.key, RERUN_AFTER + job.id, queue.key, StartedJobRegistry(queue=queue).key,
        worker, max(int(job.result_ttl or 0), 86400), job.id, utcformat(now()), *executions))


def settle_orphaned_jobs(queue: Queue, failure_ttl: int, own_name: str | None = None,
                         job_timeout: int = 120, features_dir: Path | None = None) -> list[str]:
    """End the jobs left 'started' by a dead worker: one whose registration (RQ's worker key)
    is gone or silent for longer than the job may run (any machine), or, on this host, one
    whose process is gone or whose pid is now ours (a container's restarted worker is pid 1
    again). `own_name`: the calling worker's name. A search, check chunk or match view whose
    worker is certainly dead is queued again once (`_rerun`); a catalogue edit is finished
    with its outcome when the catalogue shows it applied (`settle_edit`, with
    `features_dir`); anything else fails, telling the user what to do. Returns the jobs
    ended (not those queued again).

    RQ would find them too, but only once the execution's heartbeat expires.
    """
    ended = []
    for job in _started_jobs(queue):
        if not is_orphaned(job, own_name, job_timeout):
            continue
        if _rerun(queue, job, own_name) >= 0:
            continue
        outcome, error = (settle_edit(job, features_dir, own_name) if job.func_name in EDIT_FUNCS
                          else (None, ABANDONED))
        _end(queue, job, failure_ttl, outcome, error)
        announce_done(queue.connection, job.id)
        ended.append(job.id)
        log.warning("job %s was abandoned by dead worker %s: %s", job.id, job.worker_name,
                    error or f"its edit was applied: {outcome}")
    return ended


def _end(queue: Queue, job: Job, ttl: int, outcome: dict | None, error: str) -> None:
    """Finish the job with `outcome`, or fail it with `error` (for people)."""
    if outcome is None:
        job.meta.update(error=error, error_type="AbandonedJobError")
        job.save_meta()
        if job.func_name == JOB_FUNC:  # its worker died: what an alert on failures is for
            count(queue.connection, SEARCHES_ENDED, "failed")
    with queue.connection.pipeline() as pipe:
        StartedJobRegistry(queue=queue).remove_executions(job, pipeline=pipe)
        if outcome is None:
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            FailedJobRegistry(queue=queue).add(job, ttl=ttl, pipeline=pipe,
                                               exc_string=f"AbandonedJobError: {error}")
        else:
            job.set_status(JobStatus.FINISHED, pipeline=pipe)
            job.cleanup(ttl, pipeline=pipe, remove_from_queue=False)  # expires as a result does
            FinishedJobRegistry(queue=queue).add(job, ttl=ttl, pipeline=pipe)
            Result.create(job, Result.Type.SUCCESSFUL, ttl, return_value=outcome, pipeline=pipe)
        pipe.execute()
