"""ResNet-18/50 in torchvision's layout, optionally anti-aliased as in Zhang (ICML 2019).

Why not `keras.applications.ResNet50`: it is ResNet v1 (stride on the bottleneck's first 1x1
conv), has conv biases, BatchNorm epsilon 1.001e-5 and Caffe preprocessing, so torchvision
checkpoints do not fit it; and Keras has no ResNet-18. Here (torchvision "v1.5"):

- the stride sits on the bottleneck's 3x3 conv; every kxk conv is `ZeroPadding2D(k // 2)` and a
  `"valid"` conv (`"same"` pads asymmetrically for stride 2 and shifts the sampling grid);
- convs have no bias, BatchNorm uses epsilon 1e-5 and momentum 0.9 (torch's momentum 0.1);
- layer names are torchvision's module names ("conv1", "bn1", "layer1.0.conv1",
  "layer1.0.downsample.0", "fc"), so `recipes.weights` maps checkpoint keys onto layers by name;
- the classifier "fc" computes in floatx (float32) under mixed precision.

`antialias=k` inserts `layers.BlurPool2D(filter_size=k)` where antialiased-cnns' ResNets do
(`pool_only`): stem max-pool 2x2 at stride 1 then blur; in a strided block the strided conv runs
at stride 1 and the blur follows its ReLU; in the shortcut the blur comes before the 1x1 conv,
which runs at stride 1. BlurPool2D has no weights, so plain and anti-aliased models have the same
variables. Inputs are channels-last RGB images normalised like the checkpoint expects (ImageNet
weights: [0, 1] then mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)).
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from layers import BlurPool2D

BATCHNORM_EPSILON = 1e-5  # torch.nn.BatchNorm2d default
BATCHNORM_MOMENTUM = 0.9  # = 1 - torch's momentum 0.1
POOLINGS = (None, "avg", "max")
# torchvision initialises convs with kaiming_normal_(mode="fan_out", nonlinearity="relu").
CONV_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"},
}


def _conv(x: keras.KerasTensor, filters: int, kernel_size: int, strides: int, name: str):
    """Explicit zero padding of kernel_size // 2, then a bias-free "valid" conv, as torch does."""
    if kernel_size > 1:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        use_bias=False,
        kernel_initializer=CONV_INITIALIZER,
        name=name,
    )(x)


def _batchnorm(x: keras.KerasTensor, name: str):
    return keras.layers.BatchNormalization(
        epsilon=BATCHNORM_EPSILON, momentum=BATCHNORM_MOMENTUM, name=name
    )(x)


def _shortcut(
    x: keras.KerasTensor, filters: int, stride: int, antialias: int | None, name: str
) -> keras.KerasTensor:
    """The block's identity, or its `downsample` projection (1x1 conv + BN)."""
    if stride > 1 and antialias:
        # Zhang: blur -> 1x1 conv at stride 1 (equal to conv -> blur, both linear; cheaper).
        x = BlurPool2D(filter_size=antialias, name=f"{name}.downsample_blur")(x)
        stride = 1
    x = _conv(x, filters, 1, stride, f"{name}.downsample.0")
    return _batchnorm(x, f"{name}.downsample.1")


def _strided_conv_relu(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: int,
    stride: int,
    antialias: int | None,
    name: str,
    index: int,
) -> keras.KerasTensor:
    """conv(stride) -> BN -> ReLU; anti-aliased: conv(1) -> BN -> ReLU -> blur(stride)."""
    conv_stride = 1 if antialias else stride
    x = _conv(x, filters, kernel_size, conv_stride, f"{name}.conv{index}")
    x = _batchnorm(x, f"{name}.bn{index}")
    x = keras.layers.ReLU(name=f"{name}.relu{index}")(x)
    if stride > 1 and antialias:
        x = BlurPool2D(filter_size=antialias, name=f"{name}.blur")(x)
    return x


def _basic_block(
    x: keras.KerasTensor, planes: int, stride: int, antialias: int | None, name: str
) -> keras.KerasTensor:
    """torchvision BasicBlock: 3x3 (stride) -> 3x3, expansion 1."""
    needs_projection = stride > 1 or x.shape[-1] != planes
    shortcut = _shortcut(x, planes, stride, antialias, name) if needs_projection else x
    out = _strided_conv_relu(x, planes, 3, stride, antialias, name, index=1)
    out = _conv(out, planes, 3, 1, f"{name}.conv2")
    out = _batchnorm(out, f"{name}.bn2")
    out = keras.layers.Add(name=f"{name}.add")([out, shortcut])
    return keras.layers.ReLU(name=f"{name}.relu")(out)


def _bottleneck_block(
    x: keras.KerasTensor, planes: int, stride: int, antialias: int | None, name: str
) -> keras.KerasTensor:
    """torchvision Bottleneck (v1.5): 1x1 -> 3x3 (stride) -> 1x1, expansion 4."""
    filters = planes * 4
    needs_projection = stride > 1 or x.shape[-1] != filters
    shortcut = _shortcut(x, filters, stride, antialias, name) if needs_projection else x
    out = _conv(x, planes, 1, 1, f"{name}.conv1")
    out = _batchnorm(out, f"{name}.bn1")
    out = keras.layers.ReLU(name=f"{name}.relu1")(out)
    out = _strided_conv_relu(out, planes, 3, stride, antialias, name, index=2)
    out = _conv(out, filters, 1, 1, f"{name}.conv3")
    out = _batchnorm(out, f"{name}.bn3")
    out = keras.layers.Add(name=f"{name}.add")([out, shortcut])
    return keras.layers.ReLU(name=f"{name}.relu")(out)


