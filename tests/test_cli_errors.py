"""Every command line: each mistake is one `error:` line, exit code 2, and nothing written."""

import dataclasses
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from augment import __main__ as augment_cli
from evaluation import __main__ as evaluation_cli
from recipes import folder, pathmnist, shapes
from tests.test_image_folder import write_class_tree
from tests.test_recipes_cli import write_pathmnist_npz

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Data and models the cases point at (never written to by the cases)."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "pathmnist").mkdir()
    write_pathmnist_npz(root / "pathmnist", counts=(4, 4, 4))
    write_class_tree(root / "images", {"a": 2, "b": 2})
    write_class_tree(root / "split" / "train", {"a": 2, "b": 2})
    write_class_tree(root / "split" / "test", {"c": 1})
    write_class_tree(root / "no_images", {"a": 2})
    (root / "no_images" / "b").mkdir()
    (root / "no_images" / "b" / "notes.txt").write_text("x")
    write_class_tree(root / "broken", {"a": 2, "b": 1})
    (root / "broken" / "b" / "bad.png").write_bytes(b"\x89PNG not really")
    inputs = keras.Input((28, 28, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x)).save(root / "m.keras")
    (root / "classes.json").write_text('{"0": "a", "1": "z"}')
    (root / "garbage.keras").write_bytes(b"not a zip")
    with zipfile.ZipFile(root / "other.keras", "w") as archive:
        archive.writestr("hello.txt", "a zip, not a model")
    rng = np.random.default_rng(0)
    np.savez(root / "small.npz", x_test=rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8),
             y_test=np.zeros(4, np.int64))  # fmt: skip
    np.savez(root / "labels.npz", x_test=rng.integers(0, 255, (4, 28, 28, 3), dtype=np.uint8),
             y_test=np.full(4, 5))  # fmt: skip
    (root / "a_file").write_text("x")
    return root


