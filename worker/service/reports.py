"""The running job's stage, reported in `job.meta` in the background, and its stage timings.

One writer thread writes the reports in order, so a search never waits on Redis per stage;
`flush` waits for them before the job ends and before RQ records an error in the same meta.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager

from rq import get_current_job

log = logging.getLogger(__name__)


class StageReports:
    def __init__(self) -> None:
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage-report")
        self._last: Future | None = None

    def report(self, job, name: str) -> None:
        job.meta["stage"] = name
        self._last = self._writer.submit(job.save_meta)
        self._last.add_done_callback(_log_failure)

    def flush(self) -> None:
        """Wait until every report so far is written (in order: the last one is enough)."""
        last, self._last = self._last, None
        if last is not None:
            wait([last])


def _log_failure(report: Future) -> None:
    if not report.cancelled() and (exc := report.exception()) is not None:
        log.warning("stage not reported: %s", exc)  # a lost stage report never fails a search


REPORTS = StageReports()  # one per process: jobs run one at a time


class StageClock:
    """Times the stages of one job (ms, rounded to 0.01) and reports each as it starts."""

    def __init__(self) -> None:
        self.job = get_current_job()
        self.timings: dict[str, float] = {}
        self._start = time.perf_counter()
        if self.job is not None and self.job.enqueued_at and self.job.started_at:
            waited = (self.job.started_at - self.job.enqueued_at).total_seconds()
            self.timings["queue_wait_ms"] = round(waited * 1000, 2)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.job is not None:
            REPORTS.report(self.job, name)
        start = time.perf_counter()
        yield
        self.timings[f"{name}_ms"] = round((time.perf_counter() - start) * 1000, 2)

    def stop(self) -> dict[str, float]:
        """The timings, with the job's total since the clock started."""
        self.timings["total_ms"] = round((time.perf_counter() - self._start) * 1000, 2)
        return self.timings
