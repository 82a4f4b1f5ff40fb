"""PCA-whitening learned on the catalogue: decorrelates descriptor dimensions, so the ones
that tell designs apart count more, and shrinks the bank (1280 -> 128 dims).

numpy only. Learned at index time, stored beside the banks (`whitening.npz`, sha256 in the
manifest), applied to catalogue and query vectors alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SHRINK = 0.1  # eigenvalue regularisation, as a fraction of the mean kept eigenvalue
# a block of weight 0 is kept as measured, times this, after the unit row: its products add
# under 1e-5 to any dot product, and the exact-match bonus reads it back (worker/pipeline/exact.py)
RAW_SCALE = 1e-3


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """(n, dim) -> (n, dim) float32 with unit rows (all-zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Whitening:
    """The model's columns whitened; appearance columns after them (`blocks`: their sizes
    and weights) centred on the catalogue and weighted, each block L2-normalised; a block of
    weight 0 (measurements, not a direction) kept raw after the unit row (RAW_SCALE)."""

    mean: np.ndarray  # (dim_in,) float32
    projection: np.ndarray  # (dim_in, dim_out) float32
    block_mean: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    blocks: tuple[tuple[int, float], ...] = ()  # (size, weight) of each appearance block

    @property
    def dim(self) -> int:
        return int(self.projection.shape[1]) + int(self.block_mean.size)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(n, dim_in + appearance) -> (n, dim) float32, rows L2-normalised."""
        x = np.asarray(x, np.float32)
        start = self.mean.size
        parts, raw = [l2_normalise((x[:, :start] - self.mean) @ self.projection)], []
        for size, weight in self.blocks:
            if weight == 0:
                raw.append(RAW_SCALE * x[:, start:start + size])
            else:
                centred = x[:, start:start + size] - self.block_mean[start - self.mean.size:][:size]
                parts.append(weight * l2_normalise(centred))
            start += size
        row = l2_normalise(np.hstack(parts)) if len(parts) > 1 else parts[0]
        return np.hstack([row, *raw]) if raw else row

    def raw_columns(self) -> slice | None:
        """The columns of the raw blocks (weight 0, after every weighted one), None without."""
        raw = sum(size for size, weight in self.blocks if weight == 0)
        return slice(self.dim - raw, self.dim) if raw else None

    def outline_only(self, y: np.ndarray) -> np.ndarray:
        """(n, dim) projected rows -> the same with only the first appearance block (the
        silhouette) kept, rows L2-normalised (and the raw blocks, as they were); unchanged
        without appearance blocks. Against whole catalogue rows this scores the silhouette
        alone, scaled by its share."""
        if not self.blocks:
            return y
        start, raw = int(self.projection.shape[1]), self.raw_columns()
        kept = np.zeros_like(y)
        kept[:, start:start + self.blocks[0][0]] = y[:, start:start + self.blocks[0][0]]
        kept = l2_normalise(kept)
        if raw is not None:  # the outline's proportions, as measured
            kept[:, raw] = y[:, raw]
        return kept

    def without_outline(self, y: np.ndarray) -> np.ndarray:
        """(n, dim) projected rows -> the same without the silhouette and the raw blocks
        (the outline's proportions), rows L2-normalised: a crop's outline is its frame's.
        Against whole catalogue rows this scores the rest, scaled by its share."""
        if not self.blocks:
            return y
        start, raw = int(self.projection.shape[1]), self.raw_columns()
        kept = y.copy()
        kept[:, start:start + self.blocks[0][0]] = 0.0
        if raw is not None:
            kept[:, raw] = 0.0
        return l2_normalise(kept)

    def save(self, path) -> None:
        """To a path or an open binary file."""
        sizes, weights = (np.array([b[i] for b in self.blocks], np.float32) for i in (0, 1))
        if not hasattr(path, "write"):
            with open(path, "wb") as f:
                return self.save(f)
        np.savez(path, mean=self.mean, projection=self.projection, block_mean=self.block_mean,
                 block_sizes=sizes, block_weights=weights)

    @classmethod
    def load(cls, path: Path) -> Whitening:
        with np.load(path, allow_pickle=False) as data:
            blocks = tuple(zip(data["block_sizes"].astype(int).tolist(),
                               data["block_weights"].astype(float).tolist(), strict=True)) \
                if "block_sizes" in data else ()
            block_mean = data["block_mean"] if "block_mean" in data else np.zeros(0)
            return cls(data["mean"].astype(np.float32), data["projection"].astype(np.float32),
                       block_mean.astype(np.float32), blocks)


class Moments:
    """The sums of catalogue rows that a whitening is learned from: a build adds its rows chunk
    by chunk and never holds them all (a million pairs' raw rows are 12 GB as float32).
    Sums of (x - shift), the first rows' mean, so that centring subtracts no large terms."""

    def __init__(self, model_dims: int):
        self.model_dims = model_dims
        self.n = 0
        self.shift: np.ndarray | None = None  # (dim_in,) float64
        self.total: np.ndarray | None = None  # sum of (x - shift)
        self.scatter: np.ndarray | None = None  # sum of (x - shift)(x - shift)^T, model columns

    @classmethod
    def of(cls, x: np.ndarray, blocks: tuple[tuple[int, float], ...] = ()) -> Moments:
        """The moments of (n, dim_in) rows whose last columns are the appearance `blocks`."""
        moments = cls(x.shape[1] - sum(size for size, _ in blocks))
        moments.add(x)
        return moments

    def add(self, x: np.ndarray) -> None:
        x = np.array(x, np.float64)  # a copy, shifted in place
        if not len(x):
            return
        if self.shift is None:
            self.shift = x.mean(axis=0)
            self.total = np.zeros_like(self.shift)
            self.scatter = np.zeros((self.model_dims, self.model_dims))
        x -= self.shift
        self.n += len(x)
        self.total += x.sum(axis=0)
        self.scatter += x[:, :self.model_dims].T @ x[:, :self.model_dims]

    @property
    def mean(self) -> np.ndarray:
        return self.shift + self.total / self.n

    def centred_scatter(self) -> np.ndarray:
        """sum of (x - mean)(x - mean)^T over the model columns."""
        offset = self.total[:self.model_dims] / self.n
        return self.scatter - self.n * np.outer(offset, offset)


def learn_whitening(x: np.ndarray, dims: int, shrink: float = SHRINK,
                    blocks: tuple[tuple[int, float], ...] = (),
                    copies: tuple[np.ndarray, np.ndarray] | None = None) -> Whitening:
    """Learn from (n, dim_in) catalogue vectors (appearance `blocks` last, centred only);
    keeps min(dims, n - 1, model dims) whitened components. See `whitening_from`."""
    return whitening_from(Moments.of(np.asarray(x), blocks), dims, shrink, blocks, copies)


def whitening_from(moments: Moments, dims: int, shrink: float = SHRINK,
                   blocks: tuple[tuple[int, float], ...] = (),
                   copies: tuple[np.ndarray, np.ndarray] | None = None) -> Whitening:
    """Learn from the catalogue rows' `moments`.

    With `copies` ((m, dim_in) rows of catalogue images, (m, dim_in) rows of a synthetic copy
    of each: worker/pipeline/copies.py), the model's columns are first whitened by how copies
    differ from their originals, then rotated onto the catalogue's principal components in
    that space (learned whitening, Radenovic et al. 2018): what copiers change counts less."""
    weights = [weight for _, weight in blocks]
    # raw blocks last: `raw_columns` and every reader of the weighted blocks count on it
    if 0 in weights and any(weights[weights.index(0):]):
        raise ValueError("raw blocks (weight 0) must come after every weighted block")
    model_dims, mean = moments.model_dims, moments.mean
    scatter = moments.centred_scatter()
    keep = max(1, min(dims, moments.n - 1, model_dims))
    if copies is None:
        projection = _pca_whitening(scatter, moments.n, keep, shrink)
    else:
        originals, copied = (np.asarray(c, np.float64)[:, :model_dims] for c in copies)
        within = _inverse_sqrt(_scatter(originals - copied), shrink)  # (dim_in, dim_in)
        spread = within @ scatter @ within  # the catalogue's scatter in the copies' whitened space
        eigenvalues, vectors = np.linalg.eigh((spread + spread.T) / 2)
        projection = within @ vectors[:, np.argsort(eigenvalues)[::-1][:keep]]
    return Whitening(mean[:model_dims].astype(np.float32), projection.astype(np.float32),
                     mean[model_dims:].astype(np.float32), tuple(blocks))


def _scatter(centred: np.ndarray) -> np.ndarray:
    return centred.T @ centred / max(1, centred.shape[0])


def _inverse_sqrt(covariance: np.ndarray, shrink: float) -> np.ndarray:
    """C^-1/2 of (C + shrink * mean eigenvalue * I): directions no copy varied in are not
    blown up without bound."""
    eigenvalues, vectors = np.linalg.eigh(covariance)
    eigenvalues = np.maximum(eigenvalues, 0.0)
    eigenvalues = eigenvalues + shrink * max(eigenvalues.mean(), 1e-12)
    return (vectors / np.sqrt(eigenvalues)) @ vectors.T


def _pca_whitening(scatter: np.ndarray, n: int, keep: int, shrink: float) -> np.ndarray:
    """(dim_in, keep): the top principal components of the centred `scatter` of n rows, each
    scaled to unit variance."""
    # eigenvectors of the (dim_in, dim_in) scatter matrix: the SVD's components up to sign, at
    # a cost that grows with n only through the sums
    eigenvalues, vectors = np.linalg.eigh(scatter)
    order = np.argsort(eigenvalues)[::-1]
    variance = np.maximum(eigenvalues[order[:keep]], 0.0) / n
    variance = variance + shrink * variance.mean()
    # no variance at all (a catalogue of one image): the direction says nothing, not NaN
    scale = np.divide(1.0, np.sqrt(variance), out=np.zeros_like(variance), where=variance > 0)
    return vectors[:, order[:keep]] * scale
