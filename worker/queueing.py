"""How a search is put on the queue: upload names and the job, shared by web and CLI.

TensorFlow-free: the web imports it. The job itself runs in `worker.jobs`.
"""

from __future__ import annotations

import re

from redis import Redis
from rq import Queue
from rq.job import Job

from worker.settings import Settings

JOB_FUNC = "worker.jobs.search_pair"  # enqueued by name: the web never imports the model
EXTENSION = {"JPEG": "jpg", "PNG": "png"}
UPLOAD_NAME = re.compile(r"^[0-9a-f]{32}-(front|back)\.(jpg|png)$")


DONE_CHANNEL = "pairsearch:done:"  # + search id: a worker publishes when a search has ended


def announce_done(connection: Redis, search_id: str) -> None:
    """Wake whoever long-polls this search (`GET /api/searches/<id>?wait=S`)."""
    connection.publish(DONE_CHANNEL + search_id, b"done")


class UploadRefused(ValueError):
    """A job names an upload this service never generates."""


def check_upload_name(name: str) -> str:
    """`name` if it is one `upload_name` makes (nothing else is read as an upload)."""
    if not UPLOAD_NAME.match(name):
        raise UploadRefused(f"not an upload name this service generates: {name!r}")
    return name


def upload_name(search_id: str, side: str, image_format: str) -> str:
    """The only names uploads are stored under: `<search id>-<side>.<jpg|png>`."""
    return f"{search_id}-{side}.{EXTENSION[image_format]}"


def enqueue_search(queue: Queue, settings: Settings, search_id: str, uploads: dict[str, str],
                   k: int, front_weight: float, sides_unknown: bool) -> Job:
    """Enqueue `worker.jobs.search_pair` under `search_id` (`uploads`: side -> upload name)."""
    return queue.enqueue(
        JOB_FUNC, kwargs={"search_id": search_id, **uploads, "k": k,
                          "front_weight": front_weight, "sides_unknown": sides_unknown},
        job_id=search_id, job_timeout=settings.job_timeout, result_ttl=settings.result_ttl,
        failure_ttl=settings.result_ttl, ttl=settings.result_ttl, meta={"stage": "queued"},
        description="paired design search")
