"""The run directory: configuration check and restart, atomic checkpoint round trip, history."""

import csv

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from recipes import train
from recipes.run_dir import (
    HISTORY_COLUMNS,
    TRAINING_IRRELEVANT_KEYS,
    RunConfigMismatch,
    RunDirectory,
)
from recipes.train import TrainConfig


def _config(**changes) -> dict:
    return vars(TrainConfig("pathmnist", "resnet18", policy="mixup")) | changes


def test_another_configuration_is_refused_in_one_line_naming_each_key(tmp_path):
    RunDirectory(tmp_path).prepare(_config())
    with pytest.raises(RunConfigMismatch) as error:
        RunDirectory(tmp_path).prepare(_config(antialias=3, policy="randaugment"))
    message = str(error.value)
    assert isinstance(error.value, ValueError) and "\n" not in message
    assert message == (
        f"{tmp_path} holds a run with another configuration (antialias: None -> 3, "
        "policy: mixup -> randaugment); use --restart to start it over or another --out"
    )
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["policy"] == "mixup"


def test_settings_that_do_not_change_training_may_change_on_resume(tmp_path):
    assert TRAINING_IRRELEVANT_KEYS == {
        "out", "cluster", "task_index", "strategy", "data_dir", "suite", "eval_limit", "calibrate"
    }  # fmt: skip
    RunDirectory(tmp_path).prepare(_config())
    changed = _config(
        out="elsewhere", cluster="a:1,b:2", task_index=1, strategy="multi-worker",
        data_dir="/data", suite="imagenet-c", eval_limit=10,
    )  # fmt: skip
    RunDirectory(tmp_path).prepare(changed)  # same training: resumes
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["suite"] == "imagenet-c"


def test_restart_removes_the_old_run_and_non_writers_write_nothing(tmp_path):
    run = RunDirectory(tmp_path)
    run.prepare(_config())
    for name in ("history.csv", "best.weights.h5", "report.json", "report.md"):
        (tmp_path / name).write_text("old")
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "last.npz").write_text("old")
    (tmp_path / "data.npz").write_text("not ours")
    RunDirectory(tmp_path).prepare(_config(epochs=3), restart=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "data.npz"]
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["epochs"] == 3
    quiet = RunDirectory(tmp_path / "other", writer=False)
    quiet.prepare(_config())
    quiet.log_epoch(0, dict.fromkeys(HISTORY_COLUMNS[1:], 0.5))
    assert not (tmp_path / "other").exists()


def _model() -> keras.Model:
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="layer1")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="fc")(x))


def _trained(config: TrainConfig):
    model = _model()
    model.compile(optimizer=train.make_optimizer(config, 10))
    model.optimizer.build(model.trainable_variables)
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = keras.ops.sum(model(x, training=True) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    return model


def test_checkpoint_restores_weights_and_every_optimizer_slot(tmp_path):
    # MultiOptimizer (pretrained): tf.train.Checkpoint misses its sub-optimizers' slots.
    config = TrainConfig("t", "tiny", pretrain="supervised")
    model = _trained(config)
    run = RunDirectory(tmp_path)
    run.save_checkpoint(model, model.optimizer, epoch=2, best=0.75)
    fresh = _model()
    fresh.compile(optimizer=train.make_optimizer(config, 10))
    fresh.optimizer.build(fresh.trainable_variables)
    assert run.load_checkpoint(fresh, fresh.optimizer) == (2, 0.75)
    for before, after in zip(
        [*model.variables, *model.optimizer.variables],
        [*fresh.variables, *fresh.optimizer.variables],
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))
    assert int(fresh.optimizer.iterations) == 3
    assert sorted(p.name for p in (tmp_path / "checkpoint").iterdir()) == [
        "last.npz", "state.json"
    ]  # fmt: skip


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    config = TrainConfig("t", "tiny")
    model = _trained(config)
    RunDirectory(tmp_path).save_checkpoint(model, model.optimizer, epoch=1, best=0.5)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="fc")])
    other.compile(optimizer=train.make_optimizer(config, 10))
    other.optimizer.build(other.trainable_variables)
    with pytest.raises(ValueError, match="holds 8 model variables, the model has 2"):
        RunDirectory(tmp_path).load_checkpoint(other, other.optimizer)


def test_history_has_keras_columns_and_trim_drops_unfinished_epochs(tmp_path):
    run = RunDirectory(tmp_path)
    for epoch in range(3):
        run.log_epoch(epoch, {"accuracy": 0.5, "loss": 1.0, "val_accuracy": 0.25, "val_loss": 2.0})
    run.trim_history(2)
    with (tmp_path / "history.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows == [list(HISTORY_COLUMNS), ["0", "0.5", "1.0", "0.25", "2.0"],
                    ["1", "0.5", "1.0", "0.25", "2.0"]]  # fmt: skip
    assert (tmp_path / "logs" / "train").is_dir() and (tmp_path / "logs" / "validation").is_dir()
