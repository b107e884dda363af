"""recipes: torchvision-layout ResNets, safe pretrained-weight import and training recipes."""

from recipes.resnet import resnet18, resnet50
from recipes.weights import load_weights

__all__ = ["load_weights", "resnet18", "resnet50"]
