"""What anti-aliasing buys and costs: keras.applications.ResNet50 vs its `antialias()`ed twin.

Both models share one random initialisation (no pretrained weights can be downloaded here). Their
BatchNormalization statistics are first calibrated on a batch of photos (one training-mode pass
with momentum 0), so that activations have sensible scales; the twin is built after that and copies
every weight. Measured:

- shift consistency (Zhang's protocol, diagonal form): from each photo window of
  (size + 8) x (size + 8) pixels, crop size x size at offset (0, 0) and at (d, d) for d = 1..8
  (so the content moves d pixels down and right) and compare the two output distributions:
  mean total-variation change 0.5 * sum |p0 - pd| and top-1 agreement;
- training cost: CPU time (process time, all threads) and wall time of one SGD step on a batch,
  after a warm-up step, alternating the models; the ratio is aa / plain. A third model,
  `antialias(plain, filter_size=1)` (the same stride-1 convs, subsampling instead of blurring,
  the same function as plain), splits the extra time into "convs at stride 1" and "the blurs";
- conv + blur multiply-adds per image, counted from the layer shapes.

The photos are scikit-image's bundled sample photos (astronaut, cat, coffee, ...). The models are
untrained, so the figures show what the architecture change does to a random network; they are
not the consistency of trained ImageNet models.

Usage:
    python -m benchmarks.bench_antialias --out runs/bench_antialias
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from layers import BlurPool2D, MaxBlurPool2D, antialias

PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "cat",
)
MAX_SHIFT = 8


def photo_windows(size: int, per_photo: int, seed: int) -> np.ndarray:
    """(N, size + MAX_SHIFT, size + MAX_SHIFT, 3) float32 windows of the sample photos, 0..255."""
    import skimage.data

    rng = np.random.default_rng(seed)
    side = size + MAX_SHIFT
    windows = []
    for name in PHOTOS:
        image = tf.convert_to_tensor(getattr(skimage.data, name)()[..., :3], tf.float32)
        scale = (side * 1.25) / min(image.shape[0], image.shape[1])
        shape = [max(side, round(image.shape[0] * scale)), max(side, round(image.shape[1] * scale))]
        image = tf.image.resize(image, shape, antialias=True).numpy()
        for _ in range(per_photo):
            top = rng.integers(0, image.shape[0] - side + 1)
            left = rng.integers(0, image.shape[1] - side + 1)
            windows.append(image[top : top + side, left : left + side])
    return np.stack(windows).astype(np.float32)


def calibrate_batchnorm(model: keras.Model, images: np.ndarray) -> None:
    """Set every BatchNormalization's moving statistics to those of `images` (one pass)."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum


def shift_consistency(model: keras.Model, windows: np.ndarray, size: int) -> dict[str, list]:
    """Per shift d = 1..8: mean TV change of the probabilities and top-1 agreement (%), and
    the number of distinct top-1 classes at offset 0."""
    preprocess = keras.applications.resnet50.preprocess_input
    probs = [
        np.asarray(
            model.predict(
                preprocess(windows[:, d : d + size, d : d + size].copy()), batch_size=8, verbose=0
            ),
            np.float64,
        )
        for d in range(MAX_SHIFT + 1)
    ]
    change, agreement = [], []
    for d in range(1, MAX_SHIFT + 1):
        change.append(float(0.5 * np.abs(probs[d] - probs[0]).sum(axis=1).mean()))
        agreement.append(float(100 * np.mean(probs[d].argmax(1) == probs[0].argmax(1))))
    # With few images a random network may pick one class for all of them, which makes top-1
    # agreement trivially 100%: report how many different classes it predicts.
    distinct = len(set(probs[0].argmax(1).tolist()))
    return {"mean_prob_change": change, "top1_agreement": agreement, "distinct_top1": distinct}


