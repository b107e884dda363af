"""The training engine shared by the recipes: optimizer, data pipeline, fit, resume, final report.

A run directory holds `config.yaml` (the resolved configuration), `checkpoint/` (the last epoch's
weights and optimizer state, written atomically after every epoch, so a run killed at any moment
resumes losing at most one epoch), `best.weights.h5` (best validation accuracy), `history.csv`,
`logs/` (TensorBoard), `model.keras` (the selected model, which returns logits) and, from
`evaluation`, `report.json`, `report.md` and plots.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf
import yaml

import augment
import evaluation
from recipes.datasets import DataSplits, normalization_stats, normalizer

HEAD_LAYER = "fc"
# `variable.path` is `layer/kernel` inside a functional model but `model/layer/kernel` in some
# containers, so the head pattern accepts an optional prefix (OptimizerMap uses re.fullmatch).
HEAD_VARIABLES = rf"(.*/)?{HEAD_LAYER}/.*"
NO_POLICY = "none"


@dataclasses.dataclass
class TrainConfig:
    """Everything a recipe run depends on; written to `config.yaml` in the run directory."""

    recipe: str
    architecture: str
    pretrain: str = "none"
    weights: str | None = None
    antialias: int | None = None
    policy: str = "basic"
    epochs: int = 60
    batch_size: int = 256
    image_size: int = 28
    learning_rate: float = 1e-3
    backbone_lr_factor: float = 0.1
    weight_decay: float = 1e-6
    schedule: str = "constant"
    freeze_bn: bool = False
    mixed_precision: str = "auto"
    strategy: str = "auto"
    steps_per_epoch: int | None = None
    eval_limit: int | None = None
    suite: str = "study"
    seed: int = 0
    data_dir: str | None = None
    out: str = "runs/run"


def atomic_write_text(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
    os.replace(handle.name, path)


def configure_precision(mode: str) -> str:
    """Sets the global dtype policy: `auto` is mixed_float16 when a GPU is visible.

    Returns:
        The policy name in force.
    """
    choices = {"on": "mixed_float16", "off": "float32"}
    if mode == "auto":
        choices["auto"] = "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    if mode not in choices:
        raise ValueError(f"mixed_precision must be one of ['auto', 'on', 'off'], got {mode!r}")
    keras.mixed_precision.set_global_policy(choices[mode])
    return choices[mode]


def make_strategy(mode: str) -> tf.distribute.Strategy:
    """`auto`: MirroredStrategy over the GPUs when there are several, else the default strategy.

    `mirrored` mirrors over every GPU, or over every logical CPU device when there is no GPU.
    """
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
    builders = {
        "default": tf.distribute.get_strategy,
        "mirrored": lambda: tf.distribute.MirroredStrategy(gpus or cpus),
        "auto": lambda: (
            tf.distribute.MirroredStrategy(gpus) if len(gpus) > 1 else tf.distribute.get_strategy()
        ),
    }
    if mode not in builders:
        raise ValueError(f"strategy must be one of {sorted(builders)}, got {mode!r}")
    return builders[mode]()


SCHEDULES: dict[
    str, Callable[[float, int], float | keras.optimizers.schedules.LearningRateSchedule]
] = {
    "constant": lambda lr, total: lr,
    "step": lambda lr, total: keras.optimizers.schedules.PiecewiseConstantDecay(
        [max(1, total // 2), max(2, (3 * total) // 4)], [lr, lr * 0.1, lr * 0.01]
    ),
    "cosine": lambda lr, total: keras.optimizers.schedules.CosineDecay(lr, max(1, total)),
}


def make_optimizer(config: TrainConfig, total_steps: int) -> keras.optimizers.Optimizer:
    """AdamW; from pretrained weights the backbone learns `backbone_lr_factor` x slower.

    Keras' MultiOptimizer routes the head's variables (layer `fc`) to one AdamW and every other
    variable to the default one. Scaling the backbone's gradients instead would not work: Adam is
    invariant to the gradient's scale.
    """
    if config.schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {config.schedule!r}")

    def adamw(lr: float) -> keras.optimizers.AdamW:
        schedule = SCHEDULES[config.schedule](lr, total_steps)
        # torch's AdamW epsilon, as the study used it (Keras' default is 1e-7).
        return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, epsilon=1e-8)

    if config.pretrain == "none":
        return adamw(config.learning_rate)
    backbone = adamw(config.learning_rate * config.backbone_lr_factor)
    head = adamw(config.learning_rate)
    return keras.optimizers.MultiOptimizer(
        keras.optimizers.OptimizerMap(backbone, {HEAD_VARIABLES: head})
    )


def freeze_batchnorm(model: keras.Model) -> int:
    """Puts every BatchNormalization layer in inference mode with frozen gamma/beta.

    Returns:
        The number of frozen layers.
    """

    def walk(layer: keras.layers.Layer):
        yield layer
        for sublayer in getattr(layer, "layers", ()):
            yield from walk(sublayer)

    frozen = [layer for layer in walk(model) if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in frozen:
        layer.trainable = False
    return len(frozen)


def resolve_policy(name_or_path: str) -> augment.Policy:
    """A preset name, a YAML path, or `none` for batching without augmentation."""
    if name_or_path == NO_POLICY:
        return augment.policy_from_dict({"image": [], "batch": []}, source="none")
    return augment.load_policy(name_or_path)


@keras.saving.register_keras_serializable(package="robust_recipes")
def augmix_training_loss(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """AugMix's loss on a batch stacked as [clean; augmix_1; augmix_2]."""
    n = tf.shape(logits)[0] // 3
    return augment.jensen_shannon_loss(labels[:n], logits[:n], logits[n : 2 * n], logits[2 * n :])


