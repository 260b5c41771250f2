"""The symbol classifier: a small Keras CNN (well under 2 MB of weights)."""
from __future__ import annotations

import keras
from keras import layers

from workers.pipeline.preprocess import INPUT_SIZE
from workers.pipeline.symbols import NUM_CLASSES



def _conv_block(x, filters: int, name: str):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def build_model(num_classes: int = NUM_CLASSES, width: int = 32, channels: int = 1) -> keras.Model:
    """Conv-BN-ReLU blocks with light geometric augmentation that is active only in training.

    ``width`` is the number of filters of the first block (the next blocks have 2× and 4×).
    Inference time grows with its square: 16 is about four times cheaper than 32.
    ``channels``: one per stroke method the crops are prepared with (each crop read both ways: 2).
    """
    inputs = keras.Input(shape=(INPUT_SIZE, INPUT_SIZE, channels), name="crop")
    x = layers.RandomRotation(0.03, fill_mode="constant", name="aug_rotate")(inputs)
    x = layers.RandomTranslation(0.06, 0.06, fill_mode="constant", name="aug_shift")(x)
    x = layers.RandomZoom((-0.08, 0.08), fill_mode="constant", name="aug_zoom")(x)
    x = _conv_block(x, width, "b1a")
    x = _conv_block(x, width, "b1b")
    x = layers.MaxPooling2D(name="pool1")(x)  # 14×14
    x = _conv_block(x, 2 * width, "b2a")
    x = _conv_block(x, 2 * width, "b2b")
    x = layers.MaxPooling2D(name="pool2")(x)  # 7×7
    x = _conv_block(x, 4 * width, "b3")
    x = layers.MaxPooling2D(name="pool3")(x)  # 3×3
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.3, name="drop1")(x)
    x = layers.Dense(128, use_bias=False, name="fc")(x)
    x = layers.BatchNormalization(name="fc_bn")(x)
    x = layers.Activation("relu", name="fc_relu")(x)
    x = layers.Dropout(0.3, name="drop2")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="symbol_cnn")
