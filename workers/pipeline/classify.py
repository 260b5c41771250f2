"""The symbol classifier at inference: loaded once, compiled once, called once per page.

:class:`SymbolClassifier` wraps a registry version's Keras model in a
``tf.function`` with a fixed input signature, so every page costs one traced
graph call whatever its number of symbols (no ``model.predict`` per symbol).
TensorFlow is imported here and only here in the pipeline.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from workers.pipeline.preprocess import INPUT_SIZE
from workers.pipeline.symbols import CLASSES


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
    """Probabilities over CLASSES for a batch of 28×28 inputs."""

    def __init__(self, version: str | None = None, models_root: Path | None = None, threads: int | None = None):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from models import registry

        threads = threads if threads is not None else int(os.environ.get("TF_NUM_THREADS", "0") or 0)
        configure_threads(threads)
        import tensorflow as tf

        self.version = version or registry.active_version(models_root)
        labels = registry.load_labels(self.version, models_root)
        if tuple(labels) != CLASSES:
            raise ValueError(f"model {self.version} has classes {labels}, the pipeline expects {list(CLASSES)}")
        model = registry.load_model(self.version, models_root)
        self._function = tf.function(
            lambda batch: model(batch, training=False),
            input_signature=[tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 1], tf.float32)],
            reduce_retracing=True,
        )
        self._model = model
        # Trace now, not on the first job, and keep the traced graph: calling it directly skips
        # the tf.function's argument binding, a tenth of a canvas line's time.
        self._graph = self._function.get_concrete_function()
        self._to_tensor = tf.constant
        self.predict(np.zeros((1, INPUT_SIZE, INPUT_SIZE, 1), np.float32))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, len(CLASSES)), np.float32)
        return self._graph(self._to_tensor(np.asarray(batch, dtype=np.float32))).numpy()
