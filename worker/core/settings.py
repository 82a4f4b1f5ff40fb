"""One settings object, read from the environment, shared by web and worker."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # worker/core/settings.py -> the repository
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Chosen by `make bench-quality` (docs/quality.md): margins trimmed, GeM of block4+5,
# PCA-whitened to 256 dims learned on the catalogue. `flatten` is the seed's descriptor.
DEFAULT_DESCRIPTOR = "trim-gem45-pw256"
STORAGE_CHOICES = ("files", "redis")  # where uploads and grids live (worker/storage.py)
PRECISION_CHOICES = ("auto", "float32", "bfloat16")  # auto: bfloat16 where the CPU has it
MINIMUMS = {"batch_size": 1, "thumb_cache_mb": 0, "search_ann_min_pairs": 0}


class InvalidSetting(ValueError):
    """A setting with a value the service cannot use; the message names it."""


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidSetting(f"setting {name} must be an integer, got {raw!r}") from None


def _choice(environ: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = environ.get(name) or default
    if raw not in choices:
        raise InvalidSetting(f"setting {name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _path(environ: Mapping[str, str], name: str, default: str) -> Path:
    return Path(environ.get(name) or REPO_ROOT / default).resolve()


@dataclass(frozen=True)
class Settings:
    """Every knob of the service. Env var names are the upper-case field names."""

    redis_url: str = DEFAULT_REDIS_URL
    database_dir: Path = REPO_ROOT / "database"
    features_dir: Path = REPO_ROOT / "features"
    upload_dir: Path = REPO_ROOT / "uploads"
    output_dir: Path = REPO_ROOT / "output"
    vgg16_weights: str = "auto"
    descriptor: str = DEFAULT_DESCRIPTOR
    precision: str = "auto"
    queue_name: str = "searches"
    max_upload_mb: int = 20
    max_image_pixels: int = 40_000_000
    result_ttl: int = 24 * 3600
    job_timeout: int = 120
    max_queue_length: int = 100
    require_worker: bool = True
    admin_token: str = ""
    search_ann_min_pairs: int = 100_000  # banks this large also get a coarse index (0: always)
    storage: str = "files"  # where uploads and grids live: files (shared folders) or redis
    batch_size: int = 8  # queued searches one forward pass may serve at once (1: no batching)
    thumb_cache_mb: int = 512  # decoded grid thumbnails a worker keeps in RAM (0: none)
    read_ahead: bool = True  # the next batch through the model while a batch is drawn

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def catalogue_csv(self) -> Path:
        return self.database_dir / "pairs.csv"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        env = os.environ if environ is None else environ
        values = dict(
            redis_url=env.get("REDIS_URL") or DEFAULT_REDIS_URL,
            database_dir=_path(env, "DATABASE_DIR", "database"),
            features_dir=_path(env, "FEATURES_DIR", "features"),
            upload_dir=_path(env, "UPLOAD_DIR", "uploads"),
            output_dir=_path(env, "OUTPUT_DIR", "output"),
            vgg16_weights=env.get("VGG16_WEIGHTS") or "auto",
            descriptor=env.get("DESCRIPTOR") or DEFAULT_DESCRIPTOR,
            precision=_choice(env, "PRECISION", PRECISION_CHOICES, "auto"),
            queue_name=env.get("QUEUE_NAME") or "searches",
            max_upload_mb=_int(env, "MAX_UPLOAD_MB", 20),
            max_image_pixels=_int(env, "MAX_IMAGE_PIXELS", 40_000_000),
            result_ttl=_int(env, "RESULT_TTL", 24 * 3600),
            job_timeout=_int(env, "JOB_TIMEOUT", 120),
            max_queue_length=_int(env, "MAX_QUEUE_LENGTH", 100),
            require_worker=_int(env, "REQUIRE_WORKER", 1) != 0,
            admin_token=env.get("ADMIN_TOKEN", ""),
            search_ann_min_pairs=_int(env, "SEARCH_ANN_MIN_PAIRS", 100_000),
            storage=_choice(env, "STORAGE", STORAGE_CHOICES, "files"),
            batch_size=_int(env, "BATCH_SIZE", 8),
            thumb_cache_mb=_int(env, "THUMB_CACHE_MB", 512),
            read_ahead=_int(env, "READ_AHEAD", 1) != 0,
        )
        values.update(overrides)
        for name, least in MINIMUMS.items():  # also checks overrides
            if values[name] < least:
                raise InvalidSetting(f"setting {name.upper()} must be at least {least}, "
                                     f"got {values[name]}")
        return cls(**values)
