"""The one level-to-argument table (Model Garden / timm convention, levels in [0, MAX_LEVEL]).

Each entry maps a policy op name to ``(base op, level -> argument)``. The level may be fractional
and is a ``[N]`` float tensor; ``hparams`` carries ``translate_const`` (pixels at level 10),
``translate_frac`` (fraction of the image side at level 10, for the ``*_rel`` ops), ``cutout_const``
(cutout half-size at level 10) and ``image_size`` ([height, width]). Signed ops get a random sign
from the stage that draws the level.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from augment.ops import BASE_OPS

MAX_LEVEL = 10.0


def _enhance(level, hp):
    return level / MAX_LEVEL * 1.8 + 0.1


def _zero(level, hp):
    return tf.zeros_like(level)


LevelFn = Callable[[tf.Tensor, dict], tf.Tensor]

LEVEL_TO_ARG: dict[str, tuple[str, LevelFn]] = {
    "identity": ("identity", _zero),
    "autocontrast": ("autocontrast", _zero),
    "equalize": ("equalize", _zero),
    "invert": ("invert", _zero),
    "rotate": ("rotate", lambda level, hp: level / MAX_LEVEL * 30.0),
    # Model Garden: bits kept = int(4 l); less severe as the level rises.
    "posterize": ("posterize", lambda level, hp: tf.floor(level / MAX_LEVEL * 4.0)),
    # timm/AugMix "increasing": bits kept = 4 - int(4 l).
    "posterize_increasing": (
        "posterize",
        lambda level, hp: 4.0 - tf.floor(level / MAX_LEVEL * 4.0),
    ),
    "solarize": ("solarize", lambda level, hp: tf.floor(level / MAX_LEVEL * 256.0)),
    "solarize_increasing": (
        "solarize",
        lambda level, hp: 256.0 - tf.floor(level / MAX_LEVEL * 256.0),
    ),
    "solarize_add": ("solarize_add", lambda level, hp: tf.floor(level / MAX_LEVEL * 110.0)),
    "color": ("color", _enhance),
    "contrast": ("contrast", _enhance),
    "brightness": ("brightness", _enhance),
    "sharpness": ("sharpness", _enhance),
    "shear_x": ("shear_x", lambda level, hp: level / MAX_LEVEL * 0.3),
    "shear_y": ("shear_y", lambda level, hp: level / MAX_LEVEL * 0.3),
    "translate_x": ("translate_x", lambda level, hp: level / MAX_LEVEL * hp["translate_const"]),
    "translate_y": ("translate_y", lambda level, hp: level / MAX_LEVEL * hp["translate_const"]),
    "translate_x_rel": (
        "translate_x",
        lambda level, hp: level / MAX_LEVEL * hp["translate_frac"] * hp["image_size"][1],
    ),
    "translate_y_rel": (
        "translate_y",
        lambda level, hp: level / MAX_LEVEL * hp["translate_frac"] * hp["image_size"][0],
    ),
    "cutout": ("cutout", lambda level, hp: tf.floor(level / MAX_LEVEL * hp["cutout_const"])),
}

SIGNED_OPS = frozenset(
    {
        "rotate",
        "shear_x",
        "shear_y",
        "translate_x",
        "translate_y",
        "translate_x_rel",
        "translate_y_rel",
    }
)

# Model Garden / AutoAugment paper names -> names in LEVEL_TO_ARG.
PAPER_NAMES = {
    "Identity": "identity",
    "AutoContrast": "autocontrast",
    "Equalize": "equalize",
    "Invert": "invert",
    "Rotate": "rotate",
    "Posterize": "posterize",
    "Solarize": "solarize",
    "SolarizeAdd": "solarize_add",
    "Color": "color",
    "Contrast": "contrast",
    "Brightness": "brightness",
    "Sharpness": "sharpness",
    "ShearX": "shear_x",
    "ShearY": "shear_y",
    "TranslateX": "translate_x",
    "TranslateY": "translate_y",
    "Cutout": "cutout",
}


def level_to_base_args(
    names: tuple[str, ...], choice: tf.Tensor, level: tf.Tensor, sign: tf.Tensor, hparams: dict
) -> tuple[tf.Tensor, tf.Tensor]:
    """Turns per-slot op choices and levels into base-op ids and arguments.

    Args:
        names: the candidate op names (keys of ``LEVEL_TO_ARG``).
        choice: int ``[N]`` index into ``names``.
        level: float ``[N]`` level in [0, MAX_LEVEL].
        sign: float ``[N]`` of +-1, used by the signed ops.
        hparams: see the module docstring.

    Returns:
        ``(base_ids, args)``: int32 ``[N]`` indices into ``ops.BASE_OPS`` and float32 ``[N]``.
    """
    base_ids = tf.constant([BASE_OPS.index(LEVEL_TO_ARG[n][0]) for n in names], tf.int32)
    level = tf.cast(level, tf.float32)
    all_args = tf.stack(
        [LEVEL_TO_ARG[n][1](level, hparams) * (sign if n in SIGNED_OPS else 1.0) for n in names],
        axis=-1,
    )
    args = tf.gather(all_args, choice[..., None], batch_dims=len(choice.shape))[..., 0]
    return tf.gather(base_ids, choice), args
