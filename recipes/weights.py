"""Pretrained torchvision-format weights for `recipes.resnet18/50`: reading, mapping, known files.

`load_weights(model, path_or_name)` reads a state dict from `.pth` (without executing pickled code,
see `recipes.checkpoint_io`), `.safetensors` or `.npz`, maps it onto the layers named after
torchvision's modules (conv OIHW -> HWIO, BatchNorm weight/bias/running_mean/running_var ->
gamma/beta/moving_mean/moving_variance, fc (out, in) -> (in, out)) and assigns everything at once,
or nothing: every missing, unexpected and mis-shaped key is listed in one error. antialiased-cnns'
layout (blur inside `conv2`/`conv3`/`downsample` Sequentials, `filt` buffers) is mapped onto the
same layer names, and each blur's filter size is checked against the model's `BlurPool2D` layers.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from layers import BlurPool2D
from recipes.checkpoint_io import read_pth

HEAD_LAYER = "fc"


@dataclass(frozen=True)
class KnownWeights:
    """A published checkpoint.

    Attributes:
        name: registry name, e.g. "torchvision-resnet50-imagenet".
        architecture: "resnet18" or "resnet50".
        antialias: BlurPool filter size the weights were trained with, None for plain models.
        url: where the publisher serves the file.
        filename: file name in the cache (the publisher's, unless two files share one).
        sha256: full SHA-256 of the file where published, else None.
        sha256_prefix: the SHA-256 prefix the publisher embeds in the file name, else None.
        num_classes: classes of the checkpoint's "fc", None when it has no head.
        about: provenance and expected preprocessing.
    """

    name: str
    architecture: str
    antialias: int | None
    url: str
    filename: str
    sha256: str | None
    sha256_prefix: str | None
    num_classes: int | None
    about: str


IMAGENET_PREPROCESSING = "RGB in [0, 1], mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)"
_TORCHVISION_URL = "https://download.pytorch.org/models/"
_ANTIALIASED_URL = "https://antialiased-cnns.s3.us-east-2.amazonaws.com/weights_v0.1/"
_BARLOW_URL = "https://dl.fbaipublicfiles.com/barlowtwins/"


def _hashed_file(name: str, architecture: str, antialias: int | None, url: str, about: str):
    """A file named `<stem>-<sha256 prefix>.pth`, the torch.hub convention (`check_hash`)."""
    filename = url.rsplit("/", 1)[-1]
    prefix = filename.rsplit("-", 1)[-1].split(".")[0]
    return KnownWeights(name, architecture, antialias, url, filename, None, prefix, 1000, about)


_ANTIALIASED_HASHES = {  # antialiased-cnns `model_urls` (adobe/antialiased-cnns resnet.py)
    ("resnet18", 2): "6e2ee76f",
    ("resnet18", 3): "449351b9",
    ("resnet18", 4): "8c77af40",
    ("resnet18", 5): "c1eed0a1",
    ("resnet50", 2): "f0f7589d",
    ("resnet50", 3): "a4e868d2",
    ("resnet50", 4): "994b528f",
    ("resnet50", 5): "9953c9ad",
}
_ANTIALIASED_FINETUNE_HASHES = {("resnet18", 4): "8cc58f59", ("resnet50", 4): "cad66808"}

_KNOWN: tuple[KnownWeights, ...] = (
    _hashed_file(
        "torchvision-resnet18-imagenet",
        "resnet18",
        None,
        _TORCHVISION_URL + "resnet18-f37072fd.pth",
        "torchvision IMAGENET1K_V1, acc@1 69.758; " + IMAGENET_PREPROCESSING,
    ),
    _hashed_file(
        "torchvision-resnet50-imagenet",
        "resnet50",
        None,
        _TORCHVISION_URL + "resnet50-0676ba61.pth",
        "torchvision IMAGENET1K_V1, acc@1 76.130; " + IMAGENET_PREPROCESSING,
    ),
    _hashed_file(
        "torchvision-resnet50-imagenet-v2",
        "resnet50",
        None,
        _TORCHVISION_URL + "resnet50-11ad3fa6.pth",
        "torchvision IMAGENET1K_V2, acc@1 80.858 (resize 232); " + IMAGENET_PREPROCESSING,
    ),
    KnownWeights(
        "barlowtwins-resnet50",
        "resnet50",
        None,
        _BARLOW_URL + "ep1000_bs2048_lrw0.2_lrb0.0048_lambd0.0051/resnet50.pth",
        "barlowtwins-resnet50.pth",
        None,
        None,
        None,
        "Barlow Twins backbone, no fc; the file that torch.hub.load("
        "'facebookresearch/barlowtwins:main', 'resnet50') loads; no checksum published; "
        + IMAGENET_PREPROCESSING,
    ),
    KnownWeights(
        "barlowtwins-resnet50-ljng",
        "resnet50",
        None,
        _BARLOW_URL + "ljng/resnet50.pth",
        "barlowtwins-resnet50-ljng.pth",
        None,
        None,
        None,
        "Barlow Twins backbone, no fc; the checkpoint the README links since 2021-12 (a different "
        "file from the hub one); no checksum published; " + IMAGENET_PREPROCESSING,
    ),
    *(
        _hashed_file(
            f"antialiased-{arch}-lpf{k}",
            arch,
            k,
            f"{_ANTIALIASED_URL}{arch}_lpf{k}-{prefix}.pth",
            f"antialiased-cnns, BlurPool filter {k}, trained from scratch (CC BY-NC-SA 4.0); "
            + IMAGENET_PREPROCESSING,
        )
        for (arch, k), prefix in _ANTIALIASED_HASHES.items()
    ),
    *(
        _hashed_file(
            f"antialiased-{arch}-lpf{k}-finetune",
            arch,
            k,
            f"{_ANTIALIASED_URL}{arch}_lpf{k}_finetune-{prefix}.pth",
            f"antialiased-cnns, BlurPool filter {k}, initialised from torchvision and trained for "
            "the last 2/3 of the schedule; what antialiased_cnns.resnetXX(pretrained=True) loads "
            "(CC BY-NC-SA 4.0); " + IMAGENET_PREPROCESSING,
        )
        for (arch, k), prefix in _ANTIALIASED_FINETUNE_HASHES.items()
    ),
)


def known_weights() -> dict[str, KnownWeights]:
    """Returns the published checkpoints `load_weights` can fetch by name, by name."""
    return {entry.name: entry for entry in _KNOWN}


class WeightsUnavailableError(OSError):
    """A known checkpoint is neither in the cache nor downloadable."""


def default_cache_dir() -> Path:
    """`$KERAS_HOME/models`, or `~/.keras/models`: where `keras.utils.get_file` caches models."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | Path, entry: KnownWeights) -> bool:
    """Checks a file against the entry's full SHA-256, else its published prefix.

    Returns:
        True when checked and matching, False when the publisher gives no checksum at all.

    Raises:
        ValueError: the checksum does not match.
    """
    expected = entry.sha256 or entry.sha256_prefix
    if expected is None:
        return False
    actual = _sha256(Path(path))
    if not actual.startswith(expected):
        raise ValueError(
            f"{path} does not match {entry.name}: its SHA-256 is {actual}, expected "
            f"{'' if entry.sha256 else 'a digest starting with '}{expected}; delete it and "
            f"download {entry.url} again"
        )
    return True


def fetch_weights(name: str, cache_dir: str | Path | None = None) -> Path:
    """Returns the local path of a known checkpoint, downloading it into the Keras cache if needed.

    Args:
        name: a key of `known_weights()`.
        cache_dir: folder for the file; defaults to `default_cache_dir()`.

    Returns:
        The verified file's path.

    Raises:
        ValueError: unknown name, or a file whose checksum does not match.
        WeightsUnavailableError: not cached and the download failed (e.g. no network); the message
            says what to download and where to put it.
    """
    known = known_weights()
    if name not in known:
        raise ValueError(f"unknown weights {name!r}; known: {sorted(known)}")
    entry = known[name]
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = directory / entry.filename
    if not target.exists():
        # get_file falls back to /tmp/.keras when the folder does not exist (is not writable).
        directory.mkdir(parents=True, exist_ok=True)
        try:
            target = Path(
                keras.utils.get_file(
                    fname=entry.filename,
                    origin=entry.url,
                    cache_dir=str(directory.parent),
                    cache_subdir=directory.name,
                    file_hash=entry.sha256,
                )
            )
        except Exception as error:
            checksum = entry.sha256 or entry.sha256_prefix
            check = f" (its SHA-256 starts with {checksum})" if checksum else ""
            raise WeightsUnavailableError(
                f"could not download {name!r} ({error}). Download {entry.url}{check} on a machine "
                f"with network access and put it at {target}, or pass the file's path to "
                "load_weights."
            ) from error
    if not verify_file(target, entry):
        warnings.warn(
            f"{entry.name}: the publisher gives no checksum, so {target} is not verified",
            stacklevel=2,
        )
    return target


# ----------------------------------------------------------------------------------------------
# Reading state dicts


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


# file suffix -> reader; ".tar" covers the ".pth.tar" names some projects use for state dicts.
READERS: dict[str, Callable[[Path], Any]] = {
    ".pth": read_pth,
    ".pt": read_pth,
    ".tar": read_pth,
    ".safetensors": _read_safetensors,
    ".npz": _read_npz,
}


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Reads a torchvision-format state dict as NumPy arrays.

    A `{"state_dict": ...}` wrapper (antialiased-cnns) is unwrapped and a `module.` prefix
    (`DataParallel`) is stripped.

    Args:
        path: a `.pth`/`.pt`/`.pth.tar`, `.safetensors` or `.npz` file.

    Returns:
        Checkpoint key -> array.
    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"cannot read {path}: the suffix must be one of {sorted(READERS)}")
    state = reader(path)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
    not_arrays = sorted(str(k) for k, v in state.items() if not isinstance(v, np.ndarray))
    if not_arrays:
        raise ValueError(f"{path} is not a plain state dict: non-tensor entries {not_arrays}")
    if state and all(str(key).startswith("module.") for key in state):
        state = {str(key)[len("module.") :]: value for key, value in state.items()}
    return {str(key): value for key, value in state.items()}


