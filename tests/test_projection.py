"""The banks built from the chunk cache one chunk at a time (worker/indexing/projection.py)
are those built from every row held at once; a row the cache lost stops the build."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from worker.indexing import projection
from worker.indexing.chunkcache import ChunkCache
from worker.indexing.chunks import ChunkMissing
from worker.indexing.projection import banks_from_cache, banks_from_features

BLOCKS = ((6, 0.5), (4, 0.4), (3, 0.0))
DIM = 40  # 27 model columns, then the blocks


def catalogue_and_cache(tmp_path, n_pairs=60, seed=0):
    """A catalogue whose pairs share some drawings (a front as another's back, two fronts
    one content), and a cache holding each content's row in chunks of 16, one content in two
    chunks and one no design uses."""
    rng = np.random.default_rng(seed)
    contents = [f"{i:064x}" for i in range(2 * n_pairs - 10)]
    rows = {c: rng.normal(size=DIM).astype(np.float32) + 2 for c in contents}
    fronts = [f"images/f{i}.png" for i in range(n_pairs)]
    backs = [f"images/b{i}.png" for i in range(n_pairs)]
    hashes = dict(zip(fronts + backs, contents + contents[:10], strict=True))
    hashes[fronts[-1]] = contents[1]  # two designs' fronts one drawing, under two names
    cache = ChunkCache(tmp_path, "model")
    for start in range(0, len(contents), 16):
        part = contents[start:start + 16]
        cache.write(f"k{start}", part, np.stack([rows[c] for c in part]))
    cache.write("again", contents[:3], np.stack([rows[c] for c in contents[:3]]))
    catalogue = SimpleNamespace(fronts=fronts, backs=backs)
    return catalogue, hashes, rows, cache


@pytest.mark.parametrize("whiten", [0, 12])
def test_the_banks_from_the_cache_are_those_of_every_row_held_at_once(tmp_path, whiten,
                                                                     monkeypatch):
    monkeypatch.setattr(projection, "BLOCK_ROWS", 20)  # several blocks of chunks joined
    catalogue, hashes, rows, cache = catalogue_and_cache(tmp_path)
    extractor = SimpleNamespace(whiten=whiten, appearance=BLOCKS, dim=DIM)
    copied = ([*catalogue.fronts[:20]],
              np.stack([rows[hashes[p]] + 0.1 for p in catalogue.fronts[:20]]))
    held = banks_from_features(extractor, catalogue, {p: rows[h] for p, h in hashes.items()},
                               copied if whiten else None)
    streamed = banks_from_cache(extractor, catalogue, hashes, cache,
                                copied if whiten else None)
    for ours, theirs in zip(streamed[:2], held[:2], strict=True):
        assert ours.shape == theirs.shape and ours.dtype == np.float32
    if not whiten:
        assert streamed[2] is None
        np.testing.assert_array_equal(np.hstack(streamed[:2]), np.hstack(held[:2]))
        return
    # the same whitening up to each component's sign (eigenvectors'): the same scores
    assert streamed[2].dim == held[2].dim == 12 + 13 and streamed[2].blocks == BLOCKS
    queries = np.random.default_rng(9).normal(size=(5, DIM)) + 2
    for ours, theirs in zip(streamed[:2], held[:2], strict=True):
        np.testing.assert_allclose(streamed[2].apply(queries) @ ours.T,
                                   held[2].apply(queries) @ theirs.T, atol=1e-5)
        np.testing.assert_allclose(ours @ ours.T, theirs @ theirs.T, atol=1e-5)


def test_a_content_the_cache_cannot_read_stops_the_build(tmp_path):
    catalogue, hashes, _, cache = catalogue_and_cache(tmp_path)
    (cache.folder / "k32.npz").write_bytes(b"")  # damaged after the build listed it
    extractor = SimpleNamespace(whiten=12, appearance=BLOCKS, dim=DIM)
    with pytest.raises(ChunkMissing, match="16 image"):
        banks_from_cache(extractor, catalogue, hashes, cache)


def test_a_repacked_cache_holds_every_row_in_use_and_no_other(tmp_path):
    """`prune` rewrites the rows in use into full chunks and deletes the rest."""
    catalogue, hashes, rows, cache = catalogue_and_cache(tmp_path)
    used = set(list(rows)[::4][:25])  # in every chunk, under half their rows: repacked
    deleted = cache.prune(used, DIM, chunk_images=8)
    assert deleted > 0
    found = cache.rows(set(rows), DIM)
    assert set(found) == used
    for digest in used:
        np.testing.assert_array_equal(found[digest], rows[digest])
    sizes = sorted(len(h) for _, h in cache._chunks())
    assert sizes == [1, 8, 8, 8], sizes  # full chunks, and what was left over
