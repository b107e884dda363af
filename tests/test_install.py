"""The installed package requires `tensorflow` on every platform, never `tensorflow-cpu`."""

import configparser
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _requirements(lines: str) -> list[Requirement]:
    return [Requirement(line) for line in lines.strip().splitlines() if line.strip()]


def test_setup_cfg_requires_tensorflow_for_every_platform_and_cuda_only_as_extra():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    required = _requirements(config["options"]["install_requires"])
    tensorflow = [
        r for r in required if r.name.startswith("tensorflow") and "datasets" not in r.name
    ]
    assert [(r.name, str(r.specifier), r.marker) for r in tensorflow] == [
        ("tensorflow", "<2.22,>=2.21", None)
    ]
    gpu = _requirements(config["options.extras_require"]["gpu"])
    assert [(r.name, r.extras) for r in gpu] == [("tensorflow", {"and-cuda"})]


def test_installed_metadata_names_tensorflow_not_tensorflow_cpu():
    requires = [Requirement(r) for r in metadata.requires("robust-recipes")]
    names = {r.name for r in requires}
    assert "tensorflow" in names and "tensorflow-cpu" not in names
    assert "tensorflow-addons" not in names
