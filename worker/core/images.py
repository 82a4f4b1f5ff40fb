"""Reading an image at the door: an allow-listed decode (JPEG, PNG) with every limit
checked before pixels are read. Pillow only: the web validates uploads with it, the
pipeline and the index decode with it."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from worker.core.rgb import (
    ALPHA_MODES,
    exif_upright,
    flat_on_white,
    is_flat,
    reduce_rgba,
    to_rgb,
)
from worker.core.widegrey import WIDE_MODES, to_8bit

ACCEPTED_FORMATS = ("JPEG", "PNG")
MIN_SIDE = 16
MAX_ASPECT = 20.0
STORED_LONG_SIDE = 1024  # px: an upload is kept as RGB pixels at most this large...
STORED_SHORT_SIDE = 256  # ...unless that leaves its short side below this (a very wide page)
STORED_FORMAT = "PNG"  # lossless: what is kept is exactly the pixels the worker will read
STORED_COMPRESSION = 1  # zlib level: a noisy scan encodes ~5x faster than at 6, ~15 % larger


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
OTHERS = {b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"%PDF": "PDF"}
BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIC", b"avif": "AVIF"}  # ISO media's


def _unidentified(source: bytes | str | Path) -> ImageRejected:
    """Why Pillow could not identify `source`: a damaged JPEG/PNG, or another format."""
    head = bytes(source[:12]) if isinstance(source, bytes | bytearray) else Path(source).open(
        "rb").read(12)
    for magic, name in MAGIC.items():
        if head.startswith(magic):
            return ImageRejected("corrupt", f"the file starts like a {name} but is damaged")
    name = _other_format(head)
    named = f": it is a {name} file" if name else ""
    return ImageRejected("unsupported_format", f"not a JPEG or PNG image{named} (only JPEG "
                         "and PNG are accepted; save it as one of them)")


def _other_format(head: bytes) -> str | None:
    """The name of a refused image format, from a file's first 12 bytes; None: unknown."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp":  # HEIC (an iPhone's photos), AVIF
        return BRANDS.get(head[8:12])
    return next((name for magic, name in OTHERS.items() if head.startswith(magic)), None)


def _pixel_limit(max_pixels: int) -> int:
    """Ours, or Pillow's bomb bound where it is lower (a MAX_IMAGE_PIXELS set above it)."""
    return min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)