def multiply_adds(model: keras.Model) -> dict[str, int]:
    """Conv / dense and blur multiply-adds per image, from the layers' output shapes."""
    convs = blurs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            convs += h * w * int(np.prod(layer.kernel_size)) * c
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c = layer.output.shape
            cin = layer.input.shape[-1] // layer.groups
            convs += h * w * int(np.prod(layer.kernel_size)) * cin * c
        elif isinstance(layer, keras.layers.Dense):
            convs += layer.input.shape[-1] * layer.units
        elif isinstance(layer, BlurPool2D | MaxBlurPool2D):
            _, h, w, c = layer.output.shape
            blurs += h * w * layer.filter_size**2 * c
    return {"conv_dense": int(convs), "blur": int(blurs)}


def train_step_times(
    models: dict[str, keras.Model], batch: int, size: int, repeats: int, seed: int
) -> dict[str, dict[str, list]]:
    """CPU (process) and wall seconds of one SGD step per model; warm-up first, interleaved."""
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.uniform(-100, 100, (batch, size, size, 3)).astype(np.float32))
    y = tf.constant(rng.integers(0, 1000, batch))
    steps = {}
    for name, model in models.items():
        optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
        loss_fn = keras.losses.SparseCategoricalCrossentropy()

        @tf.function
        def step(images, labels, model=model, optimizer=optimizer, loss_fn=loss_fn):
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, model(images, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        steps[name] = step
    times = {name: {"cpu_s": [], "wall_s": []} for name in models}
    for step in tqdm(steps.values(), desc="warm-up (trace + 1 step)"):
        step(x, y).numpy()
    for _ in tqdm(range(repeats), desc="timed training steps"):
        for name, step in steps.items():
            cpu, wall = time.process_time(), time.perf_counter()
            step(x, y).numpy()
            times[name]["cpu_s"].append(time.process_time() - cpu)
            times[name]["wall_s"].append(time.perf_counter() - wall)
    return times


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shifts = list(range(1, MAX_SHIFT + 1))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for name, label in (
        ("plain", "ResNet50"),
        ("antialiased", f"ResNet50 + blur (k={results['filter_size']})"),
    ):
        consistency = results["consistency"][name]
        axes[0].plot(shifts, consistency["mean_prob_change"], "o-", label=label)
        axes[1].plot(shifts, consistency["top1_agreement"], "o-", label=label)
    axes[0].set(
        xlabel="diagonal shift d (pixels)",
        ylabel="mean 0.5·Σ|p(x) − p(shift x)|",
        title="output change under shift",
    )
    axes[1].set(
        xlabel="diagonal shift d (pixels)",
        ylabel="top-1 agreement (%)",
        title="top-1 agreement under shift",
    )
    for ax in axes[:2]:
        ax.legend()
        ax.grid(alpha=0.3)
    names = list(results["train_step"])
    cpu = [np.median(results["train_step"][n]["cpu_s"]) for n in names]
    macs = [
        results["multiply_adds"][n]["conv_dense"] + results["multiply_adds"][n]["blur"]
        for n in names
    ]
    xs = np.arange(len(names))
    for offset, values, label in (
        (-0.2, np.array(cpu) / cpu[0], "train-step CPU time"),
        (0.2, np.array(macs) / macs[0], "multiply-adds"),
    ):
        bars = axes[2].bar(xs + offset, values, 0.4, label=label)
        axes[2].bar_label(bars, fmt="%.3f", fontsize=8)
    axes[2].set_xticks(xs, names)
    axes[2].set(
        ylabel="relative to plain",
        title="cost (plain = 1)",
        ylim=(0, 1.4 * max(*(np.array(cpu) / cpu[0]), *(np.array(macs) / macs[0]))),
    )
    axes[2].legend(loc="upper left")
    fig.suptitle("Random-init ResNet50 vs antialias(ResNet50); photos: scikit-image samples")
    fig.tight_layout()
    _atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_antialias"))
    parser.add_argument("--size", type=int, default=224, help="input side in pixels")
    parser.add_argument("--batch", type=int, default=8, help="training-step batch size")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per model")
    parser.add_argument("--per-photo", type=int, default=2, help="windows per sample photo")
    parser.add_argument("--filter-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    windows = photo_windows(args.size, args.per_photo, args.seed)
    plain = keras.applications.ResNet50(weights=None, input_shape=(args.size, args.size, 3))
    calibrate_batchnorm(
        plain,
        keras.applications.resnet50.preprocess_input(windows[:, : args.size, : args.size].copy()),
    )
    models = {"plain": plain, "antialiased": antialias(plain, filter_size=args.filter_size)}
    stride1_only = {"stride1_no_blur": antialias(plain, filter_size=1)}

    results = {
        "filter_size": args.filter_size,
        "size": args.size,
        "batch": args.batch,
        "repeats": args.repeats,
        "images": len(windows),
        "photos": list(PHOTOS),
        "shift": "diagonal (d, d), crops of one (size+8)^2 window",
        "consistency": {},
        "multiply_adds": {name: multiply_adds(m) for name, m in (models | stride1_only).items()},
    }
    for name, model in tqdm(models.items(), desc="shift consistency"):
        results["consistency"][name] = shift_consistency(model, windows, args.size)
    results["train_step"] = train_step_times(
        models | stride1_only, args.batch, args.size, args.repeats, args.seed
    )
    median = {
        n: {k: float(np.median(v)) for k, v in t.items()} for n, t in results["train_step"].items()
    }
    macs = {n: m["conv_dense"] + m["blur"] for n, m in results["multiply_adds"].items()}
    results["ratios"] = {
        "train_step_cpu": median["antialiased"]["cpu_s"] / median["plain"]["cpu_s"],
        "train_step_wall": median["antialiased"]["wall_s"] / median["plain"]["wall_s"],
        "train_step_cpu_stride1_no_blur": median["stride1_no_blur"]["cpu_s"]
        / median["plain"]["cpu_s"],
        "multiply_adds": macs["antialiased"] / macs["plain"],
        "blur_share_of_multiply_adds": results["multiply_adds"]["antialiased"]["blur"]
        / macs["plain"],
    }

    print(f"\nshift consistency ({len(windows)} photo windows, {args.size}px, diagonal shift d)")
    print(f"{'d':>3} | {'plain Δp':>9} {'plain top1%':>11} | {'aa Δp':>9} {'aa top1%':>9}")
    c_plain, c_aa = results["consistency"]["plain"], results["consistency"]["antialiased"]
    for d in range(MAX_SHIFT):
        print(
            f"{d + 1:>3} | {c_plain['mean_prob_change'][d]:>9.4f} "
            f"{c_plain['top1_agreement'][d]:>11.1f} | {c_aa['mean_prob_change'][d]:>9.4f} "
            f"{c_aa['top1_agreement'][d]:>9.1f}"
        )
    print(
        f"{'avg':>3} | {np.mean(c_plain['mean_prob_change']):>9.4f} "
        f"{np.mean(c_plain['top1_agreement']):>11.1f} | "
        f"{np.mean(c_aa['mean_prob_change']):>9.4f} {np.mean(c_aa['top1_agreement']):>9.1f}"
    )
    print(
        f"distinct top-1 classes over the {len(windows)} windows: plain "
        f"{c_plain['distinct_top1']}, antialiased {c_aa['distinct_top1']}"
    )
    print(f"\ntraining step (batch {args.batch}, {args.size}px, median of {args.repeats})")
    for name in median:
        print(
            f"  {name:>15}: CPU {median[name]['cpu_s']:.2f} s, wall {median[name]['wall_s']:.2f} s,"
            f" {macs[name] / 1e9:.3f} GMAC/image"
        )
    ratios = results["ratios"]
    print(
        f"  ratio aa/plain: CPU {ratios['train_step_cpu']:.3f}, wall "
        f"{ratios['train_step_wall']:.3f}, multiply-adds {ratios['multiply_adds']:.3f} "
        f"(blur {100 * ratios['blur_share_of_multiply_adds']:.2f}% of plain); stride-1 convs "
        f"without blur: CPU {ratios['train_step_cpu_stride1_no_blur']:.3f}"
    )

    _atomic_write(
        args.out / "bench_antialias.json",
        lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2)),
    )
    plot(results, args.out / "bench_antialias.png")
    print(f"wrote {args.out / 'bench_antialias.json'} and {args.out / 'bench_antialias.png'}")
    return results


if __name__ == "__main__":
    main()
