"""The training engine shared by the recipes: configuration, optimizer, data pipeline, fit, report.

`fit` trains with the custom loop of `recipes.loop` under a `tf.distribute` strategy (one device,
MirroredStrategy, MultiWorkerMirroredStrategy), in a run directory (`recipes.run_dir`) that the
chief writes after every epoch, so a run killed at any moment resumes losing at most one epoch.
`run` then exports the self-contained `model.keras` and writes the evaluation report.

The trained model does not depend on the number of workers or devices: each replica trains on
its rows of the same global batches (`recipes.pipeline`), and BatchNorm statistics are computed
over the global batch when there are several replicas.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import keras
import tensorflow as tf

import augment
import evaluation
from evaluation.distribute import is_chief, make_strategy
from recipes import export, pipeline
from recipes.cluster import (
    agree_on_configuration,
    broadcast_from_chief,
    stop_when_a_worker_is_lost,
    worker_count,
)
from recipes.datasets import DataSplits, normalization_stats, normalizer
from recipes.loop import TrainingLoop
from recipes.objectives import Objective, parse_stability
from recipes.progress import Progress
from recipes.run_dir import RunConfigMismatch, RunDirectory, training_settings

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
    cluster: str | None = None
    task_index: int | None = None
    stability: str | None = None
    calibrate: str = "none"
    steps_per_epoch: int | None = None
    eval_limit: int | None = None
    suite: str = "study"
    seed: int = 0
    data_dir: str | None = None
    out: str = "runs/run"


FULL_PRECISIONS = ("float32", "float64")


def full_precision() -> str:
    """Keras' floatx, the policy without mixed precision.

    Raises:
        ValueError: floatx is a half precision (its weights would underflow without loss scaling).
    """
    floatx = keras.config.floatx()
    if floatx not in FULL_PRECISIONS:
        raise ValueError(
            f"keras.json floatx must be one of {list(FULL_PRECISIONS)} to train, got {floatx!r}; "
            "for float16 use --mixed-precision on"
        )
    return floatx


def configure_precision(mode: str) -> str:
    """Sets the global dtype policy: `auto` is mixed_float16 when a GPU is visible.

    Without mixed precision the policy is Keras' floatx: float32, or float64 where keras.json says
    so (the multi-worker equality test trains in float64 to see past float32 rounding).

    Returns:
        The policy name in force.
    """
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"mixed_precision must be one of ['auto', 'on', 'off'], got {mode!r}")
    mixed = mode == "on" or (mode == "auto" and bool(tf.config.list_physical_devices("GPU")))
    policy = "mixed_float16" if mixed else full_precision()
    keras.mixed_precision.set_global_policy(policy)
    return policy


_STRATEGIES: dict[tuple, tf.distribute.Strategy] = {}


def distribution_strategy(config: TrainConfig) -> tf.distribute.Strategy:
    """The run's strategy, created once per process (`evaluation.distribute.make_strategy`).

    MultiWorkerMirroredStrategy must exist before any other TensorFlow work: commands call this
    before loading data, and `fit` then gets the same strategy.
    """
    key = (config.strategy, config.cluster, config.task_index)
    if key not in _STRATEGIES:
        _STRATEGIES[key] = make_strategy(*key)
    return _STRATEGIES[key]


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


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer of `model`, nested models included."""

    def walk(layer: keras.layers.Layer):
        yield layer
        for sublayer in getattr(layer, "layers", ()):
            yield from walk(sublayer)

    return [layer for layer in walk(model) if isinstance(layer, keras.layers.BatchNormalization)]


def freeze_batchnorm(model: keras.Model) -> int:
    """Puts every BatchNormalization layer in inference mode with frozen gamma/beta.

    Returns:
        The number of frozen layers.
    """
    frozen = batchnorm_layers(model)
    for layer in frozen:
        layer.trainable = False
    return len(frozen)


def synchronize_batchnorm(model: keras.Model) -> int:
    """Makes BatchNormalization compute its batch statistics over all replicas (Keras'
    `synchronized=True`, an all-reduce of sums), so that training on N replicas of B/N examples
    computes what one device computes on B.

    Returns:
        The number of synchronised layers.
    """
    layers = batchnorm_layers(model)
    for layer in layers:
        layer.synchronized = True
    return len(layers)


def resolve_policy(name_or_path: str) -> augment.Policy:
    """A preset name, a YAML path, or `none` for batching without augmentation."""
    if name_or_path == NO_POLICY:
        return augment.policy_from_dict({"image": [], "batch": []}, source="none")
    return augment.load_policy(name_or_path)


def check_run_directory(config: TrainConfig, restart: bool = False) -> None:
    """Refuses, before any work, an `out` that holds a run of another configuration.

    Raises:
        RunConfigMismatch: a ValueError naming the settings that differ (unless `restart`).
    """
    RunDirectory(config.out, writer=False).check(dataclasses.asdict(config), restart=restart)


def fit(
    config: TrainConfig,
    splits: DataSplits,
    build_model: Callable[[], keras.Model],
    *,
    verbose: int = 1,
    restart: bool = False,
) -> tuple[keras.Model, Callable]:
    """`train` without the chief flag: (model, normalisation)."""
    model, normalize, _ = train(config, splits, build_model, verbose=verbose, restart=restart)
    return model, normalize


