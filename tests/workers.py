"""Starting real worker and web processes for the fault and load tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from redis import Redis
from rq import Queue, Worker

from worker.dev.processes import stop_process as stop  # noqa: F401 - re-exported for tests


def service_env(settings) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": settings.redis_url,
            "DATABASE_DIR": str(settings.database_dir), "FEATURES_DIR": str(settings.features_dir),
            "UPLOAD_DIR": str(settings.upload_dir), "OUTPUT_DIR": str(settings.output_dir),
            "VGG16_WEIGHTS": settings.vgg16_weights, "DESCRIPTOR": settings.descriptor,
            "QUEUE_NAME": settings.queue_name,
            "REQUIRE_WORKER": "1" if settings.require_worker else "0",
            "JOB_TIMEOUT": str(settings.job_timeout),
            "MAX_QUEUE_LENGTH": str(settings.max_queue_length), "STORAGE": settings.storage,
            "BATCH_SIZE": str(settings.batch_size)}


def start_worker(settings, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "worker", *args], env=service_env(settings),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_workers(settings, count: int = 1, timeout: float = 120) -> None:
    queue = Queue(settings.queue_name, connection=Redis.from_url(settings.redis_url))
    deadline = time.monotonic() + timeout
    while Worker.count(queue=queue) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} worker(s) registered within {timeout} s")
        time.sleep(0.2)
