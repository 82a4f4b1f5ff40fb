"""Catalogue thumbnails, made at index time (or at first use where missing), so a grid
pastes 40 small images and never shrinks a full drawing; the worker keeps them decoded in
RAM (ThumbnailCache, THUMB_CACHE_MB). Their path names their size: a grid of another
thumbnail size never reads a thumbnail made for the old one."""

from __future__ import annotations

import io
import logging
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from worker.core.catalogue import THUMB_DIR, Catalogue, thumbnail_file
from worker.core.images import ImageRejected, load_image
from worker.core.storage import write_aside
from worker.pipeline.preprocess import to_rgb
from worker.pipeline.render import THUMB

log = logging.getLogger(__name__)
# a removed design's cell (its drawing and thumbnail deleted by the removal, while a search
# on the generation before it still ranks it), and that of a drawing no longer readable
REMOVED = np.full((THUMB, THUMB, 3), 235, np.uint8)
REMOVED.flags.writeable = False


def thumbnail_path(features_dir: Path, relative: str) -> Path:
    """Where the THUMB-pixel thumbnail of catalogue image `relative` lives."""
    return thumbnail_file(features_dir, relative, THUMB)


def remove_thumbnails(features_dir: Path, relative: str) -> None:
    """Delete the thumbnails, of every size, of catalogue image `relative` (deleted itself)."""
    name = thumbnail_path(features_dir, relative).name
    for path in (Path(features_dir) / THUMB_DIR).glob(f"*/{name}"):
        path.unlink(missing_ok=True)


def shrink(rgb: Image.Image) -> Image.Image:
    """A copy of an RGB drawing that fits THUMB x THUMB, aspect kept."""
    thumb = rgb.copy()
    thumb.thumbnail((THUMB, THUMB), Image.Resampling.BICUBIC)
    return thumb


def write_thumbnail(features_dir: Path, relative: str, rgb: Image.Image) -> None:
    """Shrink an RGB drawing to fit THUMB x THUMB and store it as JPEG (written aside first)."""
    path = thumbnail_path(features_dir, relative)
    buf = io.BytesIO()
    shrink(rgb).save(buf, "JPEG", quality=88)
    write_aside(path.parent, path.name, buf.getvalue())


class ThumbnailCache:
    """Decoded thumbnails kept in RAM, least recently used dropped past `budget_bytes`.

    A pair decoded is (150, 150, 3) x 2 = 135 KB, so THUMB_CACHE_MB=512 holds ~3,900 pairs.
    Entries are keyed by the file's path, inode, size and mtime: a thumbnail written again
    (aside, then renamed into place) is decoded afresh."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self.nbytes = 0
        self._pixels: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.unwritable: set[str] = set()  # FEATURES_DIRs a thumbnail could not be stored in

    def __len__(self) -> int:
        return len(self._pixels)

    @staticmethod
    def _key(path: Path) -> tuple:
        stat = path.stat()  # FileNotFoundError when there is no thumbnail
        return str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns

    def get(self, path: Path) -> np.ndarray:
        """(h, w, 3) uint8, read-only; FileNotFoundError when there is no thumbnail."""
        key = self._key(path)
        pixels = self._pixels.get(key)
        if pixels is not None:
            self._pixels.move_to_end(key)
            return pixels
        pixels = _decode(path)
        if pixels.nbytes <= self.budget_bytes:
            self._pixels[key] = pixels
            self.nbytes += pixels.nbytes
            while self.nbytes > self.budget_bytes:
                self.nbytes -= self._pixels.popitem(last=False)[1].nbytes
        return pixels

    def drop_stale(self) -> int:
        """Forget thumbnails rewritten or deleted since they were decoded (after a re-index
        or a catalogue edit); how many were dropped."""
        stale = []
        for key in self._pixels:
            try:
                current = self._key(Path(key[0]))
            except OSError:
                current = None
            if current != key:
                stale.append(key)
        for key in stale:
            self.nbytes -= self._pixels.pop(key).nbytes
        return len(stale)

    def preload(self, features_dir: Path, relatives: Iterable[str]) -> int:
        """Decode thumbnails in order until the next would not fit; how many are held."""
        for relative in relatives:
            path = thumbnail_path(features_dir, relative)
            try:
                key = self._key(path)
                if key in self._pixels:
                    continue
                pixels = _decode(path)
            except OSError:  # missing or unreadable: made when a grid needs it
                continue
            if self.nbytes + pixels.nbytes > self.budget_bytes:
                break  # full: evicting what was just decoded would only waste the time
            self._pixels[key] = pixels
            self.nbytes += pixels.nbytes
        return len(self)


def _decode(path: Path) -> np.ndarray:
    with Image.open(path, formats=("JPEG",)) as img:
        pixels = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    pixels.flags.writeable = False
    return pixels


def load_thumbnail(features_dir: Path, catalogue: Catalogue, relative: str,
                   cache: ThumbnailCache) -> np.ndarray:
    """(h, w, 3) uint8 thumbnail of a catalogue image. One the index did not make (banks from
    before thumbnails) is made from the drawing now and stored, so it is decoded only once;
    where FEATURES_DIR cannot be written, it is made again each time."""
    path = thumbnail_path(features_dir, relative)
    try:
        return cache.get(path)
    except OSError:  # missing, or cut short by a crash (unreadable): made again, stored
        pass
    drawing = catalogue.image_path(relative)
    try:
        rgb = to_rgb(load_image(drawing))
    except ImageRejected as exc:  # its rows rank it still: the search stands, the cell is blank
        if drawing.is_file():
            log.warning("the catalogue drawing %s cannot be read (%s); its grid cell is left "
                        "blank", relative, exc)
        else:  # removed since the generation this search ran on was read
            log.info("%s was removed from the catalogue; its grid cell is left blank", relative)
        return REMOVED
    try:
        write_thumbnail(features_dir, relative, rgb)
        return cache.get(path)
    except OSError as exc:
        if str(features_dir) not in cache.unwritable:  # say it once, not 40 times a search
            cache.unwritable.add(str(features_dir))
            log.warning("cannot store thumbnails in %s (%s); grids shrink the drawings each "
                        "time until `make index` is run", features_dir, exc)
        return np.asarray(shrink(rgb))
