"""AutoAugment (Cubuk et al. 2019): one learned sub-policy drawn per image, applied batch-wide."""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf

from augment import levels
from augment.base import Param
from augment.chain import OpChainStage
from augment.randaugment import centers, signs

# (op, probability, level) sub-policies from the AutoAugment paper, as in Model Garden augment.py.
POLICIES = {
    "v0": [
        [("Equalize", 0.8, 1), ("ShearY", 0.8, 4)],
        [("Color", 0.4, 9), ("Equalize", 0.6, 3)],
        [("Color", 0.4, 1), ("Rotate", 0.6, 8)],
        [("Solarize", 0.8, 3), ("Equalize", 0.4, 7)],
        [("Solarize", 0.4, 2), ("Solarize", 0.6, 2)],
        [("Color", 0.2, 0), ("Equalize", 0.8, 8)],
        [("Equalize", 0.4, 8), ("SolarizeAdd", 0.8, 3)],
        [("ShearX", 0.2, 9), ("Rotate", 0.6, 8)],
        [("Color", 0.6, 1), ("Equalize", 1.0, 2)],
        [("Invert", 0.4, 9), ("Rotate", 0.6, 0)],
        [("Equalize", 1.0, 9), ("ShearY", 0.6, 3)],
        [("Color", 0.4, 7), ("Equalize", 0.6, 0)],
        [("Posterize", 0.4, 6), ("AutoContrast", 0.4, 7)],
        [("Solarize", 0.6, 8), ("Color", 0.6, 9)],
        [("Solarize", 0.2, 4), ("Rotate", 0.8, 9)],
        [("Rotate", 1.0, 7), ("TranslateY", 0.8, 9)],
        [("ShearX", 0.0, 0), ("Solarize", 0.8, 4)],
        [("ShearY", 0.8, 0), ("Color", 0.6, 4)],
        [("Color", 1.0, 0), ("Rotate", 0.6, 2)],
        [("Equalize", 0.8, 4), ("Equalize", 0.0, 8)],
        [("Equalize", 1.0, 4), ("AutoContrast", 0.6, 2)],
        [("ShearY", 0.4, 7), ("SolarizeAdd", 0.6, 7)],
        [("Posterize", 0.8, 2), ("Solarize", 0.6, 10)],
        [("Solarize", 0.6, 8), ("Equalize", 0.6, 1)],
        [("Color", 0.8, 6), ("Rotate", 0.4, 5)],
    ],
    "reduced_cifar10": [
        [("Invert", 0.1, 7), ("Contrast", 0.2, 6)],
        [("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)],
        [("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)],
        [("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)],
        [("AutoContrast", 0.5, 8), ("Equalize", 0.9, 2)],
        [("ShearY", 0.2, 7), ("Posterize", 0.3, 7)],
        [("Color", 0.4, 3), ("Brightness", 0.6, 7)],
        [("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)],
        [("Equalize", 0.6, 5), ("Equalize", 0.5, 1)],
        [("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)],
        [("Color", 0.7, 7), ("TranslateX", 0.5, 8)],
        [("Equalize", 0.3, 7), ("AutoContrast", 0.4, 8)],
        [("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)],
        [("Brightness", 0.9, 6), ("Color", 0.2, 8)],
        [("Solarize", 0.5, 2), ("Invert", 0.0, 3)],
        [("Equalize", 0.2, 0), ("AutoContrast", 0.6, 0)],
        [("Equalize", 0.2, 8), ("Equalize", 0.6, 4)],
        [("Color", 0.9, 9), ("Equalize", 0.6, 6)],
        [("AutoContrast", 0.8, 4), ("Solarize", 0.2, 8)],
        [("Brightness", 0.1, 3), ("Color", 0.7, 0)],
        [("Solarize", 0.4, 5), ("AutoContrast", 0.9, 3)],
        [("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)],
        [("AutoContrast", 0.9, 2), ("Solarize", 0.8, 3)],
        [("Equalize", 0.8, 8), ("Invert", 0.1, 3)],
        [("TranslateY", 0.7, 9), ("AutoContrast", 0.9, 1)],
    ],
    "svhn": [
        [("ShearX", 0.9, 4), ("Invert", 0.2, 3)],
        [("ShearY", 0.9, 8), ("Invert", 0.7, 5)],
        [("Equalize", 0.6, 5), ("Solarize", 0.6, 6)],
        [("Invert", 0.9, 3), ("Equalize", 0.6, 3)],
        [("Equalize", 0.6, 1), ("Rotate", 0.9, 3)],
        [("ShearX", 0.9, 4), ("AutoContrast", 0.8, 3)],
        [("ShearY", 0.9, 8), ("Invert", 0.4, 5)],
        [("ShearY", 0.9, 5), ("Solarize", 0.2, 6)],
        [("Invert", 0.9, 6), ("AutoContrast", 0.8, 1)],
        [("Equalize", 0.6, 3), ("Rotate", 0.9, 3)],
        [("ShearX", 0.9, 4), ("Solarize", 0.3, 3)],
        [("ShearY", 0.8, 8), ("Invert", 0.7, 4)],
        [("Equalize", 0.9, 5), ("TranslateY", 0.6, 6)],
        [("Invert", 0.9, 4), ("Equalize", 0.6, 7)],
        [("Contrast", 0.3, 3), ("Rotate", 0.8, 4)],
        [("Invert", 0.8, 5), ("TranslateY", 0.0, 2)],
        [("ShearY", 0.7, 6), ("Solarize", 0.4, 8)],
        [("Invert", 0.6, 4), ("Rotate", 0.8, 4)],
        [("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)],
        [("ShearX", 0.1, 6), ("Invert", 0.6, 5)],
        [("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)],
        [("ShearY", 0.8, 4), ("Invert", 0.8, 8)],
        [("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)],
        [("ShearY", 0.8, 5), ("AutoContrast", 0.7, 3)],
        [("ShearX", 0.7, 2), ("Invert", 0.1, 5)],
    ],
}


def _op_name(name: str) -> str | None:
    """Level-table name of a paper or table op name, or None."""
    if name in levels.LEVEL_TO_ARG:
        return name
    return levels.PAPER_NAMES.get(name)


def check_policy(value) -> str | None:
    """Validates a named policy or a list of sub-policies of [op, probability, level]."""
    if isinstance(value, str):
        return None if value in POLICIES else f"expected one of {sorted(POLICIES)} or a list"
    expected = "a list of sub-policies, each a list of [op, probability 0..1, level 0..10]"
    if not isinstance(value, list) or not value:
        return f"expected {expected}"
    for sub in value:
        if not isinstance(sub, list | tuple) or not sub:
            return f"expected {expected}, got {sub!r}"
        for op in sub:
            ok = isinstance(op, list | tuple) and len(op) == 3 and isinstance(op[0], str)
            if not ok or _op_name(op[0]) is None:
                return f"expected {expected}; ops from {sorted(levels.PAPER_NAMES)}, got {op!r}"
            if not (0 <= op[1] <= 1 and 0 <= op[2] <= levels.MAX_LEVEL):
                return f"expected {expected}, got {op!r}"
    return None


class AutoAugment(OpChainStage):
    """One sub-policy drawn uniformly per image; each of its ops fires with its probability."""

    name = "autoaugment"
    accepts_uint8 = True
    params: ClassVar[dict[str, Param]] = {
        "policy": Param("v0", "any", check=check_policy),
        "translate_const": Param(250.0, "float", 0, 10000),
        "translate_frac": Param(None, "float", 0, 1, nullable=True),
        "cutout_const": Param(100.0, "float", 0, 10000),
        "interpolation": Param("nearest", "str", choices=("nearest", "bilinear")),
    }

    def __init__(self, **config):
        super().__init__(**config)
        policy = self.config["policy"]
        table = POLICIES[policy] if isinstance(policy, str) else policy
        length = max(len(sub) for sub in table)
        padded = [list(sub) + [("Identity", 0.0, 0)] * (length - len(sub)) for sub in table]
        self.op_names = tuple(dict.fromkeys(_op_name(op[0]) for sub in padded for op in sub))
        self.base_names = tuple(dict.fromkeys(levels.LEVEL_TO_ARG[n][0] for n in self.op_names))
        self.choices = tf.constant(
            [[self.op_names.index(_op_name(o[0])) for o in s] for s in padded]
        )
        self.probs = tf.constant([[float(o[1]) for o in s] for s in padded])
        self.level_table = tf.constant([[float(o[2]) for o in s] for s in padded])

    def uniform_count(self) -> int:
        return 1 + 4 * self.choices.shape[1]  # sub-policy; per op: apply, sign, centre (2)

    def from_uniform(self, uniform, image_shape):
        n_sub, length = self.choices.shape
        sub = tf.minimum(tf.cast(uniform[:, 0] * n_sub, tf.int32), n_sub - 1)
        per_op = tf.reshape(uniform[:, 1:], [-1, length, 4])
        base_ids, args = levels.level_to_base_args(
            self.op_names,
            tf.gather(self.choices, sub),
            tf.gather(self.level_table, sub),
            signs(per_op[..., 1]),
            self.level_hparams(image_shape),
        )
        applied = per_op[..., 0] < tf.gather(self.probs, sub)
        return {
            "base_ids": tf.where(applied, base_ids, levels.BASE_OPS.index("identity")),
            "args": args,
            "centers": centers(per_op[..., 2:4], image_shape),
        }

    def sample(self, seed, image_shape):
        uniform = tf.random.stateless_uniform([1, self.uniform_count()], seed)
        return {k: v[0] for k, v in self.from_uniform(uniform, image_shape).items()}
