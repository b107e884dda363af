"""Stage base classes and parameter specifications shared by every stage."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Param:
    """Specification of one stage parameter.

    Args:
        default: value when the YAML omits it.
        kind: ``"int"``, ``"float"``, ``"bool"``, ``"str"``, ``"range"`` (two numbers low <= high)
            or ``"any"`` (checked by ``check`` only).
        low, high: inclusive bounds for numbers and both ends of ranges.
        choices: allowed values for strings.
        check: extra validator returning an error text or None.
        nullable: whether ``null`` is allowed.
    """

    default: Any
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    check: Callable[[Any], str | None] | None = None
    nullable: bool = False

    def allowed(self) -> str:
        """Human-readable description of the allowed values."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        bounds = f" in [{self.low}, {self.high}]" if self.low is not None else ""
        text = {
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
            "str": "a string",
            "range": "a list [low, high] of numbers with low <= high",
            "any": "see the stage documentation",
        }[self.kind] + bounds
        return text + (" or null" if self.nullable else "")

    def error(self, value: Any) -> str | None:
        """Returns why ``value`` is not allowed, or None when it is."""
        if value is None:
            return None if self.nullable else f"expected {self.allowed()}"
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        values: list = [value]
        if self.kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
            return f"expected {self.allowed()}"
        if self.kind == "float" and not is_number:
            return f"expected {self.allowed()}"
        if self.kind == "bool" and not isinstance(value, bool):
            return "expected true or false"
        if self.kind == "str" and not isinstance(value, str):
            return f"expected {self.allowed()}"
        if self.kind == "range":
            ok = isinstance(value, list | tuple) and len(value) == 2
            ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            if not ok or value[0] > value[1]:
                return f"expected {self.allowed()}"
            values = list(value)
        if self.choices is not None and value not in self.choices:
            return f"expected {self.allowed()}"
        if self.low is not None and any(v < self.low or v > self.high for v in values):
            return f"expected {self.allowed()}"
        if self.check is not None:
            return self.check(value)
        return None


def split_seed(seed: tf.Tensor, count: int) -> list[tf.Tensor]:
    """Splits a stateless seed ``[2]`` into ``count`` independent seeds."""
    seeds = tf.random.experimental.stateless_split(seed, count)
    return [seeds[i] for i in range(count)]


def stateless_beta(shape, alpha: float, seed: tf.Tensor) -> tf.Tensor:
    """Beta(alpha, alpha) samples from two stateless gammas."""
    seed_a, seed_b = split_seed(seed, 2)
    a = tf.random.stateless_gamma(shape, seed_a, alpha=alpha)
    b = tf.random.stateless_gamma(shape, seed_b, alpha=alpha)
    return a / tf.maximum(a + b, 1e-12)


class Stage:
    """An augmentation stage configured from validated parameters.

    Image stages draw their random parameters per element in ``sample`` (from a per-element seed)
    and apply them in ``apply`` on a batch, so an element's output does not depend on the batch it
    lands in, on parallelism or on ordering.
    """

    name: ClassVar[str]
    kind: ClassVar[str] = "image"
    params: ClassVar[dict[str, Param]] = {}
    batchable: ClassVar[bool] = True
    # Whether `apply` also takes uint8 images (returning uint8), which saves conversions.
    accepts_uint8: ClassVar[bool] = False

    def __init__(self, **config: Any):
        self.config = {key: spec.default for key, spec in self.params.items()}
        self.config.update(config)

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{self.name}({body})"

    def sample(self, seed: tf.Tensor, image_shape: tf.Tensor) -> dict[str, tf.Tensor]:
        """Draws the parameters for one element.

        Args:
            seed: int64 ``[2]`` stateless seed of this element and stage.
            image_shape: ``[H, W, C]`` of the element at this stage.

        Returns:
            A dict of tensors (batched by ``tf.data`` before ``apply``).
        """
        return {"unused": tf.zeros([])}

    def uniform_count(self) -> int | None:
        """How many U[0, 1) numbers `from_uniform` needs per element, or None when the stage
        draws its parameters in `sample` only. Stages with a count have their numbers drawn for
        whole batches at once (`augment.counter_random`), without a per-element step."""
        return None

    def from_uniform(self, uniform: tf.Tensor, image_shape: tf.Tensor) -> dict[str, tf.Tensor]:
        """The parameters of ``N`` elements from their numbers ``uniform [N, uniform_count()]``.

        Args:
            uniform: float32 U[0, 1) numbers.
            image_shape: ``[H, W, C]`` of the elements at this stage.

        Returns:
            A dict of tensors with ``N`` rows, as `sample` would give batched.
        """
        raise NotImplementedError

    def apply(self, images: tf.Tensor, params: dict[str, tf.Tensor]) -> tf.Tensor:
        """Applies the stage to float32 ``[B, H, W, C]`` images in [0, 255] (or uint8 ones when
        ``accepts_uint8``, returning uint8)."""
        raise NotImplementedError


class BatchStage(Stage):
    """A stage on batches that mixes images and their one-hot labels."""

    kind: ClassVar[str] = "batch"

    def apply_batch(
        self, images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Mixes float32 images ``[B, H, W, C]`` and float32 one-hot labels ``[B, K]``."""
        raise NotImplementedError
