"""Augmentation as ``tf.data`` stages and YAML policies.

``load_policy(path_or_preset)`` returns a validated ``Policy``; ``Policy.apply(dataset, batch_size,
num_classes=None, seed=0)`` augments ``(image, label)`` elements deterministically per element.
"""

from augment.augmix import jensen_shannon_loss
from augment.policy import Policy, load_policy, policy_from_dict, preset_names

__all__ = ["Policy", "jensen_shannon_loss", "load_policy", "policy_from_dict", "preset_names"]
