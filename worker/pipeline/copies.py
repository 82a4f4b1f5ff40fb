"""Synthetic copies of a catalogue drawing, as a copier changes it: other colours, a part
cropped, a patch over it, mirrored, then re-scanned. The index learns its whitening from
the difference between each drawing and its copy (worker/core/whitening.py), so the
dimensions copiers change count less and the ones they keep count more.

Pillow + numpy, at index time only. (224, 224, 3) uint8 canvas -> (224, 224, 3) uint8
canvas, the same for the same (canvas, seed): builds are reproducible.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from worker.pipeline.preprocess import to_canvas

PAPER = 245  # pixels lighter than this in every channel are paper, left as they are
RECOLOURED = 2  # the most frequent colours (ground, accent) replaced
COLOUR_RADIUS = 40.0  # RGB distance within which a pixel belongs to a replaced colour
P_RECOLOUR, P_CROP, P_PATCH, P_MIRROR = 0.75, 0.15, 0.3, 0.2  # chosen on seed 7 (docs/quality.md)


def recolour(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The drawing's most frequent colours (8 levels a channel) each shifted to a random
    colour, with the pixels near them: another colourway of a flat drawing."""
    flat = canvas.reshape(-1, 3).astype(np.float32)
    drawn = (flat < PAPER).any(-1)
    if drawn.sum() < 50:
        return canvas
    levels = (flat[drawn] // 32).astype(np.int64)
    keys = (levels[:, 0] * 8 + levels[:, 1]) * 8 + levels[:, 2]
    counts = np.bincount(keys, minlength=512)
    out = flat.copy()
    for key in np.argsort(-counts, kind="stable")[:RECOLOURED]:
        if counts[key] == 0:
            break
        mean = flat[drawn][keys == key].mean(axis=0)
        near = drawn & (np.linalg.norm(flat - mean, axis=1) < COLOUR_RADIUS)
        out[near] += rng.uniform(0, 235, 3) - mean
    return np.clip(out, 0, 255).reshape(canvas.shape).astype(np.uint8)


def crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A 50-80 % part of the drawing, anywhere in it."""
    keep = rng.uniform(0.5, 0.8)
    w, h = max(1, int(img.width * keep)), max(1, int(img.height * keep))
    left, top = int(rng.uniform(0, img.width - w)), int(rng.uniform(0, img.height - h))
    return img.crop((left, top, left + w, top + h))


def patch(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A filled ellipse or rectangle of a random colour over 5-20 % of the drawing."""
    img = img.copy()
    area = rng.uniform(0.05, 0.2) * img.width * img.height
    w = min(img.width, int(np.sqrt(area * rng.uniform(0.5, 2.0))))
    h = min(img.height, int(area / max(w, 1)))
    x, y = int(rng.integers(0, img.width - w + 1)), int(rng.integers(0, img.height - h + 1))
    draw = ImageDraw.Draw(img)
    shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
    shape([x, y, x + w, y + h], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return img


def rescan(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Up to 4 degrees, scale 0.8-1.2, JPEG quality 60-94."""
    img = img.rotate(float(rng.uniform(-4, 4)), Image.Resampling.BICUBIC, expand=True,
                     fillcolor=(255, 255, 255))
    scale = rng.uniform(0.8, 1.2)
    img = img.resize((max(16, round(img.width * scale)), max(16, round(img.height * scale))),
                     Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(60, 95)))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def synthetic_copy(canvas: np.ndarray, seed: int, trim: bool = True) -> np.ndarray:
    """(224, 224, 3) uint8 canvas -> a copier's version of it, prepared as a canvas again."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(recolour(canvas, rng) if rng.random() < P_RECOLOUR else canvas)
    if rng.random() < P_CROP:
        img = crop(img, rng)
    if rng.random() < P_PATCH:
        img = patch(img, rng)
    if rng.random() < P_MIRROR:
        img = ImageOps.mirror(img)
    return to_canvas(rescan(img, rng), trim)