def save_state_dict(state: Mapping[str, np.ndarray], path: str | Path) -> None:
    """Writes a state dict as `.safetensors` or `.npz`, atomically (temp file + os.replace).

    Convert a `.pth` once with `save_state_dict(read_state_dict("x.pth"), "x.safetensors")`.
    """
    path = Path(path)
    writers = {".safetensors": _write_safetensors, ".npz": _write_npz}
    if path.suffix not in writers:
        raise ValueError(f"cannot write {path}: the suffix must be one of {sorted(writers)}")
    arrays = {key: np.ascontiguousarray(value) for key, value in state.items()}
    handle, temporary = tempfile.mkstemp(suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        writers[path.suffix](arrays, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _write_safetensors(arrays: dict[str, np.ndarray], path: str) -> None:
    from safetensors.numpy import save_file

    save_file(arrays, path)


def _write_npz(arrays: dict[str, np.ndarray], path: str) -> None:
    with open(path, "wb") as stream:
        np.savez(stream, **arrays)


# ----------------------------------------------------------------------------------------------
# Key mapping

# antialiased-cnns puts the strided block's blur in a Sequential with the following conv
# (`conv2.0` blur + `conv2.1` conv in BasicBlock, `conv3.*` in Bottleneck).
_ANTIALIASED_CONV = re.compile(r"^(layer\d+\.\d+\.conv[23])\.1\.")
# antialiased-cnns blur buffers (`<module>.filt`) -> the BlurPool2D layer in `recipes.resnet`.
_BLUR_LAYERS: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(r"^maxpool\.1$"), "maxpool_blur"),
    (re.compile(r"^(layer\d+\.\d+)\.conv[23]\.0$"), r"\1.blur"),
    (re.compile(r"^(layer\d+\.\d+)\.downsample\.0$"), r"\1.downsample_blur"),
)


