"""Any imgaug augmenter as a stage, described in YAML as nested names and parameters.

Uses the ``imgaug`` module of the NumPy-2-compatible fork ``sindre-imgaug==0.4.2`` (the original
imgaug 0.4.0 fails on NumPy 2). YAML is never evaluated: augmenter names are looked up in
``IMGAUG_AUGMENTERS``. A spec is ``{Name: {param: value, ...}}`` (or ``{Name: null}``); a parameter
value that is itself a spec, or a list of specs, builds child augmenters; a list of two numbers
becomes a tuple, which imgaug reads as a uniform range; ``{choice: [...]}`` becomes a list, which
imgaug reads as a discrete choice. Each element is augmented by a copy of the augmenter reseeded
(recursively, ``seed_``) with the element's seed, so parallel and sequential runs agree.

Known failures of the fork on NumPy 2 (checked in the tests): ``iaa.RandAugment`` raises, so it is
not offered; ``pillike.Autocontrast`` fails on every ``cutoff`` > 0 (its default draws 0..20), so
``cutoff`` defaults to 0 here.
"""

from __future__ import annotations

import difflib
from typing import Any, ClassVar

import imgaug.augmenters as iaa
import numpy as np
import tensorflow as tf

from augment.base import Param, Stage

IMGAUG_AUGMENTERS = {
    "Sequential": iaa.Sequential,
    "SomeOf": iaa.SomeOf,
    "OneOf": iaa.OneOf,
    "Sometimes": iaa.Sometimes,
    "Identity": iaa.Identity,
    "Fliplr": iaa.Fliplr,
    "Flipud": iaa.Flipud,
    "Affine": iaa.Affine,
    "Rotate": iaa.Rotate,
    "ShearX": iaa.ShearX,
    "ShearY": iaa.ShearY,
    "TranslateX": iaa.TranslateX,
    "TranslateY": iaa.TranslateY,
    "PerspectiveTransform": iaa.PerspectiveTransform,
    "ElasticTransformation": iaa.ElasticTransformation,
    "GaussianBlur": iaa.GaussianBlur,
    "MotionBlur": iaa.MotionBlur,
    "AdditiveGaussianNoise": iaa.AdditiveGaussianNoise,
    "Add": iaa.Add,
    "Multiply": iaa.Multiply,
    "LinearContrast": iaa.LinearContrast,
    "GammaContrast": iaa.GammaContrast,
    "Grayscale": iaa.Grayscale,
    "Sharpen": iaa.Sharpen,
    "Invert": iaa.Invert,
    "Solarize": iaa.Solarize,
    "Posterize": iaa.Posterize,
    "JpegCompression": iaa.JpegCompression,
    "Cutout": iaa.Cutout,
    "CoarseDropout": iaa.CoarseDropout,
    "pillike.Equalize": iaa.pillike.Equalize,
    "pillike.Autocontrast": iaa.pillike.Autocontrast,
    "pillike.EnhanceColor": iaa.pillike.EnhanceColor,
    "pillike.EnhanceContrast": iaa.pillike.EnhanceContrast,
    "pillike.EnhanceBrightness": iaa.pillike.EnhanceBrightness,
    "pillike.EnhanceSharpness": iaa.pillike.EnhanceSharpness,
}

# Augmenters the fork offers but that fail on NumPy 2, with the reason given to users.
BROKEN_ON_NUMPY2 = {
    "RandAugment": "iaa.RandAugment fails on NumPy 2 in sindre-imgaug 0.4.2; use the "
    "'randaugment' stage instead",
}

# Defaults that replace broken ones of the fork.
SAFE_DEFAULTS = {"pillike.Autocontrast": {"cutoff": 0}}


def _is_spec(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in IMGAUG_AUGMENTERS


def _convert(value: Any) -> Any:
    if _is_spec(value):
        return build_augmenter(value)
    if isinstance(value, dict) and set(value) == {"choice"}:
        return [_convert(v) for v in value["choice"]]
    if isinstance(value, list):
        if value and all(_is_spec(v) for v in value):
            return [build_augmenter(v) for v in value]
        return tuple(_convert(v) for v in value)
    return value


def build_augmenter(spec: Any) -> iaa.Augmenter:
    """Builds an imgaug augmenter from ``{Name: params}``; raises ValueError on bad specs."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError(f"an imgaug spec must be a mapping {{Name: params}}, got {spec!r}")
    name, params = next(iter(spec.items()))
    if name in BROKEN_ON_NUMPY2:
        raise ValueError(BROKEN_ON_NUMPY2[name])
    if name not in IMGAUG_AUGMENTERS:
        close = difflib.get_close_matches(str(name), list(IMGAUG_AUGMENTERS), n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise ValueError(
            f"unknown imgaug augmenter {name!r}{hint} allowed: {sorted(IMGAUG_AUGMENTERS)}"
        )
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValueError(f"parameters of imgaug {name!r} must be a mapping, got {params!r}")
    kwargs = {**SAFE_DEFAULTS.get(name, {}), **{k: _convert(v) for k, v in params.items()}}
    try:
        return IMGAUG_AUGMENTERS[name](**kwargs)
    except Exception as error:  # imgaug raises many types for bad arguments
        raise ValueError(f"imgaug {name}({params}) failed: {error}") from error


def _check_spec(value) -> str | None:
    try:
        build_augmenter(value)
    except ValueError as error:
        return str(error)
    return None


def augment_uint8(augmenter: iaa.Augmenter, images: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Augments each uint8 ``[H, W, C]`` image with ``augmenter`` reseeded by its own seed."""
    local = augmenter.deepcopy()
    out = np.empty_like(images)
    for i, (image, seed) in enumerate(zip(images, seeds, strict=True)):
        local.seed_(int(seed))
        result = local.augment_image(image)
        if result.shape != image.shape:
            raise ValueError(
                f"imgaug changed the image shape {image.shape} -> {result.shape}; "
                "use keep_size: true (the stage keeps static shapes)"
            )
        out[i] = result
    return out


class ImgaugStage(Stage):
    """Runs an imgaug augmenter through ``tf.numpy_function`` on uint8 images."""

    name = "imgaug"
    params: ClassVar[dict[str, Param]] = {
        "augmenter": Param({"Identity": None}, "any", check=_check_spec)
    }

    def __init__(self, **config):
        super().__init__(**config)
        self.augmenter = build_augmenter(self.config["augmenter"])

    def sample(self, seed, image_shape):
        value = tf.random.stateless_uniform([], seed, 0, 2**31 - 1, dtype=tf.int64)
        return {"seed": value}

    def apply(self, images, params):
        as_uint8 = tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)
        out = tf.numpy_function(
            lambda x, s: augment_uint8(self.augmenter, x, s),
            [as_uint8, params["seed"]],
            tf.uint8,
            stateful=False,
        )
        out.set_shape(images.shape)
        return tf.cast(out, tf.float32)
