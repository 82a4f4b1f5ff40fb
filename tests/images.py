"""Real images made in the test: catalogue drawings and deliberately odd or hostile files."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from worker.dev.sample import draw_side, make_designs

N_PAIRS = 24  # the session catalogue's size (tests/conftest.py)


def encode(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def design_pair(index: int, n_pairs: int, seed: int = 7) -> tuple[bytes, bytes]:
    """PNG bytes of the front and back of sample design `index` (as the catalogue has them)."""
    design = make_designs(n_pairs, seed)[index]
    return encode(draw_side(design, "front")), encode(draw_side(design, "back"))


def variant(png: bytes, n: int) -> bytes:
    """The same drawing with one corner pixel changed: different bytes, same design."""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    img.putpixel((0, 0), (n % 256, n // 256 % 256, 250))
    return encode(img)


def unrelated_drawing(seed: int) -> bytes:
    """Scattered circles and bars on white, no garment: a PNG like no catalogue design."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (300, 300), "white")
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = rng.integers(20, 280, 2)
        r = int(rng.integers(5, 25))
        colour = tuple(int(c) for c in rng.integers(0, 200, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x - r, y - r, x + r, y + r],
                                                                   fill=colour)
    return encode(img)


INK = {"1": 0, "L": 0, "P": 1, "I;16": 0, "RGB": (0, 0, 0), "RGBA": (0, 0, 0, 255),
       "CMYK": (0, 0, 0, 255)}


def drawn(img: Image.Image) -> Image.Image:
    """`img` with a dark box drawn on it, in its own mode: an upload with something on it (a
    flat one is refused as blank)."""
    w, h = img.size
    ImageDraw.Draw(img).rectangle([w // 4, h // 4, w // 2, h // 2], fill=INK[img.mode])
    return img
