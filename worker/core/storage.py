"""Where uploads and result grids live between the web and the workers (`STORAGE`).

- `files` (default): UPLOAD_DIR and OUTPUT_DIR, written aside then renamed; the web and the
  workers must see the same folders (one machine, or a shared volume).
- `redis`: the bytes live in Redis next to the job, with RESULT_TTL as their time to live;
  a worker on another machine needs nothing from the web's machine but Redis (and its own
  copy of the catalogue and the index).

TensorFlow-free: the web imports it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Protocol

from redis import Redis

from worker.core.settings import Settings, redis_problem

KEY_PREFIX = "pairsearch:blob:"
TEMP_GRACE_S = 3600  # aside-written files older than this are leftovers of a crash
# every name the service stores starts with the id (32 hex digits) of its search, check or
# design edit, and `write_aside` writes `.<that name>.<8 hex>.part` first: the sweep deletes
# nothing else (a clone's `.gitkeep`, a file someone put there)
OURS = re.compile(r"[0-9a-f]{32}[^/]*|\.[0-9a-f]{32}[^/]*\.[0-9a-f]{8}\.part")
log = logging.getLogger(__name__)


class UploadGone(LookupError):
    """A job's upload is no longer stored (expired or deleted)."""

    def __init__(self, name: str):
        super().__init__(f"upload {name} is gone (expired or deleted); please resubmit")


