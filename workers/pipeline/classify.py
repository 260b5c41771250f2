"""The symbol classifier at inference: loaded once, compiled once, called once per page.

:class:`SymbolClassifier` traces a registry version's Keras model once as a
``tf.function`` with a fixed input signature, and compiles that graph for the
LiteRT interpreter (in memory, at load): every page costs one call whatever its
number of symbols (no ``model.predict`` per symbol), and a second one on the rare page
where a group the first call doubted gets cuts (:mod:`workers.pipeline.recognize`). The compiled model keeps its
weights as int8 (dynamic-range quantisation): for a canvas line's ten crops one
width-16 CNN takes 0.46 ms instead of 1.3 ms in float, so the served three-model
ensemble costs what one float model did. Probabilities move by at most a few
hundredths and no class read changes (tested; on the held-out test split the
largest change is 0.036). Should a model not convert, the float graph serves.
Either way the probabilities are scaled by the version's fitted temperature
(:mod:`workers.pipeline.calibration`), so that confidences mean what they say.
TensorFlow is imported here and only here in the pipeline.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from workers.pipeline.calibration import apply_temperature, temperature_of
from workers.pipeline.errors import raised_by
from workers.pipeline.preprocess import INPUT_SIZE, stroke_channels, stroke_method_of
from workers.pipeline.symbols import CLASSES, MODEL_CLASSES, symbol_columns

log = logging.getLogger(__name__)


class ModelFault(RuntimeError):
    """The model answered with numbers that are not probabilities (NaN or infinite).

    No image gives such an input (crops are in [0, 1]), so the fault is the model's or the
    process's: a version with broken weights, or TensorFlow's process-wide state broken by a
    signal that struck inside it (seen in this project's own tests). Every later reading in the
    process would be garbage, so it is raised, never decoded into an answer.
    """


def configure_threads(threads: int | None) -> None:
    """Set TF's thread pools; must run before TF executes anything in this process."""
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # TF already initialised in this process: keep its pools


class SymbolClassifier:
    """Probabilities over CLASSES for a batch of 28×28 inputs.

    A model that also outputs NOT_ONE_SYMBOL (two touching symbols) serves its symbol
    columns only, not renormalised: each row then sums to the chance that the crop is one
    symbol, so a whole the model doubts weighs less against its cut in the decoder.
    """

    def __init__(self, version: str | None = None, models_root: Path | None = None, threads: int | None = None,
                 propagate: tuple[type[BaseException], ...] = ()):
        """``propagate``: errors never to be absorbed while loading (a worker's time limit, which
        its pool raises from a signal handler wherever the process is, even inside LiteRT's compiler)."""
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from models import registry

        threads = threads if threads is not None else int(os.environ.get("TF_NUM_THREADS", "0") or 0)
        configure_threads(threads)
        import tensorflow as tf

        self.version = version or registry.active_version(models_root)
        labels = registry.load_labels(self.version, models_root)
        if tuple(labels) not in (CLASSES, MODEL_CLASSES):
            raise ValueError(f"model {self.version} has classes {labels}, the pipeline expects {list(MODEL_CLASSES)}")
        model = registry.load_model(self.version, models_root)
        config = registry.load_config(self.version, models_root)
        self.temperature = temperature_of(config)
        # Crops become this model's inputs the way its training data did.
        self.stroke_method = stroke_method_of(config)
        self.channels = len(stroke_channels(self.stroke_method))  # one per method (a mixed ensemble's two)
        self._function = tf.function(
            lambda batch: model(batch, training=False),
            input_signature=[tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, self.channels], tf.float32)],
            reduce_retracing=True,
        )
        self._model = model
        # Trace now, not on the first job, and keep the traced graph: calling it directly skips
        # the tf.function's argument binding.
        self._graph = self._function.get_concrete_function()
        self._to_tensor = tf.constant
        self._lite = _LiteModel.compile(self._graph, model, threads, propagate)
        self.predict(np.zeros((1, INPUT_SIZE, INPUT_SIZE, self.channels), np.float32))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, len(CLASSES)), np.float32)
        batch = np.asarray(batch, dtype=np.float32)
        if self._lite is not None:
            probabilities = self._lite(batch)
        else:
            probabilities = self._graph(self._to_tensor(batch)).numpy()
        if not np.isfinite(probabilities).all():
            raise ModelFault(f"model {self.version} answered NaN or infinite values for a batch of {len(batch)}")
        return self._served(probabilities)

    def predict_with_tensorflow(self, batch: np.ndarray) -> np.ndarray:
        """The traced TensorFlow graph, bypassing LiteRT: what the LiteRT path is checked against."""
        return self._served(self._graph(self._to_tensor(np.asarray(batch, dtype=np.float32))).numpy())

    def _served(self, probabilities: np.ndarray) -> np.ndarray:
        """The model's output as the pipeline reads it: calibrated, symbol columns only."""
        return symbol_columns(apply_temperature(probabilities, self.temperature))


class _LiteModel:
    """The traced graph compiled for the LiteRT interpreter. An interpreter is not safe to
    share between threads: calls take a lock (a worker process runs one job at a time)."""

    def __init__(self, interpreter):
        self._interpreter = interpreter
        self._input = interpreter.get_input_details()[0]["index"]
        self._output = interpreter.get_output_details()[0]["index"]
        self._shape: tuple[int, ...] | None = None
        self._lock = threading.Lock()

    @classmethod
    def compile(cls, graph, model, threads: int | None, propagate: tuple[type[BaseException], ...] = ()) -> "_LiteModel | None":
        try:
            import tensorflow as tf
            from ai_edge_litert.interpreter import Interpreter

            converter = tf.lite.TFLiteConverter.from_concrete_functions([graph], model)
            # Weights stored as int8, activations float (dynamic-range quantisation): on x86 with
            # XNNPACK a call costs a third of the float graph's, which pays for an ensemble.
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            flatbuffer = converter.convert()
            return cls(Interpreter(model_content=flatbuffer, num_threads=threads or -1))
        except Exception as error:  # an op LiteRT lacks, or no LiteRT: the TensorFlow graph serves
            if (passing := raised_by(error, propagate)) is not None:
                raise passing
            log.warning("LiteRT could not compile the model, using the TensorFlow graph: %s", error)
            return None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            if batch.shape != self._shape:
                self._interpreter.resize_tensor_input(self._input, batch.shape)
                self._interpreter.allocate_tensors()
                self._shape = batch.shape
            self._interpreter.set_tensor(self._input, batch)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output)
