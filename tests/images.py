"""Real images made in the test: catalogue drawings and deliberately odd or hostile files."""

from __future__ import annotations

import io

from PIL import Image

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
