"""The banks from the images' raw rows: the whitening learned, then every row projected.

An index build reads the rows from the chunk cache twice, one chunk at a time: once for the
sums the whitening is learned from (`worker.core.whitening.Moments`), once to project them.
It never holds every raw row (6 KB an image at the default descriptor: 12 GB at a million
pairs, and a float64 copy while learning), only the projected ones it writes (1.9 KB an
image). The benchmarks' in-process banks (`banks_from_features`) hold their rows anyway.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np

from worker.core.catalogue import Catalogue
from worker.core.whitening import Moments, Whitening, learn_whitening, whitening_from
from worker.indexing.chunkcache import ChunkCache
from worker.indexing.chunks import ChunkMissing

BLOCK_ROWS = 8192  # rows learned from or projected at a time: 49 MB of raw float32 rows


def banks_from_features(extractor, catalogue: Catalogue, features: dict[str, np.ndarray],
                        copies: tuple[list[str], np.ndarray] | None = None
                        ) -> tuple[np.ndarray, np.ndarray, Whitening | None]:
    """Front and back banks, (n_pairs, dim) float32 with unit rows, from every distinct
    image's (raw dim,) row, and the whitening learned on those rows when the descriptor asks
    for one (with `copies`, (paths, (m, raw dim) rows of their synthetic copies), learned
    from how they differ: worker/core/whitening.py)."""
    whitening = None
    if extractor.whiten:
        paths = list(features)
        rows = np.stack([features[p] for p in paths])
        pairs = None if copies is None else (np.stack([features[p] for p in copies[0]]),
                                             copies[1])
        whitening = learn_whitening(rows, extractor.whiten, blocks=extractor.appearance,
                                    copies=pairs)
        features = dict(zip(paths, whitening.apply(rows), strict=True))
    front = np.stack([features[p] for p in catalogue.fronts]).astype(np.float32)
    back = np.stack([features[p] for p in catalogue.backs]).astype(np.float32)
    return front, back, whitening


def banks_from_cache(extractor, catalogue: Catalogue, hashes: dict[str, str], cache: ChunkCache,
                     copies: tuple[list[str], np.ndarray] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, Whitening | None]:
    """`banks_from_features` of the rows `cache` holds for each path's content (`hashes`:
    path -> sha256), read chunk by chunk. Raises ChunkMissing when a content's row cannot
    be read."""
    contents = sorted(set(hashes.values()))
    at = {digest: i for i, digest in enumerate(contents)}
    whitening = _learned(extractor, hashes, cache, contents, copies) if extractor.whiten else None
    width = extractor.dim if whitening is None else whitening.dim
    banks, places = [], []
    for side in (catalogue.fronts, catalogue.backs):
        banks.append(np.empty((len(side), width), np.float32))
        # the bank's rows by content: where a block's contents go, found by bisection
        ids = np.array([at[hashes[path]] for path in side], np.int64)
        order = np.argsort(ids, kind="stable")
        places.append((ids[order], order))
    for found, rows in _all_blocks(cache, contents, extractor.dim):
        done = rows if whitening is None else whitening.apply(rows)
        ids = np.array([at[d] for d in found], np.int64)
        for bank, (keys, order) in zip(banks, places, strict=True):
            which, where = _occurrences(keys, order, ids)
            bank[where] = done[which]
    return banks[0], banks[1], whitening


def _learned(extractor, hashes: dict[str, str], cache: ChunkCache, contents: list[str],
             copies: tuple[list[str], np.ndarray] | None) -> Whitening:
    """The whitening learned from the cache's rows, one block at a time."""
    model_dims = extractor.dim - sum(size for size, _ in extractor.appearance)
    moments, originals = Moments(model_dims), {}
    wanted = set() if copies is None else {hashes[path] for path in copies[0]}
    paths_of = Counter(hashes.values())  # each distinct path counts, as when held
    for found, rows in _all_blocks(cache, contents, extractor.dim):
        repeats = [paths_of[d] for d in found]
        moments.add(rows if max(repeats) == 1 else np.repeat(rows, repeats, axis=0))
        # copied out: a view would keep its whole block of rows in memory
        originals.update((d, row.copy()) for d, row in zip(found, rows, strict=True)
                         if d in wanted)
    pairs = None if copies is None else (
        np.stack([originals[hashes[path]] for path in copies[0]]), copies[1])
    return whitening_from(moments, extractor.whiten, blocks=extractor.appearance, copies=pairs)


def _occurrences(keys: np.ndarray, order: np.ndarray, ids: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """For sorted `keys` (a bank's contents, `order` their rows) and a block's content `ids`:
    (index into ids, bank row) of every row holding one of them (a drawing two designs
    share is in two rows)."""
    low, high = np.searchsorted(keys, ids, "left"), np.searchsorted(keys, ids, "right")
    counts = high - low
    which = np.repeat(np.arange(len(ids)), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return which, order[np.repeat(low, counts) + within]


def _all_blocks(cache: ChunkCache, contents: list[str], dim: int
                ) -> Iterator[tuple[list[str], np.ndarray]]:
    """`cache.blocks` of every content, joined into blocks of about BLOCK_ROWS rows (the
    products run faster on large blocks than on a chunk's 128 rows), then ChunkMissing if
    some contents were not among them."""
    missing, found, parts = set(contents), [], []
    for digests, rows in cache.blocks(missing.copy(), dim):
        missing.difference_update(digests)
        found += digests
        parts.append(rows)
        if len(found) >= BLOCK_ROWS:
            yield found, np.concatenate(parts)
            found, parts = [], []
    if found:
        yield found, np.concatenate(parts)
    if missing:  # a chunk damaged, or deleted, since the build listed it
        raise ChunkMissing(f"{len(missing)} image(s) have no readable row in {cache.folder} "
                           "(a chunk damaged or deleted during the build); run the build "
                           "again: a damaged chunk's images are then extracted again")
