"""Preprocessing: every accepted mode ends as the same kind of canvas; bad files are refused."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from tests.images import encode
from worker.core.images import ImageRejected, inspect_image
from worker.core.rgb import is_flat
from worker.pipeline.preprocess import CANVAS, _median3_below, make_canvas


def drawing(mode: str = "RGB", size=(300, 150)) -> Image.Image:
    """A red box on white, wider than tall."""
    img = Image.new("RGB", size, (255, 255, 255))
    img.paste((200, 20, 20), (50, 30, size[0] - 50, size[1] - 30))
    return img.convert(mode)


def test_canvas_keeps_aspect_and_pads_white():
    canvas = make_canvas(encode(drawing()))
    assert canvas.shape == (CANVAS, CANVAS, 3) and canvas.dtype == np.uint8
    # 300x150 -> 200x100 centred: rows 0..61 and 162.. are padding.
    assert (canvas[:60] == 255).all() and (canvas[-60:] == 255).all()
    assert (canvas[112, 112] == (200, 20, 20)).all()


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "RGBA", "LA", "I;16"])
def test_modes_become_rgb(mode):
    img = drawing(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    canvas = make_canvas(encode(img, fmt))
    assert canvas.shape == (CANVAS, CANVAS, 3)
    assert (canvas[0, 0] == 255).all(), "padding is white"
    assert canvas[112, 112].max() < 255 or mode == "1", "the drawing survives the conversion"


def test_sixteen_bit_png_scales_to_eight_bits():
    arr = np.full((64, 64), 65535, dtype=np.uint16)
    arr[16:48, 16:48] = 0
    canvas = make_canvas(encode(Image.fromarray(arr)))
    assert (canvas[112, 112] == 0).all() and (canvas[15, 112] == 255).all()


def test_transparency_is_composited_on_white():
    img = Image.new("RGBA", (100, 100), (0, 0, 0, 0))  # fully transparent black
    img.paste((0, 0, 255, 255), (40, 40, 60, 60))
    canvas = make_canvas(encode(img))
    assert (canvas[20, 20] == 255).all()
    assert (canvas[112, 112] == (0, 0, 255)).all()


def test_palette_transparency_is_composited_on_white():
    img = Image.new("P", (100, 100), 0)
    img.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    img.paste(1, (40, 40, 60, 60))
    canvas = make_canvas(encode(img, transparency=0))
    assert (canvas[20, 20] == 255).all() and (canvas[112, 112] == (0, 255, 0)).all()


def test_exif_orientation_is_applied():
    img = drawing(size=(300, 150))  # wide
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    canvas = make_canvas(encode(img, "JPEG", exif=exif))
    # displayed tall: padding left and right, not top and bottom
    assert (canvas[112, :55] > 240).all() and (canvas[:55, 112] < 240).any()


def with_bad_exif(data: bytes) -> bytes:
    """A JPEG with an Exif block, or a PNG with an eXIf chunk, that is not TIFF data."""
    if data[:2] == b"\xff\xd8":
        return data[:2] + b"\xff\xe1\x00\x10Exif\x00\x00XXXXXXXX" + data[2:]
    import struct
    import zlib

    chunk = b"eXIf" + b"garbage!"
    return (data[:33] + struct.pack(">I", 8) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + data[33:])


@pytest.mark.parametrize("form", ["JPEG", "PNG"])
def test_an_unreadable_exif_block_leaves_the_drawing_as_it_is(form):
    """Pillow raises SyntaxError reading such EXIF (a 500 before): the drawing is used as
    decoded, unturned."""
    from worker.core.images import stored_form

    good = encode(drawing(), form)
    bad = with_bad_exif(good)
    assert bad != good and Image.open(io.BytesIO(bad)).size == (300, 150)
    stored, info = stored_form(bad, 10**7)
    assert Image.open(io.BytesIO(stored)).size == (300, 150) and info.format == form
    assert np.abs(make_canvas(bad).astype(int) - make_canvas(good)).max() <= 2


@pytest.mark.parametrize("data, reason", [
    (b"hello, I am text", "unsupported_format"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "unsupported_format"),
    (b"%PDF-1.4\n", "unsupported_format"),
    (encode(drawing(), "GIF"), "unsupported_format"),
    (encode(drawing(), "TIFF"), "unsupported_format"),
    (encode(drawing(), "BMP"), "unsupported_format"),
    (encode(drawing())[:300], "corrupt"),
    (encode(Image.new("L", (8, 8))), "too_small"),
    (encode(Image.new("L", (2000, 40))), "bad_aspect"),
])
def test_refused_inputs(data, reason):
    with pytest.raises(ImageRejected) as info:
        inspect_image(data, max_pixels=10_000_000)
    assert info.value.reason == reason
    assert str(info.value)


def test_pixel_limit_is_checked_before_decoding():
    with pytest.raises(ImageRejected) as info:
        inspect_image(encode(Image.new("L", (2000, 2000))), max_pixels=1_000_000)
    assert info.value.reason == "too_many_pixels"


def test_pillows_bomb_bound_is_a_clean_refusal_whatever_the_warning_filters():
    """A search's two sides are decoded on two threads, and warnings.catch_warnings() (which
    swaps the process's filters) once left Pillow's bomb warning an error for good: a 100 Mpx
    PNG was then a 500 instead of a 413."""
    huge = encode(Image.new("1", (10_000, 10_000), 1))  # past Pillow's bound (89.5 Mpx)
    for action in ("ignore", "error"):
        with warnings.catch_warnings():
            warnings.simplefilter(action, Image.DecompressionBombWarning)
            with pytest.raises(ImageRejected) as info:
                inspect_image(huge, max_pixels=200_000_000)
        assert info.value.reason == "too_many_pixels", action
        assert f"the limit is {Image.MAX_IMAGE_PIXELS}" in str(info.value), action


def test_animated_png_is_refused():
    frames = [drawing(), drawing().rotate(10)]
    data = encode(frames[0], save_all=True, append_images=frames[1:])
    with pytest.raises(ImageRejected) as info:
        inspect_image(data, 10_000_000)
    assert info.value.reason == "animated"


def _saved(fmt: str) -> bytes:
    import io

    buf = io.BytesIO()
    drawing().save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt, name", [("GIF", "GIF"), ("WEBP", "WebP"), ("TIFF", "TIFF"),
                                       ("BMP", "BMP"), ("PDF", "PDF")])
def test_a_refused_format_is_named(fmt, name):
    """'not a JPEG or PNG image' left a person guessing what the file was (a browser shows a
    GIF or a WebP like any image)."""
    with pytest.raises(ImageRejected) as info:
        inspect_image(_saved(fmt), 10_000_000)
    assert info.value.reason == "unsupported_format"
    assert str(info.value) == (f"not a JPEG or PNG image: it is a {name} file (only JPEG and "
                               "PNG are accepted; save it as one of them)")


def test_an_iphone_photo_is_named_heic_and_unknown_bytes_are_not_named():
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    with pytest.raises(ImageRejected, match="it is a HEIC file"):
        inspect_image(heic, 10_000_000)
    with pytest.raises(ImageRejected) as info:
        inspect_image(b"just some words, no image", 10_000_000)
    assert str(info.value).startswith("not a JPEG or PNG image (only JPEG")


def test_a_phone_jpeg_with_a_second_picture_is_its_first_picture():
    """An MPO (a phone's JPEG with an HDR gain map or a preview) was refused as animated."""
    import io

    from worker.core.images import stored_form

    photo, preview = drawing(), Image.new("RGB", (40, 30), "black")
    buf = io.BytesIO()
    photo.save(buf, format="MPO", save_all=True, append_images=[preview], quality=95)
    assert Image.open(io.BytesIO(buf.getvalue())).n_frames == 2
    info = inspect_image(buf.getvalue(), 10_000_000)
    assert (info.format, info.width, info.height) == ("MPO", *photo.size)
    stored, _ = stored_form(buf.getvalue(), 10_000_000)
    kept = np.asarray(Image.open(io.BytesIO(stored)), np.float32)
    assert np.abs(kept - np.asarray(photo, np.float32)).mean() < 3  # the photo, not the preview
    # added to the catalogue (API or CLI): stored as the JPEG it is (a KeyError, a 500, was)
    from worker.core.queueing import upload_name
    from worker.core.settings import Settings
    from worker.indexing.edits import read_drawing

    assert upload_name("e" * 32, "front", info.format) == "e" * 32 + "-front.jpg"
    path, data = read_drawing(Settings(), buf.getvalue(), "front", trim=True)
    assert path.startswith("images/") and path.endswith(".jpg") and data == buf.getvalue()


def test_a_large_transparent_drawing_is_reduced_before_it_is_put_on_white(tmp_path):
    """Composited at full size, a 40-megapixel transparent PNG of 0.7 MB took 790 MB to
    check (an RGB one 170 MB); reduced as premultiplied RGBA first, it is the same drawing.
    Pillow's pixels are C memory: measured as the peak RSS of a process of its own."""
    import io
    import subprocess
    import sys

    big = Image.new("RGBA", (6000, 6600), (0, 0, 0, 0))
    big.paste((200, 30, 30, 255), (1000, 1000, 5000, 5600))
    big.paste((20, 20, 160, 255), (2500, 1000, 2600, 5600))  # a stripe, 100 px of 6000
    big.save(tmp_path / "big.png")
    measure = ("import resource, sys; from pathlib import Path; "
               "from worker.core.images import stored_form; "
               "data = Path(sys.argv[1]).read_bytes(); "
               "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
               "stored, info = stored_form(data, 40_000_000); "
               "Path(sys.argv[2]).write_bytes(stored); "
               "print(info.mode, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    out = subprocess.run([sys.executable, "-c", measure, str(tmp_path / "big.png"),
                          str(tmp_path / "kept.png")], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    mode, grown_kib = out[0], int(out[1])
    kept = Image.open(io.BytesIO((tmp_path / "kept.png").read_bytes()))
    assert mode == "RGBA" and kept.mode == "RGB" and kept.size == (931, 1024)
    assert kept.getpixel((10, 10)) == (255, 255, 255)  # transparency is white paper
    assert kept.getpixel((396, 512)) == (20, 20, 160) and kept.getpixel((300, 500)) == (200, 30, 30)
    assert grown_kib < 300 * 1024, f"{grown_kib / 1024:.0f} MiB"



def test_trim_finds_the_drawing_through_margins_and_noise():
    from worker.pipeline.preprocess import trim_to_content

    page = Image.new("RGB", (400, 300), "white")
    page.paste((200, 30, 30), (100, 80, 220, 200))
    assert trim_to_content(page).size == (128, 128)
    noisy = np.asarray(page).astype(float) + np.random.default_rng(0).normal(0, 15, (300, 400, 3))
    assert trim_to_content(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))).size == \
        (128, 128)
    blank = Image.new("RGB", (50, 50), "white")
    assert trim_to_content(blank).size == (50, 50)
    # the same drawing on a wider page gives the same canvas
    wide = Image.new("RGB", (800, 600), "white")
    wide.paste(page, (200, 150))
    from worker.pipeline.preprocess import to_canvas

    def ink(img, trim: bool) -> int:  # red pixels on the canvas
        return int((to_canvas(img, trim)[..., 1] < 128).sum())

    assert abs(ink(page, True) - ink(wide, True)) < 0.05 * ink(page, True)
    assert ink(page, False) > 3 * ink(wide, False)  # without trimming, the margins shrink it


