"""Generate a deterministic sample catalogue of synthetic garment designs.

`python -m worker.cli.sample [--pairs 200] [--seed 7] [--out database/]` writes
`images/*.png` and `pairs.csv` (name,front,back,garment,season). Each design is a T-shirt, dress,
jacket or trousers silhouette with a colour from a deliberately narrow palette and a
pattern (plain, stripes, dots, checks, print); the front carries details and a small logo
the back lacks, so front and back differ but belong together. Some designs are variants
that share their front with another design: only the back tells them apart.
Tests use the same generator for their data.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from worker.core.catalogue import write_catalogue_csv

SIZE = 320
GARMENTS = ("tshirt", "dress", "jacket", "trousers")
SEASONS = ("SS25", "AW25", "SS26")  # in runs of 3 designs: every garment in every season
PATTERNS = ("plain", "hstripes", "vstripes", "dots", "checks", "print")
# Narrow, realistic palette: many designs share similar colours.
PALETTE = [
    (30, 40, 80), (40, 55, 100), (25, 25, 30), (60, 60, 65), (200, 200, 205), (235, 230, 215),
    (150, 30, 40), (180, 50, 50), (30, 90, 60), (60, 110, 70), (210, 180, 120), (120, 80, 50),
    (90, 130, 180), (170, 190, 220), (220, 140, 150), (240, 200, 60),
]
OUTLINE = (20, 20, 20)


@dataclass
class Design:
    name: str
    garment: str
    colour: tuple[int, int, int]
    accent: tuple[int, int, int]
    pattern: str
    spacing: int
    logo: str
    logo_colour: tuple[int, int, int]
    back_pattern: str
    width: float
    length: float
    seed: int
    variant_of: str | None = field(default=None)


def _silhouette(garment: str, w: float, ln: float) -> list[list[tuple[float, float]]]:
    """Polygons (in a 320x320 frame) of the garment's outline."""
    c = SIZE / 2
    if garment == "tshirt":
        bw, top, bot = 70 * w, 70, 70 + 190 * ln
        body = [(c - bw, top + 20), (c - bw, bot), (c + bw, bot), (c + bw, top + 20)]
        sleeves = [[(c - bw, top + 20), (c - bw - 50, top + 70), (c - bw - 25, top + 95),
                    (c - bw, top + 70)],
                   [(c + bw, top + 20), (c + bw + 50, top + 70), (c + bw + 25, top + 95),
                    (c + bw, top + 70)]]
        shoulders = [(c - bw, top + 20), (c - 25, top), (c + 25, top), (c + bw, top + 20),
                     (c + bw, top + 40), (c - bw, top + 40)]
        return [body, shoulders, *sleeves]
    if garment == "dress":
        bw, top, waist, bot = 45 * w, 60, 140, 60 + 240 * ln
        bodice = [(c - bw, top), (c + bw, top), (c + bw * 0.9, waist), (c - bw * 0.9, waist)]
        skirt = [(c - bw * 0.9, waist), (c + bw * 0.9, waist), (c + bw * 2.3, bot),
                 (c - bw * 2.3, bot)]
        return [bodice, skirt]
    if garment == "jacket":
        bw, top, bot = 72 * w, 60, 60 + 200 * ln
        body = [(c - bw, top + 15), (c - bw, bot), (c + bw, bot), (c + bw, top + 15),
                (c + 25, top), (c - 25, top)]
        sleeves = [[(c - bw, top + 15), (c - bw - 40, bot - 10), (c - bw - 15, bot),
                    (c - bw, top + 80)],
                   [(c + bw, top + 15), (c + bw + 40, bot - 10), (c + bw + 15, bot),
                    (c + bw, top + 80)]]
        return [body, *sleeves]
    bw, top, bot = 60 * w, 50, 50 + 250 * ln  # trousers
    legs = [(c - bw, top), (c + bw, top), (c + bw + 10, bot), (c + 8, bot), (c, top + 80),
            (c - 8, bot), (c - bw - 10, bot)]
    return [legs]


