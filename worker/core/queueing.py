"""How a search is put on the queue: upload names and the job, shared by web and CLI.

TensorFlow-free: the web imports it. The job itself runs in `worker.service.jobs`.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from redis import Redis
from rq import Queue, Worker
from rq.exceptions import InvalidJobOperation
from rq.job import Job, JobStatus
from rq.utils import utcparse

from worker.core import contract
from worker.core.contract import SearchRequest
from worker.core.settings import Settings

# jobs are enqueued by name: the web never imports the worker's code
JOB_FUNC = "worker.service.jobs.search_pair"
ADD_DESIGN_FUNC = "worker.service.edits.add_design"
REMOVE_DESIGN_FUNC = "worker.service.edits.remove_design_by_name"
MATCH_FUNC = "worker.service.matches.draw_match"
EDIT_FUNCS = (ADD_DESIGN_FUNC, REMOVE_DESIGN_FUNC)  # catalogue edits: they change the catalogue
CHUNK_FUNC = "worker.service.chunks.extract_chunk"  # a chunk of a distributed index build
EXTENSION = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png"}  # MPO: a phone's JPEG (a gain map after it)
UPLOAD_NAME = re.compile(contract.UPLOAD_NAME)  # use fullmatch
HEARTBEAT_MAX_AGE_S = 60  # a live worker beats at least this often (idle: RQ's dequeue wait)
# what a search worker adds to its RQ hash with each heartbeat: the generation it serves, its
# precision, and a newer generation it could not load, with why (worker.service.engine.state)
WORKER_STATE = ("pairsearch_serves", "pairsearch_precision", "pairsearch_refused",
                "pairsearch_refused_why")


DONE_CHANNEL = "pairsearch:done:"  # + job id: a worker publishes when a job has ended
ENDED = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})
RECHECK_S = 1.0  # a waiter also re-reads the status this often (an announcement missed)


def announce_done(connection: Redis, job_id: str) -> None:
    """Wake whoever waits for this job (`wait_until_done`)."""
    connection.publish(DONE_CHANNEL + job_id, b"done")


def wait_until_done(connection: Redis, job: Job, timeout: float) -> JobStatus | None:
    """Block until `job` has ended or `timeout` s pass; its last status (None: it expired).
    The worker's announcement (pub/sub) wakes the wait at once; subscribing before the status
    is re-read means an end between the two is not missed."""
    try:
        status = job.get_status(refresh=True)
        if status in ENDED or timeout <= 0:
            return status
        deadline = time.monotonic() + timeout
        pubsub = connection.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(DONE_CHANNEL + job.id)
            while (left := deadline - time.monotonic()) > 0:
                if (status := job.get_status(refresh=True)) in ENDED:
                    return status
                pubsub.get_message(timeout=min(left, RECHECK_S))
            return job.get_status(refresh=True)
        finally:
            pubsub.close()
    except InvalidJobOperation:  # the job expired or was deleted
        return None


def index_queue_name(settings: Settings) -> str:
    """The queue of a distributed build's chunks; workers take from it after their search
    queue, so a waiting search always goes first."""
    return f"{settings.queue_name}-index"


class UploadRefused(ValueError):
    """A job names an upload this service never generates."""


def check_upload_name(name: str) -> str:
    """`name` if it is one `upload_name` makes (nothing else is read as an upload)."""
    if not UPLOAD_NAME.fullmatch(name):
        raise UploadRefused(f"not an upload name this service generates: {name!r}")
    return name


def upload_name(search_id: str, side: str, image_format: str) -> str:
    """The only names uploads are stored under: `<search id>-<side>.<jpg|png>`."""
    return f"{search_id}-{side}.{EXTENSION[image_format]}"


def enqueue_search(queue: Queue, settings: Settings, request: SearchRequest) -> Job:
    """Enqueue `worker.service.jobs.search_pair` under the request's search id."""
    return queue.enqueue(
        JOB_FUNC, kwargs=request.job_kwargs(), job_id=request.search_id,
        job_timeout=settings.job_timeout, result_ttl=settings.result_ttl,
        failure_ttl=settings.result_ttl, ttl=settings.result_ttl, meta={"stage": "queued"},
        description="paired design search")


def query_canvas_name(search_id: str, side: str) -> str:
    """Where a finished search keeps one side of its query as the model saw it (224x224 PNG):
    what a match view compares, after the upload itself is deleted."""
    return f"{search_id}-query-{side}.png"


def match_image_name(search_id: str, rank: int) -> str:
    """The stored match view of a search's hit at `rank` (drawn once, when first asked)."""
    return f"{search_id}-match-{rank}.jpg"


def match_job_id(search_id: str, rank: int) -> str:
    """The id of the job drawing a match view: a second request finds it and waits for it."""
    return f"match-{search_id}-{rank}"


def enqueue_match(queue: Queue, settings: Settings, search_id: str, rank: int) -> Job:
    """Enqueue `worker.service.matches.draw_match` for a finished search's hit."""
    return queue.enqueue(
        MATCH_FUNC, kwargs={"search_id": search_id, "rank": rank},
        job_id=match_job_id(search_id, rank), job_timeout=settings.job_timeout,
        result_ttl=settings.result_ttl, failure_ttl=settings.result_ttl,
        ttl=settings.result_ttl, description="match view")


def live_workers(redis, queue: Queue | None = None,
                 max_age_s: float | None = HEARTBEAT_MAX_AGE_S) -> int:
    """How many workers registered (for `queue`, else for any) sent a heartbeat at most
    `max_age_s` ago (None: ever, while registered)."""
    return len(worker_states(redis, queue, max_age_s))


def worker_states(redis, queue: Queue | None = None,
                  max_age_s: float | None = HEARTBEAT_MAX_AGE_S) -> list[dict[str, str]]:
    """What each worker `live_workers` counts says it serves with its heartbeat (WORKER_STATE:
    empty where it says nothing). Read from RQ's registry, never through `Worker.all`: each
    Worker it makes raises the shared connection pool's socket timeout to RQ's 415 s, after
    which a Redis that hangs would hold every request of this process for minutes, not 5 s."""
    keys = Worker.all_keys(connection=redis, queue=queue)
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.hmget(key, "last_heartbeat", *WORKER_STATE)
    now = datetime.now(UTC)
    return [{field: (value or b"").decode() for field, value in zip(WORKER_STATE, rest,
                                                                     strict=True)}
            for beat, *rest in pipe.execute() if beat is not None and (
                max_age_s is None or (now - utcparse(beat.decode())).total_seconds() <= max_age_s)]


def registered_workers(queue: Queue) -> int:
    """Workers of `queue` whose registration lives: a killed worker stays in RQ's set of the
    queue's workers (`Worker.count`) until a live worker cleans it, which never comes when it
    was the last one; its registration lapses (`live_workers` with no age limit)."""
    return live_workers(queue.connection, queue, max_age_s=None)
