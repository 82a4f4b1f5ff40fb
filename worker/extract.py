"""Stage 2: (n, 224, 224, 3) uint8 canvases -> (n, dim) float32 descriptors, rows L2-normalised.

The only module that imports TensorFlow. One `FeatureExtractor` per process.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from worker.bank import l2_normalise
from worker.weights import WeightsChoice, fingerprint, load_bsds500_into, resolve_weights

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

log = logging.getLogger(__name__)

# descriptor name -> (VGG16 layer it reads, how it pools)
DESCRIPTORS = {
    "flatten": "block5_pool flattened (7*7*512 = 25088), L2-normalised (the seed's descriptor)",
}


class UnknownDescriptor(ValueError):
    pass


def build_vgg16(choice: WeightsChoice) -> keras.Model:
    """VGG16 without its classifier, weights loaded as `choice` says."""
    if choice.id == "imagenet":
        return keras.applications.VGG16(weights="imagenet", include_top=False,
                                        input_shape=(224, 224, 3))
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    if choice.id == "bsds500":
        load_bsds500_into(model, choice.path)
    else:
        model.load_weights(str(choice.path))
    return model


def _descriptor_head(vgg: keras.Model, descriptor: str) -> keras.Model:
    if descriptor == "flatten":
        out = keras.layers.Flatten()(vgg.get_layer("block5_pool").output)
        return keras.Model(vgg.input, out, name="vgg16_flatten")
    raise UnknownDescriptor(
        f"unknown DESCRIPTOR {descriptor!r}; choose one of {', '.join(DESCRIPTORS)}"
    )


class FeatureExtractor:
    """One VGG16 and one descriptor. `extract` is the whole stage."""

    def __init__(self, weights: str = "auto", descriptor: str = "flatten"):
        if descriptor not in DESCRIPTORS:
            raise UnknownDescriptor(
                f"unknown DESCRIPTOR {descriptor!r}; choose one of {', '.join(DESCRIPTORS)}"
            )
        choice = resolve_weights(weights)
        vgg = build_vgg16(choice)
        self.weights_id = choice.id
        self.weights_fingerprint = fingerprint(vgg)
        self.descriptor = descriptor
        self.model = _descriptor_head(vgg, descriptor)
        self.dim = int(self.model.output.shape[-1])
        self._forward = tf.function(self.model, reduce_retracing=True)
        log.info("VGG16 ready: weights=%s (%s) descriptor=%s dim=%d", self.weights_id,
                 self.weights_fingerprint, descriptor, self.dim)

    def extract(self, canvases: np.ndarray) -> np.ndarray:
        """(n, 224, 224, 3) uint8 RGB -> (n, dim) float32, rows L2-normalised."""
        x = keras.applications.vgg16.preprocess_input(canvases.astype(np.float32))
        return l2_normalise(self._forward(tf.constant(x), training=False).numpy())

    def warm_up(self) -> None:
        """Trace and run the graph once so the first real search is not the slow one."""
        self.extract(np.full((2, 224, 224, 3), 255, dtype=np.uint8))