PATHMNIST = ["--data-dir", "{inputs}/pathmnist", "--no-download"]
MODEL = ["{inputs}/m.keras", "--data", "npz:{inputs}/labels.npz"]
# (command, arguments before --out, what the error line must say)
CASES = [
    (pathmnist, [*PATHMNIST, "--suite", "studdy"], "--suite: unknown suite(s) ['studdy']"),
    (pathmnist, [*PATHMNIST, "--policy", "randaugmnt"], "Did you mean 'randaugment'"),
    (pathmnist, [*PATHMNIST, "--epochs", "0"], "--epochs: expected an integer >= 1, got 0"),
    (pathmnist, [*PATHMNIST, "--batch-size", "0"], "--batch-size: expected an integer >= 1"),
    (pathmnist, [*PATHMNIST, "--eval-limit", "0"], "--eval-limit: expected an integer >= 1"),
    (pathmnist, [*PATHMNIST, "--image-size", "30"], "--image-size: invalid choice: 30"),
    (pathmnist, [*PATHMNIST, "--learning-rate", "-1"], "expected a number > 0, got -1.0"),
    (pathmnist, ["--data-dir", "{inputs}/images", "--no-download"],
     "pathmnist.npz is not in {inputs}/images"),
    (pathmnist, [*PATHMNIST, "--weights", "w.pth"], "--weights needs --pretrain"),
    (pathmnist, [*PATHMNIST, "--pretrain", "supervised", "--weights", "{inputs}/missing.pth"],
     "--weights {inputs}/missing.pth: no such file, and not a known name"),
    (pathmnist, [*PATHMNIST, "--cluster", "h:1"], "--cluster needs --strategy multi-worker"),
    (pathmnist, [*PATHMNIST, "--strategy", "multi-worker"], "needs --cluster and --task-index"),
    (pathmnist, [*PATHMNIST, "--strategy", "multi-worker", "--cluster", "a:1,b:2",
                 "--task-index", "2"], "--task-index must be in 0..1 for 2 hosts"),
    (pathmnist, [*PATHMNIST, "--stability", "gauss:0.1"], "allowed: gaussian:SIGMA[:ALPHA]"),
    (folder, ["{inputs}/nowhere"], "image folder not found: {inputs}/nowhere"),
    (folder, ["{inputs}/no_images"], "class folder {inputs}/no_images/b has no images"),
    (folder, ["{inputs}/broken"], "cannot read image {inputs}/broken/b/bad.png"),
    (folder, ["{inputs}/split"], "['c'] in {inputs}/split/test are not classes of the model"),
    (folder, ["{inputs}/images", "--pretrain", "barlow"], "no known resnet18 weights"),
    (folder, ["{inputs}/images", "--image-size", "16"], "expected at least 28 px, got 16"),
    (shapes, ["--models", "cnn,vgg"], "--models: unknown ['vgg']"),
    (evaluation_cli, ["{inputs}/missing.keras", "--data", "pets"], "file not found"),
    (evaluation_cli, ["{inputs}/garbage.keras", "--data", "pets"], "is not a Keras model file"),
    (evaluation_cli, ["{inputs}/other.keras", "--data", "pets"], "could not be loaded as a Keras"),
    (evaluation_cli, [MODEL[0], "--data", "nope"], "unknown --data 'nope'; allowed: pathmnist"),
    (evaluation_cli, [MODEL[0], "--data", "npz:{inputs}/x.npz"], "npz file not found"),
    (evaluation_cli, [MODEL[0], "--data", "npz:{inputs}/small.npz"],
     "holds 32x32 images; the model takes 28x28"),
    (evaluation_cli, [*MODEL, "--limit", "0"], "--limit: expected an integer >= 1, got 0"),
    (evaluation_cli, [*MODEL, "--suite", "studdy"], "--suite: unknown suite(s) ['studdy']"),
    (evaluation_cli, [*MODEL, "--severities", "6"], "--severities: "),
    (evaluation_cli, [*MODEL, "--corruptions", "rain"], "--corruptions: unknown corruption"),
    (evaluation_cli, [*MODEL, "--brightness", "x"], "--brightness must be numbers > 0"),
    (evaluation_cli, MODEL, "label 5 but the model has 2 outputs"),
    (evaluation_cli, [MODEL[0], "--data", "folder:{inputs}/images"],
     "['b'] in {inputs}/images are not classes of the model; allowed: ['a', 'z']"),
]  # fmt: skip


def _fill(values, inputs: Path) -> list[str]:
    return [value.format(inputs=inputs) for value in values]


def assert_one_error(capsys, code: int, expected: str) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.out[-2000:] + captured.err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert expected in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("command", "arguments", "expected"),
    CASES,
    ids=[f"{c.__name__.replace('.__main__', '')}:{' '.join(a[-2:])}" for c, a, _ in CASES],
)
def test_each_mistake_is_one_error_line_and_writes_nothing(
    files, tmp_path, capsys, monkeypatch, command, arguments, expected
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    out = tmp_path / "out" / "run"
    code = command.main([*_fill(arguments, files), "--out", str(out)])
    assert_one_error(capsys, code, expected.format(inputs=files))
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "keras-home").exists()


def test_a_half_precision_floatx_is_refused_before_any_work(files, tmp_path, capsys):
    keras.config.set_floatx("float16")  # as a keras.json with "floatx": "float16" would
    try:
        out = tmp_path / "out" / "run"
        arguments = [*_fill(PATHMNIST, files), "--mixed-precision", "off", "--out", str(out)]
        code = pathmnist.main(arguments)
    finally:
        keras.config.set_floatx("float32")
    expected = "--mixed-precision off: keras.json floatx must be one of ['float32', 'float64']"
    assert_one_error(capsys, code, expected)
    assert not (tmp_path / "out").exists()