@dataclass(frozen=True)
class _Checkpoint:
    params: dict[str, np.ndarray]  # torchvision key -> array
    blurs: dict[str, tuple[str, int]]  # Keras blur layer name -> (checkpoint key, filter size)
    ignored: tuple[str, ...]
    unexpected: tuple[str, ...]


def _normalize_keys(state: Mapping[str, np.ndarray]) -> _Checkpoint:
    """Maps antialiased-cnns' layout onto torchvision keys and separates the blur buffers."""
    blurred_shortcuts = {
        key[: -len(".downsample.0.filt")] for key in state if key.endswith(".downsample.0.filt")
    }
    params, blurs, ignored, unexpected = {}, {}, [], []
    for key, value in state.items():
        if key.endswith(".num_batches_tracked"):
            ignored.append(key)
            continue
        if key.endswith(".filt"):
            module = key[: -len(".filt")]
            for pattern, layer in _BLUR_LAYERS:
                if pattern.match(module):
                    blurs[pattern.sub(layer, module)] = (key, int(value.shape[-1]))
                    ignored.append(key)
                    break
            else:
                unexpected.append(key)
            continue
        name = _ANTIALIASED_CONV.sub(r"\1.", key)
        block, _, rest = name.partition(".downsample.")
        if block in blurred_shortcuts and rest[:2] in ("1.", "2."):
            name = f"{block}.downsample.{int(rest[0]) - 1}.{rest[2:]}"
        params[name] = value
    return _Checkpoint(params, blurs, tuple(ignored), tuple(unexpected))


