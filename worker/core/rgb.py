"""A decoded drawing in any mode (palette, alpha, grey, 1-bit, CMYK, 16-bit) as 8-bit RGB,
upright as its EXIF says, transparency on white paper. Pillow."""

from __future__ import annotations

import struct

from PIL import Image, ImageOps

from worker.core.widegrey import WIDE_MODES, to_8bit

ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


def exif_upright(img: Image.Image) -> Image.Image:
    """`img` turned as its EXIF orientation says; as it is when its EXIF cannot be read (a
    bad Exif block or eXIf chunk: the pixels, which were decoded, are still the drawing)."""
    try:
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
