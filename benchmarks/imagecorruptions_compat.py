"""Imports the `imagecorruptions` reference package on NumPy 2 / scikit-image >= 0.19.

imagecorruptions 1.1.2 (2020) uses `np.float_` (removed in NumPy 2), `pkg_resources` (gone from
new setuptools) and `skimage.filters.gaussian(multichannel=...)` (now `channel_axis`). This module
patches those three spots so the unmodified package can serve as the reference in the corruption
benchmark and tests. It is not used by the package itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import sys
import types


def load_imagecorruptions() -> tuple[types.ModuleType, types.ModuleType]:
    """Returns `(imagecorruptions, imagecorruptions.corruptions)` with the shims applied."""
    import numpy as np
    import skimage.filters

    if not hasattr(np, "float_"):
        setattr(np, "float_", np.float64)  # noqa: B010 (removed in NumPy 2)
    if importlib.util.find_spec("pkg_resources") is None and "pkg_resources" not in sys.modules:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda pkg, rel: str(
            pathlib.Path(importlib.import_module(pkg).__file__).parent / rel
        )
        sys.modules["pkg_resources"] = shim
    gaussian = skimage.filters.gaussian

    def gaussian_compat(*args, multichannel=None, **kwargs):
        if multichannel:
            kwargs["channel_axis"] = -1
        return gaussian(*args, **kwargs)

    import imagecorruptions
    import imagecorruptions.corruptions as reference_corruptions

    reference_corruptions.gaussian = gaussian_compat
    return imagecorruptions, reference_corruptions
