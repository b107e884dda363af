"""Applies per-image op sequences (one op per image per slot) to a whole batch at once.

This is what makes RandAugment, AutoAugment and AugMix fast. Images stay uint8 between slots.
Per slot, the point ops (autocontrast, equalize, invert, posterize, solarize, solarize_add,
contrast, brightness, identity) become one per-image, per-channel 256-entry look-up table applied
by ONE XLA-compiled gather over the batch; the statistics they need (min/max, mean gray,
histograms) and the ops that are not point ops (color, sharpness) are computed outside XLA on
only the images that drew them. The geometric ops of an image are composed into one matrix and
applied by ONE warp per batch after the pixel ops; compared with applying them in drawn order,
fill pixels stay exactly gray (a pixel op drawn after a geometric op does not recolour them) and
histogram ops see the unwarped image.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from augment import ops
from augment.base import Stage

_ID = {name: index for index, name in enumerate(ops.BASE_OPS)}


@tf.function(jit_compile=True, reduce_retracing=True)
def _quantize(images: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)


@tf.function(jit_compile=True, reduce_retracing=True)
def to_float32(images: tf.Tensor) -> tf.Tensor:
    """uint8 -> float32 in one XLA pass (TF's plain cast is several times slower on CPU)."""
    return tf.cast(images, tf.float32)


def to_uint8(images: tf.Tensor) -> tf.Tensor:
    """Rounds and clips [0, 255] images to uint8 (no-op for uint8)."""
    return images if images.dtype == tf.uint8 else _quantize(images)


@functools.cache
def _point_kernel(op_names: tuple[str, ...]):
    """XLA kernel: per image, the point op (or cutout) ``base_ids`` selects, on uint8 images.

    Point ops become one per-image, per-channel look-up table (computed on the 256 values, not
    the pixels, from statistics computed beforehand), so they cost one gather whatever their number.
    """
    point_names = [n for n in op_names if n in ops.POINT_OPS]

    def kernel(images, base_ids, args, centers, stats, equalize_lut):
        selector = tf.reshape(base_ids, [-1, 1, 1, 1])
        shape = tf.shape(images)
        values = tf.broadcast_to(
            tf.range(256.0)[None, None, :, None], tf.stack([shape[0], 1, 256, shape[3]])
        )
        table = values
        for name in point_names:
            table = tf.where(selector == _ID[name], ops.POINT_OPS[name](values, args, stats), table)
        lut = tf.transpose(table[:, 0], [0, 2, 1])
        if "equalize" in op_names:
            lut = tf.where(tf.reshape(base_ids == _ID["equalize"], [-1, 1, 1]), equalize_lut, lut)
        out = ops.apply_lut(images, tf.cast(tf.clip_by_value(tf.round(lut), 0.0, 255.0), tf.uint8))
        if "cutout" in op_names:
            blank = ops.cutout(tf.zeros_like(images[..., :1], tf.float32), args, centers, 1.0)
            cut = (selector == _ID["cutout"]) & (blank > 0.5)
            out = tf.where(cut, tf.constant(int(ops.FILL_VALUE), tf.uint8), out)
        return out

    return tf.function(kernel, jit_compile=True, reduce_retracing=True)


@functools.cache
def _warp_kernel(interpolation: str):
    def kernel(images, matrices):
        if interpolation == "nearest":  # gathers only: stays uint8
            return ops.warp(images, matrices, interpolation, ops.FILL_VALUE)
        warped = ops.warp(tf.cast(images, tf.float32), matrices, interpolation)
        return tf.cast(tf.clip_by_value(tf.round(warped), 0.0, 255.0), tf.uint8)

    return tf.function(kernel, jit_compile=True, reduce_retracing=True)


def _on_subset(fn, images: tf.Tensor, args: tf.Tensor, selected: tf.Tensor, shape, dtype):
    """``fn(images, args)`` on the selected images only, scattered into zeros of ``shape``.

    Used outside XLA for what is cheaper on the few images that drew an op than on the batch.
    """
    index = tf.cast(tf.where(selected), tf.int32)

    def compute():
        result = fn(tf.gather_nd(images, index), tf.gather_nd(args, index))
        return tf.scatter_nd(index, tf.cast(result, dtype), shape)

    return tf.cond(tf.reduce_any(selected), compute, lambda: tf.zeros(shape, dtype))


def _replace_subset(fn, out: tf.Tensor, images, args, selected) -> tf.Tensor:
    """Replaces the selected images of ``out`` by ``fn(images, args)`` computed on them only."""
    index = tf.cast(tf.where(selected), tf.int32)

    def compute():
        subset = tf.cast(tf.gather_nd(images, index), tf.float32)
        result = tf.clip_by_value(tf.round(fn(subset, tf.gather_nd(args, index))), 0.0, 255.0)
        return tf.tensor_scatter_nd_update(out, index, tf.cast(result, tf.uint8))

    return tf.cond(tf.reduce_any(selected), compute, lambda: out)


def _slot_stats(images, args, ids, op_names, shape) -> tuple[dict, tf.Tensor]:
    """Per-image statistics the point ops need, computed on the images that drew them."""
    batch, channels = shape[0], shape[3]
    per_channel = tf.stack([batch, 1, 1, channels])
    stats = {"lo": tf.zeros([1, 1, 1, 1]), "hi": tf.zeros([1, 1, 1, 1])}
    stats["mean_gray"] = tf.zeros([1, 1, 1, 1])
    equalize_lut = tf.zeros([1, 1, 256])
    if "autocontrast" in op_names:
        chose = ids == _ID["autocontrast"]
        for key, reduce in (("lo", tf.reduce_min), ("hi", tf.reduce_max)):
            stats[key] = _on_subset(
                lambda x, a, r=reduce: tf.cast(r(x, axis=[1, 2], keepdims=True), tf.float32),
                images,
                args,
                chose,
                per_channel,
                tf.float32,
            )
    if "contrast" in op_names:
        stats["mean_gray"] = _on_subset(
            lambda x, a: ops.mean_gray(tf.cast(x, tf.float32)),
            images,
            args,
            ids == _ID["contrast"],
            tf.stack([batch, 1, 1, 1]),
            tf.float32,
        )
    if "equalize" in op_names:
        equalize_lut = _on_subset(
            lambda x, a: ops.equalize_lut(x),
            images,
            args,
            ids == _ID["equalize"],
            tf.stack([batch, channels, 256]),
            tf.float32,
        )
    return stats, equalize_lut


def apply_op_chain(
    images: tf.Tensor,
    base_ids: tf.Tensor,
    args: tf.Tensor,
    centers: tf.Tensor,
    op_names: tuple[str, ...],
    interpolation: str = "nearest",
) -> tf.Tensor:
    """Applies slot after slot of per-image ops to a batch.

    Args:
        images: float32 ``[B, H, W, C]`` in [0, 255], or uint8.
        base_ids: int32 ``[B, S]`` indices into ``ops.BASE_OPS`` (one op per image and slot).
        args: float32 ``[B, S]`` op arguments (already signed).
        centers: float32 ``[B, S, 2]`` cutout centres (row, col) in pixels.
        op_names: the base ops that may occur (static); others are never computed.
        interpolation: ``"nearest"`` or ``"bilinear"`` for the geometric ops.

    Returns:
        ``[B, H, W, C]`` rounded to integers in [0, 255] after each slot: uint8 for uint8
        ``images`` (no conversion at all), float32 otherwise.
    """
    pixel_names = tuple(n for n in op_names if n in ops.PIXEL_OPS and n != "identity")
    kernel_names = tuple(
        n for n in pixel_names if n in ops.POINT_OPS or n in ("equalize", "cutout")
    )
    geometric_names = tuple(n for n in op_names if n in ops.GEOMETRIC_MATRICES)
    shape = tf.shape(images)
    input_dtype = images.dtype
    images = to_uint8(images)
    matrix = tf.eye(3, batch_shape=shape[:1])
    for slot in range(base_ids.shape[1]):
        ids, slot_args, slot_centers = base_ids[:, slot], args[:, slot], centers[:, slot]
        out = images
        if kernel_names:
            stats, equalize_lut = _slot_stats(images, slot_args, ids, kernel_names, shape)
            out = _point_kernel(kernel_names)(
                images, ids, slot_args, slot_centers, stats, equalize_lut
            )
        for name in ("color", "sharpness"):
            if name in pixel_names:
                out = _replace_subset(
                    lambda x, a, n=name: ops.PIXEL_OPS[n](x, a, None),
                    out,
                    images,
                    slot_args,
                    ids == _ID[name],
                )
        images = out
        for name in geometric_names:
            chosen = tf.reshape(ids == _ID[name], [-1, 1, 1])
            slot_matrix = ops.GEOMETRIC_MATRICES[name](slot_args, shape[1], shape[2])
            matrix = tf.matmul(matrix, tf.where(chosen, slot_matrix, tf.eye(3)))
    if geometric_names:
        moved = tf.reduce_any(tf.abs(matrix - tf.eye(3)) > 1e-6)
        images = tf.cond(
            moved, lambda: _warp_kernel(interpolation)(images, matrix), lambda: tf.identity(images)
        )
    return images if input_dtype == tf.uint8 else to_float32(images)


class OpChainStage(Stage):
    """A stage whose drawn parameters are one op chain per image: `base_ids`, `args`, `centers`.

    Subclasses draw the chain in `sample`; applying it is the same batched engine for all.
    """

    def level_hparams(self, image_shape: tf.Tensor) -> dict:
        """Hyper-parameters of the level-to-argument table for an image of `image_shape`.

        Translations are `translate_const` pixels, or `translate_frac` of the longer side when set.
        """
        translate = self.config["translate_const"]
        if self.config["translate_frac"] is not None:
            longer = tf.cast(tf.reduce_max(image_shape[:2]), tf.float32)
            translate = self.config["translate_frac"] * longer
        return {
            "translate_const": translate,
            "cutout_const": self.config["cutout_const"],
            "translate_frac": 0.45,
            "image_size": tf.cast(image_shape[:2], tf.float32),
        }

    def apply(self, images: tf.Tensor, params: dict[str, tf.Tensor]) -> tf.Tensor:
        return apply_op_chain(
            images,
            params["base_ids"],
            params["args"],
            params["centers"],
            self.base_names,
            self.config["interpolation"],
        )
