"""Duplicates inside the catalogue, as a generation stores them: `duplicates.npz`, the pairs of
designs judged at least the lowest verdict (computed by `worker.pipeline.duplicates` when the
generation is written), read here and grouped for the web and the CLI.

Pairs are computed once per generation, not per request: the web never loads the banks, and
an all-pairs pass over a large catalogue takes minutes (docs/performance.md). The file is
written into the new generation before CURRENT switches and its sha256 is in the manifest,
so the pairs a reader sees are always those of the banks it sees.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import numpy as np

from worker.core import generations
from worker.core.bank import MANIFEST, REINDEX, BankError, file_sha256
from worker.core.contract import Verdict
from worker.core.readcache import StampedCache

DUPLICATES = "duplicates.npz"
SKETCHED_CATALOGUE = 0.5  # from this share of line sketches on, a catalogue is one of sketches
VERDICTS: tuple[str, ...] = get_args(Verdict)  # most serious first
DEFAULT_MIN_VERDICT = "near-duplicate"


@dataclass(frozen=True)
class DuplicatePairs:
    """(m,) arrays, one entry per pair of catalogue rows a < b, most serious first; and each
    row's two nearest other rows, from which a pair's lead is judged."""

    a: np.ndarray  # int32 row in pairs.csv and the banks
    b: np.ndarray  # int32, > a
    score: np.ndarray  # float32: w * front.front + (1 - w) * back.back, w = front_weight
    judged: np.ndarray  # float32: what the verdict judges (worker.pipeline.duplicates)
    similarity: np.ndarray  # uint8, 0-100
    verdict: np.ndarray  # uint8 index into VERDICTS
    nearest: np.ndarray  # (n, 2) int32: each row's best and second other row (-1: none)
    nearest_score: np.ndarray  # (n, 2) float32: their scores (-inf: none)
    front_weight: float
    min_score: float  # every pair judged at least this is listed (the lowest verdict's threshold)
    method: str  # "exact" (every pair scored) or "coarse" (a range search; docs/quality.md)
    sketched: np.ndarray | None = None  # (n, 2) bool: each row's sides drawn as line sketches

    def __len__(self) -> int:
        return int(self.a.shape[0])

    def leadless(self) -> np.ndarray:
        """(n,) bool: the rows judged without their lead (`sketched_designs`)."""
        return sketched_designs(self.sketched, len(self.nearest))

    def summary(self, thresholds: dict[str, float] | None) -> dict:
        """What a manifest records of them, with the thresholds they were judged by."""
        return {"pairs": len(self), "method": self.method, "front_weight": self.front_weight,
                "min_score": self.min_score, "thresholds": thresholds}

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        meta = {"front_weight": self.front_weight, "min_score": self.min_score,
                "method": self.method, "verdicts": list(VERDICTS)}
        np.savez(buf, a=self.a.astype(np.int32), b=self.b.astype(np.int32),
                 score=self.score.astype(np.float32), judged=self.judged.astype(np.float32),
                 similarity=self.similarity.astype(np.uint8), verdict=self.verdict.astype(np.uint8),
                 nearest=self.nearest.astype(np.int32),
                 nearest_score=self.nearest_score.astype(np.float32), meta=np.array(json.dumps(meta)),
                 **({} if self.sketched is None else {"sketched": self.sketched.astype(bool)}))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> DuplicatePairs:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("verdicts") != list(VERDICTS):
                raise ValueError(f"verdicts {meta.get('verdicts')} are not {list(VERDICTS)}")
            arrays = [z[k] for k in ("a", "b", "score", "judged", "similarity", "verdict",
                                     "nearest", "nearest_score")]
            return cls(*arrays, float(meta["front_weight"]), float(meta["min_score"]),
                       str(meta["method"]),  # a list written before the flags has none
                       z["sketched"] if "sketched" in z.files else None)


def sketched_designs(sketched: np.ndarray | None, n_rows: int) -> np.ndarray:
    """(n_rows,) bool: the catalogue designs drawn as line sketches on both sides (`sketched`:
    (n_rows, 2) bool, None: none known), where the catalogue is of coloured drawings (under
    SKETCHED_CATALOGUE of its sides sketched); in a catalogue of sketches, none. The list
    judges them without their lead: every sketch of a garment draws the same empty garment."""
    if sketched is None or not len(sketched) or sketched.mean() >= SKETCHED_CATALOGUE:
        return np.zeros(n_rows, bool)
    return np.asarray(sketched, bool).all(axis=1)


def read_duplicates(features_dir: Path) -> tuple[dict, DuplicatePairs]:
    """The current generation's manifest and duplicate pairs, from one resolution of CURRENT
    (the pairs are checked against the sha256 the manifest records). Raises BankError."""
    folder = generations.current_dir(features_dir)
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BankError(f"no feature banks in {features_dir} (no {MANIFEST}); {REINDEX}") from None
    except (OSError, ValueError) as exc:
        raise BankError(f"{path} cannot be read ({exc}); {REINDEX}") from None
    expected = manifest.get("sha256", {}).get("duplicates") if isinstance(manifest, dict) else None
    if expected is None:
        raise BankError(f"the index in {features_dir} was built before duplicates were listed; "
                        f"{REINDEX}")
    try:
        if file_sha256(folder / DUPLICATES) != expected:
            raise ValueError("it does not match its manifest")
        return manifest, DuplicatePairs.from_bytes((folder / DUPLICATES).read_bytes())
    except (OSError, ValueError, KeyError) as exc:
        raise BankError(f"{folder / DUPLICATES} is missing or corrupt ({exc}); {REINDEX}") from None


# the web's pages and API read them again only when the generation changed
read_duplicates_cached = StampedCache(read_duplicates).get


def _roots(a: np.ndarray, b: np.ndarray) -> dict[int, int]:
    """Union-find over the rows the edges (a[i], b[i]) join: each such row's root (the
    smallest row of its group)."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving
            x = parent[x]
        return x

    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    return {x: find(x) for x in list(parent)}


def duplicate_groups(pairs: DuplicatePairs, names: list[str],
                     min_verdict: str = DEFAULT_MIN_VERDICT) -> list[dict]:
    """Connected groups of designs joined by pairs judged at least `min_verdict`:
    [{"designs": [names, catalogue order], "pairs": [{"a", "b", "similarity", "verdict"}, best
    first], "sketches": [its designs judged without their lead, catalogue order]}], the group
    with the most serious pair first."""
    keep = pairs.verdict <= VERDICTS.index(min_verdict)
    a, b, score = pairs.a[keep], pairs.b[keep], pairs.judged[keep]
    sim, verdict = pairs.similarity[keep], pairs.verdict[keep]
    if not len(a):
        return []
    roots = _roots(a, b)
    groups: dict[int, dict] = {}
    for i in np.argsort(-score, kind="stable").tolist():
        group = groups.setdefault(roots[int(a[i])], {"rows": set(), "pairs": []})
        group["rows"].update((int(a[i]), int(b[i])))
        group["pairs"].append({"a": names[a[i]], "b": names[b[i]],
                               "similarity": int(sim[i]), "verdict": VERDICTS[verdict[i]]})
    leadless = pairs.leadless()
    return [{"designs": [names[r] for r in sorted(g["rows"])], "pairs": g["pairs"],
             "sketches": [names[r] for r in sorted(g["rows"]) if leadless[r]]}
            for g in groups.values()]
