"""RandAugment (Cubuk et al. 2020): ops and magnitudes drawn per image, applied batch-wide."""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf

from augment import levels
from augment.base import Param
from augment.chain import OpChainStage

# Model Garden's 16 ops plus identity (which Model Garden reaches through its default branch).
DEFAULT_OPS = (
    "identity",
    "autocontrast",
    "equalize",
    "invert",
    "rotate",
    "posterize",
    "solarize",
    "color",
    "contrast",
    "brightness",
    "sharpness",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "cutout",
    "solarize_add",
)


def check_op_names(names) -> str | None:
    """Validates a list of op names against the level table."""
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        return "expected a list of op names"
    unknown = [n for n in names if n not in levels.LEVEL_TO_ARG]
    if unknown:
        return f"unknown ops {unknown}; allowed: {sorted(levels.LEVEL_TO_ARG)}"
    return None


def signs(uniform: tf.Tensor) -> tf.Tensor:
    """Random +-1 signs from U[0, 1) samples."""
    return tf.where(uniform < 0.5, -1.0, 1.0)


def centers(uniform: tf.Tensor, image_shape: tf.Tensor) -> tf.Tensor:
    """Cutout centres (row, col), uniform over the pixels, from U[0, 1) samples ``[..., 2]``."""
    return tf.floor(uniform * tf.cast(image_shape[:2], tf.float32))


def draw_signs(shape, seed: tf.Tensor) -> tf.Tensor:
    """Random +-1 signs."""
    return signs(tf.random.stateless_uniform(shape, seed))


def draw_centers(shape, image_shape: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Cutout centres (row, col), uniform over the pixels, shape ``shape + [2]``."""
    return centers(tf.random.stateless_uniform([*shape, 2], seed), image_shape)


class RandAugment(OpChainStage):
    """``num_ops`` ops drawn uniformly with replacement per image, each at level ``magnitude``.

    With ``magnitude_std`` > 0 the level is ``magnitude + magnitude_std * N(0, 1)`` per op, clipped
    to [0, 10] (Model Garden ignores the std value and always uses 1; timm uses it, as here). Each
    op is applied with probability ``prob``. Unlike Keras' ``RandAugment`` layer, ops are drawn per
    image and magnitudes follow the paper's two-sided table.
    """

    name = "randaugment"
    accepts_uint8 = True
    params: ClassVar[dict[str, Param]] = {
        "num_ops": Param(2, "int", 0, 10),
        "magnitude": Param(9.0, "float", 0, levels.MAX_LEVEL),
        "magnitude_std": Param(0.0, "float", 0, levels.MAX_LEVEL),
        "prob": Param(1.0, "float", 0, 1),
        "ops": Param(list(DEFAULT_OPS), "any", check=check_op_names),
        "exclude": Param([], "any", check=check_op_names),
        "translate_const": Param(100.0, "float", 0, 10000),
        "translate_frac": Param(None, "float", 0, 1, nullable=True),
        "cutout_const": Param(40.0, "float", 0, 10000),
        "interpolation": Param("nearest", "str", choices=("nearest", "bilinear")),
    }

    def __init__(self, **config):
        super().__init__(**config)
        self.op_names = tuple(n for n in self.config["ops"] if n not in self.config["exclude"])
        if not self.op_names:
            raise ValueError("randaugment: 'ops' minus 'exclude' leaves no op to draw")
        self.base_names = tuple(dict.fromkeys(levels.LEVEL_TO_ARG[n][0] for n in self.op_names))

    def uniform_count(self) -> int:
        return 6 * self.config["num_ops"]  # per op: choice, level, sign, apply, centre (2)

    def from_uniform(self, uniform, image_shape):
        c = self.config
        n = c["num_ops"]
        uniform = tf.reshape(uniform, [-1, n, 6])
        count = len(self.op_names)
        choice = tf.minimum(tf.cast(uniform[..., 0] * count, tf.int32), count - 1)
        level = tf.fill(tf.shape(choice), float(c["magnitude"]))
        if c["magnitude_std"] > 0:  # inverse normal CDF; clipping bounds the tails
            level += c["magnitude_std"] * tf.math.ndtri(tf.maximum(uniform[..., 1], 1e-7))
        level = tf.clip_by_value(level, 0.0, levels.MAX_LEVEL)
        hparams = self.level_hparams(image_shape)
        base_ids, args = levels.level_to_base_args(
            self.op_names, choice, level, signs(uniform[..., 2]), hparams
        )
        applied = uniform[..., 3] < c["prob"]
        identity = levels.BASE_OPS.index("identity")
        return {
            "base_ids": tf.where(applied, base_ids, identity),
            "args": args,
            "centers": centers(uniform[..., 4:6], image_shape),
        }

    def sample(self, seed, image_shape):
        uniform = tf.random.stateless_uniform([1, self.uniform_count()], seed)
        return {k: v[0] for k, v in self.from_uniform(uniform, image_shape).items()}
