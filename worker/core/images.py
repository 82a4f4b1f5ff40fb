"""Reading an image at the door: an allow-listed decode (JPEG, PNG) with every limit
checked before pixels are read. Pillow only: the web validates uploads with it, the
pipeline and the index decode with it."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

ACCEPTED_FORMATS = ("JPEG", "PNG")
MIN_SIDE = 16
MAX_ASPECT = 20.0


class ImageRejected(ValueError):
    """An image we will not process; `reason` is a short code, the message is for people."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    mode: str


MAGIC = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}


def _unidentified(source: bytes | str | Path) -> ImageRejected:
    """Why Pillow could not identify `source`: a damaged JPEG/PNG, or another format."""
    head = bytes(source[:8]) if isinstance(source, bytes | bytearray) else Path(source).open(
        "rb").read(8)
    for magic, name in MAGIC.items():
        if head.startswith(magic):
            return ImageRejected("corrupt", f"the file starts like a {name} but is damaged")
    return ImageRejected("unsupported_format",
                         "not a JPEG or PNG image (only JPEG and PNG are accepted)")


def _open(source: bytes | str | Path) -> Image.Image:
    fp = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        return Image.open(fp, formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        raise _unidentified(source) from None
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", f"image has too many pixels: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected("corrupt", f"image could not be read: {exc}") from None


def _check_geometry(img: Image.Image, max_pixels: int) -> None:
    w, h = img.size
    if w * h > max_pixels:
        raise ImageRejected(
            "too_many_pixels", f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels}"
        )
    if min(w, h) < MIN_SIDE:
        raise ImageRejected("too_small", f"image is {w}x{h}; each side must be >= {MIN_SIDE}px")
    if max(w, h) / min(w, h) > MAX_ASPECT:
        raise ImageRejected(
            "bad_aspect", f"image is {w}x{h}; the long side may be at most {MAX_ASPECT:g}x the short"
        )
    if getattr(img, "n_frames", 1) > 1:
        raise ImageRejected(
            "animated", "animated images are not accepted; upload a single still frame"
        )


def load_image(source: bytes | str | Path, max_pixels: int = 40_000_000) -> Image.Image:
    """Decode `source` (bytes or a path) fully, with all limits checked before pixels are read.

    Raises ImageRejected with a person-readable message for anything we will not process.
    """
    img = _open(source)
    _check_geometry(img, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
    except Image.DecompressionBombWarning as exc:
        raise ImageRejected("too_many_pixels", f"image has too many pixels: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected("corrupt", f"image is truncated or corrupt: {exc}") from None
    return img


def inspect_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Validate an upload the way the worker will read it; return what it is."""
    img = load_image(data, max_pixels)
    return ImageInfo(img.format or "", img.width, img.height, img.mode)