def _stack_triplet(images: tuple, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    stacked = tf.concat([tf.cast(image, tf.float32) for image in images], axis=0)
    return stacked, tf.concat([labels, labels, labels], axis=0)


def training_dataset(
    splits: DataSplits, policy: augment.Policy, config: TrainConfig, normalize: Callable
) -> tf.data.Dataset:
    """Shuffled, repeated, augmented, batched and normalised training batches."""
    train = splits.train.shuffle(
        min(splits.train_size, 10_000), seed=config.seed, reshuffle_each_iteration=True
    ).repeat()
    batches = policy.apply(
        train, config.batch_size, num_classes=splits.num_classes, seed=config.seed
    )
    if policy.yields_triplets:
        batches = batches.map(_stack_triplet, num_parallel_calls=tf.data.AUTOTUNE)
    return batches.map(
        lambda images, labels: (normalize(images), labels), num_parallel_calls=tf.data.AUTOTUNE
    ).prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(
    dataset: tf.data.Dataset,
    num_classes: int,
    batch_size: int,
    normalize: Callable,
    limit: int | None,
) -> tf.data.Dataset:
    """Batched, normalised (images, one-hot labels), optionally only the first `limit` examples."""
    if limit is not None:
        dataset = dataset.take(limit)
    return dataset.batch(batch_size).map(
        lambda images, labels: (normalize(images), tf.one_hot(labels, num_classes)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves weights, optimizer state and the epoch count atomically after every epoch."""

    def __init__(self, directory: Path, best_checkpoint: keras.callbacks.ModelCheckpoint):
        super().__init__()
        self.directory = directory
        self.best_checkpoint = best_checkpoint

    @property
    def weights_path(self) -> Path:
        return self.directory / "last.weights.h5"

    @property
    def state_path(self) -> Path:
        return self.directory / "state.json"

    def read_state(self) -> dict | None:
        return json.loads(self.state_path.read_text()) if self.state_path.exists() else None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / "partial.weights.h5"
        self.model.save_weights(partial)
        os.replace(partial, self.weights_path)
        best = self.best_checkpoint.best
        state = {"epoch": epoch + 1, "best": None if math.isinf(best) else float(best)}
        atomic_write_text(self.state_path, json.dumps(state))


def trim_history(path: Path, epochs: int) -> None:
    """Keeps the CSV header and the rows of the first `epochs` epochs (rows a crash left behind)."""
    if not path.exists():
        return
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    kept = rows[:1] + [row for row in rows[1:] if row and int(row[0]) < epochs]
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, newline="") as handle:
        csv.writer(handle).writerows(kept)
    os.replace(handle.name, path)


def fit(
    config: TrainConfig,
    splits: DataSplits,
    build_model: Callable[[], keras.Model],
    *,
    verbose: int = 1,
) -> tuple[keras.Model, Callable]:
    """Trains (or resumes) a model in `config.out` and selects the best validation checkpoint.

    Args:
        config: the run's configuration.
        splits: data, unbatched uint8 images with integer labels.
        build_model: returns an uncompiled model with logits output and a head layer `fc`,
            weights already loaded.
        verbose: Keras' fit verbosity (1: a progress bar).

    Returns:
        The trained model (best validation weights) and the normalisation it expects.
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / "config.yaml", yaml.safe_dump(dataclasses.asdict(config), sort_keys=False)
    )
    precision = configure_precision(config.mixed_precision)
    strategy = make_strategy(config.strategy)
    print(f"Training on {strategy.num_replicas_in_sync} device(s), {precision} policy.")
    policy = resolve_policy(config.policy)
    if policy.yields_triplets and strategy.num_replicas_in_sync > 1:
        raise ValueError("AugMix's Jensen-Shannon loss needs the whole triplet batch on one device")
    mean, std = normalization_stats(splits, pretrained=config.pretrain != "none")
    normalize = normalizer(mean, std)
    steps = config.steps_per_epoch or math.ceil(splits.train_size / config.batch_size)

    with strategy.scope():
        model = build_model()
        if config.freeze_bn:
            freeze_batchnorm(model)
        model.compile(
            optimizer=make_optimizer(config, steps * config.epochs),
            loss=augmix_training_loss
            if policy.yields_triplets
            else keras.losses.CategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
    best_path = out / "best.weights.h5"
    best = keras.callbacks.ModelCheckpoint(
        best_path, monitor="val_accuracy", mode="max", save_best_only=True, save_weights_only=True
    )
    epoch_checkpoint = EpochCheckpoint(out / "checkpoint", best)
    state = epoch_checkpoint.read_state()
    initial_epoch = 0
    if state is not None:
        with strategy.scope():  # optimizer slots are mirrored like the weights
            model.optimizer.build(model.trainable_variables)
        model.load_weights(epoch_checkpoint.weights_path)
        initial_epoch = state["epoch"]
        if state["best"] is not None:
            best.best = state["best"]
        trim_history(out / "history.csv", initial_epoch)
        print(f"Resuming {out} after epoch {initial_epoch}.")
    validation = evaluation_dataset(
        splits.val, splits.num_classes, config.batch_size, normalize, config.eval_limit
    )
    if policy.yields_triplets:
        # The Jensen-Shannon loss reads batches as [clean; aug1; aug2]: three clean copies give
        # its cross-entropy on the clean images and a zero consistency term.
        validation = validation.map(lambda x, y: _stack_triplet((x, x, x), y))
    if initial_epoch < config.epochs:
        model.fit(
            training_dataset(splits, policy, config, normalize),
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            validation_data=validation,
            callbacks=[
                best,
                epoch_checkpoint,
                keras.callbacks.CSVLogger(out / "history.csv", append=True),
                keras.callbacks.TensorBoard(out / "logs"),
            ],
            shuffle=False,  # the pipeline shuffles; Keras cannot shuffle a tf.data.Dataset
            verbose=verbose,
        )
    if best_path.exists():
        model.load_weights(best_path)
    return model, normalize


def save_model(model: keras.Model, path: Path) -> None:
    """Saves an uncompiled copy of the model (no optimizer, no training loss) atomically."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    partial = path.with_name(f"partial-{path.name}")
    copy.save(partial)
    os.replace(partial, path)


def run(
    config: TrainConfig,
    splits: DataSplits,
    build_model: Callable[[], keras.Model],
    *,
    verbose: int = 1,
) -> evaluation.Report:
    """Trains, saves `model.keras`, and writes the evaluation report of `config.suite`.

    Returns:
        The evaluation report of the selected model on the test split.
    """
    model, normalize = fit(config, splits, build_model, verbose=verbose)
    out = Path(config.out)
    save_model(model, out / "model.keras")
    test = splits.test if config.eval_limit is None else splits.test.take(config.eval_limit)
    report = evaluation.evaluate(
        model,
        test.batch(config.batch_size),
        config.suite,
        preprocess=normalize,
        from_logits=True,
        dataset_name=splits.name if splits.name in ("pets", "pathmnist") else None,
        seed=config.seed,
        verbose=verbose,
    )
    report.save(out)
    print(report.to_markdown())
    return report
