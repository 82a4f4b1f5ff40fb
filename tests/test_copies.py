"""Synthetic copies the learned whitening is made from: what a copier changes, reproducibly."""

from __future__ import annotations

import numpy as np

from worker.dev.sample import draw_side, make_designs
from worker.indexing.copies import chosen
from worker.pipeline.copies import recolour, synthetic_copy
from worker.pipeline.preprocess import to_canvas


def canvas(i: int = 3) -> np.ndarray:
    return to_canvas(draw_side(make_designs(8, 7)[i], "front"), True)


def test_a_copy_is_the_same_for_the_same_seed_and_another_for_another():
    original = canvas()
    copy = synthetic_copy(original, 11)
    assert copy.shape == (224, 224, 3) and copy.dtype == np.uint8
    np.testing.assert_array_equal(copy, synthetic_copy(original, 11))
    assert not np.array_equal(copy, synthetic_copy(original, 12))
    assert not np.array_equal(copy, original)


def test_recolouring_changes_the_colours_and_keeps_the_paper_and_the_layout():
    original = canvas()
    recoloured = recolour(original, np.random.default_rng(0))
    paper = (original >= 245).all(-1)
    np.testing.assert_array_equal(recoloured[paper], original[paper])
    drawn = ~paper
    assert np.abs(recoloured[drawn].astype(int) - original[drawn]).mean() > 20
    assert (recoloured >= 245).all(-1).sum() >= paper.sum() * 0.99  # no paper drawn over


def test_the_copied_sample_is_the_smallest_hashes_each_content_once():
    hashes = {f"img{i}.png": f"{(i * 7919) % 1000:04d}" for i in range(50)}
    hashes["dup.png"] = hashes["img3.png"]
    picked = chosen(hashes, limit=10)
    assert list(picked) == sorted(set(hashes.values()))[:10]
    assert all(hashes[rel] == digest for digest, rel in picked.items())
    # one more image leaves the sample as it was unless its hash is among the smallest
    assert chosen({**hashes, "new.png": "9999"}, limit=10) == picked
