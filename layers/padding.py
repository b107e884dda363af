"""Explicit spatial padding of NHWC tensors with `keras.ops` (reflect, replicate, zero)."""

from __future__ import annotations

from collections.abc import Callable

from keras import ops

Pads = tuple[tuple[int, int], tuple[int, int]]


def _pad_reflect(x, pads: Pads):
    """Reflection without repeating the edge (torch 'reflect' == TF 'REFLECT')."""
    return ops.pad(x, [(0, 0), pads[0], pads[1], (0, 0)], mode="reflect")


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


#: pad_mode name -> function(x, ((top, bottom), (left, right))) for NHWC tensors.
PAD_FUNCTIONS: dict[str, Callable] = {
    "reflect": _pad_reflect,
    "replicate": _pad_replicate,
    "zero": _pad_zero,
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
    if pad_mode not in PAD_FUNCTIONS:
        raise ValueError(f"pad_mode must be one of {sorted(PAD_FUNCTIONS)}, got {pad_mode!r}.")
    return pad_mode


def check_reflect_fits(pad_mode: str, pads: Pads, spatial: tuple) -> None:
    """Reflect padding needs pad < size on each axis; raise early where the size is known.

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
                f"{max(before, after)}, got {name} {size}; use pad_mode 'replicate' or 'zero' "
                f"(allowed: {sorted(PAD_FUNCTIONS)}) or a smaller filter_size."
            )


def pad_spatial(x, pads: Pads, pad_mode: str):
    """Pad the H and W axes of an NHWC tensor.

    Args:
        x: tensor of shape (N, H, W, C).
        pads: ((top, bottom), (left, right)).
        pad_mode: "reflect", "replicate" or "zero".

    Returns:
        The padded tensor.
    """
    check_reflect_fits(check_pad_mode(pad_mode), pads, tuple(x.shape[1:3]))
    return PAD_FUNCTIONS[pad_mode](x, pads)
