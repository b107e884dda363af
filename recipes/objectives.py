"""What a training step minimises: the task loss, plus stability training's KL term.

Task losses, chosen by the augmentation policy: cross-entropy on (possibly mixed, soft) one-hot
labels, or AugMix's Jensen-Shannon loss on a replica batch stacked as [clean; aug1; aug2] (whole
triplets per replica). Stability training (Zheng et al., CVPR 2016; `recipes.losses`) adds
`alpha * mean KL(p(x) || p(x'))`, with x' the batch plus Gaussian noise of std `sigma` on the
[0, 1] scale; the noisy copy is made in the input pipeline, keyed to each example's global index
(so it does not depend on the number of workers), and its forward pass is a second call of the
model in the same step, with the gradient flowing through both branches.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import tensorflow as tf

import augment
from recipes.losses import gaussian_perturbation, stability_loss

STABILITY_FORM = "gaussian:SIGMA[:ALPHA] (e.g. gaussian:0.04 or gaussian:0.04:0.01)"
DEFAULT_STABILITY_ALPHA = 0.01  # the paper's


@dataclasses.dataclass(frozen=True)
class Stability:
    """Stability training's noise std (on the [0, 1] scale) and weight of the KL term."""

    sigma: float
    alpha: float = DEFAULT_STABILITY_ALPHA


def parse_stability(spec: str | None) -> Stability | None:
    """`gaussian:SIGMA[:ALPHA]` -> Stability; None or "none" -> None.

    Raises:
        ValueError: one line naming the spec and the allowed form.
    """
    if spec is None or spec == "none":
        return None
    parts = spec.split(":")
    problem = None
    if parts[0] != "gaussian" or len(parts) not in (2, 3):
        problem = "unknown form"
    else:
        try:
            numbers = [float(part) for part in parts[1:]]
        except ValueError:
            numbers, problem = [], "SIGMA and ALPHA must be numbers"
        if not problem and not all(math.isfinite(n) and n > 0 for n in numbers):
            problem = "SIGMA and ALPHA must be finite and > 0"
    if problem:
        raise ValueError(f"stability {spec!r}: {problem}; allowed: {STABILITY_FORM}")
    return Stability(*numbers)


def noisy_copy(images: tf.Tensor, indices: tf.Tensor, sigma: float, seed: int) -> tf.Tensor:
    """Each image plus its own noise, drawn from (seed, the image's global element index).

    Args:
        images: [n, H, W, C] in [0, 255].
        indices: [n] int64 global element indices.
        sigma: noise std on the [0, 1] scale.
        seed: the run's seed.

    Returns:
        float32 [n, H, W, C] in [0, 255].
    """
    seeds = tf.stack([tf.fill(tf.shape(indices), tf.cast(seed, tf.int64)), indices], axis=1)
    return tf.map_fn(
        lambda args: gaussian_perturbation(args[0], sigma, args[1]),
        (tf.cast(images, tf.float32), seeds),
        fn_output_signature=tf.float32,
    )


def cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Mean softmax cross-entropy against one-hot or soft labels."""
    return keras.ops.mean(keras.losses.categorical_crossentropy(labels, logits, from_logits=True))


def augmix_jensen_shannon(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """AugMix's loss on logits of a batch stacked as [clean; aug1; aug2] (labels of `clean`)."""
    n = tf.shape(labels)[0]
    return augment.jensen_shannon_loss(labels, logits[:n], logits[n : 2 * n], logits[2 * n :])


class Objective:
    """The per-replica training loss of a batch.

    Args:
        yields_triplets: the policy yields AugMix triplets (Jensen-Shannon loss).
        stability: stability training's settings, or None.
    """

    def __init__(self, yields_triplets: bool, stability: Stability | None):
        self.task_loss = augmix_jensen_shannon if yields_triplets else cross_entropy
        self.stability = stability

    def __call__(
        self, model: keras.Model, inputs, labels: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Forward pass(es) and the mean loss over this replica's examples.

        Args:
            model: the logits model.
            inputs: normalised images, or (images, noisy clean images) with stability training.
            labels: [n, K] one-hot or soft labels of the n examples (triplets count once).

        Returns:
            (mean loss, the clean images' logits [n, K]).
        """
        images, noisy = inputs if self.stability else (inputs, None)
        logits = model(images, training=True)
        loss = self.task_loss(labels, logits)
        clean_logits = logits[: tf.shape(labels)[0]]
        if noisy is not None:
            noisy_logits = model(noisy, training=True)
            kl = keras.ops.mean(stability_loss(clean_logits, noisy_logits))
            loss = loss + self.stability.alpha * kl
        return loss, clean_logits
