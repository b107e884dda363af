"""MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019) as batch stages, lambda per element.

The partner of element i is element B-1-i (the reversed batch, as in timm and Model Garden).
Labels are one-hot (optionally smoothed) before mixing. Mixed images are float32 in the input's
value range (uint8 inputs are not rounded back, which would lose the mix).
"""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf

from augment.base import BatchStage, Param, split_seed, stateless_beta


def smooth_labels(labels: tf.Tensor, smoothing: float) -> tf.Tensor:
    """timm targets: off = s / K, on = 1 - s + off."""
    classes = tf.cast(tf.shape(labels)[-1], tf.float32)
    return labels * (1.0 - smoothing) + smoothing / classes


class MixUp(BatchStage):
    """``x = lam x + (1 - lam) x_partner``, same for labels; ``lam ~ Beta(alpha, alpha)`` per
    element, applied to each element with probability ``probability``."""

    name = "mixup"
    params: ClassVar[dict[str, Param]] = {
        "alpha": Param(0.2, "float", 1e-6, 100),
        "probability": Param(1.0, "float", 0, 1),
        "label_smoothing": Param(0.0, "float", 0, 1),
    }

    def draw_lambda(self, batch: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Per-element mixing weights (1 where the element is not mixed)."""
        s_lam, s_apply = split_seed(seed, 2)
        lam = stateless_beta([batch], self.config["alpha"], s_lam)
        applied = tf.random.stateless_uniform([batch], s_apply) < self.config["probability"]
        return tf.where(applied, lam, 1.0)

    def apply_batch(self, images, labels, seed):
        labels = smooth_labels(labels, self.config["label_smoothing"])
        lam = self.draw_lambda(tf.shape(images)[0], seed)
        lam_images = tf.reshape(lam, [-1, 1, 1, 1])
        images = lam_images * images + (1.0 - lam_images) * images[::-1]
        return images, lam[:, None] * labels + (1.0 - lam[:, None]) * labels[::-1]


def cutmix_boxes(
    lam: tf.Tensor, height: tf.Tensor, width: tf.Tensor, seed: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """CutMix boxes clipped to the image and lambda corrected to the clipped area.

    Box sides are ``int(H sqrt(1 - lam))`` and ``int(W sqrt(1 - lam))``, centre uniform over the
    pixels (timm ``rand_bbox``). Returns a boolean mask ``[B, H, W, 1]`` (True = from the partner)
    and the corrected ``lam = 1 - box_area / (H W)``.
    """
    hf, wf = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    cut = tf.sqrt(1.0 - lam)
    cut_h, cut_w = tf.floor(hf * cut), tf.floor(wf * cut)
    centers = tf.floor(tf.random.stateless_uniform([tf.shape(lam)[0], 2], seed) * [hf, wf])
    y0 = tf.clip_by_value(centers[:, 0] - tf.floor(cut_h / 2), 0.0, hf)
    y1 = tf.clip_by_value(centers[:, 0] + tf.floor(cut_h / 2), 0.0, hf)
    x0 = tf.clip_by_value(centers[:, 1] - tf.floor(cut_w / 2), 0.0, wf)
    x1 = tf.clip_by_value(centers[:, 1] + tf.floor(cut_w / 2), 0.0, wf)
    rows = tf.cast(tf.range(height), tf.float32)[None, :, None]
    cols = tf.cast(tf.range(width), tf.float32)[None, None, :]
    mask = (
        (rows >= y0[:, None, None])
        & (rows < y1[:, None, None])
        & (cols >= x0[:, None, None])
        & (cols < x1[:, None, None])
    )
    corrected = 1.0 - (y1 - y0) * (x1 - x0) / (hf * wf)
    return mask[..., None], corrected


class CutMix(MixUp):
    """Pastes a box of the partner image; labels weighted by the actual (clipped) box area."""

    name = "cutmix"
    params: ClassVar[dict[str, Param]] = {
        "alpha": Param(1.0, "float", 1e-6, 100),
        "probability": Param(1.0, "float", 0, 1),
        "label_smoothing": Param(0.0, "float", 0, 1),
    }

    def apply_batch(self, images, labels, seed):
        labels = smooth_labels(labels, self.config["label_smoothing"])
        s_lam, s_box = split_seed(seed, 2)
        shape = tf.shape(images)
        mask, lam = cutmix_boxes(self.draw_lambda(shape[0], s_lam), shape[1], shape[2], s_box)
        images = tf.where(mask, images[::-1], images)
        return images, lam[:, None] * labels + (1.0 - lam[:, None]) * labels[::-1]
