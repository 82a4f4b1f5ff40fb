"""Where uploads and result grids live between the web and the workers (`STORAGE`).

- `files` (default): UPLOAD_DIR and OUTPUT_DIR, written aside then renamed; the web and the
  workers must see the same folders (one machine, or a shared volume).
- `redis`: the bytes live in Redis next to the job, with RESULT_TTL as their time to live;
  a worker on another machine needs nothing from the web's machine but Redis (and its own
  copy of the catalogue and the index).

TensorFlow-free: the web imports it.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Protocol

from redis import Redis

from worker.settings import Settings

KEY_PREFIX = "pairsearch:blob:"


class UploadGone(LookupError):
    """A job's upload is no longer stored (expired or deleted)."""

    def __init__(self, name: str):
        super().__init__(f"upload {name} is gone (expired or deleted); please resubmit")


class Storage(Protocol):
    def put_upload(self, name: str, data: bytes) -> None: ...

    def read_upload(self, name: str) -> bytes: ...

    def delete_uploads(self, names: list[str]) -> None: ...

    def put_result(self, name: str, data: bytes) -> None: ...

    def read_result(self, name: str) -> bytes | None: ...

    def has_result(self, name: str) -> bool: ...

    def check(self) -> tuple[bool, str]: ...


def write_aside(folder: Path, name: str, data: bytes) -> Path:
    """Write under our own name, aside first, so a half-written file is never seen."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.part"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class FileStorage:
    def __init__(self, upload_dir: Path, output_dir: Path):
        self.upload_dir, self.output_dir = Path(upload_dir), Path(output_dir)

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

    def has_result(self, name: str) -> bool:
        return (self.output_dir / name).is_file()

    def check(self) -> tuple[bool, str]:
        """Can results be written? (a probe file in OUTPUT_DIR, removed at once)"""
        try:
            with tempfile.NamedTemporaryFile(dir=self.output_dir, prefix=".readyz-", suffix=".tmp"):
                pass
        except OSError as exc:
            return False, f"OUTPUT_DIR {self.output_dir} is not writable: {exc.strerror or exc}"
        return True, f"OUTPUT_DIR {self.output_dir} is writable"


class RedisStorage:
    def __init__(self, connection: Redis, ttl: int):
        self.connection, self.ttl = connection, ttl

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

    def has_result(self, name: str) -> bool:
        return bool(self.connection.exists(self._key("result", name)))

    def check(self) -> tuple[bool, str]:
        try:
            self.connection.ping()
        except Exception as exc:  # noqa: BLE001 - reported as data
            return False, f"results are stored in Redis, which does not answer: {exc}"
        return True, "results are stored in Redis"


def open_storage(settings: Settings, connection: Redis | None) -> FileStorage | RedisStorage:
    """The storage `settings.storage` names (`redis` needs the connection)."""
    if settings.storage == "redis":
        if connection is None:
            raise ValueError("STORAGE=redis needs a Redis connection")
        return RedisStorage(connection, settings.result_ttl)
    return FileStorage(settings.upload_dir, settings.output_dir)
