"""The chunk cache of index builds (worker.indexing.chunks): each finished chunk's rows,
`FEATURES_DIR/chunks/<model>/<key>.npz`, written aside and renamed, and an int8 build's
model published beside them for a distributed build's workers."""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from worker.core import generations
from worker.core.storage import write_aside
from worker.pipeline.appearance import SKETCH_TEST

log = logging.getLogger(__name__)
PUBLISHED_MODEL = "model-int8.tflite"


def chunk_key(model: str, hashes: list[str]) -> str:
    return hashlib.sha256((model + "".join(hashes)).encode()).hexdigest()[:32]


# what np.load raises for a chunk a crash left empty (EOFError) or cut short, or whose
# members fail their CRC (zipfile.BadZipFile): such a chunk's images are extracted again
DAMAGED = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def _member(path: Path, name: str, optional: bool = False) -> np.ndarray | None:
    """A chunk's member (None: the chunk is damaged, or an `optional` member is absent)."""
    found = _members(path, (name,), optional)
    return None if found is None else found[0]


def _members(path: Path, names: tuple[str, ...], optional: bool = False
             ) -> tuple[np.ndarray | None, ...] | None:
    """A chunk's members, read in one opening (None: the chunk is damaged; an absent
    `optional` member: None in its place)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return tuple(None if optional and name not in data.files else data[name]
                         for name in names)
    except DAMAGED as exc:
        log.warning("ignoring unreadable chunk %s: %s", path.name, exc)
        return None


class ChunkCache:
    """The finished chunks of one model: `<key>.npz` with `hashes` (n,) str, `rows`
    (n, raw dim) float32 and `sketched` (n,) int8 (1: a line sketch, `appearance.is_sketch`;
    0: not; -1: not known; absent in chunks written before it) with `sketch_test`, the
    `appearance.SKETCH_TEST` it was measured by (flags of another test are not known), written
    aside and renamed (a reader sees whole chunks only)."""

    def __init__(self, features_dir: Path, model: str):
        self.root = Path(features_dir) / generations.CHUNK_CACHE
        self.model = model
        self.folder = self.root / model

    def _chunks(self, whole: bool = False) -> Iterator[tuple[Path, np.ndarray]]:
        """(path, hashes) of each readable chunk; `whole`: its rows read too, and a damaged
        chunk deleted, so that its images are planned and extracted again."""
        for path in sorted(self.folder.glob("*.npz")):
            hashes = _member(path, "hashes")
            if whole and hashes is not None:
                rows = _member(path, "rows")
                hashes = hashes if rows is not None and len(rows) == len(hashes) else None
            if hashes is not None:
                yield path, hashes
            elif whole:
                path.unlink(missing_ok=True)

    def hashes(self) -> set[str]:
        """The contents the cache holds rows of (what a build need not extract)."""
        return {str(h) for _, hashes in self._chunks(whole=True) for h in hashes}

    def held(self) -> set[str]:
        """The contents listed by readable chunks (their rows not read: `hashes` reads them)."""
        return {str(h) for _, hashes in self._chunks() for h in hashes}

    def blocks(self, wanted: set[str], dim: int) -> Iterator[tuple[list[str], np.ndarray]]:
        """Chunk by chunk, the wanted contents not yielded before and their (k, dim) float32
        rows: every wanted row the cache holds, once, one chunk in memory at a time."""
        seen: set[str] = set()
        for path, hashes in self._chunks():
            hit = [i for i, h in enumerate(hashes) if h in wanted and h not in seen]
            if hit and (rows := _member(path, "rows")) is not None:
                if rows.shape != (len(hashes), dim):
                    log.warning("ignoring chunk %s: rows %s, expected (%d, %d)", path.name,
                                rows.shape, len(hashes), dim)
                    continue
                found = [str(hashes[i]) for i in hit]
                seen.update(found)
                yield found, np.asarray(rows[hit], np.float32)

    def rows(self, wanted: set[str], dim: int) -> dict[str, np.ndarray]:
        """sha256 -> (dim,) float32 row, for each wanted content the cache holds."""
        return {digest: row for found, rows in self.blocks(wanted, dim)
                for digest, row in zip(found, rows, strict=True)}

    def sketches(self, wanted: set[str]) -> dict[str, bool]:
        """sha256 -> whether it is a line sketch, for each wanted content a chunk knows it of."""
        known: dict[str, bool] = {}
        for path, hashes in self._chunks():
            if not wanted.isdisjoint(map(str, hashes)):
                flags = self._flags(path, len(hashes))
                known.update((str(h), bool(f)) for h, f in zip(hashes, flags.tolist(), strict=True)
                             if f >= 0 and str(h) in wanted)
        return known

    @staticmethod
    def _flags(path: Path, n: int) -> np.ndarray:
        """(n,) int8: a chunk's sketch flags, -1 where not known (none recorded, another
        test's, or not readable)."""
        flags, test = _members(path, ("sketched", "sketch_test"), optional=True) or (None, None)
        if flags is None or len(flags) != n or test is None or str(test) != SKETCH_TEST:
            return np.full(n, -1, np.int8)
        return flags.astype(np.int8)

    def record_sketches(self, found: dict[str, bool]) -> None:
        """Write `found` into the chunks that hold those contents without knowing them (chunks
        written before the flags, or measured by another sketch test): the next build need not
        decode their images again."""
        for path, hashes in list(self._chunks()):
            if found.keys().isdisjoint(map(str, hashes)):
                continue
            flags = self._flags(path, len(hashes))
            new = np.array([found.get(str(h), f) for h, f in zip(hashes, flags.tolist(),
                                                                  strict=True)], np.int8)
            if not np.array_equal(new, flags) and (rows := _member(path, "rows")) is not None:
                self.write(path.stem, [str(h) for h in hashes], rows, new)

    def write(self, key: str, hashes: list[str], rows: np.ndarray,
              sketched: np.ndarray | None = None) -> None:
        buf = io.BytesIO()
        flags = {} if sketched is None else {"sketched": np.asarray(sketched, np.int8),
                                             "sketch_test": np.array(SKETCH_TEST)}
        np.savez(buf, hashes=np.array(hashes), rows=np.asarray(rows, np.float32), **flags)
        write_aside(self.folder, f"{key}.npz", buf.getvalue())
        generations.checkpoint(f"written chunk {key}")

    def has(self, key: str) -> bool:
        return (self.folder / f"{key}.npz").is_file()

    def publish_model(self, blob: bytes) -> None:  # an int8 build's, for the workers it asks
        write_aside(self.folder, PUBLISHED_MODEL, blob)

    def published_model(self) -> bytes | None:
        path = self.folder / PUBLISHED_MODEL
        return path.read_bytes() if path.is_file() else None

    def prune(self, used: set[str], dim: int, chunk_images: int, others: bool = True) -> int:
        """After a build: drop chunks no image of `used` needs and (`others`) other models'
        chunks, but not this model's companions (`<model>-copies`); repack the rest when they
        hold over twice the rows in use (the cache stays within 2x the catalogue's raw rows).
        Returns the chunk files deleted."""
        for other in self.root.iterdir() if self.root.is_dir() and others else []:
            if other.is_dir() and other.name.split("-")[0] != self.model:
                shutil.rmtree(other, ignore_errors=True)
        # each chunk's size and whether it is in use, not its hashes (0.5 GB at a million pairs)
        chunks = [(path, len(hashes), not used.isdisjoint(map(str, hashes)))
                  for path, hashes in self._chunks()]
        stale = [path for path, _, in_use in chunks if not in_use]
        if sum(rows for _, rows, in_use in chunks if in_use) > 2 * len(used):
            kept = {f"{key}.npz" for key in self._repacked(used, dim, chunk_images)}
            stale = [path for path, _, _ in chunks if path.name not in kept]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def _repacked(self, used: set[str], dim: int, chunk_images: int) -> Iterator[str]:
        """The rows of `used` written again as chunks of `chunk_images`, read one chunk at a
        time; yields each new chunk's key (a key already there names the same rows)."""
        digests: list[str] = []
        parts: list[np.ndarray] = []
        known = self.sketches(used)  # carried into the new chunks
        for found, rows in self.blocks(used, dim):
            digests += found
            parts.append(rows)
            while len(digests) >= chunk_images:
                held = np.concatenate(parts)
                yield self._write_part(digests[:chunk_images], held[:chunk_images], known)
                digests, parts = digests[chunk_images:], [held[chunk_images:]]
        if digests:
            yield self._write_part(digests, np.concatenate(parts), known)

    def _write_part(self, digests: list[str], rows: np.ndarray, known: dict[str, bool]) -> str:
        key = chunk_key(self.model, digests)
        self.write(key, digests, rows, np.array([known.get(d, -1) for d in digests], np.int8))
        return key
