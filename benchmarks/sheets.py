"""A drawing handed in on a spec sheet (exploratory round 7, finding 2): the page framed, a
title block ruled off along its foot, scanned (the `sheet` family of `benchmarks.quality`,
`--families sheet`), or boxed in a corner of the frame (`boxed`); captioned, a line of text
under or above it (`caption`); with a block of notes beside it (`notes`); or with lines of
text written over it that run off its side (`written`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from benchmarks.lookalike_edits import as_uploaded_jpeg

WHITE = (255, 255, 255)
INK = (20, 20, 20)
FIELDS = ("STYLE", "SEASON", "FABRIC", "SIZE", "DESIGNER", "DATE", "REV")
CAPTIONS = ("FRONT VIEW", "BACK VIEW", "FRONT", "BACK", "FLAT")
NOTES = ("100% COTTON", "PANTONE 19-4052", "RIB 1X1", "TWIN NEEDLE", "YKK #5", "WASH 30C",
         "SIZE M", "GSM 180")


def sheet(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The drawing on a page 20-50 % wider and taller than it, framed by a 2-5 px line
    2-4 % in from the page's edge; a title block 12-20 % of the framed height at its foot,
    ruled off by a line across the frame and split into 2-4 fields of text; turned up to 1
    degree; JPEG quality 70-92, decoded like an upload."""
    return _on_framed_page(img, rng, _ruled_block)


def boxed(img: Image.Image, rng: np.random.Generator, corner: str | None = None) -> Image.Image:
    """As `sheet`, but the title block is boxed in a corner of the frame's foot (`corner`,
    "right" or "left"; by default the right two times in three), 35-60 % of the framed width
    and 12-20 % of its height, not ruled across the frame: its top and inner side are lines,
    split into 2-4 fields of text by lines across the box; the drawing above it; turned up to
    1 degree; JPEG quality 70-92."""
    return _on_framed_page(img, rng, partial(_boxed_block, corner=corner))


Frame = tuple[int, int, int, int]  # the frame's left and right, the title block's top, its foot


