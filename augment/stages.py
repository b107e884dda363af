"""The stage registry: YAML stage names -> stage classes."""

from __future__ import annotations

from augment.augmix import AugMix
from augment.autoaugment import AutoAugment
from augment.base import Stage
from augment.basic import Cutout, RandomFlip, RandomResizedCrop, RandomRotation, Resize
from augment.imgaug_stage import ImgaugStage
from augment.mixing import CutMix, MixUp
from augment.patch_gaussian import PatchGaussian
from augment.randaugment import RandAugment

IMAGE_STAGES: dict[str, type[Stage]] = {
    cls.name: cls
    for cls in (
        RandomFlip,
        RandomRotation,
        RandomResizedCrop,
        Resize,
        Cutout,
        RandAugment,
        AutoAugment,
        AugMix,
        PatchGaussian,
        ImgaugStage,
    )
}
BATCH_STAGES: dict[str, type[Stage]] = {cls.name: cls for cls in (MixUp, CutMix)}
