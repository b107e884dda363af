"""Applies per-image op sequences (one op per image per slot) to a whole batch at once.

This is what makes RandAugment, AutoAugment and AugMix fast: per slot, an image pays only for the
op it drew. The engine keeps, per image, the uint8 pixels it last computed, a pending 256-entry
look-up table per channel and a pending 3x3 geometric matrix:

- point ops (invert, posterize, solarize, solarize_add, brightness) rewrite the table only;
- point ops that need statistics of the current image (autocontrast, contrast, equalize) compute
  them on the images that drew them only, then rewrite their tables;
- ops that need the pixels (color, sharpness, cutout) run on the images that drew them only; their
  results replace those images, whose tables restart from identity;
- geometric ops multiply the image's matrix.

At the end one XLA pass applies every table, and one affine warp, on the moved images only, every
matrix (written with gathers, since ``ImageProjectiveTransformV3`` has no XLA kernel and is slower
on CPU). Tables are rounded to integers in [0, 255] after each slot, so the result is that of
applying the ops to uint8 images one after another, except that the geometric ops act last: fill
pixels stay exactly gray (a pixel op drawn after a geometric op does not recolour them) and
histogram ops see the unwarped image. Subsets are padded to a few row counts (`_ROW_COUNTS`) so
that XLA compiles few shapes.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from augment import ops
from augment.base import Stage

_ID = {name: index for index, name in enumerate(ops.BASE_OPS)}
# Ops computed on pixels, on the images that drew them.
_PIXEL_OPS = ("color", "sharpness", "cutout")
# Pixel ops that only select values: they run on uint8 pixels, without a float round trip.
_SELECTING_PIXEL_OPS = ("cutout",)


def _quantize_float(values: tf.Tensor) -> tf.Tensor:
    return tf.clip_by_value(tf.round(values), 0.0, 255.0)


@tf.function(jit_compile=True, reduce_retracing=True)
def _quantize(images: tf.Tensor) -> tf.Tensor:
    return tf.cast(_quantize_float(images), tf.uint8)


@tf.function(jit_compile=True, reduce_retracing=True)
def to_float32(images: tf.Tensor) -> tf.Tensor:
    """uint8 -> float32 in one XLA pass (TF's plain cast is several times slower on CPU)."""
    return tf.cast(images, tf.float32)


def to_uint8(images: tf.Tensor) -> tf.Tensor:
    """Rounds and clips [0, 255] images to uint8 (no-op for uint8)."""
    return images if images.dtype == tf.uint8 else _quantize(images)


def _identity_tables(batch: tf.Tensor, channels: tf.Tensor) -> tf.Tensor:
    """Tables ``[B, 1, 256, C]`` that map every value to itself."""
    values = tf.range(256.0)[None, None, :, None]
    return tf.broadcast_to(values, tf.stack([batch, 1, 256, channels]))


def _look_up(images: tf.Tensor, tables: tf.Tensor) -> tf.Tensor:
    """Maps uint8 ``images`` through their tables ``[B, 1, 256, C]``; uint8 out."""
    return ops.apply_lut(images, tf.cast(tf.transpose(tables[:, 0], [0, 2, 1]), tf.uint8))


@functools.cache
def _point_kernel(names: tuple[str, ...]):
    """XLA: composes each image's table with the statistic-free point op it drew, if any."""

    def kernel(tables, ids, args):
        selector = tf.reshape(ids, [-1, 1, 1, 1])
        out = tables
        for name in names:
            mapped = _quantize_float(ops.POINT_OPS[name](tables, args))
            out = tf.where(selector == _ID[name], mapped, out)
        return out

    return tf.function(kernel, jit_compile=True, reduce_retracing=True)


@functools.cache
def _statistic_kernel(name: str):
    """XLA: the new tables of images that drew the statistic point op ``name``."""

    def kernel(pixels, rows, tables, args, centers):
        current = tf.gather(pixels, rows)
        return _quantize_float(ops.STATISTIC_POINT_OPS[name](tables, current, args))

    return tf.function(kernel, jit_compile=True, reduce_retracing=True)


@functools.cache
def _pixel_kernel(name: str):
    """XLA: the new pixels of images that drew the pixel op ``name``."""

    def kernel(pixels, rows, tables, args, centers):
        current = tf.gather(pixels, rows)
        if name in _SELECTING_PIXEL_OPS:
            return ops.PIXEL_OPS[name](current, args, centers)
        return _quantize(ops.PIXEL_OPS[name](tf.cast(current, tf.float32), args, centers))

    return tf.function(kernel, jit_compile=True, reduce_retracing=True)


@functools.cache
def _source_indices_kernel(interpolation: str):
    """XLA: `ops.source_indices` (a kernel of its own: fused with the sampling, XLA would
    recompute the indices per channel)."""
    return tf.function(
        functools.partial(ops.source_indices, interpolation=interpolation),
        jit_compile=True,
        reduce_retracing=True,
    )


@tf.function(jit_compile=True, reduce_retracing=True)
def _sample_rows_kernel(images, rows, indices, weights):
    """XLA: rows ``rows`` of uint8 ``images`` read at ``indices`` (`ops.sample_pixels`)."""
    images = tf.gather(images, rows)
    if weights is None:  # nearest: gathers only, stays uint8
        return ops.sample_pixels(images, indices)
    return _quantize(ops.sample_pixels(tf.cast(images, tf.float32), indices, weights))


def _warp_rows(images, rows, matrices, interpolation: str) -> tf.Tensor:
    """Rows ``rows`` of uint8 ``images`` warped by their ``matrices``, in two XLA kernels."""
    shape = tf.shape(images)
    indices, weights = _source_indices_kernel(interpolation)(matrices, shape[1], shape[2])
    return _sample_rows_kernel(images, rows, indices, weights)


_look_up_kernel = tf.function(_look_up, jit_compile=True, reduce_retracing=True)
# The look-up of some rows is a kernel of its own: fused into an op's kernel, XLA would redo its
# gathers for every use of a pixel (nine for sharpness).
_look_up_rows_kernel = tf.function(
    lambda images, tables, rows: _look_up(tf.gather(images, rows), tf.gather(tables, rows)),
    jit_compile=True,
    reduce_retracing=True,
)


# Row counts the XLA kernels are compiled for: 1, 2, 3, 4, 6, 8, 12, ... (at most a third wasted).
_ROW_COUNTS = sorted({m * 2**i for i in range(30) for m in (2, 3)} | {1})


def _padded_count(count: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
    """The next of `_ROW_COUNTS` from ``count``, capped at ``batch``."""
    sizes = tf.constant(_ROW_COUNTS, tf.int32)
    return tf.minimum(tf.gather(sizes, tf.searchsorted(sizes, count[None])[0]), batch)


def _pad_with_first(tensor: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """``tensor`` (non-empty) padded to ``size`` rows by repeating its first row."""
    filler = tf.zeros(tf.maximum(size - tf.shape(tensor)[0], 0)[None], tf.int32)
    return tf.gather(tensor, tf.concat([tf.range(tf.shape(tensor)[0]), filler], 0))


def _padded_indices(selected: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Indices of the ``selected`` rows, and the same padded (by repeating the first) to a row
    count of `_ROW_COUNTS`, so that the XLA kernels see few shapes."""
    index = tf.cast(tf.where(selected)[:, 0], tf.int32)
    padded = _padded_count(tf.size(index), tf.size(selected))
    return index, _pad_with_first(index, padded)


def _on_rows(function, selected: tf.Tensor, like: tf.Tensor) -> tuple:
    """``function(rows)`` for the ``selected`` rows only, padded (see `_padded_indices`).

    Args:
        function: maps int32 row indices ``[P]`` to ``P`` rows like those of ``like``.
        selected: bool ``[B]``.
        like: a tensor whose rows the result is like.

    Returns:
        ``(index [k], result [k, ...])`` for the ``k`` selected rows.
    """

    def compute():
        index, padded = _padded_indices(selected)
        return index, function(padded)[: tf.size(index)]

    def nothing():
        return tf.zeros([0], tf.int32), tf.zeros_like(like[:0])

    return tf.cond(tf.reduce_any(selected), compute, nothing)


def _op_on_rows(kernel, identity_tables: bool, images, tables, args, centers):
    """``rows -> kernel(pixels, pixel rows, tables, args, centers)`` on the current pixels of
    ``rows``; ``identity_tables`` says (statically) that the current pixels are the images."""

    def function(rows):
        small = [tf.gather(t, rows) for t in (tables, args, centers)]
        if identity_tables:
            return kernel(images, rows, *small)
        current = _look_up_rows_kernel(images, tables, rows)
        return kernel(current, tf.range(tf.size(rows)), *small)

    return function


def _compose(first: tf.Tensor, second: tf.Tensor) -> tf.Tensor:
    """Batched 3x3 ``first @ second``, elementwise: oneDNN's matmul costs far more at this size."""
    return tf.reduce_sum(first[:, :, :, None] * second[:, None, :, :], axis=2)


@functools.cache
def _replace_rows_kernel(look_up: bool):
    """XLA: ``images`` (through their tables when ``look_up``) with rows ``index`` replaced."""

    def kernel(images, tables, index, rows):
        current = _look_up(images, tables) if look_up else images
        return tf.tensor_scatter_nd_update(current, index, rows)

    return tf.function(kernel, jit_compile=True, reduce_retracing=True)


def _scatter_rows(tensor: tf.Tensor, updates: list[tuple], tables=None) -> tf.Tensor:
    """Replaces rows of ``tensor`` (first mapped through ``tables`` when given) by the
    ``(index, rows)`` of ``updates`` (disjoint indices).

    The updates are padded to a row count of `_ROW_COUNTS` (repeating one: same index, same row)
    so that XLA compiles few shapes.
    """
    look_up = tables is not None
    index = tf.concat([tf.zeros([0], tf.int32)] + [i for i, _ in updates], 0)[:, None]
    rows = tf.concat([tf.zeros_like(tensor[:0])] + [r for _, r in updates], 0)
    tables = tables if look_up else tf.zeros([0])

    def scatter():
        padded = _padded_count(tf.shape(index)[0], tf.shape(tensor)[0])
        pad = functools.partial(_pad_with_first, size=padded)
        return _replace_rows_kernel(look_up)(tensor, tables, pad(index), pad(rows))

    def keep():
        return _look_up_kernel(tensor, tables) if look_up else tf.identity(tensor)

    return tf.cond(tf.size(index) > 0, scatter, keep)


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
    point_names = tuple(n for n in op_names if n in ops.POINT_OPS)
    statistic_names = tuple(n for n in op_names if n in ops.STATISTIC_POINT_OPS)
    pixel_names = tuple(n for n in op_names if n in _PIXEL_OPS)
    geometric_names = tuple(n for n in op_names if n in ops.GEOMETRIC_MATRICES)
    shape = tf.shape(images)
    input_dtype = images.dtype
    images = to_uint8(images)
    tables = _identity_tables(shape[0], shape[3])
    identity_tables = True  # statically known: no table was rewritten yet
    matrix = tf.eye(3, batch_shape=shape[:1])
    pixel = []  # the last slot's pixel-op rows
    for slot in range(base_ids.shape[1]):
        ids, slot_args = base_ids[:, slot], args[:, slot]
        inputs = (images, tables, slot_args, centers[:, slot])
        statistic = [
            _on_rows(
                _op_on_rows(_statistic_kernel(n), identity_tables, *inputs), ids == _ID[n], tables
            )
            for n in statistic_names
        ]
        pixel = [
            _on_rows(_op_on_rows(_pixel_kernel(n), identity_tables, *inputs), ids == _ID[n], images)
            for n in pixel_names
        ]
        if point_names:
            tables = _point_kernel(point_names)(tables, ids, slot_args)
        if statistic:
            tables = _scatter_rows(tables, statistic)
        last = slot == base_ids.shape[1] - 1
        if pixel and not last:  # the last slot's rows are put in by the final look-up
            images = _scatter_rows(images, pixel)
            if not identity_tables:
                restart = [(i, _identity_tables(tf.size(i), shape[3])) for i, _ in pixel]
                tables = _scatter_rows(tables, restart)
        identity_tables = identity_tables and not (point_names or statistic_names)
        slot_matrix = tf.eye(3, batch_shape=shape[:1])
        for name in geometric_names:
            chosen = tf.reshape(ids == _ID[name], [-1, 1, 1])
            candidate = ops.GEOMETRIC_MATRICES[name](slot_args, shape[1], shape[2])
            slot_matrix = tf.where(chosen, candidate, slot_matrix)
        if geometric_names:
            matrix = _compose(matrix, slot_matrix)
    final_tables = None if identity_tables else tables
    if pixel or final_tables is not None:
        images = _scatter_rows(images, pixel, final_tables)
    if geometric_names:
        moved = tf.reduce_any(tf.abs(matrix - tf.eye(3)) > 1e-6, axis=[1, 2])
        warped = _on_rows(
            lambda rows: _warp_rows(images, rows, tf.gather(matrix, rows), interpolation),
            moved,
            images,
        )
        images = _scatter_rows(images, [warped])
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