def train(
    config: TrainConfig,
    splits: DataSplits,
    build_model: Callable[[], keras.Model],
    *,
    verbose: int = 1,
    restart: bool = False,
) -> tuple[keras.Model, Callable, bool]:
    """Trains (or resumes) a model in `config.out` and selects the best validation checkpoint.

    Args:
        config: the run's configuration.
        splits: data, unbatched uint8 images with integer labels.
        build_model: returns an uncompiled model with logits output and a head layer `fc`,
            weights already loaded.
        verbose: 0 prints nothing; otherwise progress on the chief.
        restart: remove a previous run in `config.out` instead of resuming it.

    Returns:
        The trained model (best validation weights on the chief), its input normalisation, and
        whether this process is the chief (the one that writes the run directory).

    Raises:
        RunConfigMismatch: `config.out` holds a run of another configuration.
        WorkerConfigMismatch: the workers were started with different configurations.
        WorkerLost: another worker died or stopped answering.
    """
    stability = parse_stability(config.stability)  # a bad spec fails before any work
    policy = resolve_policy(config.policy)
    precision = configure_precision(config.mixed_precision)
    strategy = distribution_strategy(config)
    replicas, chief = strategy.num_replicas_in_sync, is_chief(strategy)
    if config.batch_size % replicas:
        raise ValueError(
            f"batch_size {config.batch_size} must be a multiple of the {replicas} replicas"
        )
    run_dir = RunDirectory(config.out, writer=chief)
    settings = dataclasses.asdict(config)
    refusal = None
    if chief:
        try:
            run_dir.prepare(settings, restart=restart)
        except RunConfigMismatch as error:
            refusal = error
    mean, std = normalization_stats(splits, pretrained=config.pretrain != "none")
    normalize = normalizer(mean, std)
    steps = config.steps_per_epoch or math.ceil(splits.train_size / config.batch_size)
    saved_epoch = [0]
    with stop_when_a_worker_is_lost(strategy, lambda: saved_epoch[0]):
        agree_on_configuration(strategy, training_settings(settings), refusal)
        if chief and verbose:
            print(
                f"Training on {replicas} device(s) in {worker_count(strategy)} worker(s), "
                f"{precision} policy."
            )
        with strategy.scope():
            model = build_model()
            if config.freeze_bn:
                freeze_batchnorm(model)
            if replicas > 1:
                synchronize_batchnorm(model)
            # compile() decides XLA and wraps the optimizer in a LossScaleOptimizer under
            # mixed_float16 exactly as for fit(); the loop uses both.
            model.compile(optimizer=make_optimizer(config, steps * config.epochs))
            optimizer = model.optimizer
            optimizer.build(model.trainable_variables)
        state = run_dir.load_checkpoint(model, optimizer) if chief else None
        initial_epoch, best = state or (0, -math.inf)
        initial_epoch, best = broadcast_from_chief(
            strategy, [*model.variables, *optimizer.variables], [initial_epoch, best]
        )
        initial_epoch = saved_epoch[0] = int(initial_epoch)
        if initial_epoch:
            run_dir.trim_history(initial_epoch)
            if chief and verbose:
                print(f"Resuming {config.out} after epoch {initial_epoch}.")

        def distribute(make_batches: Callable, finish: Callable):
            return strategy.distribute_datasets_from_function(
                lambda context: pipeline.replica_dataset(
                    make_batches(), context, config.batch_size, finish
                )
            )

        loop = TrainingLoop(
            strategy,
            model,
            optimizer,
            Objective(policy.yields_triplets, stability),
            config.batch_size,
            jit_compile=model.jit_compile,
        )
        loop.run(
            distribute(
                lambda: pipeline.training_batches(splits, policy, config.batch_size, config.seed),
                pipeline.training_finisher(
                    normalize, policy.yields_triplets, stability, config.seed
                ),
            ),
            lambda: distribute(
                lambda: pipeline.evaluation_batches(
                    splits.val, splits.num_classes, config.batch_size, config.eval_limit
                ),
                pipeline.evaluation_finisher(normalize),
            ),
            run_dir,
            Progress(config.epochs, steps, enabled=chief and verbose > 0),
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            steps=steps,
            best=best,
            on_epoch_saved=lambda epoch: saved_epoch.__setitem__(0, epoch),
        )
    if chief and run_dir.best_path.exists():
        model.load_weights(run_dir.best_path)
    return model, normalize, chief


def run(
    config: TrainConfig,
    splits: DataSplits,
    build_model: Callable[[], keras.Model],
    *,
    verbose: int = 1,
    restart: bool = False,
) -> evaluation.Report | None:
    """Trains, then `export.finish_run`: the temperature (`config.calibrate`), the
    self-contained `model.keras`, `classes.json` and the report, on the chief only.

    Returns:
        The evaluation report of the selected model on the test split (None on other workers).
    """
    model, normalize, chief = train(config, splits, build_model, verbose=verbose, restart=restart)
    if not chief:
        return None
    return export.finish_run(config, splits, model, normalize, verbose=verbose)
