"""Training-step time of `recipes.resnet18/50`, plain vs anti-aliased, on any Keras backend.

Zhang's filter-4 anti-aliased ResNet-50 moves the strided convolutions to stride 1 (about 25% more
multiply-adds) and adds depthwise blurs (about 0.3%), so its step time should be near 1.25x the
plain model's. This measures that ratio on whatever device the backend sees, under float32 or the
`mixed_float16` policy, and checks that the blur layers compute in float16 under mixed precision
while the classifier returns float32::

    KERAS_BACKEND=jax python benchmarks/bench_train_step.py --precision mixed_float16 --out DIR
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

import recipes
from layers import BlurPool2D


def _step_time(model: keras.Model, images: np.ndarray, labels: np.ndarray, steps: int) -> float:
    """Median seconds of one `train_on_batch` step after two warm-up steps."""
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="sparse_categorical_crossentropy")
    for _ in range(2):
        model.train_on_batch(images, labels)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(images, labels)  # returns host values, so the step has finished
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _dtypes(model: keras.Model, images: np.ndarray) -> dict[str, str]:
    """Output dtype of the first blur layer and of the classifier."""
    blur = next(layer for layer in model.layers if isinstance(layer, BlurPool2D))
    probe = keras.Model(model.inputs, [blur.output, model.outputs[0]])
    blurred, probs = probe(images[:2], training=False)
    return {"blur": str(keras.ops.dtype(blurred)), "classifier": str(keras.ops.dtype(probs))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=("float32", "mixed_float16"), default="float32")
    parser.add_argument("--architectures", default="resnet18,resnet50")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    keras.mixed_precision.set_global_policy(args.precision)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(args.batch_size, args.image_size, args.image_size, 3))
    images = images.astype(np.float32)
    labels = rng.integers(0, 1000, size=args.batch_size)
    rows = []
    for architecture in args.architectures.split(","):
        times = {}
        for antialias in (None, 4):
            model = getattr(recipes, architecture)(
                1000, input_shape=(args.image_size, args.image_size, 3), antialias=antialias
            )
            times[antialias] = _step_time(model, images, labels, args.steps)
            if antialias:
                dtypes = _dtypes(model, images)
        rows.append(
            {
                "architecture": architecture,
                "plain_ms": 1000 * times[None],
                "antialiased_ms": 1000 * times[4],
                "ratio": times[4] / times[None],
                "dtypes_antialiased": dtypes,
            }
        )
        print(
            f"{architecture}: plain {rows[-1]['plain_ms']:.1f} ms, anti-aliased (k=4) "
            f"{rows[-1]['antialiased_ms']:.1f} ms, ratio {rows[-1]['ratio']:.3f}, dtypes {dtypes}",
            flush=True,
        )
    result = {
        "backend": keras.backend.backend(),
        "devices": _devices(),
        "precision": args.precision,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=args.out, delete=False, suffix=".tmp") as handle:
        json.dump(result, handle, indent=2)
    os.replace(handle.name, args.out / f"train_step_{args.precision}.json")
    print(json.dumps(result, indent=2))


def _devices() -> list[str]:
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [str(device) for device in jax.devices()]
    if backend == "tensorflow":
        import tensorflow as tf

        return [device.name for device in tf.config.list_logical_devices()]
    return [backend]


if __name__ == "__main__":
    main()
