"""Why two designs match: the regions of the query and of a hit whose local features agree,
drawn side by side (the match view, drawn when a person asks for it, not for every search).

Local features are the descriptor's own feature maps before pooling, at the map nearest
28x28 cells (block4_conv3: a cell is 8 px of the 224 px canvas). A query cell and a hit cell
match when each is the other's most similar cell (cosine of unit ReLU'd features: mutual
nearest neighbours) and their cosine is at least MIN_SIMILARITY. Only cells with ink on both
drawings take part: blank paper is like blank paper everywhere.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import ConnectionPatch, Rectangle

from worker.pipeline.render import GlyphFont

CELLS = 28  # the map side looked for (the finest one a descriptor pools is often larger)
MIN_SIMILARITY = 0.8
SHIFT_TOLERANCE = 2  # cells a match may move beyond the drawings' median shift
INK_GREY = 235  # a pixel darker than this (mean of RGB) is ink
INK_CELL = 0.05  # a cell with at least this fraction of ink takes part
SHOWN = 10  # matches drawn as boxes (the strongest, spread out); all of them tint the drawings
SPREAD = 0.12  # a boxed match is at least this far (fraction of the canvas) from the others
JPEG_QUALITY = 85
HEAT = np.array([220, 30, 30]) / 255  # the tint of matched cells
TITLE_PX = 760  # the title's room: the view is 800 px wide, the title centred on it
_title_font: GlyphFont | None = None  # the suptitle's (DejaVu Sans bold, 12 pt at 100 dpi)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the canvas


@dataclass(frozen=True)
class RegionMatch:
    """A query cell and the hit cell it matches."""

    query: Box
    hit: Box
    similarity: float


@dataclass(frozen=True)
class Panel:
    """One row of the view: a side of the query beside the side of the hit it was scored with."""

    query_side: str  # "front" or "back"
    hit_side: str  # the side of the hit scored against it (the other one when swapped)
    query: np.ndarray | None  # (224, 224, 3) uint8; None: the query has no such side
    hit: np.ndarray
    matches: list[RegionMatch]


def pick_map(maps: list[np.ndarray]) -> int:
    """Index of the (n, h, w, c) map whose side is nearest CELLS."""
    return min(range(len(maps)), key=lambda i: abs(maps[i].shape[1] - CELLS))


def ink_cells(canvas: np.ndarray, side: int) -> np.ndarray:
    """(224, 224, 3) uint8 -> (side * side,) bool: cells with ink, row-major."""
    ink = canvas.mean(axis=-1) < INK_GREY
    edges = np.linspace(0, ink.shape[0], side + 1).astype(int)
    return np.array([ink[edges[r]:edges[r + 1], edges[c]:edges[c + 1]].mean() >= INK_CELL
                     for r in range(side) for c in range(side)])


def cell_box(index: int, side: int) -> Box:
    row, col = divmod(index, side)
    return col / side, row / side, (col + 1) / side, (row + 1) / side


def consistent(query_cells: np.ndarray, hit_cells: np.ndarray, side: int) -> np.ndarray:
    """(m,) bool: which matches move their cell by about the median shift of all of them
    (within SHIFT_TOLERANCE cells a direction): the drawings are trimmed and scaled alike,
    so a true match sits where its partner does, up to one shift."""
    if query_cells.size == 0:
        return np.zeros(0, bool)
    shift = np.stack(np.divmod(hit_cells, side)) - np.stack(np.divmod(query_cells, side))
    offset = np.median(shift, axis=1, keepdims=True)
    return (np.abs(shift - offset) <= SHIFT_TOLERANCE).all(axis=0)


def match_regions(query_map: np.ndarray, hit_map: np.ndarray, query_canvas: np.ndarray,
                  hit_canvas: np.ndarray) -> list[RegionMatch]:
    """(h, w, c) maps of one query side and one hit side (and their canvases) -> the mutual
    nearest-neighbour cells of cosine >= MIN_SIMILARITY, most similar first."""
    side = query_map.shape[0]
    feats = [np.maximum(m.reshape(side * side, -1), 0) for m in (query_map, hit_map)]
    q, h = (f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-6) for f in feats)
    sim = q @ h.T  # (cells, cells) cosine
    sim[~ink_cells(query_canvas, side)] = -1.0
    sim[:, ~ink_cells(hit_canvas, side)] = -1.0
    best_hit, best_query = sim.argmax(axis=1), sim.argmax(axis=0)
    cells = np.arange(side * side)
    mutual = cells[(best_query[best_hit] == cells) & (sim[cells, best_hit] >= MIN_SIMILARITY)]
    mutual = mutual[consistent(mutual, best_hit[mutual], side)]
    order = mutual[np.argsort(-sim[mutual, best_hit[mutual]], kind="stable")]
    return [RegionMatch(cell_box(i, side), cell_box(int(best_hit[i]), side),
                        round(float(sim[i, best_hit[i]]), 4)) for i in order]


def spread_out(matches: list[RegionMatch], limit: int = SHOWN) -> list[RegionMatch]:
    """The strongest matches, skipping any whose query cell lies within SPREAD of one already
    kept (a stripe matches its neighbours' stripes too: show different parts)."""
    kept: list[RegionMatch] = []
    for match in matches:
        if len(kept) == limit:
            break
        if all(max(abs(match.query[0] - k.query[0]), abs(match.query[1] - k.query[1])) >= SPREAD
               for k in kept):
            kept.append(match)
    return kept


def _tinted(canvas: np.ndarray, boxes: list[Box], strengths: list[float]) -> np.ndarray:
    """The drawing with each box blended towards HEAT by its strength (0-1)."""
    out = canvas.astype(np.float32) / 255
    size = canvas.shape[0]
    for (x0, y0, x1, y1), strength in zip(boxes, strengths, strict=True):
        cell = out[round(y0 * size):round(y1 * size), round(x0 * size):round(x1 * size)]
        cell[:] = cell * (1 - 0.55 * strength) + HEAT * 0.55 * strength
    return out


def _draw_panel(fig: Figure, axes: list, panel: Panel) -> None:
    ax_q, ax_h = axes
    strengths = [(m.similarity - MIN_SIMILARITY) / (1 - MIN_SIMILARITY) * 0.7 + 0.3
                 for m in panel.matches]
    ax_h.imshow(_tinted(panel.hit, [m.hit for m in panel.matches], strengths))
    if panel.query is None:
        ax_q.text(0.5, 0.5, "the query has no drawing here", ha="center", va="center",
                  transform=ax_q.transAxes, color="#666")
    else:
        ax_q.imshow(_tinted(panel.query, [m.query for m in panel.matches], strengths))
    size = panel.hit.shape[0]
    colours = colormaps["tab10"]
    for i, match in enumerate(spread_out(panel.matches)):
        colour = colours(i % 10)
        for ax, (x0, y0, x1, y1) in ((ax_q, match.query), (ax_h, match.hit)):
            ax.add_patch(Rectangle((x0 * size, y0 * size), (x1 - x0) * size, (y1 - y0) * size,
                                   fill=False, edgecolor=colour, linewidth=2))
        centres = [((b[0] + b[2]) / 2 * size, (b[1] + b[3]) / 2 * size)
                   for b in (match.query, match.hit)]
        fig.add_artist(ConnectionPatch(centres[0], centres[1], "data", "data", axesA=ax_q,
                                       axesB=ax_h, color=colour, linewidth=1, alpha=0.7))
    for ax, name in ((ax_q, f"query {panel.query_side}"), (ax_h, f"design {panel.hit_side}")):
        ax.set_axis_off()
        ax.set_aspect("equal")
        ax.set_xlim(0, size)
        ax.set_ylim(size, 0)
        ax.set_title(name, fontsize=10)


def view_title(rank: int, name: str, judged: str) -> str:
    """`#rank  name  judged`, the name cut with an ellipsis so that the rank and the verdict
    stay on the view (a 200-character name ran off both sides)."""
    global _title_font
    if _title_font is None:
        _title_font = GlyphFont("bold", 12)
    ends = f"#{rank}    {judged}"
    return f"#{rank}  {_title_font.fit(name, TITLE_PX - _title_font.width(ends))}  {judged}"


def render_match_view(panels: list[Panel], title: str) -> bytes:
    """The view as JPEG bytes: one row per panel, the query left, the hit right."""
    fig = Figure(figsize=(8, 0.6 + 4.2 * len(panels)), dpi=100, facecolor="white")
    FigureCanvasAgg(fig)
    # a design named "Tee $25 promo, $30 later" is text, not TeX (a stray `$^$` raised)
    fig.suptitle(title, fontsize=12, fontweight="bold", parse_math=False)
    grid = fig.add_gridspec(len(panels), 2, left=0.02, right=0.98, bottom=0.3 / fig.get_figheight(),
                            top=1 - 0.6 / fig.get_figheight(), hspace=0.25, wspace=0.25)
    for row, panel in enumerate(panels):
        axes = [fig.add_subplot(grid[row, col]) for col in (0, 1)]
        _draw_panel(fig, axes, panel)
        mean = np.mean([m.similarity for m in panel.matches]) if panel.matches else 0.0
        axes[0].text(1.125, -0.06, f"{len(panel.matches)} matching regions"
                     + (f", their features alike at a mean cosine of {mean:.2f}" if panel.matches else ""),
                     transform=axes[0].transAxes, ha="center", fontsize=9, color="#444")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", pil_kwargs={"quality": JPEG_QUALITY})
    return buffer.getvalue()
