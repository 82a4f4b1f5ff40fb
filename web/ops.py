"""Operations: the OpenAPI document, readiness and Prometheus metrics.

Everything here is cheap (a few Redis commands, one small file read, one temp file) and
TensorFlow-free, so load balancers and Prometheus may call it often.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify
from redis.exceptions import RedisError
from rq import Queue
from rq.registry import BaseRegistry

from web.apidoc import Responses, api, openapi_document
from web.errors import COUNTED_REFUSALS, redis_full
from web.ops_schemas import OpenAPIDocument, Readiness
from worker.core.bank import BankError
from worker.core.metrics import read_counts, read_metrics
from worker.core.queueing import HEARTBEAT_MAX_AGE_S, live_workers
from worker.core.readcache import read_manifest_cached
from worker.core.settings import redis_problem

bp = Blueprint("ops", __name__)
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
READY_PROBE = "pairsearch:readyz"  # what /readyz writes (60 s) to see that Redis takes work


@bp.get("/openapi.json")
@api.validate(tags=["operations"], operation_id="openapi", skip_validation=True,
              resp=Responses(HTTP_200=(OpenAPIDocument, "OpenAPI 3.1, generated")))
def openapi_json():
    """This document"""
    return jsonify(openapi_document(current_app.config["SETTINGS"]))


def _check_redis(redis) -> tuple[bool, str]:
    try:
        redis.ping()
        redis.set(READY_PROBE, b"1", ex=60)  # a full Redis answers a PING and refuses all work
    except RedisError as exc:
        current_app.logger.warning("readyz: redis: %s", exc)
        if redis_full(exc):
            return False, f"redis is full and refuses new work ({exc})"
        return False, redis_problem(exc)
    return True, "redis answers and takes a write"


def _check_worker(queue: Queue) -> tuple[bool, str]:
    try:
        alive = live_workers(queue.connection, queue)
    except RedisError as exc:
        return False, f"cannot list workers: {redis_problem(exc)}"
    if not alive:
        return False, (f"no worker of queue {queue.name!r} has sent a heartbeat in the last "
                       f"{HEARTBEAT_MAX_AGE_S} s; start one with `python -m worker`")
    return True, f"{alive} live worker(s) on queue {queue.name!r}"


def _check_index(features_dir) -> tuple[bool, str]:
    try:
        manifest = read_manifest_cached(features_dir)
    except BankError as exc:  # missing, unreadable, corrupt or not an object
        return False, str(exc)
    return True, f"manifest readable: {manifest.get('n_pairs')} pairs"


@bp.get("/readyz")
@api.validate(tags=["operations"], operation_id="ready", skip_validation=True, resp=Responses(
    HTTP_200=(Readiness, "ready"), HTTP_503=(Readiness, "not ready: see `checks`")))
def readyz():
    """Ready: Redis answers, a worker has a heartbeat, the index and the folders are usable

    200 only when Redis answers, a worker of the queue has sent a heartbeat within 60 s, the
    feature manifest is readable and UPLOAD_DIR and OUTPUT_DIR take a 4 KiB write (the check
    `output_dir`); else 503."""
    settings = current_app.config["SETTINGS"]
    redis = current_app.extensions["redis"]
    redis_ok, redis_reason = _check_redis(redis)
    worker = _check_worker(current_app.extensions["queue"]) if redis_ok else \
        (False, "not checked: redis unreachable")
    checks = {name: {"ok": ok, "reason": settings.without_paths(reason)} for name, (ok, reason) in {
        "redis": (redis_ok, redis_reason), "worker": worker,
        "index": _check_index(settings.features_dir),
        "output_dir": current_app.extensions["storage"].check()}.items()}
    ready = all(check["ok"] for check in checks.values())
    response = jsonify(ready=ready, checks=checks)
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def _live_count(registry: BaseRegistry, now: float) -> int:
    """Entries not yet expired (without RQ's clean-up, which the web must not run)."""
    return registry.connection.zcount(registry.key, now, "+inf")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Exposition:
    """Prometheus text format 0.0.4, one metric family at a time."""

    def __init__(self):
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: list[tuple[str, dict[str, str], float]]) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for suffix, labels, value in samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            number = str(value) if isinstance(value, int) else repr(float(value))
            self.lines.append(f"{name}{suffix}{{{label_text}}} {number}" if label_text
                              else f"{name}{suffix} {number}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@bp.get("/metrics")
@api.validate(tags=["operations"], operation_id="metrics", skip_validation=True,
              resp=Responses(HTTP_200=(None, "searches by status, queue length, live workers, "
                                             "per-stage durations")))
def metrics():
    """Prometheus text exposition format"""
    redis = current_app.extensions["redis"]
    queue: Queue = current_app.extensions["queue"]
    out = _Exposition()
    try:
        now = time.time()
        queue_length = len(queue)
        by_status = {
            "queued": queue_length,
            "started": _live_count(queue.started_job_registry, now),
            "finished": _live_count(queue.finished_job_registry, now),
            "failed": _live_count(queue.failed_job_registry, now)
            + _live_count(queue.canceled_job_registry, now),
        }
        workers = live_workers(redis, queue)
        waiting = {"search": queue_length,
                   "check": len(current_app.extensions["check_queue"]),  # collections' chunks
                   "match": len(current_app.extensions["match_queue"])}  # views of a hit
        stages = read_metrics(redis)
        ended, refused = read_counts(redis)
        memory = redis.info("memory")
    except RedisError as exc:
        current_app.logger.warning("metrics: redis unavailable: %s", exc)
        out.family("pairsearch_redis_up", "gauge", "1 when Redis answers", [("", {}, 0)])
        return Response(out.text(), mimetype=None, content_type=PROMETHEUS_TEXT)
    out.family("pairsearch_redis_up", "gauge", "1 when Redis answers", [("", {}, 1)])
    out.family("pairsearch_searches", "gauge",
               "jobs of the search queue (searches, and catalogue edits) kept in Redis by "
               "status (finished/failed until RESULT_TTL expires)",
               [("", {"status": status}, count) for status, count in by_status.items()])
    out.family("pairsearch_queue_length", "gauge", "searches (and catalogue edits) waiting "
               "in the search queue",
               [("", {}, queue_length)])
    out.family("pairsearch_queued_jobs", "gauge", "jobs waiting in each queue (check: chunks "
               "of collections, match: views of a hit)",
               [("", {"queue": name}, count) for name, count in waiting.items()])
    out.family("pairsearch_workers", "gauge",
               f"workers of the queue with a heartbeat in the last {HEARTBEAT_MAX_AGE_S} s",
               [("", {}, workers)])
    out.family("pairsearch_searches_ended_total", "counter", "searches the workers finished or "
               "failed (a drawing refused included), counted in Redis: only up",
               [("", {"outcome": o}, ended.get(o, 0)) for o in ("finished", "failed")])
    out.family("pairsearch_refusals_total", "counter", "submissions refused with 503 for want "
               "of capacity, by code", [("", {"error": code}, refused.get(code, 0))
                                        for code in COUNTED_REFUSALS])
    out.family("pairsearch_redis_memory_used_bytes", "gauge", "Redis's used_memory",
               [("", {}, int(memory["used_memory"]))])
    out.family("pairsearch_redis_memory_max_bytes", "gauge", "Redis's maxmemory: past it, "
               "every submission is refused (503 redis_full; 0: no limit)",
               [("", {}, int(memory.get("maxmemory", 0)))])
    samples = []
    for stage, totals in stages.items():
        samples.append(("_sum", {"stage": stage}, totals["sum_ms"] / 1000.0))
        samples.append(("_count", {"stage": stage}, totals["count"]))
    out.family("pairsearch_stage_duration_seconds", "summary",
               "time per stage of the searches the workers finished (stage=total: from a "
               "worker taking it to its answer; stage=queue_wait: before; failed ones uncounted)",
               samples)
    return Response(out.text(), mimetype=None, content_type=PROMETHEUS_TEXT)