Block = Callable[[keras.KerasTensor, int, int, "int | None", str], keras.KerasTensor]
# architecture -> (block, blocks per stage)
ARCHITECTURES: dict[str, tuple[Block, tuple[int, int, int, int]]] = {
    "resnet18": (_basic_block, (2, 2, 2, 2)),
    "resnet50": (_bottleneck_block, (3, 4, 6, 3)),
}


def _stem(x: keras.KerasTensor, antialias: int | None) -> keras.KerasTensor:
    x = _conv(x, 64, 7, 2, "conv1")
    x = _batchnorm(x, "bn1")
    x = keras.layers.ReLU(name="relu")(x)
    if antialias:
        # Zhang: MaxPool(k=2, s=1) -> BlurPool(s=2) replaces MaxPool(k=3, s=2, p=1).
        x = keras.layers.MaxPooling2D(2, strides=1, name="maxpool")(x)
        return BlurPool2D(filter_size=antialias, name="maxpool_blur")(x)
    # torch pads the max-pool with -inf; after the ReLU inputs are >= 0, so zeros are equivalent.
    x = keras.layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name="maxpool")(x)


def _validate(
    num_classes: int | None, antialias: int | None, include_top: bool, pooling: str | None
) -> None:
    if include_top and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
    ):
        raise ValueError(
            f"num_classes must be a positive int with include_top, got {num_classes!r}"
        )
    if antialias is not None and (
        isinstance(antialias, bool) or not isinstance(antialias, int) or antialias < 1
    ):
        raise ValueError(f"antialias must be None or a blur filter size >= 1, got {antialias!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


def build_resnet(
    architecture: str,
    num_classes: int | None,
    input_shape: tuple[int | None, int | None, int] = (224, 224, 3),
    antialias: int | None = None,
    classifier_activation: str | Callable | None = "softmax",
    include_top: bool = True,
    pooling: str | None = None,
    name: str | None = None,
) -> keras.Model:
    """Builds a torchvision-layout ResNet as a functional Keras model.

    Args:
        architecture: a key of `ARCHITECTURES` ("resnet18", "resnet50").
        num_classes: classes of the "fc" head (ignored without the top).
        input_shape: (height, width, channels), channels last; spatial sizes may be None.
        antialias: None for the plain model, or the BlurPool filter size (antialiased-cnns' lpf k).
        classifier_activation: activation of "fc"; None returns logits.
        include_top: add global average pooling ("avgpool") and the Dense head "fc".
        pooling: without the top, None (feature map), "avg" or "max" (global pooling).
        name: model name; defaults to e.g. "resnet50" or "resnet50_lpf4".

    Returns:
        The uncompiled model; its output is float32 under mixed precision when the top is included.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {sorted(ARCHITECTURES)}, got {architecture!r}"
        )
    _validate(num_classes, antialias, include_top, pooling)
    block, depths = ARCHITECTURES[architecture]
    inputs = keras.Input(shape=input_shape, name="image")
    x = _stem(inputs, antialias)
    for stage, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths, strict=True)):
        for index in range(depth):
            stride = 2 if stage > 0 and index == 0 else 1
            x = block(x, planes, stride, antialias, f"layer{stage + 1}.{index}")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
        # floatx (float32) head: softmax/logits stay accurate under mixed_float16.
        x = keras.layers.Dense(
            num_classes, activation=classifier_activation, dtype=keras.config.floatx(), name="fc"
        )(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="global_maxpool")(x)
    default_name = architecture if antialias is None else f"{architecture}_lpf{antialias}"
    return keras.Model(inputs, x, name=name or default_name)


def resnet18(
    num_classes: int | None,
    input_shape: tuple[int | None, int | None, int] = (224, 224, 3),
    antialias: int | None = None,
    classifier_activation: str | Callable | None = "softmax",
    include_top: bool = True,
    pooling: str | None = None,
    name: str | None = None,
) -> keras.Model:
    """torchvision ResNet-18 (BasicBlock, [2, 2, 2, 2]); arguments as in `build_resnet`."""
    return build_resnet(
        "resnet18",
        num_classes,
        input_shape,
        antialias,
        classifier_activation,
        include_top,
        pooling,
        name,
    )


def resnet50(
    num_classes: int | None,
    input_shape: tuple[int | None, int | None, int] = (224, 224, 3),
    antialias: int | None = None,
    classifier_activation: str | Callable | None = "softmax",
    include_top: bool = True,
    pooling: str | None = None,
    name: str | None = None,
) -> keras.Model:
    """torchvision ResNet-50 (Bottleneck v1.5, [3, 4, 6, 3]); arguments as in `build_resnet`."""
    return build_resnet(
        "resnet50",
        num_classes,
        input_shape,
        antialias,
        classifier_activation,
        include_top,
        pooling,
        name,
    )
