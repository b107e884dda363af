"""Patch Gaussian (Lopes et al. 2019): Gaussian noise inside one random square patch."""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf

from augment.base import Param, Stage, split_seed


def _check_patch_size(value) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    is_range = isinstance(value, list) and len(value) == 2
    ok = ok or (is_range and all(isinstance(v, int) for v in value) and 0 <= value[0] <= value[1])
    return None if ok else "expected an integer >= 1 or a list [min, max] of integers"


class PatchGaussian(Stage):
    """Adds N(0, sigma^2) noise, sigma ~ U(0, max_sigma) on the [0, 1] scale, inside one square.

    The patch side is ``patch_size`` (or ~ U_int[min, max] when a list); its centre is uniform over
    the pixels and it is clipped at the border (even sides extend towards the top-left, as in
    ``object_detection/utils/patch_ops.py``). Noisy values are clipped to the value range. Applied
    with probability ``probability``.
    """

    name = "patch_gaussian"
    params: ClassVar[dict[str, Param]] = {
        "patch_size": Param(25, "any", check=_check_patch_size),
        "max_sigma": Param(1.0, "float", 0, 10),
        "probability": Param(1.0, "float", 0, 1),
    }

    def sample(self, seed, image_shape):
        s_size, s_sigma, s_center, s_noise, s_apply = split_seed(seed, 5)
        size = self.config["patch_size"]
        low, high = (size, size) if isinstance(size, int) else size
        side = tf.random.stateless_uniform([], s_size, low, high + 1, dtype=tf.int32)
        applied = tf.random.stateless_uniform([], s_apply) < self.config["probability"]
        hw = tf.cast(image_shape[:2], tf.float32)
        return {
            "side": tf.where(applied, side, 0),
            "sigma": tf.random.stateless_uniform([], s_sigma, 0.0, self.config["max_sigma"]),
            "center": tf.floor(tf.random.stateless_uniform([2], s_center) * hw),
            "noise_seed": s_noise,
        }

    def apply(self, images, params):
        shape = tf.shape(images)
        noise = tf.map_fn(
            lambda s: tf.random.stateless_normal(shape[1:], s),
            params["noise_seed"],
            fn_output_signature=tf.float32,
        )
        sigma = tf.reshape(params["sigma"], [-1, 1, 1, 1])
        noisy = tf.clip_by_value(images / 255.0 + sigma * noise, 0.0, 1.0) * 255.0
        start = params["center"] - tf.cast(params["side"] // 2, tf.float32)[:, None]
        end = start + tf.cast(params["side"], tf.float32)[:, None]
        rows = tf.cast(tf.range(shape[1]), tf.float32)[None, :, None]
        cols = tf.cast(tf.range(shape[2]), tf.float32)[None, None, :]
        inside = (
            (rows >= start[:, 0, None, None])
            & (rows < end[:, 0, None, None])
            & (cols >= start[:, 1, None, None])
            & (cols < end[:, 1, None, None])
        )
        return tf.where(inside[..., None], noisy, images)
