"""PCA-whitening learned on the catalogue: decorrelates descriptor dimensions, so the ones
that tell designs apart count more, and shrinks the bank (1280 -> 128 dims).

numpy only. Learned at index time, stored beside the banks (`whitening.npz`, sha256 in the
manifest), applied to catalogue and query vectors alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHRINK = 0.1  # eigenvalue regularisation, as a fraction of the mean kept eigenvalue


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """(n, dim) -> (n, dim) float32 with unit rows (all-zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Whitening:
    mean: np.ndarray  # (dim_in,) float32
    projection: np.ndarray  # (dim_in, dim_out) float32

    @property
    def dim(self) -> int:
        return int(self.projection.shape[1])

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(n, dim_in) -> (n, dim_out) float32, rows L2-normalised."""
        return l2_normalise((np.asarray(x, np.float32) - self.mean) @ self.projection)

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, mean=self.mean, projection=self.projection)

    @classmethod
    def load(cls, path: Path) -> Whitening:
        with np.load(path, allow_pickle=False) as data:
            return cls(data["mean"].astype(np.float32), data["projection"].astype(np.float32))


def learn_whitening(x: np.ndarray, dims: int, shrink: float = SHRINK) -> Whitening:
    """Learn from (n, dim_in) catalogue vectors; keeps min(dims, n - 1, dim_in) components."""
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=0)
    _, singular, components = np.linalg.svd(x - mean, full_matrices=False)
    keep = max(1, min(dims, x.shape[0] - 1, x.shape[1]))
    variance = singular[:keep] ** 2 / x.shape[0]
    scale = 1.0 / np.sqrt(variance + shrink * variance.mean())
    projection = (components[:keep].T * scale).astype(np.float32)  # (dim_in, keep)
    return Whitening(mean.astype(np.float32), projection)
