"""Stage 1: decode an image and bring it onto the 224x224 canvas VGG16 expects.

One code path for catalogue images and query uploads, so both are seen the same way:
allow-listed decode -> EXIF orientation -> RGB on white -> (trimming descriptors: a tinted
paper levelled to white, a framed sheet's frame and title block cut away
(`worker.pipeline.sheet`), margins trimmed, captions left out) -> long side 200 -> centred
white padding to 224x224 (a query's side scanned sideways then turned upright:
`worker.pipeline.orientation`). The Keras `vgg16.preprocess_input` step runs in `worker.pipeline.extract`
(it needs Keras); this module is Pillow + numpy only (the decode itself is `worker.core.images`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from worker.core.contract import Box
from worker.core.images import ImageRejected, crop_to_box, load_image
from worker.core.rgb import is_flat, to_rgb  # noqa: F401 - to_rgb: step 2, theirs too
from worker.pipeline.appearance import MEASURED
from worker.pipeline.captions import side_edges, without_captions
from worker.pipeline.orientation import Uprights
from worker.pipeline.sheet import grey_probe, without_sheet

LONG_SIDE = 200
CANVAS = 224
TRIM_THRESHOLD = 40  # a pixel darker than 255 - this (in grey) is ink
TRIM_MIN_INK = 0.01  # a row/column with at least this fraction of ink belongs to the drawing
TRIM_PROBE = 256  # px: the box is found on a copy at most this large
TRIM_MARGIN = 0.03  # keep this fraction of the drawing's long side around it
REFIT_SIDE = 4 * LONG_SIDE  # a page turned and prepared again is first reduced to this (px)
PAPER_RING = 0.03  # the page's outer 3 % on each side: where its paper shows
PAPER_WHITE = 250  # paper at least this light in every channel is left as it is
PAPER_DARKEST = 192  # a darker ground is a colour, not a paper's tint: left as it is
PAPER_SPREAD = 40  # a paper's channels differ by at most this much (a tint, not a colour)
PAPER_EVEN = 0.5  # at least this share of the ring lies within PAPER_TOLERANCE of its colour
PAPER_TOLERANCE = 16
LUMA = np.array([0.299, 0.587, 0.114])


def preprocess_params(trim: bool) -> dict:
    """What the manifest records about preprocessing, and how the appearance columns are
    measured on the canvas (the chunk cache is keyed by it too)."""
    return {"long_side": LONG_SIDE, "canvas": CANVAS, "pad": "white", "resample": "bicubic",
            "keras_mode": "vgg16.preprocess_input", "trim": trim, "appearance": dict(MEASURED),
            **({"paper": "levelled to white",
                "sheet": "frame and ruled-off title block cut away, a boxed one painted white",
                "captions": "above, below or beside (notes), or text run off a side: left out "
                            "of the trim"}
               if trim else {})}


def paper_colour(img: Image.Image) -> np.ndarray | None:
    """(3,) the colour of an RGB page's paper when it is tinted (off-white, grey, a scanner's
    warm cast), None when it is white already or the page shows no paper. The paper is the
    median of the page's outer ring, when most of the ring is that one light, near-neutral
    colour and nothing on the page is clearly lighter (then the ring is a light garment cut
    by the page's edge, not the paper)."""
    probe = img.copy()
    probe.thumbnail((TRIM_PROBE, TRIM_PROBE), Image.Resampling.BOX)
    arr = np.asarray(probe, np.float32)
    ry, rx = (max(1, round(n * PAPER_RING)) for n in arr.shape[:2])
    ring = np.concatenate([arr[:ry].reshape(-1, 3), arr[-ry:].reshape(-1, 3),
                           arr[:, :rx].reshape(-1, 3), arr[:, -rx:].reshape(-1, 3)])
    colour = np.median(ring, axis=0)
    if colour.min() >= PAPER_WHITE or colour.min() < PAPER_DARKEST \
            or colour.max() - colour.min() > PAPER_SPREAD:
        return None
    if (np.abs(ring - colour).max(axis=1) <= PAPER_TOLERANCE).mean() < PAPER_EVEN:
        return None
    if np.percentile(arr @ LUMA, 99) > colour @ LUMA + PAPER_TOLERANCE:
        return None
    return colour


def level_paper(img: Image.Image) -> Image.Image:
    """An RGB page scanned on tinted paper, or under a coloured light, with its paper brought
    to white: each channel scaled by 255 / the paper's (a scan multiplies the page by the
    paper's colour, so this undoes it for the ink too). A page on white paper is returned as
    it is, so a catalogue of clean drawings is read exactly as before."""
    colour = paper_colour(img)
    if colour is None:
        return img
    gains = 255.0 / colour
    lut = [min(255, round(v * gain)) for gain in gains for v in range(256)]
    return img.point(lut)


def _below3(grey: np.ndarray, threshold: int) -> np.ndarray:
    """(h, w) uint8 -> (h, w) uint8: how many of each pixel's 3x3 neighbourhood (edges
    repeated, as Pillow's MedianFilter(3) pads) are below `threshold`."""
    below = np.pad(grey < threshold, 1, mode="edge").astype(np.uint8)
    h, w = grey.shape
    return sum(below[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3))


def _median3_below(grey: np.ndarray, threshold: int) -> np.ndarray:
    """(h, w) uint8 -> (h, w) bool: is the median of each pixel's 3x3 neighbourhood below
    `threshold`? The median of 9 values is below it exactly when 5 or more of them are, so
    this counts instead of sorting: the same answer as
    `np.asarray(img.filter(MedianFilter(3))) < threshold` (tested)."""
    return _below3(grey, threshold) >= 5


def trim_to_content(img: Image.Image) -> Image.Image:
    """Crop an RGB drawing to the bounding box of its ink (plus a small margin), so margins,
    shifts and scale on the page matter less. Robust to scanner noise: the box is found on a
    median-filtered grey copy, and a row or column needs >= 1 % ink to count; a caption
    above or below the drawing, notes beside it, or text written over it that runs off its
    side, do not count (`worker.pipeline.captions`). A blank image is returned as is."""
    probe, scale = grey_probe(img, TRIM_PROBE)
    near = _below3(probe, 255 - TRIM_THRESHOLD)
    # captions are told apart on thin lines too (a sketch's 1 px outline joins it into one
    # band), less lone specks of noise; the box is measured on the median's ink
    lines = (probe < 255 - TRIM_THRESHOLD) & (near >= 2)
    ink = without_captions(near >= 5, lines)
    rows = np.nonzero(ink.mean(axis=1) >= TRIM_MIN_INK)[0]
    cols = np.nonzero(ink.mean(axis=0) >= TRIM_MIN_INK)[0]
    if rows.size == 0 or cols.size == 0:
        return img
    first, last = side_edges(ink, rows, cols)  # in the probe's columns
    box = np.array([first, rows[0], last + 1, rows[-1] + 1]) / scale
    pad = TRIM_MARGIN * max(box[2] - box[0], box[3] - box[1])
    left, top = max(0, int(box[0] - pad)), max(0, int(box[1] - pad))
    right, bottom = min(img.width, int(box[2] + pad + 1)), min(img.height, int(box[3] + pad + 1))
    return img.crop((left, top, right, bottom))


def fitted(img: Image.Image, trim: bool = False) -> Image.Image:
    """RGB image -> the drawing as the canvas holds it: its paper levelled to white, a
    sheet's frame cut away and its margins trimmed if asked, long side 200."""
    if trim:
        img = trim_to_content(without_sheet(level_paper(img)))
    w, h = img.size
    scale = LONG_SIDE / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


def on_canvas(drawing: Image.Image) -> np.ndarray:
    """A `fitted` drawing -> (224, 224, 3) uint8, centred on white."""
    canvas = Image.new("RGB", (CANVAS, CANVAS), (255, 255, 255))
    canvas.paste(drawing, ((CANVAS - drawing.width) // 2, (CANVAS - drawing.height) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def to_canvas(img: Image.Image, trim: bool = False) -> np.ndarray:
    """RGB image -> (224, 224, 3) uint8: long side 200, aspect kept, centred on white."""
    return on_canvas(fitted(img, trim))


def make_canvas(source: bytes | str | Path, max_pixels: int = 40_000_000,
            trim: bool = False, box: Box | None = None) -> np.ndarray:
    """Decode and place one image (cropped to `box` first, if any): bytes or path ->
    (224, 224, 3) uint8 RGB canvas."""
    return to_canvas(_decoded(source, max_pixels, box), trim)


def _decoded(source: bytes | str | Path, max_pixels: int, box: Box | None) -> Image.Image:
    return crop_to_box(to_rgb(load_image(source, max_pixels)), box)


def query_canvas(source: bytes | str | Path, max_pixels: int, trim: bool, box: Box | None,
                 side: str, uprights: Uprights | None = None) -> tuple[np.ndarray, int]:
    """A query drawing's canvas (`make_canvas`), refused when nothing of it shows on the
    canvas the model sees (`visible_canvas`), turned upright by `uprights` unless it was cut
    to a box (drawn on the page as shown; a part's outline is not a garment's): the canvas
    and the degrees it was turned counter-clockwise (`worker.pipeline.orientation`)."""
    return upright_canvas(_decoded(source, max_pixels, box), trim, side, box is not None, uprights)


def upright_canvas(rgb: Image.Image, trim: bool, side: str, boxed: bool = False,
                   uprights: Uprights | None = None) -> tuple[np.ndarray, int]:
    """`query_canvas` after the decode: an RGB drawing's canvas and the degrees it was turned."""
    canvas = visible_canvas(rgb, trim, side, boxed)
    if uprights is None or boxed:
        return canvas, 0
    return uprights.upright(canvas, lambda turns: _turned_canvases(rgb, trim, turns))


def _turned_canvases(rgb: Image.Image, trim: bool, turns: tuple[int, ...]) -> dict[int, np.ndarray]:
    """The page turned by each of `turns` (degrees counter-clockwise) and prepared again, from a
    copy reduced by whole steps to at least REFIT_SIDE across: the canvas is 200 px and the
    trim reads a 256-px probe, so the full page only costs more (an A4 scan at 300 dpi: ~0.2 s
    a side; a box filter's reduce is a few ms where a bicubic resize took 40-110)."""
    page = rgb.reduce(max(1, max(rgb.size) // REFIT_SIDE))
    return {degrees: to_canvas(page.rotate(degrees, expand=True), trim) for degrees in turns}


def visible_canvas(rgb: Image.Image, trim: bool, side: str, boxed: bool = False) -> np.ndarray:
    """An RGB drawing's canvas, refused (ImageRejected "unseen") when nothing of it shows at
    the size the model sees: a faint or thin drawing on a large page averages away at 200 px,
    and so does the grain of a blank page scanned on tinted paper; either would be matched
    as blank paper (what the web's blank check, at full size, cannot see)."""
    drawing = fitted(rgb, trim)
    if is_flat(drawing):  # the drawing alone: the white padding around it is not ink
        part = "the part inside its box" if boxed else "it"
        raise ImageRejected("unseen", f"the {side} drawing shows nothing at the size designs "
                            f"are compared ({LONG_SIDE} px across): {part} is blank, or its "
                            "lines are too faint or thin for its size; draw darker or thicker "
                            "lines, or crop the page to the drawing")
    return on_canvas(drawing)
