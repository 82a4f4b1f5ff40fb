"""PCA-whitening: learned on catalogue vectors, stored with the banks, applied to queries."""

from __future__ import annotations

import numpy as np
import pytest

from worker.core.bank import BankError, load_bank, write_bank
from worker.core.generations import current_dir
from worker.core.whitening import SHRINK, Moments, l2_normalise, learn_whitening, whitening_from


def vectors(n=60, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    # correlated dims: a few strong directions dominate, as in CNN descriptors
    return l2_normalise(rng.normal(size=(n, 4)) @ rng.normal(size=(4, dim)) * 5
                        + rng.normal(size=(n, dim)))


def test_whitening_reduces_dims_and_keeps_unit_rows():
    x = vectors()
    w = learn_whitening(x, dims=16)
    y = w.apply(x)
    assert y.shape == (60, 16) and y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    assert learn_whitening(x[:10], dims=16).dim == 9, "never more dims than samples - 1"


def test_whitening_decorrelates_the_catalogue():
    x = vectors()
    y = (x - x.mean(0)) @ learn_whitening(x, dims=8, shrink=0.0).projection
    cov = np.cov(y, rowvar=False)
    np.testing.assert_allclose(cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov))), np.eye(8),
                               atol=1e-5)
    # ... and whitens it: unit variance along every kept direction, not only no correlation
    np.testing.assert_allclose(np.cov(y, rowvar=False, bias=True), np.eye(8), atol=1e-5)


def test_bank_round_trip_with_whitening(tmp_path):
    x = vectors()
    w = learn_whitening(x, dims=16)
    front, back = w.apply(x[:30]), w.apply(x[30:])
    manifest = {"n_pairs": 30, "dim": 16, "dtype": "float32"}
    write_bank(tmp_path, front, back, manifest, w)
    bank = load_bank(tmp_path)
    np.testing.assert_allclose(bank.project(x[:2]), front[:2], atol=1e-6)
    (current_dir(tmp_path) / "whitening.npz").write_bytes(b"garbage")
    with pytest.raises(BankError, match="whitening.npz"):
        load_bank(tmp_path)


def test_the_projection_keeps_the_inner_products_of_the_principal_components():
    """Learned from the scatter matrix; the reference is the SVD of the centred rows."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((400, 96)) @ rng.standard_normal((96, 96))).astype(np.float32)
    whitening = learn_whitening(x, 32)
    centred = x.astype(np.float64) - x.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    variance = singular[:32] ** 2 / len(x)
    reference = components[:32].T / np.sqrt(variance + SHRINK * variance.mean())
    queries = rng.standard_normal((10, 96)) - x.mean(axis=0)
    ours, theirs = queries @ whitening.projection, queries @ reference
    np.testing.assert_allclose(ours @ ours.T, theirs @ theirs.T, rtol=1e-4, atol=1e-6)


def test_whitening_learned_from_copies_ignores_what_the_copies_change():
    """Catalogue items differ along a few directions; a copy changes one of those (as a
    colourway changes colour) and keeps the rest. Learned from the copies, the whitening
    finds an item's copy; plain PCA-whitening is led astray by the changed direction."""
    rng = np.random.default_rng(3)
    n, dim = 200, 24
    items = rng.normal(size=(n, dim))
    items[:, 0] *= 8  # what copiers change varies most across the catalogue, too
    copies = items + rng.normal(scale=0.05, size=(n, dim))
    copies[:, 0] = rng.normal(scale=8, size=n)
    learned = learn_whitening(items, 12, copies=(items, copies))
    plain = learn_whitening(items, 12)

    def found(w):
        scores = w.apply(copies) @ w.apply(items).T
        return float(np.mean(scores.argmax(axis=1) == np.arange(n)))

    assert found(learned) == 1.0 and found(plain) < 0.9
    assert learned.projection.shape == (dim, 12)
    np.testing.assert_allclose(np.linalg.norm(learned.apply(items), axis=1), 1.0, atol=1e-5)


