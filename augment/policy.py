"""YAML augmentation policies: loading, validation and application to a ``tf.data`` pipeline."""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Any

import tensorflow as tf
import yaml

from augment import counter_random
from augment.base import Stage
from augment.chain import to_float32
from augment.stages import BATCH_STAGES, IMAGE_STAGES

PRESET_DIR = Path(__file__).parent / "policies"
TOP_LEVEL_KEYS = ("version", "description", "value_range", "image", "batch")


def preset_names() -> list[str]:
    """Names of the presets in ``augment/policies`` (file stems)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _suggest(name: Any, candidates) -> str:
    close = difflib.get_close_matches(str(name), list(candidates), n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _line_numbers(text: str) -> dict[tuple, int]:
    """1-based YAML line of each top-level key, stage entry and stage parameter."""
    lines: dict[tuple, int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines
    if not isinstance(root, yaml.MappingNode):
        return lines
    for key, value in root.value:
        lines[(key.value,)] = key.start_mark.line + 1
        if not isinstance(value, yaml.SequenceNode):
            continue
        for i, item in enumerate(value.value):
            lines[(key.value, i)] = item.start_mark.line + 1
            if not isinstance(item, yaml.MappingNode):
                continue
            for _, params in item.value:
                if isinstance(params, yaml.MappingNode):
                    for param, _ in params.value:
                        lines[(key.value, i, param.value)] = param.start_mark.line + 1
    return lines


class Policy:
    """Validated image and batch stages, applied by ``apply``; ``print(policy)`` shows them."""

    def __init__(
        self,
        image_stages: list[Stage],
        batch_stages: list[Stage],
        value_range: tuple[float, float] = (0.0, 255.0),
        source: str = "<dict>",
    ):
        self.image_stages = list(image_stages)
        self.batch_stages = list(batch_stages)
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.source = source

    def __repr__(self) -> str:
        lines = [f"Policy from {self.source}", f"  value_range: {list(self.value_range)}"]
        for title, stages in (("image", self.image_stages), ("batch", self.batch_stages)):
            lines.append(f"  {title}:" + ("" if stages else " []"))
            lines += [f"    - {stage!r}" for stage in stages]
        return "\n".join(lines)

    @property
    def yields_triplets(self) -> bool:
        """True when the images are ``(clean, augmix_1, augmix_2)`` (AugMix with ``jsd``)."""
        return bool(self.image_stages) and bool(self.image_stages[-1].config.get("jsd", False))

    def _to_255(self, images: tf.Tensor) -> tf.Tensor:
        """Input representation -> [0, 255] (kept uint8 when the range already is [0, 255])."""
        if images.dtype == tf.uint8 and self.value_range == (0.0, 255.0):
            return images
        return _range_converters(*self.value_range, images.dtype.name)[0](images)

    def _from_255(self, images: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
        """[0, 255] float32 or uint8 -> ``dtype`` in the value range (rounded for integers)."""
        if images.dtype == dtype == tf.uint8 and self.value_range == (0.0, 255.0):
            return images
        return _range_converters(*self.value_range, dtype.name)[1](to_float32(images))

    def apply(
        self,
        dataset: tf.data.Dataset,
        batch_size: int,
        num_classes: int | None = None,
        seed: int = 0,
        drop_remainder: bool = False,
    ) -> tf.data.Dataset:
        """Augments ``(image, integer label)`` elements and batches them.

        Image stages draw their random parameters per element from ``(seed, stage, element
        index)``; stages that keep the image shape run after batching, on whole batches. The
        output is therefore the same with or without parallelism, for any ``batch_size``
        grouping of the same elements.

        Args:
            dataset: elements ``(image [H, W, C], label)``; uint8 or float images in the
                policy's ``value_range``.
            batch_size: batch size.
            num_classes: when given, labels become one-hot float32 (required by mixing stages).
            seed: the seed of every random draw.
            drop_remainder: drop the last partial batch.

        Returns:
            Batches ``(images, labels)``. Images keep their dtype, except after a mixing stage
            (float32 in the value range). With AugMix ``jsd: true`` images are the tuple
            ``(clean, augmix_1, augmix_2)``.
        """
        if self.batch_stages and num_classes is None:
            names = [s.name for s in self.batch_stages]
            raise ValueError(f"batch stages {names} mix labels: pass num_classes to apply()")
        dtype = dataset.element_spec[0].dtype
        stages = self.image_stages
        first_batched = len(stages)
        while first_batched > 0 and stages[first_batched - 1].batchable:
            first_batched -= 1

        def stage_seed(stage_index: int, index: tf.Tensor) -> tf.Tensor:
            base = tf.constant([seed, stage_index], tf.int64)
            return tf.random.experimental.stateless_fold_in(base, index)

        # Batched stages with a uniform count draw their numbers per batch, from counters.
        keys = {
            j: counter_random.stream_key(seed, j)
            for j in range(first_batched, len(stages))
            if stages[j].uniform_count() is not None
        }

        def run(stage: Stage, images: tf.Tensor, params) -> tf.Tensor:
            if images.dtype == tf.uint8 and not stage.accepts_uint8:
                images = to_float32(images)
            return stage.apply(images, params)

        def per_element(index, element):
            image, label = element
            x = self._to_255(image)
            params = []
            for j, stage in enumerate(stages):
                if j in keys:
                    continue
                p = stage.sample(stage_seed(j, index), tf.shape(x))
                if j < first_batched:
                    x = run(stage, x[None], tf.nest.map_structure(lambda t: t[None], p))[0]
                else:
                    params.append(p)
            return self._from_255(x, dtype), label, tuple(params)

        def per_batch(index, batch):
            images, labels, params = batch if len(batch) == 3 else (*batch, ())
            x = self._to_255(images)
            # Element indices: batches hold consecutive elements, all full but the last.
            elements = index * batch_size + tf.range(tf.shape(images, tf.int64)[0])
            params = iter(params)
            for j in range(first_batched, len(stages)):
                stage = stages[j]
                if j in keys:
                    uniform = counter_random.uniform(keys[j], elements, stage.uniform_count())
                    p = stage.from_uniform(uniform, tf.shape(x)[1:])
                else:
                    p = next(params)
                x = run(stage, x, p)
            if num_classes is not None:
                labels = tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float32)
            if not self.batch_stages:
                return tf.nest.map_structure(lambda t: self._from_255(t, dtype), x), labels
            x = to_float32(self._to_255(self._from_255(x, dtype)))
            for j, stage in enumerate(self.batch_stages):
                x, labels = stage.apply_batch(x, labels, stage_seed(1000 + j, index))
            return self._from_255(x, tf.float32), labels

        if len(keys) < len(stages):  # some stage draws or runs per element
            dataset = dataset.enumerate().map(per_element, num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        return dataset.enumerate().map(per_batch, num_parallel_calls=tf.data.AUTOTUNE)


def _range_converters(low: float, high: float, dtype_name: str):
    """XLA-compiled conversions between ``dtype`` in [low, high] and float32 in [0, 255]."""
    dtype = tf.as_dtype(dtype_name)

    def to_255(images):
        return (tf.cast(images, tf.float32) - low) * (255.0 / (high - low))

    def from_255(images):
        images = images * ((high - low) / 255.0) + low
        if dtype.is_integer:
            return tf.cast(tf.clip_by_value(tf.round(images), dtype.min, dtype.max), dtype)
        return tf.cast(images, dtype)

    compile_ = functools.partial(tf.function, jit_compile=True, reduce_retracing=True)
    return compile_(to_255), compile_(from_255)


def _build_stages(config: dict, section: str, where, errors: list[str]) -> list[Stage]:
    registry = IMAGE_STAGES if section == "image" else BATCH_STAGES
    other = BATCH_STAGES if section == "image" else IMAGE_STAGES
    entries = config.get(section) or []
    if not isinstance(entries, list):
        errors.append(f"{where((section,))}'{section}' must be a list of {{stage: params}}")
        return []
    stages = []
    for i, entry in enumerate(entries):
        at = where((section, i))
        if not isinstance(entry, dict) or len(entry) != 1:
            errors.append(
                f"{at}each '{section}' entry must be one mapping {{stage_name: {{params}}}}, "
                f"e.g. '- mixup: {{alpha: 0.3}}'; got {entry!r}"
            )
            continue
        name, params = next(iter(entry.items()))
        if name not in registry:
            if name in other:
                errors.append(
                    f"{at}'{name}' is a {other[name].kind} stage; "
                    f"list it under '{other[name].kind}:'"
                )
            else:
                errors.append(
                    f"{at}unknown {section} stage {name!r}.{_suggest(name, registry)} "
                    f"Allowed: {sorted(registry)}"
                )
            continue
        cls = registry[name]
        params = {} if params is None else params
        if not isinstance(params, dict):
            errors.append(f"{at}parameters of '{name}' must be a mapping, got {params!r}")
            continue
        bad = False
        for key, value in params.items():
            pat = where((section, i, key)) or at
            if key not in cls.params:
                errors.append(
                    f"{pat}stage '{name}' has no parameter {key!r}.{_suggest(key, cls.params)} "
                    f"Allowed: {sorted(cls.params)}"
                )
                bad = True
                continue
            problem = cls.params[key].error(value)
            if problem:
                errors.append(f"{pat}stage '{name}' parameter '{key}' = {value!r}: {problem}")
                bad = True
        if bad:
            continue
        try:
            stages.append(cls(**params))
        except ValueError as error:
            errors.append(f"{at}{error}")
    return stages


def policy_from_dict(config: Any, source: str = "<dict>", text: str | None = None) -> Policy:
    """Validates a parsed policy and builds it; every problem is reported in one ValueError."""
    lines = _line_numbers(text) if text else {}

    def where(key: tuple) -> str:
        line = lines.get(key)
        return f"{source}:{line}: " if line else f"{source}: "

    if not isinstance(config, dict):
        raise ValueError(
            f"{source}: a policy must be a mapping with keys {list(TOP_LEVEL_KEYS)}, "
            f"got {type(config).__name__}"
        )
    errors: list[str] = []
    for key in config:
        if key not in TOP_LEVEL_KEYS:
            errors.append(
                f"{where((key,))}unknown key {key!r}.{_suggest(key, TOP_LEVEL_KEYS)} "
                f"Allowed: {list(TOP_LEVEL_KEYS)}"
            )
    value_range = config.get("value_range", [0, 255])
    numbers = isinstance(value_range, list) and len(value_range) == 2
    numbers = numbers and all(isinstance(v, int | float) for v in value_range)
    if not numbers or value_range[0] >= value_range[1]:
        errors.append(f"{where(('value_range',))}value_range must be [low, high] with low < high")
    image_stages = _build_stages(config, "image", where, errors)
    batch_stages = _build_stages(config, "batch", where, errors)
    for i, stage in enumerate(image_stages):
        if stage.config.get("jsd") and (i != len(image_stages) - 1 or batch_stages):
            errors.append(
                f"{source}: augmix with jsd: true must be the last stage, with no batch stages"
            )
    if errors:
        raise ValueError("invalid augmentation policy:\n  " + "\n  ".join(errors))
    return Policy(image_stages, batch_stages, tuple(value_range), source)


def load_policy(path_or_name: str | Path) -> Policy:
    """Loads and validates a policy from a YAML file or a preset name (see ``preset_names()``).

    Raises:
        ValueError: unknown preset (with the closest names), invalid YAML or invalid policy.
    """
    path = Path(path_or_name)
    if not path.is_file():
        if str(path_or_name) not in preset_names():
            raise ValueError(
                f"{path_or_name!r} is neither a YAML file nor a preset."
                f"{_suggest(path_or_name, preset_names())} Presets: {preset_names()}"
            )
        path = PRESET_DIR / f"{path_or_name}.yaml"
    text = path.read_text()
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from error
    return policy_from_dict(config, str(path), text)
