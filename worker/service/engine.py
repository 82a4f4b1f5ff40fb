"""What one worker process holds: one extractor, the catalogue and its memory-mapped banks,
the decoded grid thumbnails (THUMB_CACHE_MB) and the storage of uploads and grids.

Loaded once per process (`install` at start-up, or lazily by `current`), refreshed between
jobs when FEATURES_DIR/CURRENT points to a new generation (a re-index or a catalogue edit),
so neither needs a restart; catalogue and banks come from the same generation.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rq.timeouts import JobTimeoutException
from threadpoolctl import threadpool_limits

from worker.core.bank import BankError, FeatureBank, check_bank_matches, load_generation, manifest_stamp
from worker.core.catalogue import Catalogue, CatalogueError
from worker.core.generations import GENERATION, GENERATIONS, current_id
from worker.core.queueing import WORKER_STATE
from worker.core.settings import Settings
from worker.core.storage import open_storage
from worker.pipeline.ann import with_coarse_index
from worker.pipeline.orientation import Uprights
from worker.pipeline.preprocess import preprocess_params
from worker.pipeline.thumbnails import ThumbnailCache
from worker.service.batching import Batcher
from worker.service.reading import ReadingPin

log = logging.getLogger(__name__)
DECODE_THREADS = 2
RELOAD_RETRY_S = 60  # an index that failed to load is tried again after this, not per job
# One: a second BLAS thread spins after each product and takes a core from the forward pass.
WORKER_BLAS_THREADS = 1


def limit_blas_threads() -> None:
    """Every BLAS library loaded so far on WORKER_BLAS_THREADS threads (process-wide)."""
    threadpool_limits(limits=WORKER_BLAS_THREADS, user_api="blas")


@dataclass(frozen=True)
class Snapshot:
    """A catalogue and the banks built from it, always swapped together."""

    catalogue: Catalogue
    bank: FeatureBank
    stamp: tuple[str | None, int, int, int] | None

    @property
    def generation(self) -> str | None:
        """The index generation's id (None: a flat FEATURES_DIR)."""
        name = self.stamp[0] if self.stamp else None
        return name if GENERATION.fullmatch(name or "") else None


