"""A decoded drawing in any mode (palette, alpha, grey, 1-bit, CMYK, 16-bit) as 8-bit RGB,
upright as its EXIF says, transparency on white paper; and whether it is one flat colour.
Pillow."""

from __future__ import annotations

import struct

from PIL import ExifTags, Image, ImageOps

from worker.core.widegrey import WIDE_MODES, to_8bit

ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
BLANK_SPREAD = 12  # per channel, max - min: a flat colour's JPEG ringing stays below it
BAND_ROWS = 256  # rows of a transparent drawing put on white at a time


def exif_upright(img: Image.Image) -> Image.Image:
    """`img` turned as its EXIF orientation says; as it is when its EXIF cannot be read (a
    bad Exif block or eXIf chunk: the pixels, which were decoded, are still the drawing)."""
    try:  # (its XMP's orientation too, which getexif merges in)
        if img.getexif().get(ExifTags.Base.Orientation, 1) not in range(2, 9):
            return img  # upright: exif_transpose would copy it (a 40-megapixel RGBA: 150 MB)
        return ImageOps.exif_transpose(img)
    except (SyntaxError, ValueError, TypeError, KeyError, IndexError, OSError, struct.error):
        return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any mode (palette, alpha, grayscale, 1-bit, CMYK, 16-bit) -> RGB, transparency on
    white, EXIF orientation applied."""
    img = exif_upright(img)
    if img.mode in WIDE_MODES:
        img = to_8bit(img)
    if img.mode in ("P", "1", "L", "RGB") and "transparency" in img.info:  # a colour keyed out
        img = img.convert("RGBA")
    if img.mode in ALPHA_MODES:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def is_flat(img: Image.Image) -> bool:
    """Every band within BLANK_SPREAD levels (an "L" image's extrema are one pair). The
    middle eighth of the rows first: a drawing is nearly always not flat there already, and
    reading them costs an eighth of reading all (a 12-megapixel upload: ~35 ms)."""
    w, h = img.size
    middle = img.crop((0, h * 7 // 16, w, max(h * 9 // 16, h * 7 // 16 + 1)))
    return _spread_within(middle) and _spread_within(img)


def _spread_within(img: Image.Image) -> bool:
    extrema = img.getextrema()
    return _within(extrema if isinstance(extrema[0], tuple) else (extrema,))


def _within(bands) -> bool:
    """Each (low, high) pair within BLANK_SPREAD levels."""
    return all(high - low <= BLANK_SPREAD for low, high in bands)


def flat_on_white(img: Image.Image) -> bool:
    """`is_flat` of an RGBA drawing as it is on white paper, a band of rows at a time (the
    whole of it composited at once took four times its pixels again)."""
    low, high = [255] * 3, [0] * 3
    for top in range(0, img.height, BAND_ROWS):
        band = to_rgb(img.crop((0, top, img.width, min(top + BAND_ROWS, img.height))))
        for i, (lo, hi) in enumerate(band.getextrema()):
            low[i], high[i] = min(low[i], lo), max(high[i], hi)
        if not _within(zip(low, high, strict=True)):
            return False
    return True


def reduce_rgba(img: Image.Image, factor: int) -> Image.Image:
    """`img.reduce(factor)` of an RGBA image a band of rows at a time: Pillow premultiplies
    the whole image first, a copy as large as it."""
    w, h = img.size
    out = Image.new("RGBA", (-(-w // factor), -(-h // factor)))
    step = factor * max(1, BAND_ROWS // factor)
    for top in range(0, h, step):
        out.paste(img.crop((0, top, w, min(top + step, h))).reduce(factor), (0, top // factor))
    return out
