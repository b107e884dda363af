"""layers: anti-aliased downsampling for Keras 3 (Zhang, ICML 2019).

`BlurPool2D` (blur, then subsample), `MaxBlurPool2D` (max-pool at stride 1, then blur) and the
binomial filter they use; `antialias(model)` rewrites a model's downsampling with them.
`TemperatureScaling` divides logits by a fitted temperature (calibrated saved models).
The layers hold no weights and run on the TensorFlow and JAX backends.
"""

from layers.antialias import antialias
from layers.binomial import FILTER_SIZES, binomial_kernel_2d, binomial_row, blur_padding
from layers.blurpool import BlurPool2D, MaxBlurPool2D
from layers.padding import PAD_FUNCTIONS
from layers.temperature_scaling import TemperatureScaling

__all__ = [
    "FILTER_SIZES",
    "PAD_FUNCTIONS",
    "BlurPool2D",
    "MaxBlurPool2D",
    "TemperatureScaling",
    "antialias",
    "binomial_kernel_2d",
    "binomial_row",
    "blur_padding",
]
