"""16-bit, 32-bit and float grey images (a scanner's or a drawing program's 16-bit PNG)
brought to 8 bits in bounded memory. Pillow + numpy."""

from __future__ import annotations

import numpy as np
from PIL import Image

WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
ROWS_AT_ONCE = 256  # 16-bit -> 8-bit conversion in bands of rows (no full-size float copy)


def to_8bit(img: Image.Image, reduce_by: int = 1) -> Image.Image:
    """16-bit, 32-bit or float grey -> 8-bit grey (65535 or 255 is white: judged on the full
    image), first reduced by `reduce_by` (Pillow's box `reduce`); a band of rows at a time
    in float32, never a full-size float64 copy. A colour key (a PNG's tRNS) becomes an
    alpha band ("LA"), keyed pixels transparent: Pillow's "L" copy would drop it."""
    low, high = img.getextrema()
    top = 65535.0 if high > 255 else 255.0
    key = img.info.get("transparency")
    if img.mode.startswith("I;16"):
        img = img.convert("I")  # `reduce` and numpy take 32-bit integers
    alpha = _keyed_out(img, key) if isinstance(key, int) else None
    if reduce_by > 1:
        img = img.reduce(reduce_by)
        alpha = None if alpha is None else alpha.reduce(reduce_by)
    arr = np.asarray(img)
    out = np.empty(arr.shape, np.uint8)
    for row in range(0, arr.shape[0], ROWS_AT_ONCE):
        band = np.clip(arr[row:row + ROWS_AT_ONCE].astype(np.float32), 0, top)
        out[row:row + ROWS_AT_ONCE] = band / np.float32(top) * np.float32(255.0)
    grey = Image.fromarray(out, "L")
    return grey if alpha is None else Image.merge("LA", (grey, alpha))


def _keyed_out(img: Image.Image, key: int) -> Image.Image:
    """An "L" mask of a wide grey image: 0 where a pixel is `key`, 255 elsewhere (by bands
    of rows)."""
    w, h = img.size
    mask = np.empty((h, w), np.uint8)
    for row in range(0, h, ROWS_AT_ONCE):
        band = np.asarray(img.crop((0, row, w, min(h, row + ROWS_AT_ONCE))))
        mask[row:row + ROWS_AT_ONCE] = np.where(band == key, 0, 255)
    return Image.fromarray(mask, "L")