class Storage(Protocol):
    """Uploads and result grids, and their lifecycle: `setup` once at start, `sweep` now and
    then (what outlived RESULT_TTL), `check` for /readyz."""

    def setup(self) -> None: ...

    def sweep(self, ttl_s: int) -> int: ...

    def check(self) -> tuple[bool, str]: ...

    def put_upload(self, name: str, data: bytes) -> None: ...

    def read_upload(self, name: str) -> bytes: ...

    def delete_uploads(self, names: list[str]) -> None: ...

    def put_result(self, name: str, data: bytes) -> None: ...

    def read_result(self, name: str) -> bytes | None: ...

    def export_result(self, name: str, folder: Path) -> Path | None: ...


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_aside(folder: Path, name: str, data: bytes, durable: bool = False) -> Path:
    """Write under our own name, aside first, so a half-written file is never seen.
    `durable`: the bytes and the rename on disk before it returns (a catalogue's drawings and
    pairs.csv, which a synced index switch names: a power loss must not leave them empty)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.part"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        fsync_path(folder)
    return path


PROBE_BYTES = 4096  # /readyz's write into each folder


class FileStorage:
    """UPLOAD_DIR and OUTPUT_DIR, shared by the web and the workers."""

    def __init__(self, upload_dir: Path, output_dir: Path):
        self.upload_dir, self.output_dir = Path(upload_dir), Path(output_dir)

    def setup(self) -> None:
        """Both folders exist; one that cannot be made is logged (searches then fail saying so)."""
        for folder in (self.upload_dir, self.output_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                log.error("cannot create %s: %s", folder, exc)

    def sweep(self, ttl_s: int, now: float | None = None) -> int:
        """Delete our files (`OURS`) older than `ttl_s`, and crash leftovers (`.*.part`) older
        than an hour."""
        now = time.time() if now is None else now
        removed, failed = 0, []
        for folder in (self.upload_dir, self.output_dir):
            try:
                paths = list(folder.iterdir()) if folder.is_dir() else []
            except OSError as exc:
                failed.append(f"{folder}: {exc.strerror or exc}")
                continue
            for path in paths:
                if not OURS.fullmatch(path.name):
                    continue
                limit = min(ttl_s, TEMP_GRACE_S) if path.name.startswith(".") else ttl_s
                try:
                    if path.is_file() and now - path.stat().st_mtime > limit:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
                except OSError as exc:  # one file it cannot delete must not stop the worker
                    failed.append(f"{path.name}: {exc.strerror or exc}")
        if failed:
            log.warning("could not delete %d expired file(s), e.g. %s", len(failed), failed[0])
        return removed

    def put_upload(self, name: str, data: bytes) -> None:
        write_aside(self.upload_dir, name, data)

    def read_upload(self, name: str) -> bytes:
        try:
            return (self.upload_dir / name).read_bytes()
        except FileNotFoundError:
            raise UploadGone(name) from None

    def delete_uploads(self, names: list[str]) -> None:
        for name in names:
            (self.upload_dir / name).unlink(missing_ok=True)

    def put_result(self, name: str, data: bytes) -> None:
        write_aside(self.output_dir, name, data)

    def read_result(self, name: str) -> bytes | None:
        try:
            return (self.output_dir / name).read_bytes()
        except FileNotFoundError:
            return None

    def export_result(self, name: str, folder: Path) -> Path | None:
        """The grid as a file in `folder` (copied unless it is OUTPUT_DIR); None if gone."""
        source = self.output_dir / name
        if not source.is_file():
            return None
        if Path(folder).resolve() == self.output_dir.resolve():
            return source
        Path(folder).mkdir(parents=True, exist_ok=True)
        return Path(shutil.copyfile(source, Path(folder) / name))

    def check(self) -> tuple[bool, str]:
        """Can uploads and results be written? 4 KiB in each folder, removed at once: an empty
        file is still made on a full disk that has inodes left."""
        for folder in (self.upload_dir, self.output_dir):
            try:
                with tempfile.NamedTemporaryFile(dir=folder, prefix=".readyz-", suffix=".tmp") as f:
                    f.write(bytes(PROBE_BYTES))
                    f.flush()
            except OSError as exc:  # (the folders are named by their settings to clients)
                return False, f"{folder} is not writable: {exc.strerror or exc}"
        return True, f"{self.upload_dir} and {self.output_dir} are writable"


class RedisStorage:
    """Bytes in Redis beside the job, expiring with it (RESULT_TTL)."""

    def __init__(self, connection: Redis, ttl: int):
        self.connection, self.ttl = connection, ttl

    def setup(self) -> None:
        """Nothing to make: keys are created on write."""

    def sweep(self, ttl_s: int) -> int:
        """Nothing to delete: every key expires by itself."""
        return 0

    @staticmethod
    def _key(kind: str, name: str) -> str:
        return f"{KEY_PREFIX}{kind}:{name}"

    def put_upload(self, name: str, data: bytes) -> None:
        self.connection.set(self._key("upload", name), data, ex=self.ttl)

    def read_upload(self, name: str) -> bytes:
        data = self.connection.get(self._key("upload", name))
        if data is None:
            raise UploadGone(name)
        return data

    def delete_uploads(self, names: list[str]) -> None:
        if names:
            self.connection.delete(*(self._key("upload", name) for name in names))

    def put_result(self, name: str, data: bytes) -> None:
        self.connection.set(self._key("result", name), data, ex=self.ttl)

    def read_result(self, name: str) -> bytes | None:
        return self.connection.get(self._key("result", name))

    def export_result(self, name: str, folder: Path) -> Path | None:
        """The grid written to a file in `folder`; None if it expired."""
        data = self.read_result(name)
        return None if data is None else write_aside(Path(folder), name, data)

    def check(self) -> tuple[bool, str]:
        try:
            self.connection.ping()
        except Exception as exc:  # noqa: BLE001 - reported as data
            log.warning("readyz: redis: %s", exc)
            return False, f"results are stored in Redis: {redis_problem(exc)}"
        return True, "results are stored in Redis"


BACKENDS = {
    "files": lambda settings, connection: FileStorage(settings.upload_dir, settings.output_dir),
    "redis": lambda settings, connection: RedisStorage(
        connection or Redis.from_url(settings.redis_url), settings.result_ttl),
}  # STORAGE's choices: a new backend is a class above and a line here


def open_storage(settings: Settings, connection: Redis | None = None) -> Storage:
    """The storage STORAGE names (`redis` uses `connection`, or one to REDIS_URL)."""
    return BACKENDS[settings.storage](settings, connection)
