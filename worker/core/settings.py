"""One settings object, read from the environment, shared by web and worker."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from worker.core.numerals import PAST, whole

REPO_ROOT = Path(__file__).resolve().parents[2]  # worker/core/settings.py -> the repository
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# grey input, GeM of unit local features, whitening learned from synthetic copies to 256, +
# silhouette, colours and pattern edges computed without the model (docs/quality.md)
DEFAULT_DESCRIPTOR = "grey-dir345-lw256-shape-colour-pattern-proportions"
STORAGE_CHOICES = ("files", "redis")  # where uploads and grids live (worker/core/storage.py)
PRECISION_CHOICES = ("auto", "float32", "bfloat16", "int8")  # auto: worker/pipeline/precision.py
CHOICES = {"STORAGE": STORAGE_CHOICES, "PRECISION": PRECISION_CHOICES}
# a value below these makes no sense (RESULT_TTL=0: no search)
MINIMUMS = {"batch_size": 1, "thumb_cache_mb": 0, "search_ann_min_pairs": 0, "max_upload_mb": 1,
            "max_check_upload_mb": 1,
            "max_image_pixels": 16 * 16, "result_ttl": 60, "job_timeout": 1,
            "max_queue_length": 1, "web_workers": 1, "web_connections": 2, "max_long_polls": 0,
            "client_timeout": 1, "min_upload_kbps": 0, "index_chunk_pairs": 1, "index_chunk_timeout": 1,
            "check_chunk_pairs": 1, "check_max_pairs": 1, "max_check_queue_pairs": 1,
            "zip_max_entries": 2, "zip_max_mb": 1, "zip_max_entry_mb": 1, "zip_max_ratio": 2}

# a value above these defeats itself: a worker keeps 64 prefetched searches (batching.KEEP),
# two passes' worth with the one read ahead; past it a pass's own results are dropped
MAXIMUMS = {"batch_size": 32}
REDIS_SCHEMES = ("redis", "rediss", "unix")  # what redis-py's from_url reads


class InvalidSetting(ValueError):
    """A setting with a value the service cannot use; the message names it."""


def _parse(name: str, raw: str, kind: type, default: object) -> object:
    """One environment value as the field's type; blank means the default."""
    if raw == "":
        return default
    if kind is Path:
        return Path(raw).resolve()
    if kind is bool or kind is int:
        number = whole(raw, signed=True)
        if number is None or abs(number) >= PAST:  # past 9 digits: nothing here is that large
            raise InvalidSetting(f"setting {name} must be an integer of at most 9 digits, "
                                 f"got {raw[:40]!r}")
        return number != 0 if kind is bool else number
    if name in CHOICES and raw not in CHOICES[name]:
        raise InvalidSetting(f"setting {name} must be one of {', '.join(CHOICES[name])}, "
                             f"got {raw!r}")
    return raw


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
    max_check_upload_mb: int = 200  # a collection's ZIP: CHECK_MAX_PAIRS designs in one request
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
    result_cache: bool = True  # an identical finished search answered by a copy (README)
    # the web server (gunicorn.conf.py): gevent processes, where waiting costs a greenlet
    web_workers: int = 2  # gunicorn processes
    web_connections: int = 1000  # connections one web process holds at once
    max_long_polls: int = 300  # `?wait=` requests one web process holds; past it, answered at once
    client_timeout: int = 30  # s a client may stay silent mid-request before it is dropped
    min_upload_kbps: int = 4  # a body's least average pace, CLIENT_TIMEOUT s besides (0: any)
    # indexing (worker/indexing/chunks.py): the unit of work, of resuming and of caching
    index_chunk_pairs: int = 64  # a chunk holds the images of this many pairs (2 each)
    index_chunk_timeout: int = 600  # s a worker may spend on one chunk of a distributed build
    # collection checks (POST /api/checks): chunk jobs on their own queue, ZIPs read with limits
    check_chunk_pairs: int = 4  # pairs one check job runs through the model; a search waits <= 1
    check_max_pairs: int = 500  # rows a collection's pairs.csv may have
    max_check_queue_pairs: int = 2000  # designs of checks that may wait; past it a new check gets 503
    # entries (files and folders) a collection ZIP may hold: a Mac's Compress adds a
    # __MACOSX/._ shadow a file and a folder, so 500 designs can take about 3,000
    zip_max_entries: int = 5000
    zip_max_mb: int = 512  # uncompressed MiB read from one ZIP, counted while reading
    zip_max_entry_mb: int = 64  # uncompressed MiB of one entry (past it: that row is refused)
    zip_max_ratio: int = 1100  # unpacked/packed past 1 MiB: a bomb; over deflate's ~1032 (README)

    @property
    def redis_shown(self) -> str:
        """REDIS_URL as a log may show it: its password (`redis://:secret@host`) masked."""
        url = urlsplit(self.redis_url)
        query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", url.query)  # redis-py reads it
        if url.password is None:
            return urlunsplit(url._replace(query=query))
        user = f"{url.username}:" if url.username else ":"
        return urlunsplit(url._replace(netloc=f"{user}***@{url.netloc.rpartition('@')[2]}",
                                       query=query))

    def without_paths(self, text: str) -> str:
        """`text` as a client may read it: a data folder's absolute path named by its setting
        (`FEATURES_DIR/manifest.json`), not the server's file system."""
        paths = {}
        for f in fields(self):
            if f.name.endswith("_dir") and (folder := getattr(self, f.name)).is_absolute():
                paths.update({str(folder): f.name.upper(), str(folder.resolve()): f.name.upper()})
        for path in sorted(paths, key=len, reverse=True):  # a folder inside another: its own name
            # the whole path only (not /srv/features in /srv/features-old/x)
            text = re.sub(re.escape(path) + r"(?![\w-]|\.\w)", paths[path], text)
        return text

    @property
    def edit_timeout(self) -> int:
        """A catalogue edit job's timeout: an edit rewrites the banks, longer than a search."""
        return max(self.job_timeout, 300)

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_check_upload_bytes(self) -> int:
        return self.max_check_upload_mb * 1024 * 1024

    @property
    def match_queue_name(self) -> str:
        """The queue of match views (workers serve it after QUEUE_NAME, before checks)."""
        return f"{self.queue_name}-matches"

    @property
    def check_queue_name(self) -> str:
        """The queue of collection checks' chunks (workers serve it after QUEUE_NAME)."""
        return f"{self.queue_name}-checks"

    @property
    def catalogue_csv(self) -> Path:
        return self.database_dir / "pairs.csv"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        env = os.environ if environ is None else environ
        kinds = {"Path": Path, "int": int, "bool": bool, "str": str}
        values = {f.name: _parse(f.name.upper(), env.get(f.name.upper(), ""), kinds[f.type],
                                 f.default) for f in fields(cls)}
        values.update(overrides)
        for name, least in MINIMUMS.items():  # also checks overrides
            if values[name] < least:
                raise InvalidSetting(f"setting {name.upper()} must be at least {least}, "
                                     f"got {values[name]}")
        for name, most in MAXIMUMS.items():
            if values[name] > most:
                raise InvalidSetting(f"setting {name.upper()} must be at most {most}, "
                                     f"got {values[name]}")
        if (scheme := urlsplit(values["redis_url"]).scheme) not in REDIS_SCHEMES:
            raise InvalidSetting(f"setting REDIS_URL must be a redis://, rediss:// or unix:// "
                                 f"URL (redis://host:6379/0), got "  # not its password
                                 f"{f'one beginning {scheme[:20]}:' if scheme else 'none'}")
        if values["max_long_polls"] >= values["web_connections"]:  # other requests need room
            raise InvalidSetting(f"setting MAX_LONG_POLLS ({values['max_long_polls']}) must be "
                                 f"below WEB_CONNECTIONS ({values['web_connections']})")
        return cls(**values)


def redis_problem(exc: Exception) -> str:
    """What a probe tells anyone of a Redis fault: its kind and the system's reason, never
    its address or a socket's path (`Error 111 connecting to /run/x/redis.sock.`); a refusal
    Redis itself answered (a wrong password, still loading) in its own words."""
    from redis import exceptions as redis_errors  # here: gunicorn.conf.py reads these settings

    if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError):
        reason = getattr(exc.__cause__ or exc.__context__, "strerror", None)
        if reason:
            return f"REDIS_URL cannot be reached ({type(exc).__name__}: {reason})"
    return f"{type(exc).__name__}: {exc}"
