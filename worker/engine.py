"""What one worker process holds: one extractor, the catalogue and its memory-mapped banks,
and the decoded grid thumbnails (THUMB_CACHE_MB).

Loaded once per process (`install` at start-up, or lazily by `current`), refreshed between
jobs when `features/manifest.json` changes, so a re-index needs no restart.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from threadpoolctl import threadpool_limits

from worker.ann import with_coarse_index
from worker.bank import FeatureBank, check_bank_matches, load_bank, manifest_stamp
from worker.batching import Batcher
from worker.catalogue import Catalogue, load_catalogue
from worker.settings import Settings
from worker.thumbnails import ThumbnailCache

log = logging.getLogger(__name__)
DECODE_THREADS = 2
# The BLAS libraries loaded in the process (numpy's OpenBLAS, and faiss's own once a large
# catalogue loads it) keep a thread busy-waiting for ~0.1 s after each call. The search
# stage's products gain nothing from a second thread, but the spinning one took one of the
# two cores from the next search's forward pass (+26 ms a search; docs/performance.md).
WORKER_BLAS_THREADS = 1


def limit_blas_threads() -> None:
    """Every BLAS library loaded so far on WORKER_BLAS_THREADS threads (process-wide)."""
    threadpool_limits(limits=WORKER_BLAS_THREADS, user_api="blas")


@dataclass(frozen=True)
class Index:
    """A catalogue and the banks built from it, always swapped together."""

    catalogue: Catalogue
    bank: FeatureBank
    stamp: tuple[int, int, int] | None


class Engine:
    def __init__(self, settings: Settings, extractor=None):
        if extractor is None:
            from worker.extract import FeatureExtractor

            extractor = FeatureExtractor(settings.vgg16_weights, settings.descriptor,
                                         settings.precision)
        self.settings = settings
        self.extractor = extractor
        # the two sides of a search, and the searches of a batch, are decoded and placed on
        # both cores while the model (which uses both) is idle
        self.pool = ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="decode")
        self.batcher = Batcher(extractor, settings.batch_size, settings.max_image_pixels,
                               self.pool, settings.read_ahead)
        self.thumbnails = ThumbnailCache(settings.thumb_cache_mb * 2**20)
        self.index = self._load_index()

    def preload_thumbnails(self) -> int:
        """Decode the catalogue's thumbnails, pair by pair, until THUMB_CACHE_MB is full."""
        cat = self.index.catalogue
        return self.thumbnails.preload(self.settings.features_dir,
                                       (rel for pair in zip(cat.fronts, cat.backs, strict=True)
                                        for rel in pair))

    def _load_index(self) -> Index:
        """Load and cross-check catalogue and banks; raises BankError or CatalogueError."""
        stamp = manifest_stamp(self.settings.features_dir)
        catalogue = load_catalogue(self.settings.database_dir)
        bank = load_bank(self.settings.features_dir)
        check_bank_matches(bank, catalogue.fingerprint(), len(catalogue),
                           self.extractor.weights_fingerprint, self.extractor.descriptor)
        bank = with_coarse_index(bank, self.settings.search_ann_min_pairs)
        limit_blas_threads()  # again: the coarse index may have loaded faiss's BLAS just now
        return Index(catalogue, bank, stamp)

    def refresh(self) -> bool:
        """Swap in a rebuilt index if the manifest changed; keep the old one if the new is bad."""
        if manifest_stamp(self.settings.features_dir) == self.index.stamp:
            return False
        try:
            self.index = self._load_index()
        except Exception as exc:  # noqa: BLE001 - keep serving the index we have, loudly
            log.error("index changed but cannot be loaded, still serving the previous one: %s",
                      exc)
            return False
        stale = self.thumbnails.drop_stale()
        log.info("index reloaded: %d pairs; %d stale thumbnails dropped, %d held",
                 len(self.index.catalogue), stale, self.preload_thumbnails())
        return True


_engine: Engine | None = None


def install(engine: Engine) -> None:
    global _engine
    _engine = engine


def current() -> Engine:
    """The process's engine, loading it from the environment's settings on first use."""
    if _engine is None:
        install(Engine(Settings.from_env()))
    return _engine
