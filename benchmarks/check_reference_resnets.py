"""Checks `recipes.resnet18/50` against the reference PyTorch implementations, end to end.

Two steps, because the references and TensorFlow live in different environments:

1. In an environment with torch, torchvision and antialiased-cnns (not dependencies here)::

       python benchmarks/check_reference_resnets.py export --out /tmp/resnet-ref

   builds torchvision's ResNet-18/50 and antialiased-cnns' ResNet-50 (filter size 4) with random
   weights and random BatchNorm statistics, and saves each state dict as `.pth` with its outputs on
   a fixed input.
2. In this package's environment::

       python benchmarks/check_reference_resnets.py check --out /tmp/resnet-ref

   loads each `.pth` with `recipes.load_weights` into the matching Keras model and prints the
   maximum relative error of the logits.
"""

import argparse
import json
from pathlib import Path

import numpy as np

IMAGE_SIZE = 64
NUM_CLASSES = 1000
# name -> (keras constructor name, antialias filter size)
MODELS = {
    "torchvision_resnet18": ("resnet18", None),
    "torchvision_resnet50": ("resnet50", None),
    "antialiased_resnet50_lpf4": ("resnet50", 4),
}


def _input() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)


def export(out: Path) -> None:
    """Saves reference state dicts and outputs (needs torch, torchvision, antialiased-cnns)."""
    import antialiased_cnns
    import torch
    import torchvision

    builders = {
        "torchvision_resnet18": lambda: torchvision.models.resnet18(weights=None),
        "torchvision_resnet50": lambda: torchvision.models.resnet50(weights=None),
        "antialiased_resnet50_lpf4": lambda: antialiased_cnns.resnet50(filter_size=4),
    }
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    inputs = torch.from_numpy(_input().transpose(0, 3, 1, 2).copy())
    for name, build in builders.items():
        model = build()
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                torch.nn.init.uniform_(module.weight, 0.5, 1.5)
                torch.nn.init.uniform_(module.bias, -0.2, 0.2)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
        model.eval()
        with torch.no_grad():
            logits = model(inputs).numpy()
        torch.save(model.state_dict(), out / f"{name}.pth")
        np.save(out / f"{name}_logits.npy", logits)
        print(f"exported {name}: logits {logits.shape}")


def check(out: Path) -> dict[str, float]:
    """Loads each exported checkpoint into the Keras model and returns max relative errors."""
    import recipes

    errors = {}
    for name, (constructor, antialias) in MODELS.items():
        model = getattr(recipes, constructor)(
            NUM_CLASSES,
            input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
            antialias=antialias,
            classifier_activation=None,
        )
        recipes.load_weights(model, out / f"{name}.pth")
        logits = np.asarray(model(_input(), training=False))
        reference = np.load(out / f"{name}_logits.npy")
        errors[name] = float(np.max(np.abs(logits - reference)) / np.max(np.abs(reference)))
        print(f"{name}: max |keras - torch| / max |torch| = {errors[name]:.2e}")
    (out / "errors.json").write_text(json.dumps(errors, indent=2))
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("export", "check"))
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for checkpoints and outputs"
    )
    args = parser.parse_args()
    {"export": export, "check": check}[args.step](args.out)


if __name__ == "__main__":
    main()