def _on_framed_page(img: Image.Image, rng: np.random.Generator,
                    title_block: Callable[[ImageDraw.ImageDraw, np.random.Generator, Frame, int],
                                          None]) -> Image.Image:
    """`img` centred on a framed page above a title block that `title_block` draws, scanned."""
    w, h = img.size
    pw, ph = (round(s * (1 + rng.uniform(0.2, 0.5))) for s in (w, h))
    inset = round(min(pw, ph) * rng.uniform(0.02, 0.04))
    line = int(rng.integers(2, 6))
    block = round((ph - 2 * inset) * rng.uniform(0.12, 0.20))
    page = Image.new("RGB", (pw, ph + block), WHITE)
    draw = ImageDraw.Draw(page)
    left, top, right, bottom = inset, inset, pw - inset, ph + block - inset
    draw.rectangle((left, top, right, bottom), outline=INK, width=line)
    foot = bottom - block
    title_block(draw, rng, (left, foot, right, bottom), line)
    page.paste(img, ((pw - w) // 2, inset + line + (foot - inset - line - h) // 2))
    return _scanned(page, rng)


def _ruled_block(draw: ImageDraw.ImageDraw, rng: np.random.Generator, frame: Frame,
                 line: int) -> None:
    """Ruled off by a line across the frame, split into 2-4 fields side by side."""
    left, foot, right, bottom = frame
    draw.line((left, foot, right, foot), fill=INK, width=line)
    cuts = np.sort(rng.uniform(left, right, size=int(rng.integers(1, 4))))
    for x in cuts:
        draw.line((x, foot, x, bottom), fill=INK, width=max(1, line - 1))
    edges = [left, *cuts, right]
    for x0, name in zip(edges[:-1], rng.choice(FIELDS, size=len(edges) - 1, replace=False),
                        strict=True):
        draw.text((x0 + 2 * line, foot + 2 * line), f"{name}: {int(rng.integers(100, 9999))}",
                  fill=INK)


def _boxed_block(draw: ImageDraw.ImageDraw, rng: np.random.Generator, frame: Frame, line: int,
                 corner: str | None) -> None:
    """Boxed in a corner of the foot, split into 2-4 fields one above the other."""
    left, foot, right, bottom = frame
    width = round((right - left) * rng.uniform(0.35, 0.60))
    on_right = rng.random() < 2 / 3 if corner is None else corner == "right"
    x0, x1, side = (right - width, right, right - width) if on_right else (left, left + width,
                                                                            left + width)
    draw.line((x0, foot, x1, foot), fill=INK, width=line)
    draw.line((side, foot, side, bottom), fill=INK, width=line)
    rows = np.linspace(foot, bottom, int(rng.integers(2, 5)) + 1)
    for y in rows[1:-1]:
        draw.line((x0, y, x1, y), fill=INK, width=max(1, line - 1))
    for y, name in zip(rows[:-1], rng.choice(FIELDS, size=len(rows) - 1, replace=False),
                       strict=True):
        draw.text((x0 + 2 * line, y + line), f"{name}: {int(rng.integers(100, 9999))}", fill=INK)


def captioned(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A line of text under the drawing (two times in three) or above it ("FRONT VIEW", a
    style number), its letters 4-7 % of the drawing's height, set 3-12 % of it away; the page
    turned up to a degree; JPEG quality 70-92, decoded like an upload."""
    w, h = img.size
    size, gap = round(h * rng.uniform(0.04, 0.07)), round(h * rng.uniform(0.03, 0.12))
    font = ImageFont.load_default(size=size)
    text = f"{rng.choice(CAPTIONS)}  {rng.choice(FIELDS)} {int(rng.integers(100, 9999))}"
    below = rng.random() < 2 / 3
    page = Image.new("RGB", (w, h + gap + 2 * size), WHITE)
    page.paste(img, (0, 0 if below else gap + 2 * size))
    left = round(w * rng.uniform(0.0, 0.2))
    ImageDraw.Draw(page).text((left, h + gap if below else size // 2), text, fill=INK, font=font)
    return _scanned(page, rng)


def noted(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A block of 2-4 lines of notes ("100% COTTON", a style number) beside the drawing, to its
    right (two times in three) or left, its letters 4-7 % of the drawing's height, set 3-12 %
    of its width away, level with its top, middle or foot; the page turned up to a degree;
    JPEG quality 70-92, decoded like an upload."""
    w, h = img.size
    size, gap = round(h * rng.uniform(0.04, 0.07)), round(w * rng.uniform(0.03, 0.12))
    font = ImageFont.load_default(size=size)
    lines = [f"{rng.choice(FIELDS)} {int(rng.integers(100, 9999))}",
             *rng.choice(NOTES, size=int(rng.integers(1, 4)), replace=False)]
    block = ImageDraw.Draw(img).multiline_textbbox((0, 0), "\n".join(lines), font=font)
    width, height = block[2] + size // 2, block[3] + size // 2
    right = rng.random() < 2 / 3
    page = Image.new("RGB", (w + gap + width, max(h, height)), WHITE)
    page.paste(img, (0 if right else gap + width, 0))
    top = round((h - height) * float(rng.choice((0.0, 0.5, 1.0)))) if h > height else 0
    ImageDraw.Draw(page).multiline_text((w + gap if right else 0, top), "\n".join(lines),
                                        fill=INK, font=font)
    return _scanned(page, rng)


def written_over(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Three to five lines of dark text on a white box over the drawing's right or left part
    (20-40 % of its width), running off that side, the page widened to hold them: a "SAMPLE"
    stamp or notes written across a flat. Letters 3-4 % of the drawing's height, a letter's
    height apart; the page turned up to a degree; JPEG quality 70-92."""
    w, h = img.size
    left, top, right, bottom = Image.eval(img, lambda v: 255 - v).getbbox() or (0, 0, w, h)
    size = round(h * rng.uniform(0.03, 0.04))
    font = ImageFont.load_default(size=size)
    text = "\n".join(["SAMPLE TEXT " * 3] * int(rng.integers(3, 6)))
    tw, th = ImageDraw.Draw(img).multiline_textbbox((0, 0), text, font=font, spacing=size)[2:]
    on_right = rng.random() < 0.5
    bw = round((right - left) * rng.uniform(0.2, 0.4))
    y = round(top + (bottom - top - th) * rng.uniform(0.2, 0.8))
    x = right - bw - 5 if on_right else tw + left + 5  # the box's left edge on the page
    page = Image.new("RGB", (w + tw, h), WHITE)
    page.paste(img, (0 if on_right else tw, 0))
    draw = ImageDraw.Draw(page)
    draw.rectangle([x, y, x + bw, y + th + size // 2], fill=WHITE)
    draw.multiline_text((x + 3 if on_right else x + bw - 3 - tw, y), text, fill=(30, 30, 60),
                        font=font, spacing=size)
    return _scanned(page, rng)


def _scanned(page: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The page turned up to a degree and saved as a JPEG of quality 70-92, decoded like an
    upload."""
    page = page.rotate(float(rng.uniform(-1, 1)), Image.Resampling.BICUBIC, fillcolor=WHITE)
    return as_uploaded_jpeg(page, int(rng.integers(70, 93)))
