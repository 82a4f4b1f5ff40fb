"""Catalogue thumbnails made at index time, so rendering a grid reads 40 small JPEGs instead
of decoding and shrinking 40 full drawings."""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from worker.catalogue import Catalogue
from worker.preprocess import load_image, to_rgb
from worker.render import THUMB
from worker.storage import write_aside

THUMB_DIR = "thumbs"


def thumbnail_path(features_dir: Path, relative: str) -> Path:
    """Where the thumbnail of catalogue image `relative` lives (keyed by its path)."""
    return Path(features_dir) / THUMB_DIR / f"{hashlib.sha1(relative.encode()).hexdigest()[:20]}.jpg"


def write_thumbnail(features_dir: Path, relative: str, rgb: Image.Image) -> None:
    """Shrink an RGB drawing to fit THUMB x THUMB and store it as JPEG (written aside first)."""
    thumb = rgb.copy()
    thumb.thumbnail((THUMB, THUMB), Image.Resampling.BICUBIC)
    path = thumbnail_path(features_dir, relative)
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=88)
    write_aside(path.parent, path.name, buf.getvalue())


@lru_cache(maxsize=1024)  # ~70 MB at most: the designs that keep coming up stay decoded
def _decoded(path: str, mtime_ns: int) -> np.ndarray:
    with Image.open(path, formats=("JPEG",)) as img:
        pixels = np.asarray(img.convert("RGB"))
    pixels.flags.writeable = False
    return pixels


def load_thumbnail(features_dir: Path, catalogue: Catalogue, relative: str) -> np.ndarray:
    """(h, w, 3) uint8 thumbnail of a catalogue image; the full drawing if none was made."""
    path = thumbnail_path(features_dir, relative)
    try:
        return _decoded(str(path), path.stat().st_mtime_ns)
    except FileNotFoundError:
        pass
    return np.asarray(to_rgb(load_image(catalogue.image_path(relative))))
