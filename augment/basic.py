"""Basic stages: random flips, random rotation, random resized crop, resize and cutout."""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf

from augment import ops
from augment.base import Param, Stage, split_seed


class RandomFlip(Stage):
    """Flips each image with probability ``probability`` (per direction for both)."""

    name = "random_flip"
    accepts_uint8 = True
    params: ClassVar[dict[str, Param]] = {
        "mode": Param(
            "horizontal", "str", choices=("horizontal", "vertical", "horizontal_and_vertical")
        ),
        "probability": Param(0.5, "float", 0, 1),
    }

    def sample(self, seed, image_shape):
        draws = tf.random.stateless_uniform([2], seed) < self.config["probability"]
        mode = self.config["mode"]
        return {
            "horizontal": draws[0] & (mode != "vertical"),
            "vertical": draws[1] & (mode != "horizontal"),
        }

    def apply(self, images, params):
        images = tf.where(params["horizontal"][:, None, None, None], images[:, :, ::-1], images)
        return tf.where(params["vertical"][:, None, None, None], images[:, ::-1], images)


class RandomRotation(Stage):
    """With probability ``probability``, rotates by an angle ~ U(-degrees, degrees).

    ``fill`` is the value outside the rotated image (torchvision's RandomRotation uses 0).
    """

    name = "random_rotation"
    params: ClassVar[dict[str, Param]] = {
        "degrees": Param(20.0, "float", 0, 180),
        "probability": Param(1.0, "float", 0, 1),
        "fill": Param(128.0, "float", 0, 255),
        "interpolation": Param("nearest", "str", choices=("nearest", "bilinear")),
    }

    def sample(self, seed, image_shape):
        s_angle, s_apply = split_seed(seed, 2)
        d = self.config["degrees"]
        angle = tf.random.stateless_uniform([], s_angle, -d, d)
        applied = tf.random.stateless_uniform([], s_apply) < self.config["probability"]
        return {"degrees": tf.where(applied, angle, 0.0)}

    def apply(self, images, params):
        shape = tf.shape(images)
        matrices = ops.rotate_matrix(params["degrees"], shape[1], shape[2])
        rotated = ops.warp(images, matrices, self.config["interpolation"], self.config["fill"])
        return tf.clip_by_value(tf.round(rotated), 0.0, 255.0)


class RandomResizedCrop(Stage):
    """Inception-style crop (area fraction ``scale``, aspect ``ratio``) resized to ``size``."""

    name = "random_resized_crop"
    batchable = False
    params: ClassVar[dict[str, Param]] = {
        "size": Param([224, 224], "range", 1, 100000),
        "scale": Param([0.08, 1.0], "range", 0.001, 1),
        "ratio": Param([0.75, 4.0 / 3.0], "range", 0.01, 100),
    }

    def sample(self, seed, image_shape):
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            image_shape,
            tf.zeros([1, 0, 4]),
            seed=seed,
            min_object_covered=0.0,
            aspect_ratio_range=self.config["ratio"],
            area_range=self.config["scale"],
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
        )
        return {"begin": begin, "size": size}

    def apply(self, images, params):
        crop = tf.slice(images[0], params["begin"][0], params["size"][0])
        resized = tf.image.resize(crop, self.config["size"], method="bilinear", antialias=True)
        resized.set_shape([*self.config["size"], images.shape[-1]])
        return tf.clip_by_value(tf.round(resized), 0.0, 255.0)[None]


class Resize(Stage):
    """Resizes to ``size`` [height, width] (deterministic)."""

    name = "resize"
    batchable = False
    params: ClassVar[dict[str, Param]] = {
        "size": Param([224, 224], "range", 1, 100000),
        "method": Param("bilinear", "str", choices=("bilinear", "nearest", "bicubic", "area")),
        "antialias": Param(True, "bool"),
    }

    def apply(self, images, params):
        c = self.config
        resized = tf.image.resize(images, c["size"], method=c["method"], antialias=c["antialias"])
        return tf.clip_by_value(tf.round(resized), 0.0, 255.0)


class Cutout(Stage):
    """With probability ``probability``, fills a ``size`` x ``size`` square (centre uniform over the
    pixels, clipped at the border) with ``fill`` (DeVries & Taylor 2017)."""

    name = "cutout"
    params: ClassVar[dict[str, Param]] = {
        "size": Param(16, "int", 1, 100000),
        "probability": Param(1.0, "float", 0, 1),
        "fill": Param(128.0, "float", 0, 255),
    }

    def sample(self, seed, image_shape):
        s_center, s_apply = split_seed(seed, 2)
        size = tf.cast(image_shape[:2], tf.float32)
        applied = tf.random.stateless_uniform([], s_apply) < self.config["probability"]
        return {
            "center": tf.floor(tf.random.stateless_uniform([2], s_center) * size),
            "half": tf.where(applied, self.config["size"] / 2.0, 0.0),
        }

    def apply(self, images, params):
        return ops.cutout(images, params["half"], params["center"], self.config["fill"])
