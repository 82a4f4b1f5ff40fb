"""Feature banks: `front.npy`, `back.npy` ((n_pairs, dim) float32, rows L2-normalised,
row i = pairs.csv row i) and `manifest.json`, all in FEATURES_DIR.

Writers put new files aside and swap them in with os.replace, manifest last; readers
check each file against the sha256 the manifest records, so a reader never mixes banks.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worker.core.contract import SIDES
from worker.core.whitening import Whitening

MANIFEST = "manifest.json"
WHITENING = "whitening.npz"
FORMAT_VERSION = 1
REINDEX = "rebuild the index with `make index` (python -m worker.cli.index)"


class BankError(RuntimeError):
    """Banks missing, corrupt, or not matching the catalogue or the model; says what to do."""


@dataclass(frozen=True)
class FeatureBank:
    front: np.ndarray  # (n_pairs, dim) float32, rows L2-normalised (memory-mapped)
    back: np.ndarray  # (n_pairs, dim) float32, rows L2-normalised (memory-mapped)
    manifest: dict
    whitening: Whitening | None = None  # learned on the catalogue; queries need it too

    def __len__(self) -> int:
        return self.front.shape[0]

    def project(self, features: np.ndarray) -> np.ndarray:
        """Extractor output (n, raw dim) -> the bank's space (n, dim), rows L2-normalised."""
        return features if self.whitening is None else self.whitening.apply(features)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def manifest_stamp(features_dir: Path) -> tuple[int, int, int] | None:
    """Cheap change detector for the manifest: (inode, size, mtime_ns), None if absent."""
    try:
        st = os.stat(Path(features_dir) / MANIFEST)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def read_manifest(features_dir: Path) -> dict:
    path = Path(features_dir) / MANIFEST
    if not path.is_file():
        raise BankError(f"no feature banks in {features_dir} (no {MANIFEST}); {REINDEX}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BankError(f"{path} is corrupt ({exc}); {REINDEX}") from None
    except OSError as exc:
        raise BankError(f"{path} cannot be read ({exc.strerror or exc}); {REINDEX}") from None
    if not isinstance(manifest, dict):
        raise BankError(f"{path} is not a JSON object; {REINDEX}")
    return manifest


_manifests: dict[Path, tuple[tuple[int, int, int], dict]] = {}


def read_manifest_cached(features_dir: Path) -> dict:
    """`read_manifest`, parsed again only when the file changed (for the web's hot paths:
    every submission and health check). Callers must not modify the dict."""
    features_dir = Path(features_dir)
    stamp = manifest_stamp(features_dir)
    cached = _manifests.get(features_dir)
    if stamp is not None and cached is not None and cached[0] == stamp:
        return cached[1]
    manifest = read_manifest(features_dir)
    if stamp is not None:
        _manifests[features_dir] = (stamp, manifest)
    return manifest


def _load_side(features_dir: Path, side: str, manifest: dict) -> np.ndarray:
    path = Path(features_dir) / f"{side}.npy"
    if not path.is_file():
        raise BankError(f"{path} is missing; {REINDEX}")
    expected = manifest.get("sha256", {}).get(side)
    if expected != file_sha256(path):
        raise BankError(f"{path} does not match its manifest (changed or truncated); {REINDEX}")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise BankError(f"{path} is not a readable .npy bank ({exc}); {REINDEX}") from None
    shape = (manifest.get("n_pairs"), manifest.get("dim"))
    if array.ndim != 2 or array.shape != shape or array.dtype != np.dtype(manifest.get("dtype")):
        raise BankError(f"{path} holds {array.shape} {array.dtype}, the manifest says "
                        f"{shape} {manifest.get('dtype')}; {REINDEX}")
    if not np.isfinite(array).all():
        raise BankError(f"{path} has NaN or infinite rows; {REINDEX}")
    return array


def load_bank(features_dir: Path) -> FeatureBank:
    """Manifest plus both banks, memory-mapped and checked. Raises BankError."""
    manifest = read_manifest(features_dir)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BankError(f"{features_dir}/{MANIFEST} has format "
                        f"{manifest.get('format_version')!r}, expected {FORMAT_VERSION}; {REINDEX}")
    front, back = (_load_side(features_dir, side, manifest) for side in SIDES)
    return FeatureBank(front, back, manifest, _load_whitening(features_dir, manifest))


def _load_whitening(features_dir: Path, manifest: dict) -> Whitening | None:
    if "whitening" not in manifest.get("sha256", {}):
        return None
    path = Path(features_dir) / WHITENING
    if not path.is_file() or file_sha256(path) != manifest["sha256"]["whitening"]:
        raise BankError(f"{path} is missing or does not match its manifest; {REINDEX}")
    whitening = Whitening.load(path)
    if whitening.dim != manifest.get("dim"):
        raise BankError(f"{path} projects to {whitening.dim} dims, the banks hold "
                        f"{manifest.get('dim')}; {REINDEX}")
    return whitening


def check_bank_matches(bank: FeatureBank, catalogue_fingerprint: str, n_pairs: int,
                       weights_fingerprint: str, descriptor: str) -> None:
    """Refuse a bank built from another catalogue, other weights or another descriptor."""
    check_catalogue_matches(bank, catalogue_fingerprint, n_pairs)
    check_model_matches(bank, weights_fingerprint, descriptor)


def check_catalogue_matches(bank: FeatureBank, catalogue_fingerprint: str, n_pairs: int) -> None:
    """Refuse a bank whose rows are not the current pairs.csv's."""
    if bank.manifest.get("catalogue_fingerprint") != catalogue_fingerprint or len(bank) != n_pairs:
        raise BankError(f"the banks ({len(bank)} pairs) were built from another pairs.csv than "
                        f"the current one ({n_pairs} pairs); {REINDEX}")


def check_model_matches(bank: FeatureBank, weights_fingerprint: str, descriptor: str) -> None:
    """Refuse a bank built with other weights or another descriptor."""
    m = bank.manifest
    if m.get("descriptor") != descriptor:
        raise BankError(f"the banks hold descriptor {m.get('descriptor')!r} but this worker "
                        f"uses {descriptor!r}; set DESCRIPTOR={m.get('descriptor')} or {REINDEX}")
    built = m.get("weights", {})
    if built.get("fingerprint") != weights_fingerprint:
        raise BankError(f"the banks were built with VGG16 weights {built.get('id')!r} "
                        f"({built.get('fingerprint')}) but this worker loaded other weights "
                        f"({weights_fingerprint}); set VGG16_WEIGHTS={built.get('id')} or {REINDEX}")


def write_bank(features_dir: Path, front: np.ndarray, back: np.ndarray, manifest: dict,
               whitening: Whitening | None = None) -> None:
    """Write both banks (and the whitening) and the manifest aside, then swap them in,
    manifest last."""
    features_dir = Path(features_dir)
    features_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    manifest = {**manifest, "format_version": FORMAT_VERSION, "sha256": {}}
    staged = []
    for side, array in zip(SIDES, (front, back), strict=True):
        tmp = features_dir / f".{side}.{token}.npy"
        np.save(tmp, np.ascontiguousarray(array))
        manifest["sha256"][side] = file_sha256(tmp)
        staged.append((tmp, features_dir / f"{side}.npy"))
    if whitening is not None:
        tmp = features_dir / f".whitening.{token}.npz"
        whitening.save(tmp)
        manifest["sha256"]["whitening"] = file_sha256(tmp)
        staged.append((tmp, features_dir / WHITENING))
    tmp_manifest = features_dir / f".{MANIFEST}.{token}"
    tmp_manifest.write_text(json.dumps(manifest, indent=1))
    staged.append((tmp_manifest, features_dir / MANIFEST))
    for tmp, final in staged:
        os.replace(tmp, final)
