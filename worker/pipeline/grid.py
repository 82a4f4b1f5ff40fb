"""Stage 4, what goes on the grid: the query pair, then each hit's thumbnails and labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worker.core.catalogue import Catalogue
from worker.core.contract import SIDES, Hit, ListOrder
from worker.core.filters import Filters, as_fields
from worker.pipeline.render import GridCell, render_grid
from worker.pipeline.thumbnails import ThumbnailCache, load_thumbnail

BLANK = np.full((8, 8, 3), 255, dtype=np.uint8)  # a side the query does not have
TITLES = {"score": "Query", "design": "Query · the rest in order of design"}


def score_line(hit: Hit) -> str:
    """`copy 93  0.912 (F 0.950 | B 0.874)`: the verdict and similarity (below the verdicts,
    `similarity 41`, as the page's column shows it), the score and each side's that exists (F:
    the query's front's); a hit matched with its sides swapped says first that it is drawn
    `back | front` (the tail is what the cell's width cuts)."""
    parts = [f"{label} {value:.3f}" for label, value in (("F", hit.front_score),
                                                         ("B", hit.back_score)) if value is not None]
    verdict = f"{hit.verdict} {hit.similarity}  " if hit.verdict else \
        f"similarity {hit.similarity}  " if hit.similarity is not None else ""
    swapped = "back | front · " if hit.swapped else ""
    return f"{swapped}{verdict}{hit.score:.3f} ({' | '.join(parts)})"


def grid_cells(catalogue: Catalogue, features_dir: Path, thumbnails: ThumbnailCache,
               query: tuple[np.ndarray | None, np.ndarray | None],
               hits: list[Hit], filters: Filters | None = None,
               order: ListOrder = "score") -> list[GridCell]:
    """The query pair (as the model saw it; a missing side blank) first, its label saying
    which designs were compared when filtered and whether the list after the copy is in order
    of design (a grid saved alone still says so), then each hit."""
    sides = " | ".join(name for name, img in zip(SIDES, query, strict=True)
                       if img is not None)
    among = "; ".join(as_fields(filters or {}))
    cells = [GridCell(*(BLANK if img is None else img for img in query), TITLES[order],
                      f"{sides} · among {among}" if among else sides)]
    for hit in hits:  # decoded once, kept in RAM (THUMB_CACHE_MB)
        # each matched side under the query's side it matched: a swapped hit back | front
        front, back = (load_thumbnail(features_dir, catalogue, rel, thumbnails)
                       for rel in ((hit.back, hit.front) if hit.swapped else (hit.front, hit.back)))
        cells.append(GridCell(front, back, f"#{hit.rank}  {hit.name}", score_line(hit),
                              hit.verdict))
    return cells


def draw_grid(catalogue: Catalogue, features_dir: Path, thumbnails: ThumbnailCache,
              query: tuple[np.ndarray | None, np.ndarray | None],
              hits: list[Hit], filters: Filters | None, order: ListOrder) -> bytes:
    """The result grid as JPEG bytes (a search's: its filters and its list's order)."""
    return render_grid(grid_cells(catalogue, features_dir, thumbnails, query, hits, filters,
                                  order))
