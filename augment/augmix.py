"""AugMix (Hendrycks et al. 2020), per image, and its Jensen-Shannon consistency loss."""

from __future__ import annotations

from typing import ClassVar

import keras
import tensorflow as tf

from augment import levels
from augment.base import Param, Stage, split_seed
from augment.chain import apply_op_chain
from augment.randaugment import draw_centers, draw_signs

# google-research/augmix `augmentations.augmentations`, on the shared level table.
AUGMIX_OPS = (
    "autocontrast",
    "equalize",
    "posterize_increasing",
    "rotate",
    "solarize_increasing",
    "shear_x",
    "shear_y",
    "translate_x_rel",
    "translate_y_rel",
)
# `augmentations_all` adds these four, which overlap ImageNet-C's test corruptions.
IMAGENET_C_OVERLAP_OPS = ("color", "contrast", "brightness", "sharpness")
MAX_DEPTH = 3


class AugMix(Stage):
    """Mixes ``width`` chains of 1..3 random ops with the image, with weights drawn per image.

    ``mix = sum_i w_i chain_i(x)``, ``w ~ Dirichlet(alpha)``; ``out = (1 - m) x + m mix``,
    ``m ~ Beta(alpha, alpha)``; op levels ~ U(0.1, severity); ``depth: -1`` draws U{1, 2, 3} per
    chain. With ``jsd: true`` the stage yields ``(clean, augmix_1, augmix_2)`` for the
    Jensen-Shannon consistency loss (``jensen_shannon_loss``); it must then be the last stage.
    """

    name = "augmix"
    params: ClassVar[dict[str, Param]] = {
        "severity": Param(3.0, "float", 0.1, levels.MAX_LEVEL),
        "width": Param(3, "int", 1, 10),
        "depth": Param(
            -1, "int", -1, MAX_DEPTH, check=lambda d: "expected -1, 1, 2 or 3" if d == 0 else None
        ),
        "alpha": Param(1.0, "float", 0.01, 100),
        "all_ops": Param(False, "bool"),
        "jsd": Param(False, "bool"),
        "interpolation": Param("bilinear", "str", choices=("nearest", "bilinear")),
    }

    def __init__(self, **config):
        super().__init__(**config)
        self.op_names = AUGMIX_OPS + (IMAGENET_C_OVERLAP_OPS if self.config["all_ops"] else ())
        self.base_names = (
            "identity",
            *dict.fromkeys(levels.LEVEL_TO_ARG[n][0] for n in self.op_names),
        )
        self.views = 2 if self.config["jsd"] else 1

    def sample(self, seed, image_shape):
        c = self.config
        shape = [self.views, c["width"], MAX_DEPTH]
        s_op, s_level, s_sign, s_depth, s_center, s_w, s_m = split_seed(seed, 7)
        choice = tf.random.stateless_uniform(shape, s_op, 0, len(self.op_names), dtype=tf.int32)
        level = tf.random.stateless_uniform(shape, s_level, 0.1, c["severity"])
        hparams = {
            "translate_const": 0.0,
            "cutout_const": 0.0,
            "translate_frac": 1.0 / 3.0,
            "image_size": tf.cast(image_shape[:2], tf.float32),
        }
        base_ids, args = levels.level_to_base_args(
            self.op_names, choice, level, draw_signs(shape, s_sign), hparams
        )
        if c["depth"] > 0:
            depth = tf.fill(shape[:2], c["depth"])
        else:
            depth = tf.random.stateless_uniform(shape[:2], s_depth, 1, MAX_DEPTH + 1, tf.int32)
        active = tf.range(MAX_DEPTH)[None, None, :] < depth[:, :, None]
        gamma = tf.random.stateless_gamma(shape[:2], s_w, alpha=c["alpha"])
        weights = gamma / tf.reduce_sum(gamma, axis=-1, keepdims=True)
        s_m1, s_m2 = split_seed(s_m, 2)
        g1 = tf.random.stateless_gamma([self.views], s_m1, alpha=c["alpha"])
        g2 = tf.random.stateless_gamma([self.views], s_m2, alpha=c["alpha"])
        return {
            "base_ids": tf.where(active, base_ids, levels.BASE_OPS.index("identity")),
            "args": args,
            "centers": draw_centers(shape, image_shape, s_center),
            "weights": weights,
            "mix": g1 / (g1 + g2),
        }

    def _augmix(self, images, params, view):
        mix = tf.zeros_like(images)
        for chain in range(self.config["width"]):
            chained = apply_op_chain(
                images,
                params["base_ids"][:, view, chain],
                params["args"][:, view, chain],
                params["centers"][:, view, chain],
                self.base_names,
                self.config["interpolation"],
            )
            mix += tf.reshape(params["weights"][:, view, chain], [-1, 1, 1, 1]) * chained
        m = tf.reshape(params["mix"][:, view], [-1, 1, 1, 1])
        return (1.0 - m) * images + m * mix

    def apply(self, images, params):
        if not self.config["jsd"]:
            return self._augmix(images, params, 0)
        return images, self._augmix(images, params, 0), self._augmix(images, params, 1)


def jensen_shannon_loss(labels, logits_clean, logits_aug1, logits_aug2, weight: float = 12.0):
    """AugMix training loss: cross-entropy on the clean logits + ``weight`` x Jensen-Shannon term.

    JS = mean over the batch of ``[KL(p_c || M) + KL(p_1 || M) + KL(p_2 || M)] / 3`` with
    ``M = clip((p_c + p_1 + p_2) / 3, 1e-7, 1)``, as in google-research/augmix ``imagenet.py``.

    Args:
        labels: integer ``[B]`` class ids or one-hot / soft ``[B, K]`` targets.
        logits_clean, logits_aug1, logits_aug2: ``[B, K]`` logits of the three views.
        weight: the JS coefficient (12 in the paper).

    Returns:
        The scalar loss.
    """
    ops = keras.ops
    dtype = keras.backend.result_type(logits_clean.dtype, "float32")  # float16 -> 32, float64 kept
    probs = [
        ops.softmax(ops.cast(x, dtype), axis=-1) for x in (logits_clean, logits_aug1, logits_aug2)
    ]
    log_mixture = ops.log(ops.clip((probs[0] + probs[1] + probs[2]) / 3.0, 1e-7, 1.0))
    js = (
        sum(ops.sum(p * (ops.log(ops.clip(p, 1e-12, 1.0)) - log_mixture), axis=-1) for p in probs)
        / 3.0
    )
    if len(labels.shape) == 1:
        ce = keras.losses.sparse_categorical_crossentropy(labels, logits_clean, from_logits=True)
    else:
        ce = keras.losses.categorical_crossentropy(labels, logits_clean, from_logits=True)
    return ops.mean(ce) + weight * ops.mean(js)
