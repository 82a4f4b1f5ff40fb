"""Reads of the current index generation kept until it changes (the web's hot paths: every
submission, health check and page), keyed by FEATURES_DIR and its manifest's stamp."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from worker.core.bank import REINDEX, BankError, manifest_stamp, read_manifest

T = TypeVar("T")


def current_stamp(features_dir: Path) -> tuple | None:
    """manifest_stamp, with CURRENT unreadable (EIO, NFS's ESTALE, a folder in its place) a
    BankError the web reports as the index's error, not a 500."""
    try:
        return manifest_stamp(features_dir)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise BankError(f"{features_dir / 'CURRENT'} cannot be read ({reason}); {REINDEX} if it "
                        "stays so") from None


class StampedCache(Generic[T]):
    """`read(features_dir, *args)`, called again only when the current manifest changed.
    Callers must not modify what it returns."""

    def __init__(self, read: Callable[..., T]):
        self._read = read
        self._lock = threading.Lock()
        self._values: dict[Path, tuple[tuple, T]] = {}

    def get(self, features_dir: Path, *args: Any) -> T:
        features_dir = Path(features_dir)
        stamp = current_stamp(features_dir)
        with self._lock:
            cached = self._values.get(features_dir)
        if stamp is not None and cached is not None and cached[0] == stamp:
            return cached[1]
        value = self._read(features_dir, *args)
        if stamp is not None and current_stamp(features_dir) == stamp:  # not switched meanwhile
            with self._lock:
                self._values[features_dir] = (stamp, value)
        return value


read_manifest_cached = StampedCache(read_manifest).get
