"""Augmentation as ``tf.data`` stages and YAML policies.

``load_policy(path_or_preset)`` returns a validated ``Policy``; ``Policy.apply(dataset, batch_size,
num_classes=None, seed=0)`` augments ``(image, label)`` elements deterministically per element.
Names are imported on first use (PEP 562), so ``python -m augment --help`` answers without
loading TensorFlow.
"""

import importlib

# public name -> the module that defines it
_EXPORTS = {
    "jensen_shannon_loss": "augment.augmix",
    "Policy": "augment.policy",
    "load_policy": "augment.policy",
    "policy_from_dict": "augment.policy",
    "preset_names": "augment.policy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'augment' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