# Keras layer class -> ((torch parameter, transpose torch -> Keras or None), ...) in the order of
# `layer.weights`.
_PARAMETERS: dict[type, tuple[tuple[str, tuple[int, ...] | None], ...]] = {
    keras.layers.Conv2D: (("weight", (2, 3, 1, 0)),),
    keras.layers.BatchNormalization: (
        ("weight", None),
        ("bias", None),
        ("running_mean", None),
        ("running_var", None),
    ),
    keras.layers.Dense: (("weight", (1, 0)), ("bias", None)),
}


def _torch_shape(keras_shape: tuple[int, ...], axes: tuple[int, ...] | None) -> tuple[int, ...]:
    if axes is None:
        return tuple(keras_shape)
    shape = [0] * len(axes)
    for keras_axis, torch_axis in enumerate(axes):
        shape[torch_axis] = keras_shape[keras_axis]
    return tuple(shape)


def _leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    leaves = []
    for layer in model.layers:
        leaves.extend(_leaf_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return leaves


@dataclass(frozen=True)
class LoadReport:
    """What `load_weights` did.

    Attributes:
        source: the file read.
        loaded_layers: Keras layers whose weights were set.
        head_loaded: whether the "fc" head was loaded from the checkpoint.
        messages: what was skipped and why (head skipped, plain weights in an anti-aliased model).
        ignored_keys: checkpoint entries that are not weights (`num_batches_tracked`, blur filters).
    """

    source: str
    loaded_layers: tuple[str, ...]
    head_loaded: bool
    messages: tuple[str, ...]
    ignored_keys: tuple[str, ...]

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded_layers)} layers from {self.source}", *self.messages]
        return "\n".join(lines)


def _head_decision(
    layers: list[keras.layers.Layer], params: dict[str, np.ndarray], skip_mismatched_head: bool
) -> tuple[bool, str | None]:
    """Returns (skip the head?, why) for the "fc" layer / `fc.*` keys."""
    if not skip_mismatched_head:
        return False, None
    head = next((layer for layer in layers if layer.name == HEAD_LAYER), None)
    weight = params.get(f"{HEAD_LAYER}.weight")
    if head is None and weight is not None:
        return True, f"the model has no {HEAD_LAYER!r} head; the checkpoint's fc is not used"
    if head is not None and weight is None:
        return True, "the checkpoint has no classifier (fc); the head keeps its initial weights"
    if head is not None and weight.shape[0] != head.units:
        return True, (
            f"the checkpoint's fc has {weight.shape[0]} classes, the model {head.units}; "
            "the head keeps its initial weights"
        )
    return False, None