class Engine:
    def __init__(self, settings: Settings, extractor=None, with_index: bool = True):
        if extractor is None:
            from worker.pipeline.extract import FeatureExtractor
            from worker.pipeline.weights import weights_for

            extractor = FeatureExtractor(weights_for(settings), settings.descriptor,
                                         settings.precision)
        self.settings = settings
        self.extractor = extractor
        self.storage = open_storage(settings)
        # the two sides of a search, and the searches of a batch, decoded on both cores
        self.pool = ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="decode")
        self.batcher = Batcher(extractor, settings.batch_size, settings.max_image_pixels,
                               self.pool, settings.read_ahead)
        self.thumbnails = ThumbnailCache(settings.thumb_cache_mb * 2**20)
        self.reading = ReadingPin(settings.features_dir)  # pinned before a generation is read
        # None: a worker serving only a distributed build's chunks (`python -m worker --chunks-only`)
        self.snapshot = self._load_snapshot() if with_index else None
        self._older: Snapshot | None = None  # the last older generation a check was pinned to
        self._unusable: set[str] = set()  # pinned generations found gone or foreign: not retried
        self._refused: tuple[object, float] | None = None  # (manifest stamp, when) not loadable
        self._refused_why = ""
        self.hold()

    def state(self) -> dict[str, str]:
        """What this worker serves, as its heartbeat tells the web (queueing.WORKER_STATE)."""
        # a manifest stamp's first field is its generation's id (`manifest_stamp`)
        refused = (self._refused[0] or ("",))[0] if self._refused else ""
        return dict(zip(WORKER_STATE, (self.snapshot and self.snapshot.generation or "",
                                       self.extractor.precision, refused or "",
                                       self._refused_why if refused else ""), strict=True))

    def hold(self) -> None:
        """Pin the generation this process serves, or renew its pin (`ReadingPin`)."""
        self.reading.hold(None if self.snapshot is None else self.snapshot.generation)

    def release(self) -> None:
        """This process reads no generation any more (it is stopping)."""
        self.reading.release()

    def preload_thumbnails(self) -> int:
        """Decode the catalogue's thumbnails, pair by pair, until THUMB_CACHE_MB is full."""
        if self.snapshot is None:
            return 0
        cat = self.snapshot.catalogue
        return self.thumbnails.preload(self.settings.features_dir,
                                       (rel for pair in zip(cat.fronts, cat.backs, strict=True)
                                        for rel in pair))

    def _load_snapshot(self) -> Snapshot:
        """Load and cross-check catalogue and banks; raises BankError or CatalogueError."""
        for attempt in range(3):  # a writer may switch and delete the generation meanwhile
            generation = current_id(self.settings.features_dir)
            self.reading.hold(generation)  # before its files are read: a writer may follow
            try:
                catalogue, bank, stamp = load_generation(self.settings.database_dir,
                                                         self.settings.features_dir)
                break
            except (BankError, CatalogueError):
                if attempt == 2 or current_id(self.settings.features_dir) == generation:
                    raise
        snapshot = self._checked(catalogue, bank, stamp)
        if bank.quantised is not None and bank.manifest["sha256"]["quantised_model"] != \
                self.extractor.model_id:  # an int8 index is searched with its own model
            self.batcher.use_quantised(bank.quantised)
        self.batcher.uprights = Uprights.of(bank)  # which way is up: this catalogue's drawings
        return snapshot

    def _checked(self, catalogue: Catalogue, bank: FeatureBank, stamp) -> Snapshot:
        """Catalogue and banks of one generation, checked against each other and this
        worker's model (BankError), with the coarse index; a Snapshot."""
        check_bank_matches(bank, catalogue.fingerprint(), len(catalogue),
                           self.extractor.weights_fingerprint, self.extractor.descriptor,
                           self.extractor.precision, preprocess_params(self.extractor.trim))
        bank = with_coarse_index(bank, self.settings.search_ann_min_pairs)
        limit_blas_threads()  # again: the coarse index may have loaded faiss's BLAS just now
        return Snapshot(catalogue, bank, stamp)

    def pinned(self, generation: str | None) -> Snapshot:
        """The snapshot of `generation` (a check's pinned catalogue version): the current one,
        the older one held, or loaded now from its folder; the current one when that folder
        is gone or does not match this worker's model (the check then records which it saw)."""
        if generation is None or generation == self.snapshot.generation:
            return self.snapshot
        if generation in self._unusable:
            return self.snapshot
        if self._older is None or self._older.generation != generation:
            folder = self.settings.features_dir / GENERATIONS / generation
            try:
                catalogue, bank, stamp = load_generation(self.settings.database_dir, folder)
                if _model_of(bank) != _model_of(self.snapshot.bank):  # an int8 re-index since
                    raise BankError("it was extracted with another int8 model")
                self._older = self._checked(catalogue, bank, stamp)
            except (BankError, CatalogueError, OSError) as exc:
                log.warning("catalogue version %s cannot be used (%s); using the current one",
                            generation, exc)
                if not isinstance(exc, OSError) or isinstance(exc, FileNotFoundError):
                    self._unusable.add(generation)  # gone or foreign for good: not reloaded
                return self.snapshot
        return self._older

    def refresh(self) -> bool:
        """Swap in a rebuilt index if the manifest changed; keep the old one if the new is bad."""
        try:
            stamp = manifest_stamp(self.settings.features_dir)
        except OSError as exc:  # NFS's ESTALE just after another machine switched CURRENT, EIO
            if self.snapshot is None:
                raise
            log.warning("cannot read which index is current (%s); serving the one loaded", exc)
            self.hold()  # its pin renewed: a writer elsewhere keeps its files
            return False
        if self.snapshot is None or stamp == self.snapshot.stamp:
            self.hold()  # renewed
            return False
        if self._refused is not None and self._refused[0] == stamp and \
                time.monotonic() - self._refused[1] < RELOAD_RETRY_S:
            return False  # not re-read (both banks hashed) before every job
        try:
            self.snapshot, self._older = self._load_snapshot(), None  # its files let go
            self._unusable.clear()
            self._refused, self._refused_why = None, ""
            self.hold()  # the generation loaded (CURRENT may have moved on while it loaded)
        except JobTimeoutException:  # the running job's time limit: never swallowed
            raise
        except Exception as exc:  # noqa: BLE001 - keep serving the index we have, loudly
            log.error("index changed but cannot be loaded, still serving the previous one (tried "
                      "again in %d s): %s", RELOAD_RETRY_S, exc)
            self._refused, self._refused_why = (stamp, time.monotonic()), str(exc)[:500]
            self.hold()  # the one still served, not the one refused
            return False
        stale = self.thumbnails.drop_stale()
        log.info("index reloaded: %d pairs; %d stale thumbnails dropped, %d held",
                 len(self.snapshot.catalogue), stale, self.preload_thumbnails())
        return True


def _model_of(bank: FeatureBank) -> str | None:
    """The int8 model a bank was extracted with (None: the extractor's own)."""
    return bank.manifest.get("sha256", {}).get("quantised_model")


_engine: Engine | None = None


def install(engine: Engine) -> None:
    global _engine
    _engine = engine


def current() -> Engine:
    """The process's engine, loading it from the environment's settings on first use."""
    if _engine is None:
        install(Engine(Settings.from_env()))
    return _engine
