"""The search job: preprocess -> extract -> search -> render, stage reported in job.meta.

The web enqueues `worker.jobs.search_pair` by name; only the worker imports this module.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from rq import get_current_job

from worker.engine import Engine, current
from worker.preprocess import load_image, prepare, to_rgb
from worker.render import GridCell, render_grid
from worker.search import SearchHit, top_k

UPLOAD_NAME = re.compile(r"^[0-9a-f]{32}-(front|back)\.(jpg|png)$")


class SearchInputError(ValueError):
    """A job argument the worker refuses (it names the value)."""


def upload_path(engine: Engine, name: str) -> Path:
    """Server-generated upload name -> path in UPLOAD_DIR; anything else is refused."""
    if not UPLOAD_NAME.match(name):
        raise SearchInputError(f"not an upload name this service generates: {name!r}")
    path = engine.settings.upload_dir / name
    if not path.is_file():
        raise SearchInputError(f"upload {name} is gone (expired or deleted); please resubmit")
    return path


@contextmanager
def stage(name: str, timings: dict[str, float]) -> Iterator[None]:
    """Report `name` as the job's stage and record its duration in ms."""
    job = get_current_job()
    if job is not None:
        job.meta["stage"] = name
        job.save_meta()
    start = time.perf_counter()
    yield
    timings[f"{name}_ms"] = round((time.perf_counter() - start) * 1000, 2)


def _hit_json(engine: Engine, hit: SearchHit) -> dict:
    cat = engine.index.catalogue
    return {"rank": hit.rank, "name": cat.names[hit.index], "score": round(hit.score, 6),
            "front_score": round(hit.front_score, 6), "back_score": round(hit.back_score, 6),
            "front": cat.fronts[hit.index], "back": cat.backs[hit.index]}


def _grid_cells(engine: Engine, query: np.ndarray, hits: list[SearchHit]) -> list[GridCell]:
    """The query pair (as the model saw it) first, then each hit's catalogue drawings."""
    cat = engine.index.catalogue
    cells = [GridCell(query[0], query[1], "Query", "front | back")]
    for hit in hits:
        front, back = (np.asarray(to_rgb(load_image(cat.image_path(rel))))
                       for rel in (cat.fronts[hit.index], cat.backs[hit.index]))
        cells.append(GridCell(front, back, f"#{hit.rank}  {cat.names[hit.index]}",
                              f"{hit.score:.3f}  (F {hit.front_score:.3f} | B {hit.back_score:.3f})"))
    return cells


def search_pair(search_id: str, front: str, back: str, k: int = 20,
                front_weight: float = 0.5) -> dict:
    """Search the catalogue for the uploaded pair; render `OUTPUT_DIR/<search_id>.jpg`."""
    engine = current()
    if not 1 <= k <= 100:
        raise SearchInputError(f"k must be between 1 and 100, got {k}")
    if not 0.0 <= front_weight <= 1.0:
        raise SearchInputError(f"front_weight must be between 0 and 1, got {front_weight}")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    with stage("preprocess", timings):
        max_pixels = engine.settings.max_image_pixels
        query = np.stack([prepare(upload_path(engine, name), max_pixels)
                          for name in (front, back)])  # (2, 224, 224, 3) uint8
    with stage("extract", timings):
        features = engine.extractor.extract(query)  # (2, dim) float32, unit rows
    with stage("search", timings):
        hits = top_k(engine.index.bank, features[0], features[1], k, front_weight)
    with stage("render", timings):
        image = f"{search_id}.jpg"
        render_grid(_grid_cells(engine, query, hits), engine.settings.output_dir / image)
    timings["total_ms"] = round((time.perf_counter() - start) * 1000, 2)
    return {"results": [_hit_json(engine, hit) for hit in hits], "image": image, "k": k,
            "front_weight": front_weight, "timings": timings,
            "descriptor": engine.extractor.descriptor, "weights": engine.extractor.weights_id}
