"""The match-view job: why a finished search's hit matches its query.

The web enqueues `worker.service.matches.draw_match` by name when a person first opens a
match view; this job compares the query as the model saw it (kept by the search) with the
hit's drawings, draws the view and stores it as `<search id>-match-<rank>.jpg`.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from rq import get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job

from worker.core.catalogue import CatalogueError
from worker.core.contract import SIDES, Hit, SearchResult
from worker.core.images import ImageRejected
from worker.core.queueing import match_image_name, query_canvas_name
from worker.pipeline.matchview import (
    Panel,
    match_regions,
    pick_map,
    render_match_view,
    view_title,
)
from worker.pipeline.preprocess import make_canvas
from worker.service.engine import Engine, current
from worker.service.jobs import store_result

REPORTED = 100  # matches a side's report lists at most (the strongest)


class MatchInputError(ValueError):
    """The search, its hit or its kept query cannot be read (the message says which)."""


def match_title(hit: Hit) -> str:
    """`#rank  name  verdict similarity`, as the grid and page judge the hit; a long name cut."""
    return view_title(hit.rank, hit.name, f"{hit.verdict} {hit.similarity}" if hit.verdict else
                      f"similarity {hit.similarity}" if hit.similarity is not None
                      else f"score {hit.score:.3f}")


def draw_match(search_id: str, rank: int) -> dict:
    """Draw and store the match view of the hit ranked `rank` in search `search_id`; its file
    name and, per side, the regions matched (fractions of the 224 px canvas)."""
    engine = current()
    hit = hit_at(finished_result(get_current_job().connection, search_id), rank)
    panels = compare(engine, query_canvases(engine, search_id), hit)
    image = match_image_name(search_id, rank)
    store_result(engine, image, render_match_view(panels, match_title(hit)))
    return {"image": image, "sides": [
        {"query_side": p.query_side, "hit_side": p.hit_side, "count": len(p.matches),
         "matches": [vars(m) for m in p.matches[:REPORTED]]} for p in panels]}


def finished_result(connection, search_id: str) -> SearchResult:
    try:
        result = Job.fetch(search_id, connection=connection).return_value()
    except NoSuchJobError:
        result = None
    if result is None:
        raise MatchInputError(f"search {search_id} is unknown, unfinished or expired")
    return SearchResult.model_validate(result)


def hit_at(result: SearchResult, rank: int) -> Hit:
    for hit in result.results:
        if hit.rank == rank:
            return hit
    raise MatchInputError(f"the search has no hit ranked {rank} (1-{len(result.results)})")


def query_canvases(engine: Engine, search_id: str) -> dict[str, np.ndarray]:
    """The query's sides as the search kept them: side -> (224, 224, 3) uint8."""
    kept = {side: engine.storage.read_result(query_canvas_name(search_id, side))
            for side in SIDES}
    if not any(kept.values()):
        raise MatchInputError(f"the query drawings of search {search_id} are no longer kept; "
                              "please search again")
    return {side: np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            for side, data in kept.items() if data}


def hit_canvas(engine: Engine, hit: Hit, relative: str) -> np.ndarray:
    """A catalogue drawing on the canvas, prepared as the index prepared it. The messages
    name the drawing as the catalogue does, never the server's folders."""
    try:
        path = engine.snapshot.catalogue.image_path(relative)
    except CatalogueError:
        raise MatchInputError(f"the drawing {relative} is outside the catalogue") from None
    if not path.is_file():
        raise MatchInputError(
            f"{hit.name} is no longer in the catalogue as it was when you searched (its drawing "
            f"{relative} was removed or replaced); search again to compare with the catalogue "
            "as it is now")
    try:
        return make_canvas(path, engine.settings.max_image_pixels, engine.extractor.trim)
    except ImageRejected as exc:
        raise MatchInputError(f"the catalogue drawing {relative} cannot be read: "
                              f"{str(exc).replace(str(path), relative)}") from None


def compare(engine: Engine, query: dict[str, np.ndarray], hit: Hit) -> list[Panel]:
    """One panel per side of the query (a side it lacks: the hit's drawing alone), each
    against the side of the hit it was scored with."""
    scored_with = dict(zip(SIDES, ("back", "front") if hit.swapped else SIDES, strict=True))
    drawings = {side: hit_canvas(engine, hit, getattr(hit, side)) for side in SIDES}
    images = [*query.values(), *drawings.values()]
    maps = engine.batcher.feature_maps(np.stack(images))
    fmap = dict(zip([f"q-{s}" for s in query] + [f"h-{s}" for s in drawings],
                    maps[pick_map(maps)], strict=True))
    panels = []
    for side in SIDES:
        other = scored_with[side]
        matches = [] if side not in query else match_regions(
            fmap[f"q-{side}"], fmap[f"h-{other}"], query[side], drawings[other])
        panels.append(Panel(side, other, query.get(side), drawings[other], matches))
    return panels
