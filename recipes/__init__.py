"""recipes: torchvision-layout ResNets, safe pretrained-weight import and training recipes.

Names are imported on first use (PEP 562), so `python -m recipes.NAME --help` answers without
loading TensorFlow.
"""

import importlib

# public name -> the module that defines it
_EXPORTS = {
    "resnet18": "recipes.resnet",
    "resnet50": "recipes.resnet",
    "load_weights": "recipes.weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'recipes' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
