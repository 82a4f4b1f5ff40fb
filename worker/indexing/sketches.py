"""Which catalogue drawings are line sketches: recorded per drawing by the build, so that the
duplicate list judges a design sketched on both sides without its lead over the second
(worker.core.duplicates.sketched_designs), and so that a search knows whether the catalogue
is one of coloured drawings or of sketches (its `sketch_share`: reading.outline_sides)."""

from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm

from worker.core.catalogue import Catalogue
from worker.indexing.chunkcache import ChunkCache
from worker.indexing.chunks import prepared
from worker.pipeline.appearance import is_sketch

log = logging.getLogger(__name__)
SAMPLE = 200  # drawings looked at, evenly spread over the catalogue's distinct images


def sketch_share(catalogue: Catalogue, max_pixels: int, trim: bool, count: int = SAMPLE
                 ) -> float:
    """The share of line sketches among `count` of the catalogue's drawings (unreadable ones
    left out; the build lists those); 0.0 for an empty sample. (The benchmarks' in-process
    banks; a build counts every drawing: `share_of`.)"""
    paths = list(dict.fromkeys([*catalogue.fronts, *catalogue.backs]))
    chosen = paths[::max(1, len(paths) // count)][:count]
    return share_of(read_sketches(catalogue, chosen, max_pixels, trim).values())


def share_of(flags) -> float:
    """The share of line sketches among drawings' flags; 0.0 for none."""
    flags = list(flags)
    return round(sum(flags) / len(flags), 3) if flags else 0.0


def edited_share(fronts: list[str], backs: list[str], sketched: np.ndarray | None) -> dict:
    """An edited catalogue's manifest `sketch_share`: among its distinct drawing paths, from
    its duplicate list's (n_pairs, 2) flags (the build counts distinct contents); none for a
    list made before the flags (the build's share stays)."""
    if sketched is None:
        return {}
    flags = dict(zip(fronts, sketched[:, 0].tolist(), strict=True))
    flags.update(zip(backs, sketched[:, 1].tolist(), strict=True))
    return {"sketch_share": share_of(flags.values())}


def read_sketches(catalogue: Catalogue, paths: list[str], max_pixels: int, trim: bool,
                  progress: bool = False) -> dict[str, bool]:
    """Path -> is it a line sketch, for each of `paths` that can be read."""
    flags = {}
    with tqdm(total=len(paths), unit="img", desc="sketches", disable=not progress) as bar:
        for batch in prepared(catalogue, paths, max_pixels, trim, None, 16):
            flags.update((rel, is_sketch(canvas)) for rel, canvas, _ in batch if canvas is not None)
            bar.update(len(batch))
    return flags


def pair_sketches(catalogue: Catalogue, hashes: dict[str, str], cache: ChunkCache,
                  max_pixels: int, trim: bool, progress: bool = False) -> tuple[np.ndarray, float]:
    """(n_pairs, 2) bool: whether each design's front and back is a line sketch, as the chunk
    cache records it of each content (`hashes`: path -> sha256), and the catalogue's share of
    sketches among its distinct drawings. Contents whose chunks were written before the flags
    are decoded here once, and their flags written into those chunks."""
    known = cache.sketches(set(hashes.values()))
    missing = {digest: rel for rel, digest in hashes.items() if digest not in known}
    if missing:
        log.info("reading whether %d drawing(s) are line sketches (their chunks predate it)",
                 len(missing))
        read = read_sketches(catalogue, list(missing.values()), max_pixels, trim, progress)
        found = {digest: read[rel] for digest, rel in missing.items() if rel in read}
        try:
            cache.record_sketches(found)
        except OSError as exc:  # only saves the next build this decoding
            log.warning("could not record the sketch flags in the chunk cache: %s", exc)
        known |= found
    flags = np.array([[known.get(hashes[f], False), known.get(hashes[b], False)]
                      for f, b in zip(catalogue.fronts, catalogue.backs, strict=True)], bool)
    return flags.reshape(len(catalogue), 2), share_of(known[d] for d in set(hashes.values())
                                                      if d in known)