def test_an_unwritable_output_is_refused_before_any_work(files, capsys):
    for target in (files / "a_file", files / "a_file" / "below"):
        code = pathmnist.main([*_fill(PATHMNIST, files), "--out", str(target)])
        assert_one_error(capsys, code, "is a file, not a folder")
        code = evaluation_cli.main([*_fill(MODEL, files), "--out", str(target)])
        assert_one_error(capsys, code, "is a file, not a folder")


def test_a_run_of_another_configuration_is_refused_and_left_as_it_was(files, tmp_path, capsys):
    from recipes.train import TrainConfig

    out = tmp_path / "run"
    out.mkdir()
    old = dataclasses.asdict(TrainConfig("pathmnist", "resnet18", policy="mixup", out=str(out)))
    text = yaml.safe_dump(old, sort_keys=False)
    (out / "config.yaml").write_text(text)
    argv = [*_fill(PATHMNIST, files), "--antialias", "3", "--policy", "randaugment"]
    code = pathmnist.main([*argv, "--out", str(out)])
    line = assert_one_error(capsys, code, f"{out} holds a run with another configuration")
    assert "antialias: None -> 3" in line and "policy: mixup -> randaugment" in line
    assert "--restart" in line
    assert (out / "config.yaml").read_text() == text
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]


def test_augment_preview_mistakes(files, tmp_path, capsys):
    cases = [
        (["preview", "randaugmnt", "--out", str(tmp_path / "g.png")], "neither a YAML file"),
        (["preview", "basic", "--images", str(files / "nowhere"), "--out",
          str(tmp_path / "g.png")], "image folder not found"),
        (["preview", "basic", "--out", str(tmp_path)], "is a folder; give the PNG file"),
        (["preview", "basic", "--columns", "0", "--out", str(tmp_path / "g.png")],
         "--columns: expected an integer >= 1"),
    ]  # fmt: skip
    for argv, expected in cases:
        assert_one_error(capsys, augment_cli.main(argv), expected)
    assert not (tmp_path / "g.png").exists()


def test_a_grayscale_npz_is_evaluated_as_rgb(files, tmp_path, capsys):
    gray = np.random.default_rng(1).integers(0, 255, (4, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "gray.npz", x_test=gray, y_test=np.array([0, 1, 0, 1]))
    out = tmp_path / "eval"
    code = evaluation_cli.main(
        [str(files / "m.keras"), "--data", f"npz:{tmp_path / 'gray.npz'}", "--out", str(out), "-q"]
    )
    assert code == 0, capsys.readouterr().err
    assert (out / "report.json").is_file()
    assert oct((out / "report.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


COMMANDS = ["recipes.pathmnist", "recipes.pets", "recipes.folder", "recipes.shapes", "evaluation",
            "augment"]  # fmt: skip


@pytest.mark.parametrize("module", COMMANDS)
def test_help_loads_no_tensorflow_and_prints_each_default_once(module):
    argv = ["preview", "--help"] if module == "augment" else ["--help"]
    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['x', *{argv!r}]\n"
        "try:\n"
        f"    runpy.run_module({module!r}, run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "print('TF-LOADED' if 'tensorflow' in sys.modules or 'keras' in sys.modules else 'NO-TF')"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "NO-TF"
    assert f"usage: python -m {module}" in result.stdout
    assert "(default: None)" not in result.stdout
    # Each option's help (from its "  -x" line to the next) names its default once at most.
    blocks = [b for b in re.split(r"\n(?=  -)", result.stdout) if b.startswith("  -")]
    assert len(blocks) > 5
    for block in blocks:
        assert len(re.findall(r"default:", block)) <= 1, block


def test_a_real_process_prints_no_traceback_and_no_tensorflow_logs(files, tmp_path):
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "recipes.pathmnist", *_fill(PATHMNIST, files), "--suite", "studdy",
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, cwd=ROOT, timeout=120, env=environment,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --suite: unknown suite(s) ['studdy']; allowed: ['study', 'imagenet-c', "
        "'consistency']"
    ]
    assert result.stdout == ""
    assert not (tmp_path / "run").exists()