@settings(max_examples=300, deadline=None, database=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 256), st.integers(0, 2**32 - 1),
       st.sampled_from(["noise", "ink"]))
def test_trim_ink_mask_equals_a_pillow_median_filter(h, w, threshold, seed, kind):
    """The counting 3x3 median (worker.pipeline.preprocess._median3_below) gives what Pillow's
    MedianFilter(3) then a threshold give, borders included: the index was built with it."""
    rng = np.random.default_rng(seed)
    grey = (rng.integers(0, 256, (h, w), dtype=np.uint8) if kind == "noise"
            else np.where(rng.random((h, w)) < 0.3, 0, 255).astype(np.uint8))
    expected = np.asarray(Image.fromarray(grey).filter(ImageFilter.MedianFilter(3))) < threshold
    assert np.array_equal(_median3_below(grey, threshold), expected)


def test_a_drawing_that_shows_nothing_on_the_canvas_is_refused_naming_its_side():
    from PIL import ImageDraw

    from worker.pipeline.preprocess import query_canvas

    page = Image.new("RGB", (4000, 4000), "white")
    ImageDraw.Draw(page).line([(0, 2000), (3999, 2000)], fill=(230, 230, 230), width=1)
    for trim, box in ((False, None), (True, None), (False, (0.1, 0.45, 0.9, 0.55))):
        with pytest.raises(ImageRejected) as refused:  # 1 px at 1/20 scale: gone
            query_canvas(encode(page), 10**8, trim, box, "back")
        assert refused.value.reason == "unseen"
        assert refused.value.args[0].startswith("the back drawing shows nothing at the size")
        assert ("inside its box" in refused.value.args[0]) == (box is not None)
    grain = np.random.default_rng(3).normal(235, 3, (3000, 4000, 3))  # blank tinted paper
    scan = Image.fromarray(np.clip(grain, 0, 255).astype(np.uint8))
    assert not is_flat(scan)  # the web's check, at full size, sees its grain as ink
    for trim in (False, True):  # the white padding around a 4:3 page is not ink either
        with pytest.raises(ImageRejected, match="front drawing shows nothing"):
            query_canvas(encode(scan, "JPEG"), 10**8, trim, None, "front")
    ImageDraw.Draw(page).line([(0, 1000), (3999, 1000)], fill=(0, 0, 0), width=24)
    canvas, turned = query_canvas(encode(page), 10**8, True, None, "front")  # a line that shows
    assert canvas.shape == (CANVAS, CANVAS, 3) and canvas.min() < 100 and turned == 0


