"""The cap on long polls one web process holds at once (`MAX_LONG_POLLS`).

A long poll costs a greenlet, a Redis pub/sub connection and a status read a second; past the
cap, `?wait=` is answered at once with the status as it is (the client polls again)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class LongPolls:
    """How many long polls this process holds; `slot()` takes one if the cap allows."""

    def __init__(self, limit: int):
        self.limit = limit
        self.active = 0
        self._lock = threading.Lock()  # a gevent lock once gunicorn's worker has patched

    @contextmanager
    def slot(self) -> Iterator[bool]:
        """True (and held until the block ends) when under the cap, else False."""
        with self._lock:
            granted = self.active < self.limit
            if granted:
                self.active += 1
        try:
            yield granted
        finally:
            if granted:
                with self._lock:
                    self.active -= 1
