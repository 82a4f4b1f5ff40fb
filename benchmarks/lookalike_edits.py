"""How copiers change a design, made from the sample generator's own attributes.

Attribute edits re-draw the design with one attribute changed (colourway, stripe spacing,
logo, print re-placed); image edits change the drawing (mirror, an overlay, a detail crop,
line art). Every edited copy is then lightly re-scanned (a few degrees, a little scale,
JPEG), as is the unedited `rescan` copy. All functions: (Design, side, Generator) -> RGB.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from worker.core.images import load_image
from worker.dev.sample import PALETTE, Design, draw_side
from worker.pipeline.preprocess import to_rgb

WHITE = (255, 255, 255)
SPACED = ("hstripes", "vstripes", "dots", "checks")  # patterns drawn at `spacing`
SPACINGS = (10, 14, 18, 24, 32)
LOGOS = ("circle", "square", "triangle", "letter")
Edit = Callable[[Design, str, np.random.Generator], Image.Image]


def _other(options, current, rng: np.random.Generator):
    choices = [o for o in options if o != current]
    return choices[int(rng.integers(len(choices)))]


def colourway(d: Design, side: str, rng: np.random.Generator) -> Image.Image:
    """The same design in two other colours of the palette (ground and accent)."""
    colour = _other(PALETTE, d.colour, rng)
    accent = _other([c for c in PALETTE if c != colour], d.accent, rng)
    return draw_side(dataclasses.replace(d, colour=colour, accent=accent), side)


def spacing(d: Design, side: str, rng: np.random.Generator) -> Image.Image:
    """Stripes, dots or checks drawn at another spacing."""
    return draw_side(dataclasses.replace(d, spacing=_other(SPACINGS, d.spacing, rng)), side)


def logo(d: Design, side: str, rng: np.random.Generator) -> Image.Image:
    """Another logo: another kind, or the same kind in another colour."""
    if rng.random() < 0.5:
        return draw_side(dataclasses.replace(d, logo=_other(LOGOS, d.logo, rng)), side)
    return draw_side(dataclasses.replace(d, logo_colour=_other(PALETTE, d.logo_colour, rng)), side)


def reprint(d: Design, side: str, rng: np.random.Generator) -> Image.Image:
    """The print's elements re-placed (another draw of the same print)."""
    return draw_side(dataclasses.replace(d, seed=d.seed + 1 + int(rng.integers(1 << 20))), side)


def mirror(d: Design, side: str, rng: np.random.Generator) -> Image.Image:
    return ImageOps.mirror(draw_side(d, side))


def overlay(d: Design, side: str, rng: np.random.Generator) -> Image.Image:
    """A filled shape or a block of text over 8-20 % of the drawing's box."""
    img = draw_side(d, side)
    left, top, right, bottom = ImageOps.invert(img).getbbox() or (0, 0, *img.size)
    w, h = right - left, bottom - top
    area = rng.uniform(0.08, 0.20) * w * h
    bw = min(w, int(np.sqrt(area * rng.uniform(0.6, 1.6))))
    bh = min(h, int(area / max(bw, 1)))
    x = left + int(rng.integers(0, w - bw + 1))
    y = top + int(rng.integers(0, h - bh + 1))
    draw = ImageDraw.Draw(img)
    fill = PALETTE[int(rng.integers(len(PALETTE)))]
    if rng.random() < 0.5:
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x, y, x + bw, y + bh], fill=fill)
    else:
        draw.rectangle([x, y, x + bw, y + bh], fill=WHITE)
        for line in range(max(1, bh // 14)):
            draw.text((x + 3, y + 2 + 14 * line), "SAMPLE TEXT " * 4, fill=fill, font_size=11)
    return img


def detail(d: Design, side: str, rng: np.random.Generator) -> Image.Image:
    """Only a central 55-75 % crop of the garment's box: a crop of the page's centre would
    leave many garments whole, and the trim would undo it."""
    img = draw_side(d, side)
    left, top, right, bottom = ImageOps.invert(img).getbbox() or (0, 0, *img.size)
    w, h = right - left, bottom - top
    keep = rng.uniform(0.55, 0.75)
    cw, ch = int(w * keep), int(h * keep)
    x, y = left + (w - cw) // 2, top + (h - ch) // 2
    return img.crop((x, y, x + cw, y + ch))


def lineart(d: Design, side: str, rng: np.random.Generator) -> Image.Image:
    """Outlines only, black on white: a sketch of the flat."""
    white = (255, 255, 255)
    sketch = dataclasses.replace(d, colour=white, accent=white, logo_colour=(20, 20, 20),
                                 pattern="plain", back_pattern="plain")
    return draw_side(sketch, side)


def rescan(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A light re-scan: up to 3 degrees, scale 0.85-1.15, JPEG quality 70-92."""
    img = img.rotate(float(rng.uniform(-3, 3)), Image.Resampling.BICUBIC, expand=True,
                     fillcolor=WHITE)
    s = rng.uniform(0.85, 1.15)
    img = img.resize((max(16, round(img.width * s)), max(16, round(img.height * s))),
                     Image.Resampling.BICUBIC)
    return as_uploaded_jpeg(img, int(rng.integers(70, 93)))


def as_uploaded_jpeg(img: Image.Image, quality: int) -> Image.Image:
    """`img` saved as a JPEG of `quality` and decoded the way an upload is."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return to_rgb(load_image(buf.getvalue()))


def unedited(d: Design, side: str, rng: np.random.Generator) -> Image.Image:
    return draw_side(d, side)


def eligible_spacing(d: Design) -> bool:
    return d.pattern in SPACED or d.back_pattern in SPACED


def eligible_reprint(d: Design) -> bool:
    return "print" in (d.pattern, d.back_pattern)


EDITS: dict[str, tuple[Edit, Callable[[Design], bool]]] = {
    "rescan": (unedited, lambda d: True),
    "colourway": (colourway, lambda d: True),
    "spacing": (spacing, eligible_spacing),
    "logo": (logo, lambda d: True),
    "reprint": (reprint, eligible_reprint),
    "mirror": (mirror, lambda d: True),
    "overlay": (overlay, lambda d: True),
    "detail": (detail, lambda d: True),
    "lineart": (lineart, lambda d: True),
}


def edited_pair(d: Design, family: str, seed: int) -> tuple[Image.Image, Image.Image]:
    """(front, back) of design `d` edited by `family` (both sides alike), then re-scanned."""
    edit, _ = EDITS[family]
    rng = np.random.default_rng(seed)
    state = rng.bit_generator.state
    sides = []
    for side in ("front", "back"):
        rng.bit_generator.state = state  # the same edit on both sides (one colourway, one logo)
        sides.append(edit(d, side, rng))
    rescan_rng = np.random.default_rng(seed + 1)
    return rescan(sides[0], rescan_rng), rescan(sides[1], rescan_rng)
