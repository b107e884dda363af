"""Explicit spatial padding of NHWC tensors with `keras.ops` (reflect, replicate, zero).

Reflect padding (torch 'reflect' == TF 'REFLECT') needs pad < size: a 2x2 map cannot be padded
by 2. `pad_overflow` says what happens on smaller maps: "repeat" keeps reflecting as
`numpy.pad(mode="reflect")` does (the mirrored map repeats with period 2(n - 1); a 1-pixel map is
replicated), "error" refuses as torch and TF do.
"""

from __future__ import annotations

from collections.abc import Callable

from keras import ops

Pads = tuple[tuple[int, int], tuple[int, int]]


def _pad_reflect(x, pads: Pads):
    """Reflection without repeating the edge; every pad must be narrower than its axis."""
    return ops.pad(x, [(0, 0), pads[0], pads[1], (0, 0)], mode="reflect")


def _pad_axis_reflect(x, axis: int, before: int, after: int):
    widths = [(0, 0)] * 4
    widths[axis] = (before, after)
    return ops.pad(x, widths, mode="reflect")


def reflect_indices(size, start, count: int):
    """Source rows of rows start .. start + count - 1 of an axis reflected at any width.

    Position i folds onto i mod 2(n-1), mirrored above n - 1: the periodic reflection
    `numpy.pad(mode="reflect")` and scipy.ndimage's "mirror" produce. A 1-pixel axis has
    period 1 (every index is 0: replication).

    Args:
        size: the axis length n, an int or a scalar int tensor (unknown until run time).
        start: the first position (-before for the rows before the axis, n for those after).
        count: number of rows.

    Returns:
        int32 tensor of `count` indices in [0, n).
    """
    positions = ops.arange(count, dtype="int32") + start
    period = ops.maximum(2 * (size - 1), 1)
    folded = ops.mod(positions, period)
    return ops.where(folded < size, folded, period - folded)


def _pad_axis_reflect_repeating(x, axis: int, before: int, after: int):
    """Reflect-pad one axis at any size: TF's pad where it fits a known size, else the map
    with gathered strips before and after it.

    Where the size is unknown until run time (a TF graph with a None axis) it is always the
    strips: choosing at run time with a cond fails under XLA, which compiles the untaken pad
    branch for the actual shape and rejects it there. Gathering only the strips (not the whole
    padded axis) keeps the backward pass close to the pad's.
    """
    size = x.shape[axis]
    if max(before, after) == 0:
        return x
    if size is not None and max(before, after) < size:
        return _pad_axis_reflect(x, axis, before, after)
    size = ops.shape(x)[axis]
    parts = [x]
    if before:
        parts.insert(0, ops.take(x, reflect_indices(size, -before, before), axis=axis))
    if after:
        parts.append(ops.take(x, reflect_indices(size, size, after), axis=axis))
    return ops.concatenate(parts, axis=axis)


def _pad_reflect_repeating(x, pads: Pads):
    """Reflection at any map size; exactly `_pad_reflect` (one pad op) where the pads fit."""
    sizes = tuple(x.shape[1:3])
    fits = all(size is not None and max(pad) < size for size, pad in zip(sizes, pads, strict=True))
    if fits:
        return _pad_reflect(x, pads)
    for axis, (before, after) in zip((1, 2), pads, strict=True):
        x = _pad_axis_reflect_repeating(x, axis, before, after)
    return x


def _pad_reflect_strict(x, pads: Pads):
    """Reflection that refuses maps as narrow as the pad (torch and TF's own rule)."""
    check_reflect_fits("reflect", pads, tuple(x.shape[1:3]))
    return _pad_reflect(x, pads)


def _pad_zero(x, pads: Pads):
    """Zeros outside the image."""
    return ops.pad(x, [(0, 0), pads[0], pads[1], (0, 0)], mode="constant")


def _edge_slice(x, axis: int, index: slice):
    return x[(slice(None),) * axis + (index,)]