def load_weights(
    model: keras.Model,
    path_or_name: str | Path,
    *,
    skip_mismatched_head: bool = True,
    cache_dir: str | Path | None = None,
) -> LoadReport:
    """Loads a torchvision-format checkpoint into a `recipes.resnet18/50` model.

    Args:
        model: a model built by `recipes.resnet18/50` (any head, pooling, antialias).
        path_or_name: a `.pth`/`.safetensors`/`.npz` file, or a key of `known_weights()`.
        skip_mismatched_head: leave "fc" as initialised (with a warning) when the checkpoint has no
            fc, a different class count, or the model has no head; otherwise that is an error.
        cache_dir: where known weights are cached (default `default_cache_dir()`).

    Returns:
        A `LoadReport`.

    Raises:
        ValueError: listing every missing, unexpected and mis-shaped key, and blur filter sizes that
            differ from the model's; nothing is assigned then.
        UnsafeCheckpointError: a `.pth` whose pickle holds anything but tensors and containers.
        WeightsUnavailableError: a known name that is not cached and cannot be downloaded.
    """
    path = Path(path_or_name)
    if not path.exists():
        if str(path_or_name) not in known_weights():
            raise FileNotFoundError(
                f"{path_or_name} is neither a file nor a known weight name: "
                f"{sorted(known_weights())}"
            )
        path = fetch_weights(str(path_or_name), cache_dir)
    checkpoint = _normalize_keys(read_state_dict(path))
    layers = _leaf_layers(model)
    skip_head, head_message = _head_decision(layers, checkpoint.params, skip_mismatched_head)
    assignments, problems = _match_weights(layers, checkpoint, skip_head)
    blur_problems, blur_messages = _match_blurs(layers, checkpoint)
    problems["blur filters"] = blur_problems
    if any(problems.values()):
        details = "\n".join(
            f"  {title} ({len(items)}):\n" + "\n".join(f"    {item}" for item in items)
            for title, items in problems.items()
            if items
        )
        raise ValueError(
            f"{path} does not fit model {model.name!r}; nothing was loaded:\n{details}"
        )

    layers_by_name = {layer.name: layer for layer in layers}
    for name, arrays in assignments.items():
        layers_by_name[name].set_weights(arrays)
    messages = ([head_message] if head_message else []) + blur_messages
    for message in messages:
        warnings.warn(message, stacklevel=2)
    return LoadReport(
        source=str(path),
        loaded_layers=tuple(assignments),
        head_loaded=HEAD_LAYER in assignments,
        messages=tuple(messages),
        ignored_keys=checkpoint.ignored,
    )


def _match_weights(
    layers: list[keras.layers.Layer], checkpoint: _Checkpoint, skip_head: bool
) -> tuple[dict[str, list[np.ndarray]], dict[str, list[str]]]:
    """Converts the checkpoint's arrays for every layer with weights.

    Returns:
        (layer name -> arrays in `layer.weights` order, problem kind -> descriptions).
    """
    missing, misshaped, assignments, used = [], [], {}, set()
    for layer in layers:
        spec = next((v for k, v in _PARAMETERS.items() if isinstance(layer, k)), None)
        if spec is None or (skip_head and layer.name == HEAD_LAYER):
            continue
        if len(layer.weights) != len(spec):
            raise ValueError(
                f"layer {layer.name!r} has {len(layer.weights)} weights, expected {len(spec)} "
                "for a torchvision-layout model (built by recipes.resnet18/50?)"
            )
        arrays = []
        for variable, (param, axes) in zip(layer.weights, spec, strict=True):
            key = f"{layer.name}.{param}"
            expected = _torch_shape(tuple(variable.shape), axes)
            if key not in checkpoint.params:
                missing.append(f"{key} {expected}")
                continue
            used.add(key)
            value = checkpoint.params[key]
            if value.shape != expected:
                misshaped.append(f"{key}: checkpoint {value.shape}, model {expected}")
                continue
            arrays.append(value if axes is None else value.transpose(axes))
        assignments[layer.name] = arrays
    head_keys = {k for k in checkpoint.params if k.startswith(f"{HEAD_LAYER}.")}
    unused = set(checkpoint.params) - used - (head_keys if skip_head else set())
    problems = {
        "missing from the checkpoint": missing,
        "unexpected in the checkpoint": sorted(unused) + list(checkpoint.unexpected),
        "mis-shaped": misshaped,
    }
    return assignments, problems


def _match_blurs(
    layers: list[keras.layers.Layer], checkpoint: _Checkpoint
) -> tuple[list[str], list[str]]:
    """Checks the checkpoint's blur filter sizes against the model's BlurPool2D layers.

    Returns:
        (problems, messages).
    """
    model_blurs = {
        layer.name: layer.filter_size for layer in layers if isinstance(layer, BlurPool2D)
    }
    problems = []
    for name, (key, size) in sorted(checkpoint.blurs.items()):
        if name not in model_blurs:
            problems.append(
                f"{key}: the checkpoint is anti-aliased (filter size {size}) but the model has no "
                f"blur layer {name!r}; build it with antialias={size}"
            )
        elif model_blurs[name] != size:
            problems.append(
                f"{key}: checkpoint blur filter size {size}, model layer {name!r} has "
                f"{model_blurs[name]}"
            )
    plain_into_blurred = bool(model_blurs) and not checkpoint.blurs
    messages = ["plain (not anti-aliased) weights loaded into an anti-aliased model"]
    return problems, messages if plain_into_blurred else []
