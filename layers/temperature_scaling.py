"""`TemperatureScaling`: logits divided by one fitted temperature (Guo et al., ICML 2017).

It lives in `layers` with the package's other Keras layers so that a calibrated `model.keras`
loads wherever `layers` is imported; `evaluation.fit_temperature` fits its T.
"""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="robust_recipes")
class TemperatureScaling(keras.layers.Layer):
    """Divides logits by a fixed temperature T (Guo et al. 2017): softmax(z / T) is calibrated.

    T is configuration, not a weight (it is fitted after training by `fit_temperature`), so it
    is saved in the `.keras` file's config. The layer computes in float32 by default, also under
    a `mixed_float16` global policy, because it sits where the loss and probabilities are taken.

    Args:
        temperature: T > 0 (finite).
        **kwargs: standard Keras layer arguments (name, dtype, ...); dtype defaults to float32.
    """

    def __init__(self, temperature: float = 1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        value = float(temperature)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        self.temperature = value

    def call(self, inputs):
        return ops.divide(ops.cast(inputs, self.compute_dtype), self.temperature)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature}
