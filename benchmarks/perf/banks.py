"""Synthetic feature banks for `sizes`: random unit rows, and families of related designs."""

from __future__ import annotations

import numpy as np

from worker.core.bank import FeatureBank

CLUSTER = 20  # pairs per "design family" in the clustered banks
FAMILY_COS = (0.6, 0.9)  # cosine of a clustered row to its family's centre
QUERY_COS = (0.8, 0.95)  # cosine of a near-duplicate query to the row it copies


def unit_rows(rng: np.random.Generator, n: int, dim: int,
              chunk: int = 16384) -> np.ndarray:
    """(n, dim) random float32 unit rows, generated chunk-wise."""
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - start), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:start + block.shape[0]] = block
    return out


def synthetic_bank(rng: np.random.Generator, n: int, dim: int) -> FeatureBank:
    return FeatureBank(unit_rows(rng, n, dim), unit_rows(rng, n, dim), manifest={})


def noisy_copies(rng: np.random.Generator, rows: np.ndarray, cos: tuple[float, float]) -> np.ndarray:
    """(m, dim) unit rows -> unit rows at a cosine drawn uniformly from `cos` (approximately:
    isotropic noise of norm sqrt(1/c^2 - 1) added, then normalised)."""
    m, dim = rows.shape
    c = rng.uniform(*cos, size=(m, 1)).astype(np.float32)
    sigma = np.sqrt((1.0 / c**2 - 1.0) / dim)
    out = rows + sigma * rng.standard_normal((m, dim), dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def clustered_rows(rng: np.random.Generator, n: int, dim: int, chunk: int = 16384) -> np.ndarray:
    """(n, dim) float32 unit rows in families of CLUSTER consecutive rows around random centres."""
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        first, last = start // CLUSTER, (stop - 1) // CLUSTER
        centres = unit_rows(rng, last - first + 1, dim)
        out[start:stop] = noisy_copies(rng, centres[np.arange(start, stop) // CLUSTER - first],
                                       FAMILY_COS)
    return out


def clustered_bank(rng: np.random.Generator, n: int, dim: int) -> FeatureBank:
    """Front and back families share rows (a family is a group of related designs)."""
    return FeatureBank(clustered_rows(rng, n, dim), clustered_rows(rng, n, dim), manifest={})


def near_duplicate_queries(rng: np.random.Generator, bank: FeatureBank, count: int) -> np.ndarray:
    """(count, 2, dim): noisy copies of the front and back of random pairs of `bank`."""
    rows = rng.integers(len(bank), size=count)
    return np.stack([noisy_copies(rng, np.asarray(bank.front[rows]), QUERY_COS),
                     noisy_copies(rng, np.asarray(bank.back[rows]), QUERY_COS)], axis=1)
