"""The worker process: one model, loaded and warmed once, serving the queue without forking.

TensorFlow is not fork-safe, so jobs run in this process (an RQ SimpleWorker). As each job
starts (once RQ has marked it started) the worker swaps in a rebuilt index if
FEATURES_DIR/CURRENT names a new generation.
"""

from __future__ import annotations

import logging
import signal
import time
from functools import partial

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.executions import Execution, cleanup_execution
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.job_lifecycle import call_exception_handlers

from worker.core.images import ImageRejected
from worker.core.metrics import SEARCHES_ENDED, count
from worker.core.queueing import JOB_FUNC, announce_done, index_queue_name
from worker.core.settings import Settings
from worker.indexing.recovery import recover_at_start
from worker.service.chunks import release_if_no_chunks
from worker.service.dropped import start, take
from worker.service.engine import Engine, install
from worker.service.housekeeping import worker_name
from worker.service.maintenance import (
    delete_expired_files,
    discard_uploads,
    keep_check_pins,
    settle_dead_workers_jobs,
)
from worker.service.orphans import RERUNNABLE, put_back
from worker.service.reports import REPORTS

log = logging.getLogger(__name__)
MAINTENANCE_S = 60  # orphaned searches failed, expired files deleted, this often (RQ: 600)
# an idle worker heartbeats every WORKER_TTL_S - 15 s (RQ's wait for a job), within the 60 s
# /readyz and /metrics allow; with RQ's 420 an idle worker looked dead after a quiet minute
WORKER_TTL_S = 45
# RQ's command listener waits 60 s for a message and redis-py 8.2's stop() joins it without a
# limit: a worker whose listener read its own unsubscribe first took 60 s more to stop
LISTENER_WAKE_S = 1.0


def record_error(job: Job, exc_type, exc_value, traceback,
                 settings: Settings | None = None) -> bool:
    """RQ exception handler: keep a person-readable message beside RQ's traceback (after
    the job's last stage report, so that one cannot land later and erase it), with the data
    folders named by their settings rather than their paths."""
    REPORTS.flush()
    message = str(exc_value) or exc_type.__name__
    job.meta["error"] = settings.without_paths(message) if settings else message
    job.meta["error_type"] = exc_type.__name__
    job.save_meta()
    if job.func_name == JOB_FUNC:
        count(job.connection, SEARCHES_ENDED, "failed")
    return True


