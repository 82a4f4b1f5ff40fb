"""Feature banks: `front.npy`, `back.npy` ((n_pairs, dim) float32, rows L2-normalised, row i =
pairs.csv row i), `whitening.npz` and `manifest.json`, with the catalogue list they were built
from (`pairs.csv`), together one generation (worker.core.generations). A writer fills a new
generation folder and switches FEATURES_DIR/CURRENT last; a reader resolves CURRENT once per
load and checks each file against the sha256 the manifest records."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worker.core import generations
from worker.core.catalogue import Catalogue, load_catalogue
from worker.core.contract import SIDES
from worker.core.whitening import Whitening

MANIFEST = "manifest.json"
WHITENING = "whitening.npz"
QUANTISED_MODEL = "model-int8.tflite"  # PRECISION=int8: the quantised layers that built the banks
COARSE_INDEX = "coarse.faiss"  # large catalogues: the search's coarse index (pipeline/ann.py)
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
    quantised: bytes | None = None  # int8 banks: the model that built them; queries need it too
    stored_coarse: Path | None = None  # the coarse index built with them (`ann.stored_index`)

    def __len__(self) -> int:
        return self.front.shape[0]

    def project(self, features: np.ndarray) -> np.ndarray:
        """Extractor output (n, raw dim) -> the bank's space (n, dim), rows L2-normalised."""
        return features if self.whitening is None else self.whitening.apply(features)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def manifest_stamp(features_dir: Path) -> tuple[str | None, int, int, int] | None:
    """Cheap change detector for the current manifest: (generation, inode, size, mtime_ns),
    None if absent. The generation's id is in it: a reused inode cannot hide a switch."""
    directory = generations.current_dir(features_dir)
    try:
        st = os.stat(directory / MANIFEST)
    except FileNotFoundError:
        return None
    return (directory.name, st.st_ino, st.st_size, st.st_mtime_ns)


def read_manifest(features_dir: Path) -> dict:
    """The current generation's manifest (or the one of the generation folder given)."""
    path = generations.current_dir(features_dir) / MANIFEST
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
    """Manifest plus both banks, memory-mapped and checked, of the current generation (or of
    the generation folder given). Raises BankError."""
    features_dir = generations.current_dir(features_dir)  # once: CURRENT may switch meanwhile
    manifest = read_manifest(features_dir)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BankError(f"{features_dir}/{MANIFEST} has format "
                        f"{manifest.get('format_version')!r}, expected {FORMAT_VERSION}; {REINDEX}")
    front, back = (_load_side(features_dir, side, manifest) for side in SIDES)
    return FeatureBank(front, back, manifest, _load_whitening(features_dir, manifest),
                       checked_blob(features_dir, manifest, "quantised_model", QUANTISED_MODEL),
                       # read and checked when used: it can always be built again
                       features_dir / COARSE_INDEX if "coarse" in manifest.get("sha256", {}) else None)


def checked_blob(features_dir: Path, manifest: dict, key: str, name: str) -> bytes | None:
    expected = manifest.get("sha256", {}).get(key)
    if expected is None and key == "quantised_model" and manifest.get("precision") == "int8":
        raise BankError(f"the banks are int8 but {MANIFEST} records no quantised model; {REINDEX}")
    if expected is None:
        return None
    path = Path(features_dir) / name
    blob = path.read_bytes() if path.is_file() else b""
    if hashlib.sha256(blob).hexdigest() != expected:
        raise BankError(f"{path} is missing or does not match its manifest; {REINDEX}")
    return blob


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
                       weights_fingerprint: str, descriptor: str, precision: str,
                       prepared: dict) -> None:
    """Refuse a bank built from another catalogue, other weights, another descriptor,
    another precision (int8 against a float one) or drawings prepared another way."""
    check_catalogue_matches(bank, catalogue_fingerprint, n_pairs)
    check_model_matches(bank, weights_fingerprint, descriptor, precision, prepared)


def check_catalogue_matches(bank: FeatureBank, catalogue_fingerprint: str, n_pairs: int) -> None:
    """Refuse a bank whose rows are not the current pairs.csv's."""
    if bank.manifest.get("catalogue_fingerprint") != catalogue_fingerprint or len(bank) != n_pairs:
        raise BankError(f"the banks ({len(bank)} pairs) were built from another pairs.csv than "
                        f"the current one ({n_pairs} pairs); {REINDEX}")


def precision_serves(built: str, precision: str) -> bool:
    """Whether a worker at `precision` may search a bank built at `built`: float32 and
    bfloat16 give the same descriptors up to rounding, an int8 bank only its own int8 model."""
    return built == precision or "int8" not in (built, precision)


