"""The small CNNs of the shapes study: a plain CNN (flatten head) and one with global pooling.

The flatten head sees *where* features are, so it can learn the quadrant shortcut; global average
pooling discards position before the classifier.
"""

from __future__ import annotations

import keras

from recipes.train import HEAD_LAYER


def _features(inputs: keras.KerasTensor, widths: tuple[int, ...]) -> keras.KerasTensor:
    x = inputs
    for index, width in enumerate(widths):
        x = keras.layers.Conv2D(width, 3, padding="same", name=f"conv{index}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{index}")(x)
        x = keras.layers.ReLU(name=f"relu{index}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{index}")(x)
    return x


def plain_cnn(
    num_classes: int, input_shape: tuple[int, int, int], widths: tuple[int, ...] = (16, 32, 64)
) -> keras.Model:
    """Conv-BN-ReLU-MaxPool blocks, then flatten and a dense head named `fc` (logits)."""
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Flatten(name="flatten")(_features(inputs, widths))
    outputs = keras.layers.Dense(num_classes, dtype=keras.config.floatx(), name=HEAD_LAYER)(x)
    return keras.Model(inputs, outputs, name="cnn")


def gap_cnn(
    num_classes: int, input_shape: tuple[int, int, int], widths: tuple[int, ...] = (16, 32, 64)
) -> keras.Model:
    """The same blocks, then global average pooling and a dense head named `fc` (logits)."""
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(_features(inputs, widths))
    outputs = keras.layers.Dense(num_classes, dtype=keras.config.floatx(), name=HEAD_LAYER)(x)
    return keras.Model(inputs, outputs, name="cnn_gap")