class SearchWorker(SimpleWorker):
    """A SimpleWorker that refreshes the engine's index before each job."""

    def __init__(self, *args, engine: Engine, **kwargs):
        kwargs.setdefault("exception_handlers", [partial(record_error, settings=engine.settings)])
        super().__init__(*args, **kwargs)
        self.engine = engine

    stop_signalled = False  # SIGTERM/SIGINT seen: RQ flags it only when a job is running
    refused = False  # the claimed job has not started (run_claimed): its uploads stay

    def bootstrap(self, *args, **kwargs):
        # RQ registers the worker before it installs its handlers: a SIGTERM in between would
        # kill it (exit -15) instead of a warm shutdown, so flag it until RQ's handlers are in
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.stop_before_work)
        super().bootstrap(*args, **kwargs)

    def _install_signal_handlers(self):
        """RQ's, and a hang-up (its terminal closed) stops it warm too: it killed it mid-job."""
        super()._install_signal_handlers()
        signal.signal(signal.SIGHUP, self.request_stop)

    def subscribe(self):
        """RQ's own, with the listener waking every LISTENER_WAKE_S instead of 60 s."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=LISTENER_WAKE_S, daemon=True,
            exception_handler=self._pubsub_exception_handler)

    def handle_exception(self, job: Job, *exc_info):
        """RQ's, but a drawing refused (faint, unreadable) is the upload's fault, said in the
        job's error: a line in the log, not an ERROR with a traceback."""
        if not isinstance(exc_info[1], ImageRejected):
            return super().handle_exception(job, *exc_info)
        log.warning("job %s: a drawing was refused: %s", job.id, exc_info[1])
        call_exception_handlers(self._exc_handlers, job, *exc_info)
        return None

    def stop_before_work(self, signum, frame):
        self.stop_signalled = True
        self._stop_requested = True  # RQ's loop checks it before it takes a job

    def request_stop(self, signum, frame):
        if self.stop_signalled and signum == signal.SIGHUP:  # a hang-up comes twice: shell, kernel
            return
        self.stop_signalled = True
        self.engine.batcher.stop_reading_ahead()
        super().request_stop(signum, frame)

    def execute_job(self, job: Job, queue: Queue):
        if not take(self.connection, job.id, self.name, self.engine.settings.job_timeout):
            log.warning("job %s is not this worker's to run (put back while it was stopped, "
                        "and taken or run by another)", job.id)
            self.leave(job, queue)
            return None
        return self.run_claimed(job, queue)

    def leave(self, job: Job, queue: Queue) -> None:
        if len(self.queues) == 1:  # RQ moved it to its recovery list; its start mark empties it
            IntermediateQueue(queue.key, self.connection).remove(job.id)

    def run_claimed(self, job: Job, queue: Queue):
        """Run a job this worker has claimed (worker.service.dropped), unless it was put back
        since: then it is another's, and its uploads stay for the copy."""
        self.refused = True  # until it starts: the uploads are the job's, whoever runs it
        recorded = False
        try:
            outcome = super().execute_job(job, queue)
            recorded = True
            return outcome
        finally:  # finished or failed by now: drop its uploads, wake the long polls at once
            if not self.refused:
                if recorded:
                    discard_uploads(self.engine.storage, job)
                else:  # its end not recorded (Redis lost): a re-run reads them (TTL sweep)
                    log.warning("the end of job %s could not be recorded; its uploads stay "
                                "for the run that settles it", job.id)
                try:
                    announce_done(self.connection, job.id)
                except RedisError as exc:
                    log.warning("could not announce the end of %s: %s", job.id, exc)

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        if not start(self.connection, job.id, self.name):  # before RQ's unconditional marks
            log.warning("job %s was put back while this worker was stopped (left to the "
                        "copy), or cancelled: not run here", job.id)
            with self.connection.pipeline() as pipe:
                cleanup_execution(self, job, pipe, execution)
                pipe.execute()
            self.leave(job, queue)
            return False
        self.refused = False
        succeeded = super().perform_job(job, queue, execution)
        if succeeded and job.func_name == JOB_FUNC:  # its success recorded by RQ (a failure:
            count(self.connection, SEARCHES_ENDED, "finished")  # record_error counts it)
        return succeeded

    def _finalize_failure(self, job: Job, queue: Queue, execution: Execution, exc_info) -> None:
        """RQ's, but a cold stop (a second Ctrl-C or SIGTERM, RQ's SystemExit) is not the job's
        failure ("SystemExit", its uploads deleted): a search, chunk or match view is queued
        again at the head of its queue (once, as after a SIGKILL), its uploads kept; an edit is
        left started, settled from the catalogue by the next worker's maintenance."""
        if isinstance(exc_info[1], (SystemExit, KeyboardInterrupt)):
            try:
                again = job.func_name in RERUNNABLE and put_back(queue, job, self.name) == 1
            except RedisError:  # left started: the next maintenance settles it
                again = False
            log.warning("stopped cold while running job %s: %s", job.id,
                        "queued again" if again else "left for the next worker to settle")
            raise exc_info[1]
        super()._finalize_failure(job, queue, execution, exc_info)

    def heartbeat(self, timeout: int | None = None, pipeline=None):
        """RQ's, with what this worker serves (`Engine.state`): /healthz tells a worker that
        cannot load the current index (it serves the one before) from one that serves it."""
        super().heartbeat(timeout, pipeline)
        if getattr(self, "engine", None) is not None:  # (RQ's own start, before ours is set)
            (self.connection if pipeline is None else pipeline).hset(
                self.key, mapping=self.engine.state())

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False):
        super().prepare_job_execution(job, remove_from_intermediate_queue)
        if self.engine.refresh():  # a reload may take a minute: show this worker alive
            self.heartbeat(self.get_heartbeat_ttl(job))

    def run_maintenance_tasks(self):
        """Settle the jobs of dead workers and put back jobs popped and never started, then
        RQ's registry clean-up, then delete expired files. Ours first: RQ's fails a dead
        worker's job for good once its execution has expired (a restart slower than
        JOB_TIMEOUT + 60 s), where ours would run a search again."""
        settle_dead_workers_jobs(self.connection, self.queues, self.name, self.engine)
        if self.engine.snapshot is not None:  # idle: a new index loaded before the next search
            self.heartbeat()  # a load may take most of a minute: its 60 s start now
            if self.engine.refresh():
                self.heartbeat()
        self.engine.hold()  # an idle worker's pin renewed too
        keep_check_pins(self.engine, self.connection)
        release_if_no_chunks(self.connection, index_queue_name(self.engine.settings))
        super().run_maintenance_tasks()
        delete_expired_files(self.engine)


def start_engine(settings: Settings, extractor=None, with_index: bool = True) -> Engine:
    """Load model + index (BLAS limited to one thread), warm the model, make it this
    process's engine. First cleans up after a build or edit that stopped part-way.
    Without the index: the engine of a worker that serves only a build's chunks."""
    recover_at_start(settings)
    engine = Engine(settings, extractor, with_index)
    engine.storage.setup()
    engine.extractor.warm_up()
    start = time.perf_counter()
    held = engine.preload_thumbnails()
    log.info("%d thumbnails decoded in RAM (%.0f MiB) in %.1f s", held,
             engine.thumbnails.nbytes / 2**20, time.perf_counter() - start)
    install(engine)
    return engine


def served_queues(settings: Settings, engine: Engine) -> list[str]:
    """RQ takes the next job from the first queue that has one: searches, then match views (a
    person waits for each), then check chunks, then a distributed build's chunks; an engine
    without an index takes only the last."""
    if engine.snapshot is None:
        return [index_queue_name(settings)]
    return [settings.queue_name, settings.match_queue_name, settings.check_queue_name,
            index_queue_name(settings)]


def make_worker(settings: Settings, engine: Engine, connection: Redis,
                name: str | None = None) -> SearchWorker:
    queues = [Queue(name, connection=connection) for name in served_queues(settings, engine)]
    return SearchWorker(queues, connection=connection, engine=engine, name=name or worker_name(),
                        maintenance_interval=MAINTENANCE_S, worker_ttl=WORKER_TTL_S)
