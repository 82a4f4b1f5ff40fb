"""Stage 4: render the query pair and its hits as one grid JPEG (matplotlib Figure, no pyplot).

The Figure draws the page and its labels; the thumbnails are then pasted 1:1 into the
rendered pixels (numpy), so matplotlib never resamples images: rendering costs the text.
"""

from __future__ import annotations

import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

THUMB = 150  # px, one side of one drawing
GAP = 8  # px between the two drawings of a pair and between cells
LABEL = 40  # px of text above each pair
CELLS_PER_ROW = 5
DPI = 100
QUERY_COLOUR = (40, 110, 200)


@dataclass(frozen=True)
class GridCell:
    """One pair on the grid: two (h, w, 3) uint8 images and two lines of label."""

    front: np.ndarray
    back: np.ndarray
    title: str
    subtitle: str


def _thumb(image: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 -> (THUMB, THUMB, 3) uint8, aspect kept, centred on white."""
    img = Image.fromarray(image)
    img.thumbnail((THUMB, THUMB), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (THUMB, THUMB), (255, 255, 255))
    canvas.paste(img, ((THUMB - img.width) // 2, (THUMB - img.height) // 2))
    return np.asarray(canvas)


def _cell_origin(i: int) -> tuple[int, int]:
    """Top-left pixel (x, y) of cell i."""
    cell_w, cell_h = 2 * THUMB + 3 * GAP, THUMB + LABEL + GAP
    return (i % CELLS_PER_ROW) * cell_w, (i // CELLS_PER_ROW) * cell_h


def _paste_thumbnails(pixels: np.ndarray, cells: list[GridCell]) -> None:
    """Paste each cell's two drawings below its label, in place; frame the query in blue."""
    for i, cell in enumerate(cells):
        x, y = _cell_origin(i)
        if i == 0:
            pixels[y + LABEL - 3:y + LABEL + THUMB + 3, x + GAP - 3:x + 2 * THUMB + 2 * GAP + 3] \
                = QUERY_COLOUR
        for j, image in enumerate((cell.front, cell.back)):
            left = x + GAP + j * (THUMB + GAP)
            pixels[y + LABEL:y + LABEL + THUMB, left:left + THUMB] = _thumb(image)


def render_grid(cells: list[GridCell], out_path: Path) -> Path:
    """Draw cells (the query first) into a JPEG at `out_path`, written aside then renamed."""
    width = CELLS_PER_ROW * (2 * THUMB + 3 * GAP)
    height = math.ceil(len(cells) / CELLS_PER_ROW) * (THUMB + LABEL + GAP)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(fig)

    def text(x: int, y: int, label: str, **style) -> None:  # (x, y): pixels from top-left
        fig.text(x / width, 1 - y / height, label, va="top", ha="left", **style)

    for i, cell in enumerate(cells):
        x, y = _cell_origin(i)
        colour = "#{:02x}{:02x}{:02x}".format(*QUERY_COLOUR) if i == 0 else "#222222"
        text(x + GAP, y + 4, cell.title, fontsize=9.5, weight="bold", color=colour)
        text(x + GAP, y + 21, cell.subtitle, fontsize=8.5, color="#444444")
    canvas.draw()
    pixels = np.array(canvas.buffer_rgba())[..., :3]  # (height, width, 3) uint8
    _paste_thumbnails(pixels, cells)
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.stem}.{uuid.uuid4().hex[:8]}.jpg")
    try:
        Image.fromarray(pixels).save(tmp, "JPEG", quality=85)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path
