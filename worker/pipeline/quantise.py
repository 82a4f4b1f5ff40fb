"""int8 feature maps: the VGG16 layers a descriptor reads, quantised after training, and the
interpreter that runs them (part of the extract stage; imports TensorFlow).

Post-training quantisation by TensorFlow's converter (`tf.lite.TFLiteConverter`: LiteRT has
none for Keras models): weights int8 per output channel. Activations are quantised to int8
per image at run time (dynamic range: XNNPACK's qd8 kernels take each image's own range), so
no representative set fixes them in advance and a query unlike the catalogue is not clipped;
the median catalogue canvas comes 3.6x closer to float32 than with ranges calibrated on 16
canvases, for 5-10 % more time (docs/quality.md). The model runs in LiteRT (`ai_edge_litert`,
the maintained successor of `tf.lite.Interpreter`) with its XNNPACK delegate, which uses the
CPU's VNNI int8 instructions, or its AMX tiles where the CPU has them. `representative`
canvases give the full-integer model instead (static ranges), kept for
`benchmarks.int8_fidelity`'s comparison.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from worker.core.bank import REINDEX, BankError


def quantise(model: keras.Model, representative: np.ndarray | None = None) -> bytes:
    """`model` ((n, 224, 224, 3) float32 -> its outputs) as an int8 LiteRT flatbuffer:
    activations quantised per image at run time, or with `representative` ((n, 224, 224, 3)
    float32, preprocessed) to ranges fixed by those."""
    def samples() -> Iterator[list[np.ndarray]]:
        for row in representative:
            yield [row[None]]

    with tempfile.TemporaryDirectory(prefix="quantise-") as saved:
        model.export(saved, verbose=False)  # a SavedModel: variables frozen by the converter
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if representative is not None:
            converter.representative_dataset = samples
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()


def threads() -> int:
    return len(os.sched_getaffinity(0))


class QuantisedModel:
    """One int8 flatbuffer in a LiteRT interpreter: `run` maps (n, 224, 224, 3) float32 to
    the model's outputs in its Keras order. One pass at a time (the interpreter is not
    thread-safe); the input is resized only when the batch size changes."""

    def __init__(self, blob: bytes):
        self.blob = blob
        self.sha256 = hashlib.sha256(blob).hexdigest()
        try:  # its checksum matched: written by a converter this LiteRT cannot read
            self._interpreter = Interpreter(model_content=blob, num_threads=threads())
            self._runner = self._interpreter.get_signature_runner()
        except (ValueError, RuntimeError) as exc:
            raise BankError(f"the index's int8 model cannot be loaded by this worker's LiteRT "
                            f"({exc}); {REINDEX} with the versions the workers run") from None
        self._input = next(iter(self._runner.get_input_details()))
        # Keras exports outputs as output_0, output_1, ...: sort by their index, not as strings
        self._outputs = sorted(self._runner.get_output_details(),
                               key=lambda name: int(name.rsplit("_", 1)[-1]))
        self._lock = threading.Lock()

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """(n, 224, 224, 3) float32 -> [(n, h, w, c) float32, ...], one per layer read."""
        with self._lock:
            result = self._runner(**{self._input: np.ascontiguousarray(x, np.float32)})
            return [result[name] for name in self._outputs]