def test_a_png_with_too_much_metadata_is_refused_saying_so():
    """Pillow's own words ("Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK")
    told a designer nothing about what to change."""
    import io

    from PIL.PngImagePlugin import PngInfo

    from worker.core.images import ImageRejected, load_image

    meta = PngInfo()
    meta.add_text("XML:com.adobe.xmp", "x" * (2 << 20), zip=True)  # 2 MB, a few KB zipped
    buf = io.BytesIO()
    drawing().save(buf, "PNG", pnginfo=meta)
    with pytest.raises(ImageRejected, match="more than 1 MB of text metadata"):
        load_image(buf.getvalue())
    # the same text after the pixels (read by the decode, not the open)
    import struct
    import zlib

    plain = io.BytesIO()
    drawing().save(plain, "PNG")
    body = b"Comment\0\0" + zlib.compress(b"x" * (2 << 20))
    chunk = struct.pack(">I", len(body)) + b"zTXt" + body + struct.pack(
        ">I", zlib.crc32(b"zTXt" + body))
    data = plain.getvalue()
    end = data.rindex(b"IEND") - 4
    with pytest.raises(ImageRejected, match="more than 1 MB of text metadata"):
        load_image(data[:end] + chunk + data[end:])


def test_a_stored_drawing_keeps_only_an_rgb_profile():
    """The RGB drawing kept of a CMYK JPEG (or of a grey one) carried its CMYK (grey)
    profile, which does not describe its pixels (a browser showing the stored drawing reads
    it); an RGB profile (sRGB, Adobe RGB) is kept."""
    import io

    from PIL import ImageCms

    from worker.core.images import stored_form

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert srgb[16:20] == b"RGB "
    for mode, profile, kept in (("CMYK", b"\0" * 16 + b"CMYK" + b"\0" * 108, None),
                                ("L", b"\0" * 16 + b"GRAY" + b"\0" * 108, None),
                                ("RGB", srgb, srgb)):
        buf = io.BytesIO()
        drawing().convert(mode).save(buf, "JPEG", icc_profile=profile)
        stored, info = stored_form(buf.getvalue(), 10_000_000)
        assert info.mode == mode
        assert Image.open(io.BytesIO(stored)).info.get("icc_profile") == kept, mode
