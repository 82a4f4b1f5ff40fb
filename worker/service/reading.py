"""The index generation a worker process reads, pinned for writers on every machine.

Writers keep the current generation, the previous one and pinned ones (`generations.
clean_leftovers`). A worker may read an older one: a job that started before two writes, or
a newer index it refused to load. On a local disk a deleted file lives on while it is open
or mapped, but on NFS a file one machine deletes is gone for the others (their maps fault),
so each worker pins what it reads, as a collection check does (FEATURES_DIR/pins/<holder>).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import uuid
from pathlib import Path

from worker.core.generations import PIN_TTL_S, pin, unpin

log = logging.getLogger(__name__)


class ReadingPin:
    """This process's pin: written when it loads a generation, renewed once a quarter of
    PIN_TTL_S has passed, deleted when it stops; a stale one goes with the next write."""

    def __init__(self, features_dir: Path):
        self.features_dir = Path(features_dir)
        host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())
        # unique even where containers share a host name and their process ids
        self.holder = f"worker-{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._held: tuple[str, float] | None = None  # (generation, when) last written or tried

    def hold(self, generation: str | None) -> None:
        """Pin `generation` (None: a flat FEATURES_DIR, nothing to pin) unless it is pinned
        and fresh."""
        if generation is None or (self._held is not None and self._held[0] == generation
                                  and time.monotonic() - self._held[1] < PIN_TTL_S / 4):
            return
        self._held = (generation, time.monotonic())  # a failed write too: not tried per job
        try:
            pin(self.features_dir, self.holder, generation)
        except OSError as exc:  # a read-only FEATURES_DIR: no writer deletes anything there
            log.warning("cannot pin catalogue version %s: %s", generation, exc)

    def release(self) -> None:
        """This process reads no generation any more (it is stopping)."""
        if self._held is None:
            return
        self._held = None
        try:
            unpin(self.features_dir, self.holder)
        except OSError as exc:
            log.warning("cannot let go of the catalogue version this worker read: %s", exc)