def _pad_replicate(x, pads: Pads):
    """Edge replication.

    Built from concatenated copies of the edge rows/columns because `keras.ops.pad(mode="edge")`
    raises on the TensorFlow backend (tf.pad knows only CONSTANT, REFLECT and SYMMETRIC), and
    SYMMETRIC differs from replication once the pad is 2 or wider (filter size >= 5).
    Concatenation needs only the static pad widths, so it also works when H and W are unknown.
    """
    for axis, (before, after) in zip((1, 2), pads, strict=True):
        parts = []
        if before:
            parts.append(ops.repeat(_edge_slice(x, axis, slice(0, 1)), before, axis=axis))
        parts.append(x)
        if after:
            parts.append(ops.repeat(_edge_slice(x, axis, slice(-1, None)), after, axis=axis))
        x = ops.concatenate(parts, axis=axis) if len(parts) > 1 else x
    return x


#: pad_mode name -> function(x, ((top, bottom), (left, right))) for NHWC tensors ("reflect":
#: with the default pad_overflow, "repeat").
PAD_FUNCTIONS: dict[str, Callable] = {
    "reflect": _pad_reflect_repeating,
    "replicate": _pad_replicate,
    "zero": _pad_zero,
}

#: pad_overflow name -> reflect padding function, for maps that may be narrower than the pad.
REFLECT_OVERFLOW: dict[str, Callable] = {
    "repeat": _pad_reflect_repeating,
    "error": _pad_reflect_strict,
}


def check_pad_mode(pad_mode: str) -> str:
    """Validate a pad mode name.

    Args:
        pad_mode: one of `PAD_FUNCTIONS`.

    Returns:
        `pad_mode` unchanged.

    Raises:
        ValueError: for an unknown name.
    """
    if not isinstance(pad_mode, str) or pad_mode not in PAD_FUNCTIONS:
        raise ValueError(f"pad_mode must be one of {sorted(PAD_FUNCTIONS)}, got {pad_mode!r}.")
    return pad_mode


def check_pad_overflow(pad_overflow: str) -> str:
    """Validate a pad_overflow name (what reflect padding does on maps narrower than the pad).

    Args:
        pad_overflow: one of `REFLECT_OVERFLOW`.

    Returns:
        `pad_overflow` unchanged.

    Raises:
        ValueError: for an unknown name.
    """
    if not isinstance(pad_overflow, str) or pad_overflow not in REFLECT_OVERFLOW:
        raise ValueError(
            f"pad_overflow must be one of {sorted(REFLECT_OVERFLOW)}, got {pad_overflow!r}."
        )
    return pad_overflow


def check_reflect_fits(pad_mode: str, pads: Pads, spatial: tuple) -> None:
    """Reflect padding with pad_overflow="error" needs pad < size on each axis; raise early
    where the size is known.

    Args:
        pad_mode: the pad mode.
        pads: ((top, bottom), (left, right)).
        spatial: (H, W), entries may be None when unknown.

    Raises:
        ValueError: if a reflect pad is as wide as or wider than the input.
    """
    if pad_mode != "reflect":
        return
    for name, size, (before, after) in zip(("height", "width"), spatial, pads, strict=True):
        if size is not None and max(before, after) >= size:
            raise ValueError(
                f"pad_mode='reflect' needs an input {name} larger than the pad "
                f"{max(before, after)}, got {name} {size}; use pad_overflow='repeat', "
                f"pad_mode 'replicate' or 'zero' (allowed: {sorted(PAD_FUNCTIONS)}) or a "
                f"smaller filter_size."
            )


def pad_spatial(x, pads: Pads, pad_mode: str, pad_overflow: str = "repeat"):
    """Pad the H and W axes of an NHWC tensor.

    Args:
        x: tensor of shape (N, H, W, C); H and W may be unknown (None) until run time.
        pads: ((top, bottom), (left, right)).
        pad_mode: "reflect", "replicate" or "zero".
        pad_overflow: for "reflect" on a map not wider than its pad, "repeat" (reflect on, as
            numpy.pad does) or "error" (ValueError when the size is known, else TF's error).

    Returns:
        The padded tensor.
    """
    check_pad_mode(pad_mode)
    check_pad_overflow(pad_overflow)
    pad = REFLECT_OVERFLOW[pad_overflow] if pad_mode == "reflect" else PAD_FUNCTIONS[pad_mode]
    return pad(x, pads)