def _pattern(d: Design, kind: str, rng: random.Random) -> Image.Image:
    img = Image.new("RGB", (SIZE, SIZE), d.colour)
    draw = ImageDraw.Draw(img)
    s = d.spacing
    if kind == "hstripes":
        for y in range(0, SIZE, s):
            draw.rectangle([0, y, SIZE, y + s // 3], fill=d.accent)
    elif kind == "vstripes":
        for x in range(0, SIZE, s):
            draw.rectangle([x, 0, x + s // 3, SIZE], fill=d.accent)
    elif kind == "dots":
        r = max(2, s // 5)
        for y in range(0, SIZE, s):
            for x in range((y // s % 2) * s // 2, SIZE, s):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=d.accent)
    elif kind == "checks":
        for y in range(0, SIZE, s):
            for x in range(0, SIZE, s):
                if (x // s + y // s) % 2:
                    draw.rectangle([x, y, x + s - 1, y + s - 1], fill=d.accent)
    elif kind == "print":
        for _ in range(rng.randint(12, 30)):
            x, y, r = rng.randrange(SIZE), rng.randrange(SIZE), rng.randint(5, 18)
            shape = rng.choice(("star", "leaf", "tri"))
            if shape == "tri":
                draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=d.accent)
            elif shape == "leaf":
                draw.ellipse([x - r, y - r // 2, x + r, y + r // 2], fill=d.accent)
            else:
                draw.regular_polygon((x, y, r), 5, rotation=rng.randint(0, 72), fill=d.accent)
    return img


def _logo(draw: ImageDraw.ImageDraw, d: Design, x: float, y: float) -> None:
    r = 11
    if d.logo == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=d.logo_colour, outline=OUTLINE)
    elif d.logo == "square":
        draw.rectangle([x - r, y - r, x + r, y + r], fill=d.logo_colour, outline=OUTLINE)
    elif d.logo == "triangle":
        draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=d.logo_colour,
                     outline=OUTLINE)
    elif d.logo == "letter":
        draw.text((x - 6, y - 8), d.name[-1].upper(), fill=d.logo_colour, font_size=18)


def _details(draw: ImageDraw.ImageDraw, d: Design, side: str) -> None:
    """Seams, collars, pockets and the logo: what makes a front a front."""
    c, w = SIZE / 2, d.width
    if d.garment == "tshirt":
        if side == "front":
            draw.polygon([(c - 25, 70), (c, 105), (c + 25, 70)], fill="white", outline=OUTLINE)
            _logo(draw, d, c + 35 * w, 125)
        else:
            draw.arc([c - 25, 60, c + 25, 82], 0, 180, fill=OUTLINE, width=3)
    elif d.garment == "dress":
        if side == "front":
            draw.arc([c - 30, 40, c + 30, 95], 0, 180, fill=OUTLINE, width=3)
            draw.line([(c - 40 * w, 140), (c + 40 * w, 140)], fill=d.accent, width=6)
            _logo(draw, d, c, 110)
        else:
            draw.line([(c, 60), (c, 140)], fill=OUTLINE, width=2)
            draw.line([(c - 40 * w, 140), (c + 40 * w, 140)], fill=OUTLINE, width=2)
    elif d.garment == "jacket":
        if side == "front":
            draw.line([(c, 60), (c, 60 + 200 * d.length)], fill=OUTLINE, width=3)
            draw.polygon([(c - 25, 60), (c, 110), (c - 40, 90)], fill=d.accent, outline=OUTLINE)
            draw.polygon([(c + 25, 60), (c, 110), (c + 40, 90)], fill=d.accent, outline=OUTLINE)
            for i in range(4):
                y = 120 + i * 30 * d.length
                draw.ellipse([c + 6, y - 4, c + 14, y + 4], fill=OUTLINE)
            draw.rectangle([c - 60 * w, 200, c - 25 * w, 225], outline=OUTLINE, width=2)
            _logo(draw, d, c + 40 * w, 105)
        else:
            draw.line([(c - 72 * w, 105), (c + 72 * w, 105)], fill=OUTLINE, width=2)
            draw.rectangle([c - 30, 60, c + 30, 72], fill=d.accent, outline=OUTLINE)
    else:
        draw.rectangle([c - 60 * w, 50, c + 60 * w, 66], fill=d.accent, outline=OUTLINE)
        if side == "front":
            draw.line([(c, 66), (c, 120)], fill=OUTLINE, width=2)
            draw.arc([c - 60 * w, 60, c - 20 * w, 110], 270, 360, fill=OUTLINE, width=3)
            draw.arc([c + 20 * w, 60, c + 60 * w, 110], 180, 270, fill=OUTLINE, width=3)
            _logo(draw, d, c - 35 * w, 140)
        else:
            for x0 in (c - 50 * w, c + 15 * w):
                draw.rectangle([x0, 85, x0 + 35 * w, 120], outline=OUTLINE, width=2)


def draw_side(d: Design, side: str) -> Image.Image:
    """One drawing of design `d`, `side` in {"front", "back"}: (320, 320) RGB on white."""
    rng = random.Random(f"{d.seed}-{side}")
    fill = _pattern(d, d.pattern if side == "front" else d.back_pattern, rng)
    mask = Image.new("L", (SIZE, SIZE), 0)
    mdraw = ImageDraw.Draw(mask)
    polys = _silhouette(d.garment, d.width, d.length)
    for poly in polys:
        mdraw.polygon(poly, fill=255)
    img = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    img.paste(fill, (0, 0), mask)
    draw = ImageDraw.Draw(img)
    for poly in polys:
        draw.polygon(poly, outline=OUTLINE, width=2)
    _details(draw, d, side)
    return img


def make_designs(n_pairs: int, seed: int = 7, variant_every: int = 12) -> list[Design]:
    """`n_pairs` designs; every `variant_every`-th shares its front with the design before."""
    rng = random.Random(seed)
    designs: list[Design] = []
    for i in range(n_pairs):
        garment = GARMENTS[i % len(GARMENTS)]
        name = f"{garment}-{i:04d}"
        if variant_every and i % variant_every == variant_every - 1 and designs:
            base = designs[-1]
            variant = Design(**{**base.__dict__, "name": f"{base.garment}-{i:04d}",
                                "variant_of": base.name,
                                "back_pattern": rng.choice([p for p in PATTERNS
                                                            if p != base.back_pattern])})
            designs.append(variant)
            continue
        colour, accent = rng.sample(PALETTE, 2)
        pattern = rng.choice(PATTERNS)
        designs.append(Design(
            name=name, garment=garment, colour=colour, accent=accent, pattern=pattern,
            spacing=rng.choice((10, 14, 18, 24, 32)),
            logo=rng.choice(("circle", "square", "triangle", "letter")),
            logo_colour=rng.choice(PALETTE),
            back_pattern=pattern if rng.random() < 0.6 else rng.choice(PATTERNS),
            width=rng.uniform(0.85, 1.15), length=rng.uniform(0.8, 1.0),
            seed=rng.randrange(1 << 30),
        ))
    return designs


def write_catalogue(out_dir: Path, n_pairs: int = 200, seed: int = 7) -> Path:
    """Write images/ and pairs.csv under `out_dir`; return the CSV path."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, d in enumerate(make_designs(n_pairs, seed)):
        front_owner = d.variant_of or d.name
        front = f"images/{front_owner}_front.png"
        back = f"images/{d.name}_back.png"
        if d.variant_of is None:
            draw_side(d, "front").save(out_dir / front, optimize=False)
        draw_side(d, "back").save(out_dir / back, optimize=False)
        rows.append((d.name, front, back, d.garment, SEASONS[i // 3 % len(SEASONS)]))
    names, fronts, backs, garments, seasons = (list(col) for col in zip(*rows, strict=True))
    return write_catalogue_csv(out_dir, names, fronts, backs,
                               {"garment": garments, "season": seasons})


@contextmanager
def sample_catalogue(n_pairs: int, seed: int) -> Iterator[Path]:
    """A temporary folder holding a sample catalogue (for benchmarks), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="sample-catalogue-") as tmp:
        write_catalogue(Path(tmp), n_pairs, seed)
        yield Path(tmp)
