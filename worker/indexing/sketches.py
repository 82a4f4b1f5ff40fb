"""Is the catalogue one of coloured drawings or of line sketches? The index says, so that a
search knows whether to match a sketched query by its outline alone
(worker.pipeline.ranking.outline_sides)."""

from __future__ import annotations

from worker.core.catalogue import Catalogue
from worker.indexing.chunks import prepared
from worker.pipeline.appearance import is_sketch

SAMPLE = 200  # drawings looked at, evenly spread over the catalogue's distinct images


def sketch_share(catalogue: Catalogue, max_pixels: int, trim: bool, count: int = SAMPLE
                 ) -> float:
    """The share of line sketches among `count` of the catalogue's drawings (unreadable ones
    left out; the build lists those); 0.0 for an empty sample."""
    paths = list(dict.fromkeys([*catalogue.fronts, *catalogue.backs]))
    chosen = paths[::max(1, len(paths) // count)][:count]
    canvases = [canvas for batch in prepared(catalogue, chosen, max_pixels, trim, None, 16)
                for _, canvas, _ in batch if canvas is not None]
    return round(sum(map(is_sketch, canvases)) / len(canvases), 3) if canvases else 0.0