def check_model_matches(bank: FeatureBank, weights_fingerprint: str, descriptor: str,
                        precision: str, prepared: dict) -> None:
    """Refuse a bank built with other weights, another descriptor, int8 against float, or from
    drawings prepared or measured otherwise than `prepared` (this version's
    `preprocess_params`) says."""
    m = bank.manifest
    built = m.get("precision") or "float32"
    if not precision_serves(built, precision):
        raise BankError(f"the banks were built at precision {built} but this worker runs "
                        f"{precision}; an int8 index is searched only with its own int8 model: "
                        f"set PRECISION={built} or {REINDEX}")
    if m.get("descriptor") != descriptor:
        raise BankError(f"the banks hold descriptor {m.get('descriptor')!r} but this worker "
                        f"uses {descriptor!r}; set DESCRIPTOR={m.get('descriptor')} or {REINDEX}")
    built = m.get("weights", {})
    if built.get("fingerprint") != weights_fingerprint:
        raise BankError(f"the banks were built with VGG16 weights {built.get('id')!r} "
                        f"({built.get('fingerprint')}) but this worker loaded other weights "
                        f"({weights_fingerprint}); set VGG16_WEIGHTS={built.get('id')} or {REINDEX}")
    # a query measured one way against rows measured another scores neither way; an index
    # from before the record was kept has none: not compared
    if m.get("preprocess") not in (None, prepared):
        raise BankError("the banks' drawings were prepared or measured another way than this "
                        f"version does it (an upgrade changed how); {REINDEX}")


def load_generation(database_dir: Path, features_dir: Path
                    ) -> tuple[Catalogue, FeatureBank, tuple | None]:
    """The current generation's catalogue (its own pairs.csv; DATABASE_DIR's for a flat
    FEATURES_DIR), banks and manifest stamp, all from one resolution of CURRENT. Unchecked
    against each other: see check_bank_matches."""
    folder = generations.current_dir(features_dir)
    stamp = manifest_stamp(folder)
    listed = folder / "pairs.csv"
    catalogue = load_catalogue(database_dir, listed if listed.is_file() else None)
    return catalogue, load_bank(folder), stamp


def _save(path: Path, write) -> str:
    """Write a file of a new generation with `write(file)`, to disk; its sha256."""
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    generations.checkpoint(f"written {path.name}")
    return file_sha256(path)


def write_bank(features_dir: Path, front: np.ndarray, back: np.ndarray, manifest: dict,
               whitening: Whitening | None = None, catalogue_csv: bytes | None = None,
               extra_files: dict[str, bytes] | None = None, quantised: bytes | None = None) -> Path:
    """Write banks, whitening, the catalogue list, `extra_files` (name -> bytes; sha256 under
    the name's stem), the int8 model and the manifest into a new generation, switch CURRENT
    to it, delete leftovers; its folder. Writers hold generations.catalogue_lock."""
    features_dir = Path(features_dir)
    features_dir.mkdir(parents=True, exist_ok=True)
    previous = generations.current_id(features_dir)
    try:
        replaced = read_manifest(features_dir).get("catalogue_fingerprint")
    except BankError:
        replaced = None
    folder = generations.new_generation(features_dir)
    manifest = {**manifest, "format_version": FORMAT_VERSION, "generation": folder.name,
                "replaces": {"generation": previous, "catalogue_fingerprint": replaced},
                "sha256": {}}
    for side, array in zip(SIDES, (front, back), strict=True):
        manifest["sha256"][side] = _save(folder / f"{side}.npy", lambda f, a=array: np.save(
            f, np.ascontiguousarray(a)))
    if whitening is not None:
        manifest["sha256"]["whitening"] = _save(folder / WHITENING, whitening.save)
    if quantised is not None:
        manifest["sha256"]["quantised_model"] = _save(folder / QUANTISED_MODEL,
                                                      lambda f: f.write(quantised))
    if catalogue_csv is not None:
        manifest["sha256"]["pairs"] = _save(folder / "pairs.csv", lambda f: f.write(catalogue_csv))
    for name, data in (extra_files or {}).items():
        manifest["sha256"][Path(name).stem] = _save(folder / name, lambda f, d=data: f.write(d))
    _save(folder / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    generations.switch_to(features_dir, folder)
    try:
        generations.clean_leftovers(features_dir, keep=previous)
    except OSError:  # the switch is done; the next writer cleans up
        pass
    generations.checkpoint("cleaned leftovers")
    return folder