def _open(source: bytes | str | Path, max_pixels: int) -> Image.Image:
    fp = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        return Image.open(fp, formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        raise _unidentified(source) from None
    # past twice Pillow's bound (refused at open), or past it where warnings are errors
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("too_many_pixels", f"image has too many pixels; the limit is "
                            f"{_pixel_limit(max_pixels)}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise _corrupt(exc, "image could not be read") from None


def _corrupt(exc: Exception, what: str) -> ImageRejected:
    if "MAX_TEXT_CHUNK" in str(exc):  # Pillow's bound on a PNG's compressed text (either read)
        return ImageRejected("corrupt", "the PNG carries more than 1 MB of text metadata (XMP, "
                             "comments): save it again without metadata")
    return ImageRejected("corrupt", f"{what}: {exc}")


def _check_geometry(img: Image.Image, max_pixels: int) -> None:
    w, h = img.size
    if w * h > _pixel_limit(max_pixels):
        raise ImageRejected("too_many_pixels", f"image is {w}x{h} = {w * h} pixels; the limit "
                            f"is {_pixel_limit(max_pixels)}")
    if min(w, h) < MIN_SIDE:
        raise ImageRejected("too_small", f"image is {w}x{h}; each side must be >= {MIN_SIDE}px")
    if max(w, h) / min(w, h) > MAX_ASPECT:
        raise ImageRejected(
            "bad_aspect", f"image is {w}x{h}; the long side may be at most {MAX_ASPECT:g}x the short"
        )
    # a phone's JPEG (MPO) holds the photo in frame 0, then a gain map or a preview
    if getattr(img, "n_frames", 1) > 1 and img.format != "MPO":
        raise ImageRejected(
            "animated", "animated images are not accepted; upload a single still frame"
        )


def load_image(source: bytes | str | Path, max_pixels: int = 40_000_000,
               for_storing: bool = False) -> Image.Image:
    """Decode `source` (bytes or a path) fully, with all limits checked (from the header)
    before pixels are read. `for_storing`: a JPEG may be decoded at 1/2, 1/4 or 1/8 scale
    (draft mode: cheaper) as long as it stays at least its `stored_size`.

    Raises ImageRejected with a person-readable message for anything we will not process.
    """
    img = _open(source, max_pixels)
    _check_geometry(img, max_pixels)
    if for_storing and img.format in ("JPEG", "MPO") and stored_size(*img.size) != img.size:
        img.draft(None, stored_size(*img.size))  # the largest reduction still that large
    # no warnings.catch_warnings() here: it swaps the process's filters, and two threads
    # decoding at once (a search's two sides) could leave Pillow's bomb warning an error
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _corrupt(exc, "image is truncated or corrupt") from None
    return img


def inspect_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Validate an upload the way the worker will read it; return what it is."""
    img = load_image(data, max_pixels)
    return ImageInfo(img.format or "", img.width, img.height, img.mode)


def stored_size(w: int, h: int) -> tuple[int, int]:
    """The size a w x h upload is kept at: long side STORED_LONG_SIDE, or short side
    STORED_SHORT_SIDE where that is larger (a drawing on a very wide page is a small part of
    it, and the worker trims the page to it: at 1024 px across, a 20:1 strip kept 51 px of
    it); never enlarged. In integers, rounding the short side up and the long side down, so
    that an image of MAX_ASPECT is still within it (thumbnail()'s rounding made a 6000x300
    drawing 1024x51, which the worker then refused)."""
    long, short = max(w, h), min(w, h)
    if long <= STORED_LONG_SIDE or short <= STORED_SHORT_SIDE:
        return w, h
    if short * STORED_LONG_SIDE >= STORED_SHORT_SIDE * long:  # the long side's bound holds
        long, short = STORED_LONG_SIDE, -(-short * STORED_LONG_SIDE // long)
    else:
        long, short = long * STORED_SHORT_SIDE // short, STORED_SHORT_SIDE
    return (long, short) if w >= h else (short, long)


def _reduction(img: Image.Image) -> int:
    """The whole factor that keeps `img` at twice its stored size at least."""
    (w, h), (sw, sh) = img.size, stored_size(*img.size)
    return max(1, min(w // (2 * sw), h // (2 * sh)))


def _shrink(img: Image.Image) -> Image.Image:
    """At most its `stored_size` (Pillow's `reduce` first, then Lanczos)."""
    size = stored_size(*img.size)
    if size == img.size:
        return img
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the width, height


def crop_to_box(img: Image.Image, box: Box | None) -> Image.Image:
    """The part of `img` inside `box` (x0, y0, x1, y1 as fractions; None: all of it), at
    least one pixel a side."""
    if box is None:
        return img
    w, h = img.size
    left, top = min(int(box[0] * w), w - 1), min(int(box[1] * h), h - 1)
    right, bottom = max(left + 1, math.ceil(box[2] * w)), max(top + 1, math.ceil(box[3] * h))
    return img.crop((left, top, right, bottom))


def _refuse_blank(img: Image.Image, box: Box | None, flat=is_flat) -> None:
    """A drawing of one flat colour (a blank page, an empty layer exported), or a box around
    one colour alone, is refused: it has no design to compare, and its hits would only be
    the plainest garments (or, read as a line sketch, garments cut alike). Judged at full
    size (the worker also refuses a drawing that shows nothing on its canvas)."""
    if flat(img):
        raise ImageRejected("blank", "the drawing is blank (one flat colour, nothing drawn on "
                            "it; transparent areas read as white paper); upload the drawing "
                            "of the design")
    if box is not None and flat(crop_to_box(img, box)):
        raise ImageRejected("blank_box", "the box holds one flat colour alone, no line or "
                            "pattern of the design; draw it around a part that has some")


def stored_form(data: bytes, max_pixels: int, box: Box | None = None
                ) -> tuple[bytes, ImageInfo]:
    """What is kept of an upload: its pixels as RGB (orientation, transparency and depth
    settled), at most its `stored_size`, as PNG. Junk after the image's end, metadata and
    excess resolution are dropped, so a search stores at most two such PNGs (<= 1.3 million
    pixels of 3 B each: 1024 x 1024, or 5120 x 256 for a 20:1 page). Also the check:
    ImageRejected as `load_image`, and for a blank drawing (or a blank part inside `box`, the
    part to be searched)."""
    img = load_image(data, max_pixels, for_storing=True)
    info = ImageInfo(img.format or "", img.width, img.height, img.mode)
    img = exif_upright(img)
    if img.mode in WIDE_MODES:  # reduced while wide (to twice the stored size at least)
        img = to_8bit(img, _reduction(img))
    narrow = img.mode in ("L", "RGB") and "transparency" not in img.info  # no colour key
    alpha = not narrow and (img.mode in ALPHA_MODES or "transparency" in img.info)
    if narrow:  # shrink before widening to RGB
        _refuse_blank(img, box)  # before the shrink, which averages a thin faint line away
        img = _shrink(img)
    elif alpha:  # judged whole on white a band at a time, then reduced as RGBA (premultiplied)
        # before the white goes under it: composited whole, a 40-megapixel PNG took 790 MB
        img = img if img.mode == "RGBA" else img.convert("RGBA")  # (convert would copy it)
        _refuse_blank(img, box, flat_on_white)
        if (factor := _reduction(img)) > 1:
            img = reduce_rgba(img, factor)
    rgb = to_rgb(img)
    if rgb.info.get("icc_profile", b"")[16:20] not in (b"", b"RGB "):  # CMYK, grey: not these
        rgb.info.pop("icc_profile")  # pixels' colour space (a browser reads the stored one)
    if not narrow and not alpha:
        _refuse_blank(rgb, box)
    rgb = _shrink(rgb)
    buf = io.BytesIO()
    rgb.save(buf, STORED_FORMAT, compress_level=STORED_COMPRESSION)
    return buf.getvalue(), info
