"""Stage 3: score the query pair against the banks and keep the top k."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worker.bank import FeatureBank


@dataclass(frozen=True)
class SearchHit:
    rank: int  # 1-based
    index: int  # row in pairs.csv and in the banks
    score: float
    front_score: float
    back_score: float


def score_pairs(bank: FeatureBank, q_front: np.ndarray, q_back: np.ndarray,
                front_weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dim,) unit queries -> three (n_pairs,) float32: total, front and back cosine scores.

    total = w * (front_q . front_bank) + (1 - w) * (back_q . back_bank), w = front_weight.
    """
    front_scores = bank.front @ q_front
    back_scores = bank.back @ q_back
    return front_weight * front_scores + (1.0 - front_weight) * back_scores, front_scores, back_scores


def top_k(bank: FeatureBank, q_front: np.ndarray, q_back: np.ndarray, k: int,
          front_weight: float) -> list[SearchHit]:
    """The k best pairs, best first (ties broken by catalogue order)."""
    total, front_scores, back_scores = score_pairs(bank, q_front, q_back, front_weight)
    k = min(k, total.shape[0])
    candidates = np.argpartition(-total, k - 1)[:k] if k < total.shape[0] else np.arange(k)
    order = candidates[np.lexsort((candidates, -total[candidates]))]
    return [SearchHit(rank, int(i), float(total[i]), float(front_scores[i]),
                      float(back_scores[i])) for rank, i in enumerate(order, start=1)]
