"""How a search is put on the queue: upload names and the job, shared by web and CLI.

TensorFlow-free: the web imports it. The job itself runs in `worker.jobs`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from rq import Queue
from rq.job import Job

from worker.settings import Settings

JOB_FUNC = "worker.jobs.search_pair"  # enqueued by name: the web never imports the model
EXTENSION = {"JPEG": "jpg", "PNG": "png"}
UPLOAD_NAME = re.compile(r"^[0-9a-f]{32}-(front|back)\.(jpg|png)$")


def upload_name(search_id: str, side: str, image_format: str) -> str:
    """The only names uploads are stored under: `<search id>-<side>.<jpg|png>`."""
    return f"{search_id}-{side}.{EXTENSION[image_format]}"


def store_upload(upload_dir: Path, name: str, data: bytes) -> Path:
    """Write under our own name, aside first, so a half-written file is never seen."""
    upload_dir.mkdir(parents=True, exist_ok=True)
    path = upload_dir / name
    tmp = upload_dir / f".{name}.part"
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def enqueue_search(queue: Queue, settings: Settings, search_id: str, uploads: dict[str, str],
                   k: int, front_weight: float, sides_unknown: bool) -> Job:
    """Enqueue `worker.jobs.search_pair` under `search_id` (`uploads`: side -> upload name)."""
    return queue.enqueue(
        JOB_FUNC, kwargs={"search_id": search_id, **uploads, "k": k,
                          "front_weight": front_weight, "sides_unknown": sides_unknown},
        job_id=search_id, job_timeout=settings.job_timeout, result_ttl=settings.result_ttl,
        failure_ttl=settings.result_ttl, ttl=settings.result_ttl, meta={"stage": "queued"},
        description="paired design search")
