"""evaluation.evaluate / Report / CLI on a tiny model and generated data (numbers, not results)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import evaluation
from evaluation import __main__ as cli
from evaluation import metrics, shifts

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (16, 28, 28, 3), dtype=np.uint8)
LABELS = RNG.integers(0, 3, 16)


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((28, 28, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ],
        name="tiny",
    )


def _dataset():
    return tf.data.Dataset.from_tensor_slices((IMAGES, LABELS)).batch(8)


@pytest.fixture(scope="module")
def report():
    return evaluation.evaluate(
        _model(),
        _dataset(),
        "study,imagenet-c,consistency",
        from_logits=True,
        corruptions=["fog", "contrast"],
        severities=(1, 5),
        verbose=0,
    )


def test_rows_equal_direct_computation(report):
    model = _model()

    def probs(x):
        return keras.ops.convert_to_numpy(keras.ops.softmax(model(tf.cast(x, tf.float32))))

    clean = report.clean()
    assert clean["shift"] == "clean" and clean["level"] is None and clean["n"] == 16
    assert clean["accuracy"] == pytest.approx(metrics.accuracy(probs(IMAGES), LABELS))
    blur = next(r for r in report.results if r["shift"] == "blur" and r["level"] == 0.9)
    p = probs(shifts.gaussian_blur(IMAGES, 0.9))
    assert blur["rms_calibration_error"] == pytest.approx(
        metrics.rms_calibration_error(p, LABELS), abs=1e-6
    )
    assert [r["level"] for r in report.rows("brightness")] == [0.8, 0.9, 1.1, 1.2]
    assert [r["level"] for r in report.rows("fog", "imagenet-c")] == [1, 5]
    c = report.consistency
    assert 0 <= c["shift_consistency"] <= 1 and 0 <= c["flip_probability_noise"] <= 1
    assert set(report.corruption_summary()["ce"]) == {"fog", "contrast"}


def test_save_and_reload(report, tmp_path):
    paths = report.save(tmp_path)
    assert {p.name for p in paths.values()} == {
        "report.json",
        "report.md",
        "accuracy.png",
        "reliability.png",
    }
    data = json.loads(paths["json"].read_text())
    assert data["summary"]["clean"]["accuracy"] == report.clean()["accuracy"]
    md = paths["markdown"].read_text()
    assert "Accuracy" in md and "Brightness by factor" in md and "mCE" in md and "±" in md
    again = evaluation.Report.from_json(paths["json"])
    assert again.results == json.loads(json.dumps(report.results))
    # a run measured against itself has CE 1 everywhere
    summary = report.corruption_summary(again.baseline_errors())
    assert summary["mce"] == pytest.approx(1.0)
    assert not list(tmp_path.glob(".*tmp"))


def test_bad_suite_and_factor_sets():
    with pytest.raises(ValueError, match="allowed"):
        evaluation.evaluate(_model(), _dataset(), "studdy", verbose=0)
    r = evaluation.evaluate(
        _model(), _dataset().take(1), ["study"], dataset_name="pets", from_logits=True, verbose=0
    )
    assert [row["level"] for row in r.rows("brightness")] == [0.6, 0.8, 1.2, 1.4]


def test_cli_evaluates_a_logits_model_and_refuses_a_missing_one(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "--suite" in capsys.readouterr().out
    npz = tmp_path / "data.npz"
    np.savez(npz, x_test=IMAGES[:8], y_test=LABELS[:8])
    assert cli.main(["missing.keras", "--data", f"npz:{npz}", "--out", str(tmp_path)]) == 2
    assert "model: file not found: missing.keras" in capsys.readouterr().err
    model_path = tmp_path / "m.keras"
    _model().save(model_path)
    out = tmp_path / "out"
    assert (
        cli.main([str(model_path), "--data", f"npz:{npz}", "--out", str(out), "--from-logits"]) == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["dataset"] == str(npz) and report["meta"]["num_examples"] == 8
    assert (out / "report.md").is_file()


def test_pathmnist_offline_error_then_the_file_of_the_models_size(tmp_path, monkeypatch):
    from evaluation import data

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "k"))
    with pytest.raises(ValueError, match=r"pathmnist.npz not found in .*k/datasets/medmnist; "):
        data.load_dataset("pathmnist", image_size=28)
    np.savez(tmp_path / "pathmnist.npz", test_images=IMAGES, test_labels=LABELS[:, None])
    loaded = data.load_dataset("pathmnist", data_dir=str(tmp_path), image_size=28)
    images, labels = next(iter(loaded.dataset.batch(4)))
    assert images.dtype == tf.uint8 and labels.numpy().tolist() == LABELS[:4].tolist()
    assert loaded.study_name == "pathmnist" and str(tmp_path) in loaded.display_name
    with pytest.raises(ValueError, match=r"pathmnist_64\.npz not found"):
        data.load_dataset("pathmnist", data_dir=str(tmp_path), image_size=64)


def test_tfds_not_prepared_and_unknown_spec(tmp_path):
    from evaluation import data

    with pytest.raises(ValueError, match="not prepared"):
        data.load_dataset("pets", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="allowed"):
        data.load_dataset("imagenet", data_dir=str(tmp_path))


def test_cli_preprocess_normalisation_and_corruption_spec():
    from evaluation import runner

    x = tf.constant([[[[255, 0, 128]]]], tf.uint8)
    out = cli._preprocess("imagenet")(x).numpy()[0, 0, 0]
    expected = (np.array([1.0, 0.0, 128 / 255]) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    assert cli._preprocess("none") is None
    assert runner.corruption_list("extra") == [
        "speckle_noise",
        "gaussian_blur",
        "spatter",
        "saturate",
    ]
    assert runner.corruption_list("fog, snow") == ["fog", "snow"]
    assert len(runner.corruption_list(None)) == 15
