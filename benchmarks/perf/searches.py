"""`e2e`: searches over HTTP, the worker's start-up and the sequential run's per-stage table."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.perf.catalogue import QueryImages
from benchmarks.perf.report import fmt, percentile
from benchmarks.perf.service import Service, wait_until


@dataclass
class Submission:
    status: int
    search_id: str | None
    url: str | None
    start: float  # perf_counter at POST start
    post_ms: float
    error: str | None = None


def post_search(session, base: str, front: bytes, back: bytes) -> Submission:
    start = time.perf_counter()
    r = session.post(f"{base}/api/searches", timeout=60,
                     files={"front": ("front.png", front, "image/png"),
                            "back": ("back.png", back, "image/png")})
    post_ms = (time.perf_counter() - start) * 1000
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    if r.status_code == 202:
        return Submission(202, body["id"], body["url"], start, post_ms)
    return Submission(r.status_code, None, None, start, post_ms, body.get("error"))


def poll_http(session, base: str, url: str, timeout: float = 600) -> tuple[dict, float]:
    """Long-poll (`?wait=`) until finished or failed: (body, perf_counter when seen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = session.get(f"{base}{url}?wait=30", timeout=60).json()
        if body.get("status") in ("finished", "failed"):
            return body, time.perf_counter()
    raise TimeoutError(f"{url} did not finish within {timeout:.0f} s")


@dataclass(frozen=True)
class StartUp:
    registered_s: float
    first_finished_s: float
    status: str


def worker_start_up(service: Service, images: QueryImages, timeout: float) -> StartUp:
    """Spawn one worker, submit a search at once (retrying while the web refuses it with 503
    no_worker, REQUIRE_WORKER=1) and poll it to the end."""
    import requests

    session = requests.Session()
    front, back = images.next()
    t0 = time.perf_counter()
    service.start_worker()
    sub = post_search(session, service.base, front, back)
    deadline = time.monotonic() + timeout

    def registered() -> bool:
        service.check_alive()
        return service.worker_count() >= 1

    while sub.status == 503 and sub.error == "no_worker" and time.monotonic() < deadline:
        wait_until(registered, timeout, "worker registered")
        sub = post_search(session, service.base, front, back)
    if sub.status != 202:
        raise RuntimeError(f"first search refused: {sub.status} {sub.error}")
    body, seen = poll_http(session, service.base, sub.url, timeout)
    return StartUp(sub.start - t0, seen - t0, body["status"])


@dataclass
class SequentialSample:
    post_ms: float
    e2e_ms: float
    status: str
    timings: dict[str, float]
    model_ms: tuple[float, float] | None = None  # `after`'s passes on this search's pair


def sequential_searches(service: Service, images: QueryImages, n: int, timeout: float,
                        after: Callable[[bytes, bytes], tuple[float, float]] | None = None
                        ) -> list[SequentialSample]:
    """`n` searches one after the other; `after(front, back)`, when given, runs once each
    has finished (the model alone on its pair: benchmarks.perf.model.PairPasses)."""
    import requests

    session = requests.Session()
    samples = []
    for _ in range(n):
        front, back = images.next()
        sub = post_search(session, service.base, front, back)
        if sub.status != 202:
            raise RuntimeError(f"sequential search refused: {sub.status} {sub.error}")
        body, seen = poll_http(session, service.base, sub.url, timeout)
        samples.append(SequentialSample(sub.post_ms, (seen - sub.start) * 1000, body["status"],
                                        body.get("timings") or {},
                                        None if after is None else after(front, back)))
    return samples


def all_finished(samples: list[SequentialSample]) -> list[SequentialSample]:
    """`samples`, once each search is seen finished: a failed one (a worker refusing its bank
    fails fast) would count as a fast search in a percentile."""
    failed = [s for s in samples if s.status != "finished"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(samples)} searches did not finish (the "
                           f"first: {failed[0].status}); their times would count as searches'")
    return samples


def stat_row(label: str, values: list[float]) -> list[object]:
    return [label, len(values), fmt(percentile(values, 50)), fmt(percentile(values, 95))]


def timing(done: list[SequentialSample], key: str) -> list[float]:
    return [float(s.timings[key]) for s in done if s.timings.get(key) is not None]


def job_rows(samples: list[SequentialSample], done: list[SequentialSample]) -> list[list[object]]:
    """The POST, the queue wait and each stage of the job as the finished searches report it."""
    rows = [stat_row("upload handling (POST request)", [s.post_ms for s in samples])]
    queue_wait = timing(done, "queue_wait_ms")
    rows.append(stat_row("queue wait (timings.queue_wait_ms)", queue_wait) if queue_wait
                else ["queue wait (timings.queue_wait_ms)", 0, "not reported", "not reported"])
    for stage in ("preprocess", "extract", "search", "render"):
        rows.append(stat_row(stage, timing(done, f"{stage}_ms")))
        if stage == "extract":
            rows.append(stat_row("  of which the forward pass (timings.forward_ms)",
                                 timing(done, "forward_ms")))
    rows.append(stat_row("total job (timings.total_ms)", timing(done, "total_ms")))
    return rows


def overhead_rows(done: list[SequentialSample]) -> list[list[object]]:
    """End to end, and what it adds to the job, to extract and to the search's forward pass."""
    rows = [stat_row("end-to-end (POST start -> finished seen, long poll ?wait=30)",
                     [s.e2e_ms for s in done])]
    overhead = [s.e2e_ms - float(s.timings["total_ms"]) for s in done if "total_ms" in s.timings]
    rows.append(stat_row("end-to-end minus total job", overhead))
    beyond = [s.e2e_ms - float(s.timings["extract_ms"]) for s in done if "extract_ms" in s.timings]
    rows.append(stat_row("end-to-end minus extract (the overhead beyond the forward pass)", beyond))
    share = [100 * (s.e2e_ms - float(s.timings["extract_ms"])) / float(s.timings["extract_ms"])
             for s in done if s.timings.get("extract_ms")]
    rows.append(["overhead / extract, % (per search)", len(share), fmt(percentile(share, 50)),
                 fmt(percentile(share, 95))])
    # the target: overhead beyond the search's own forward pass (alone in the queue: 2 images)
    own = [(s.e2e_ms, float(s.timings["forward_ms"])) for s in done
           if s.timings.get("forward_ms") and s.timings.get("batch_images") == 2]
    rows.append(stat_row("end-to-end minus forward pass (the overhead beyond the model)",
                         [e2e - fwd for e2e, fwd in own]))
    rows.append(["overhead / forward pass, % (per search)", len(own),
                 fmt(percentile([100 * (e2e - fwd) / fwd for e2e, fwd in own], 50)),
                 fmt(percentile([100 * (e2e - fwd) / fwd for e2e, fwd in own], 95))])
    return rows


def model_rows(done: list[SequentialSample]) -> list[list[object]]:
    """The model alone on each search's own pair, timed right after it with the service idle,
    and end to end against it search by search (a machine whose speed drifts moves both)."""
    timed = [s for s in done if s.model_ms is not None]
    singles = [s.model_ms[0] for s in timed]
    rows = [stat_row("model alone on the search's pair right after it: two batch-1 passes",
                     singles),
            stat_row("  one batch-2 pass (what the worker runs)", [s.model_ms[1] for s in timed]),
            ["end-to-end / its two batch-1 passes, per search (the latency target: <= 1.10)",
             len(timed), fmt(percentile([s.e2e_ms / s.model_ms[0] for s in timed], 50), 3),
             fmt(percentile([s.e2e_ms / s.model_ms[0] for s in timed], 95), 3)]]
    e2e_p50, model_p50 = percentile([s.e2e_ms for s in timed], 50), percentile(singles, 50)
    if e2e_p50 is not None and model_p50:
        rows.append(["end-to-end p50 / two batch-1 passes p50", len(timed),
                     fmt(e2e_p50 / model_p50, 3), ""])
    return rows


def stage_rows(samples: list[SequentialSample]) -> list[list[object]]:
    done = [s for s in samples if s.status == "finished"]
    return [*job_rows(samples, done), *overhead_rows(done), *model_rows(done)]
