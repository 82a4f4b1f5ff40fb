"""Stage 2: (n, 224, 224, 3) uint8 canvases -> (n, dim) float32 descriptors, rows L2-normalised.

With `worker.pipeline.descriptors`, the only modules that import TensorFlow. One `FeatureExtractor`
per process.
"""

from __future__ import annotations

import copy
import logging
import os

import numpy as np

from worker.core.settings import InvalidSetting
from worker.core.whitening import l2_normalise
from worker.pipeline.weights import (
    WeightsChoice,
    file_digest,
    fingerprint,
    load_bsds500_into,
    resolve_weights,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from worker.pipeline.appearance import appearance  # noqa: E402
from worker.pipeline.descriptors import DESCRIPTORS, Descriptor  # noqa: E402
from worker.pipeline.precision import resolve_precision  # noqa: E402
from worker.pipeline.quantise import QuantisedModel, quantise  # noqa: E402

log = logging.getLogger(__name__)


class UnknownDescriptor(InvalidSetting):
    pass


def get_descriptor(name: str) -> Descriptor:
    try:
        return DESCRIPTORS[name]
    except KeyError:
        raise UnknownDescriptor(
            f"unknown DESCRIPTOR {name!r}; choose one of {', '.join(DESCRIPTORS)}"
        ) from None


def build_vgg16(choice: WeightsChoice) -> keras.Model:
    """VGG16 without its classifier, weights loaded as `choice` says."""
    if choice.id == "imagenet":
        return keras.applications.VGG16(weights="imagenet", include_top=False,
                                        input_shape=(224, 224, 3))
    if choice.seed is not None:
        keras.utils.set_random_seed(choice.seed)
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    if choice.id == "bsds500":
        load_bsds500_into(model, choice.path)
    elif choice.path is not None:
        model.load_weights(str(choice.path))
    return model


class FeatureExtractor:
    """One VGG16 and one descriptor. `extract` is the whole stage.

    At int8 the layers run in a quantised copy of the model (`quantised`), made from the
    float model at index time (`quantise`) or loaded from the index (`use_quantised`);
    the float32 VGG16 stays for that and for the weights' fingerprint."""

    def __init__(self, weights: str = "auto", descriptor: str = "flatten",
                 precision: str = "float32"):
        spec = get_descriptor(descriptor)
        choice = resolve_weights(weights)
        self.precision, self.precision_reason = resolve_precision(precision, descriptor)
        self.quantised: QuantisedModel | None = None
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_bfloat16" if self.precision == "bfloat16"
                                      else "float32")
        try:
            vgg = build_vgg16(choice)  # variables stay float32; bfloat16 only in the compute
        finally:
            keras.config.set_dtype_policy(previous)
        self.weights_choice = choice
        self.weights_fingerprint = fingerprint(vgg)
        self.descriptor = descriptor
        self.trim = spec.trim  # preprocessing crops to the drawing first (see preprocess.to_canvas)
        self.grey = spec.grey
        self.whiten = spec.whiten  # learned per catalogue at index time, applied by the bank
        self.appearance = spec.appearance  # model-free columns after the model's
        self.copies = spec.copies  # the index learns its whitening from synthetic copies
        self.layers = spec.layers
        self.model = keras.Model(vgg.input, [vgg.get_layer(name).output for name in spec.layers])
        self._pool = tf.function(spec.pool, reduce_retracing=True, autograph=False)
        self._forward = tf.function(lambda x: spec.pool(self._feature_maps(x)),
                                    reduce_retracing=True, autograph=False)
        self.dim = int(self._forward(tf.zeros((1, 224, 224, 3))).shape[-1]) + \
            sum(size for size, _ in spec.appearance)
        log.info("VGG16 ready: weights=%s (%s) descriptor=%s dim=%d precision=%s",
                 self.weights_id, self.weights_fingerprint, descriptor, self.dim, self.precision)

    def _feature_maps(self, x: tf.Tensor) -> list[tf.Tensor]:
        """(n, 224, 224, 3) float32 -> the spec's layer outputs, always as a list."""
        outputs = self.model(x, training=False)
        outputs = list(outputs) if isinstance(outputs, list | tuple) else [outputs]
        return [tf.cast(o, tf.float32) for o in outputs]  # pool in float32 whatever the compute

    def model_input(self, canvases: np.ndarray) -> np.ndarray:
        """(n, 224, 224, 3) uint8 RGB -> (n, 224, 224, 3) float32 as VGG16 takes it."""
        x = canvases.astype(np.float32)
        if self.grey:  # ITU-R 601 luma, replicated to three channels
            x = np.repeat(x @ np.array([[0.299], [0.587], [0.114]], np.float32), 3, axis=-1)
        return keras.applications.vgg16.preprocess_input(x)

    def extract(self, canvases: np.ndarray) -> np.ndarray:
        """(n, 224, 224, 3) uint8 RGB -> (n, dim) float32: the model's descriptor with unit
        rows, then the appearance columns if the descriptor has them (the bank weighs them)."""
        rows = self.model_rows(canvases)
        if not self.appearance:
            return rows
        return np.hstack([rows, appearance(canvases, len(self.appearance))])

    def model_rows(self, canvases: np.ndarray) -> np.ndarray:
        """The forward pass alone: (n, 224, 224, 3) uint8 -> the pooled descriptor, unit rows
        (what a latency target counts as a pass; the appearance columns are numpy work)."""
        x = self.model_input(canvases)
        if self.precision == "int8":
            model = self.quantised  # read once: `use_quantised` may swap it meanwhile
            if model is None:
                raise RuntimeError("PRECISION=int8 needs the index's quantised model: build "
                                   "the index at int8 or load a bank built at int8")
            pooled = self._pool([tf.constant(m) for m in model.run(x)])
        else:
            pooled = self._forward(tf.constant(x))
        return l2_normalise(pooled.numpy())

    @property
    def weights_id(self) -> str:
        return self.weights_choice.id

    @property
    def weights_file(self) -> str | None:
        """The weights file's digest, which an index records for `index --if-needed`
        (hashed when asked: a worker never needs it)."""
        return file_digest(self.weights_choice)

    @property
    def model_id(self) -> str | None:
        """What computes the feature maps beside the weights: the quantised model's sha256
        at int8, None for the float model."""
        model = self.quantised
        return None if model is None else model.sha256

    def quantise(self) -> bytes:
        """Quantise the layers the descriptor reads (activations per image at run time); use
        the result and return it."""
        self.use_quantised(quantise(self.model))
        return self.quantised.blob

    def use_quantised(self, blob: bytes) -> None:
        """Extract with this int8 flatbuffer (an index's) from now on."""
        self.quantised = QuantisedModel(blob)

    def with_quantised(self, blob: bytes) -> FeatureExtractor:
        """A copy of this extractor that runs another int8 model (a distributed build's);
        this one is left as it is (the two share the float model and the pooling)."""
        other = copy.copy(self)
        other.quantised = QuantisedModel(blob)
        return other

    def feature_maps(self, canvases: np.ndarray) -> list[np.ndarray]:
        """(n, 224, 224, 3) uint8 RGB -> the maps the descriptor pools, one (n, h, w, c)
        float32 array per layer (28x28 for block4, 14x14 for block5), before pooling; always
        from the float model (a match view explains, it does not rank)."""
        return [m.numpy() for m in self._feature_maps(tf.constant(self.model_input(canvases)))]

    def warm_up(self) -> None:
        """Trace and run the graph once so the first real search is not the slow one."""
        if self.precision != "int8" or self.quantised is not None:
            self.extract(np.full((2, 224, 224, 3), 255, dtype=np.uint8))