def test_copies_leave_the_appearance_blocks_centred_only():
    x = vectors(n=80, dim=40)
    blocks = ((6, 0.5), (4, 0.4))
    copied = x + np.random.default_rng(4).normal(scale=0.1, size=x.shape)
    w = learn_whitening(x, 8, blocks=blocks, copies=(x, copied))
    assert w.projection.shape == (30, 8) and w.blocks == blocks
    np.testing.assert_allclose(w.block_mean, x[:, 30:].mean(axis=0), atol=1e-6)


@pytest.mark.parametrize("with_copies", [False, True])
def test_moments_added_chunk_by_chunk_learn_the_whitening_of_all_rows_at_once(with_copies):
    """A build adds its rows chunk by chunk (worker/indexing/projection.py); the whitening
    must be the one the rows would give held together, copies and appearance blocks too."""
    rng = np.random.default_rng(5)
    x = vectors(n=300, dim=40, seed=5) + 3.0  # far from the origin: centring must hold up
    x[:20] += 2.0  # the first chunk, whose mean the sums are shifted by, unlike the rest
    blocks = ((6, 0.5), (4, 0.0))
    copies = (x[:50], x[:50] + rng.normal(scale=0.1, size=(50, 40))) if with_copies else None
    whole = learn_whitening(x, 12, blocks=blocks, copies=copies)
    moments = Moments(30)
    for part in np.array_split(x, 15):
        moments.add(part)
    moments.add(x[:0])  # an empty chunk changes nothing
    chunked = whitening_from(moments, 12, blocks=blocks, copies=copies)
    np.testing.assert_allclose(chunked.mean, whole.mean, atol=1e-6)
    np.testing.assert_allclose(chunked.block_mean, x[:, 30:].mean(axis=0), atol=1e-6)
    queries = vectors(n=20, dim=40, seed=6) + 3.0
    np.testing.assert_allclose(chunked.apply(queries) @ chunked.apply(x).T,
                               whole.apply(queries) @ whole.apply(x).T, atol=1e-4)
    reference = _pca_reference(x[:, :30], 12) if copies is None else \
        _learned_reference(x[:, :30], copies[0][:, :30], copies[1][:, :30], 12)
    centred = queries[:, :30] - x[:, :30].mean(axis=0)
    ours, theirs = centred @ chunked.projection, centred @ reference  # components' signs aside
    np.testing.assert_allclose(ours @ ours.T, theirs @ theirs.T, rtol=1e-4, atol=1e-6)


def _pca_reference(x: np.ndarray, keep: int) -> np.ndarray:
    """PCA-whitening from the SVD of the centred rows."""
    _, singular, components = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    variance = singular[:keep] ** 2 / len(x)
    return components[:keep].T / np.sqrt(variance + SHRINK * variance.mean())


def _learned_reference(x: np.ndarray, originals: np.ndarray, copied: np.ndarray,
                       keep: int) -> np.ndarray:
    """Learned whitening as first written: the copies' differences whitened away, then the
    principal directions of the centred rows themselves in that space."""
    differences = originals - copied
    eigenvalues, vectors_ = np.linalg.eigh(differences.T @ differences / len(differences))
    eigenvalues = np.maximum(eigenvalues, 0) + SHRINK * np.maximum(eigenvalues, 0).mean()
    within = (vectors_ / np.sqrt(eigenvalues)) @ vectors_.T
    spread = (x - x.mean(axis=0)) @ within
    eigenvalues, vectors_ = np.linalg.eigh(spread.T @ spread)
    return within @ vectors_[:, np.argsort(eigenvalues)[::-1][:keep]]


@pytest.mark.parametrize("copies", [False, True])
def test_a_catalogue_of_one_image_gives_zero_rows_not_nan(copies):
    """One image (a design whose front and back are one file, alone) has no variance to
    whiten: its rows and a query's were NaN with the PCA whitening, which no score survives."""
    x = vectors(n=1, dim=20)
    copied = (x, x + 0.01) if copies else None
    w = learn_whitening(x, 8, copies=copied)
    rows = w.apply(np.vstack([x, x + 0.01, vectors(n=3, dim=20, seed=1)]))
    assert np.isfinite(rows).all() and rows.shape == (5, 1)
    assert not rows[0].any()  # the catalogue's own image is its mean: nothing left
