"""`antialias(model)`: rewrite a Keras model's downsampling the way Zhang (ICML 2019) does.

- strided `MaxPooling2D` -> `MaxBlurPool2D` (max-pool at stride 1, then blur);
- strided `AveragePooling2D` -> `BlurPool2D`;
- strided `Conv2D` / `DepthwiseConv2D` / `SeparableConv2D` -> the same layer at stride 1, with the
  blur after the activation that follows it (walking through BatchNormalization and other
  per-pixel layers). A 1x1 conv with no activation after it (a ResNet shortcut) is blurred before
  instead, as Zhang does: the same function (both are linear, the blur acts on each channel
  alike), and cheaper.

The sampling grid is kept: padding layers (`ZeroPadding2D`) stay, a `"valid"` conv stays
`"valid"`, and a `"same"` layer is cropped at the start by the difference between the stride-1 and
the stride-s "same" padding, so `filter_size=1` (a blur of [1] is plain subsampling) gives exactly
the original function, except for average-pools, which Zhang replaces by a blur. Everything the
rewrite cannot handle is named in a warning (or a ValueError for a model it cannot walk).
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Callable

import keras

from layers.binomial import check_filter_size
from layers.blurpool import BlurPool2D, MaxBlurPool2D
from layers.padding import check_pad_mode, check_pad_overflow

#: Strided layers whose stride moves to a blur (weights unchanged at stride 1).
STRIDED_CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
#: Layers that act on each pixel alone: the blur may move past them along a conv's chain.
PER_PIXEL_LAYERS = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
    keras.layers.Softmax,
    keras.layers.Dropout,
)
#: Pooling layers replaced by blurs (max-pool, average-pool).
POOLS = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
#: Other downsampling layer types this rewrite does not handle (named in a warning).
UNHANDLED_DOWNSAMPLING = (
    keras.layers.Conv1D,
    keras.layers.Conv3D,
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling3D,
)


def _is_strided(layer: keras.layers.Layer) -> bool:
    strides = getattr(layer, "strides", None)
    return strides is not None and any(s > 1 for s in strides)


def _is_activation(layer: keras.layers.Layer) -> bool:
    """A per-pixel layer that is a nonlinearity (Zhang blurs after it)."""
    if isinstance(layer, keras.layers.Activation):
        return keras.activations.serialize(layer.activation) != "linear"
    return isinstance(
        layer,
        keras.layers.ReLU
        | keras.layers.LeakyReLU
        | keras.layers.PReLU
        | keras.layers.ELU
        | keras.layers.Softmax,
    )


def _channels_last(layer: keras.layers.Layer) -> bool:
    return getattr(layer, "data_format", None) == "channels_last"


def _has_activation(layer: keras.layers.Layer) -> bool:
    activation = getattr(layer, "activation", None)
    return activation is not None and keras.activations.serialize(activation) != "linear"


def _same_padding_crop(size: int | None, kernel: int, stride: int) -> int | None:
    """Rows to drop at the start of a stride-1 "same" output to land on the stride-s grid.

    TF "same" pads max((ceil(H/s)-1)*s + k - H, 0) in total, the smaller half first; at stride 1
    that is floor((k-1)/2) first. Output i of the strided layer reads the window starting at
    s*i - before_s, which is stride-1 output s*i + (before_1 - before_s).
    """
    if size is None:
        return None
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return (kernel - 1) // 2 - total // 2


class _Graph:
    """Who calls whom in a functional model (Keras has no public graph API; this reads the
    `_nodes_by_depth` table that `keras.Model` itself uses to run and clone the graph)."""

    def __init__(self, model: keras.Model):
        self.nodes_of = defaultdict(list)  # id(layer) -> nodes calling it in this model
        self.consumers = defaultdict(list)  # id(tensor) -> nodes reading it
        for nodes in model._nodes_by_depth.values():
            for node in nodes:
                if node.operation is None or node.is_input:
                    continue
                self.nodes_of[id(node.operation)].append(node)
                for tensor in node.input_tensors:
                    self.consumers[id(tensor)].append(node)
        self.outputs = {id(t) for t in model.outputs}

    def single_use(self, layer: keras.layers.Layer) -> bool:
        return len(self.nodes_of[id(layer)]) == 1

    def next_layer(self, layer: keras.layers.Layer) -> keras.layers.Layer | None:
        """The only layer reading `layer`'s only output, or None where that is not so."""
        outputs = self.nodes_of[id(layer)][0].outputs
        if len(outputs) != 1 or id(outputs[0]) in self.outputs:
            return None
        readers = self.consumers[id(outputs[0])]
        return readers[0].operation if len(readers) == 1 else None


def _blur_anchor(conv: keras.layers.Layer, graph: _Graph) -> tuple[keras.layers.Layer, bool]:
    """Where a strided conv's blur goes: (layer after which it goes, found an activation).

    Walks from the conv through single-use per-pixel layers (BatchNormalization, ...) up to and
    including the first nonlinearity, as Zhang's Conv(s1) -> Norm -> ReLU -> BlurPool.
    """
    if _has_activation(conv) or not graph.single_use(conv):
        return conv, _has_activation(conv)
    anchor = conv
    while True:
        following = graph.next_layer(anchor)
        if not isinstance(following, PER_PIXEL_LAYERS) or not graph.single_use(following):
            return anchor, False
        anchor = following
        if _is_activation(anchor):
            return anchor, True


def _copy_weights(pairs: list[tuple[keras.layers.Layer, keras.layers.Layer]]) -> None:
    for old, new in pairs:
        if old.weights:
            new.set_weights(old.get_weights())


def _as_functional(model: keras.Model) -> keras.Model:
    """A functional view of a model; Sequential is re-wired onto the same layers."""
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise ValueError(
                f"antialias needs a built model with a known input shape; build "
                f"Sequential model {model.name!r} first (e.g. give it a keras.Input)."
            )
        inputs = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)
        x = inputs
        for layer in model.layers:
            x = layer(x)
        return keras.Model(inputs, x, name=model.name)
    if not hasattr(model, "_nodes_by_depth") or not model.inputs:
        raise ValueError(
            f"antialias needs a functional or Sequential keras.Model; {model.name!r} "
            f"({type(model).__name__}) is subclassed, so it has no layer graph to rewrite."
        )
    return model


class _Rewriter:
    """Builds the replacement layers and the calls that insert crops and blurs."""

    def __init__(self, model: keras.Model, blur_options: dict):
        # filter_size, pad_mode, pad_overflow: as given to `antialias`, for every blur.
        self.blur_options = blur_options
        self.graph = _Graph(model)
        self.weight_pairs: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []
        self.problems: list[str] = []
        self.used_names = {layer.name for layer in model.layers}
        # id(new layer) -> function(x) run on a call's first input / functions(y, input_shape)
        # run in turn on its output
        self.before: dict[int, Callable] = {}
        self.after: dict[int, list[Callable]] = defaultdict(list)
        # id(original layer) -> strided conv whose blur goes after that layer
        self.blur_after: dict[int, keras.layers.Layer] = {}
        self.blur_before: set[int] = set()
        for layer in model.layers:
            if isinstance(layer, STRIDED_CONVS) and _is_strided(layer) and _channels_last(layer):
                anchor, found_activation = _blur_anchor(layer, self.graph)
                if not found_activation and layer.kernel_size == (1, 1):
                    # Zhang's shortcut: blur -> conv1x1 equals conv1x1 -> blur (both linear,
                    # the blur is the same on every channel) and is cheaper.
                    self.blur_before.add(id(layer))
                else:
                    self.blur_after[id(anchor)] = layer

    def _unique(self, name: str) -> str:
        candidate, index = name, 1
        while candidate in self.used_names:
            candidate, index = f"{name}_{index}", index + 1
        self.used_names.add(candidate)
        return candidate

    def _blur(self, strides, dtype, name: str) -> BlurPool2D:
        """A new BlurPool2D; `name` is used as is (a replaced layer's) or made unique."""
        return BlurPool2D(
            strides=tuple(strides),
            data_format="channels_last",
            dtype=dtype,
            name=name,
            **self.blur_options,
        )

    def _blur_step(self, strided, dtype) -> Callable:
        """An `after` step that blurs with the strides of layer `strided`."""
        return lambda y, _: self._blur(
            strided.strides, dtype, self._unique(f"{strided.name}_blurpool")
        )(y)

    def _crop_step(self, layer, kernel) -> Callable:
        """An `after` step that crops a stride-1 "same" output onto the stride-s grid."""

        def crop(y, input_shape):
            cropping = self._same_crop(layer, kernel, input_shape)
            return y if cropping is None else cropping(y)

        return crop

    def _same_crop(self, layer, kernel, input_shape) -> keras.layers.Cropping2D | None:
        """Cropping2D onto the stride-s grid (see `_same_padding_crop`), None if none needed."""
        crops = [
            _same_padding_crop(size, k, s)
            for size, k, s in zip(input_shape[1:3], kernel, layer.strides, strict=True)
        ]
        if None in crops:
            self.problems.append(
                f"{layer.name}: padding='same' with unknown input height/width; converted "
                f"without re-aligning, so its sampling grid may sit one pixel off the original"
            )
            return None
        if not any(crops):
            return None
        return keras.layers.Cropping2D(
            ((crops[0], 0), (crops[1], 0)),
            dtype=layer.dtype_policy,
            name=self._unique(f"{layer.name}_crop"),
        )

    def clone(self, layer: keras.layers.Layer) -> keras.layers.Layer:
        """clone_function: a fresh copy of `layer`, or its anti-aliased replacement."""
        if isinstance(layer, keras.Model):
            return self._clone_submodel(layer)
        config = layer.get_config()
        pool_to_blur = _is_strided(layer) and _channels_last(layer)
        if isinstance(layer, STRIDED_CONVS) and _is_strided(layer):
            new = self._convert_conv(layer, config)
        elif isinstance(layer, keras.layers.MaxPooling2D) and pool_to_blur:
            new = self._convert_max_pool(layer, config)
        elif isinstance(layer, keras.layers.AveragePooling2D) and pool_to_blur:
            new = self._blur(layer.strides, layer.dtype_policy, layer.name)
            if tuple(layer.pool_size) != tuple(layer.strides):
                self.problems.append(
                    f"{layer.name}: AveragePooling2D(pool_size={layer.pool_size}, "
                    f"strides={layer.strides}) replaced by BlurPool2D(strides={layer.strides}) "
                    f"as Zhang does; its output size can differ from the pool's"
                )
            return new
        else:
            if isinstance(layer, UNHANDLED_DOWNSAMPLING) and _is_strided(layer):
                self.problems.append(
                    f"{layer.name}: {type(layer).__name__} is not 2-D; left as it is"
                )
            if isinstance(layer, POOLS) and _is_strided(layer):
                self.problems.append(
                    f"{layer.name}: channels_first {type(layer).__name__}; left as it is"
                )
            self._warn_hidden_downsampling(layer)
            new = type(layer).from_config(config)
        self.weight_pairs.append((layer, new))
        if id(layer) in self.blur_after:
            self.after[id(new)].append(
                self._blur_step(self.blur_after[id(layer)], layer.dtype_policy)
            )
        return new

    def _convert_conv(self, layer, config):
        if layer.data_format != "channels_last":
            self.problems.append(f"{layer.name}: channels_first conv; left strided")
            return type(layer).from_config(config)
        config.update(strides=(1, 1))
        new = type(layer).from_config(config)
        if layer.padding == "same":
            self.after[id(new)].append(self._crop_step(layer, layer.kernel_size))
        if id(layer) in self.blur_before:
            blur_step = self._blur_step(layer, layer.dtype_policy)
            self.before[id(new)] = lambda x: blur_step(x, None)
        return new

    def _convert_max_pool(self, layer, config):
        if layer.padding == "valid":
            return MaxBlurPool2D(
                pool_size=tuple(layer.pool_size),
                strides=tuple(layer.strides),
                data_format="channels_last",
                dtype=layer.dtype_policy,
                name=layer.name,
                **self.blur_options,
            )
        # "same": stride-1 "same" max-pool, crop onto the stride-s grid, then blur.
        config.update(strides=(1, 1))
        new = keras.layers.MaxPooling2D.from_config(config)
        self.after[id(new)].append(self._crop_step(layer, layer.pool_size))
        self.after[id(new)].append(self._blur_step(layer, layer.dtype_policy))
        return new

    def _clone_submodel(self, model: keras.Model) -> keras.layers.Layer:
        try:
            functional = _as_functional(model)
        except ValueError as error:
            self.problems.append(f"{model.name}: nested model not rewritten ({error})")
            new = type(model).from_config(model.get_config())
            self.weight_pairs.append((model, new))
            return new
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            new = antialias(functional, **self.blur_options)
        self.problems.extend(f"{model.name}/{w.message}" for w in caught)
        return new

    def _warn_hidden_downsampling(self, layer: keras.layers.Layer) -> None:
        """A custom layer can hide strided sublayers the graph walk cannot see."""
        for sub in layer._flatten_layers(include_self=False, recursive=True):
            if _is_strided(sub) and isinstance(sub, (*STRIDED_CONVS, *POOLS)):
                self.problems.append(
                    f"{layer.name}/{sub.name}: strided {type(sub).__name__} inside a custom "
                    f"layer; left as it is"
                )

    def call(self, new_layer: keras.layers.Layer, *args, **kwargs):
        """call_function: call the new layer and insert its crops and blurs."""
        if id(new_layer) in self.before:
            args = (self.before[id(new_layer)](args[0]), *args[1:])
        input_shape = getattr(args[0], "shape", None)  # Add/Concatenate get a list
        y = new_layer(*args, **kwargs)
        for step in self.after.get(id(new_layer), []):
            y = step(y, input_shape)
        return y


def antialias(
    model: keras.Model,
    filter_size: int = 4,
    pad_mode: str = "reflect",
    pad_overflow: str = "repeat",
) -> keras.Model:
    """A new functional model with every downsampling layer anti-aliased (Zhang, ICML 2019).

    Strided max-pools become `MaxBlurPool2D`, average-pools `BlurPool2D`, strided convolutions
    run at stride 1 with a `BlurPool2D` after the activation that follows them (see module
    docstring). The new model has the original weights (copied; the blur layers have none).
    Nested functional/Sequential models are rewritten recursively. Layers it cannot convert are
    named in one `UserWarning`.

    Args:
        model: a built functional or Sequential `keras.Model`.
        filter_size: blur filter size, 1..7 (1 keeps the original function).
        pad_mode: blur padding, "reflect", "replicate" or "zero".
        pad_overflow: "repeat" (default: reflect on, as numpy.pad does, where a map is not wider
            than the pad, so any input size works) or "error"; see `BlurPool2D`.

    Returns:
        The anti-aliased `keras.Model`.

    Raises:
        ValueError: for a subclassed model, an unbuilt Sequential, or bad blur arguments.
    """
    blur_options = {
        "filter_size": check_filter_size(filter_size),
        "pad_mode": check_pad_mode(pad_mode),
        "pad_overflow": check_pad_overflow(pad_overflow),
    }
    functional = _as_functional(model)
    rewriter = _Rewriter(functional, blur_options)
    new_model = keras.models.clone_model(
        functional, clone_function=rewriter.clone, call_function=rewriter.call
    )
    _copy_weights(rewriter.weight_pairs)
    if rewriter.problems:
        warnings.warn(
            "antialias could not fully convert: " + "; ".join(rewriter.problems),
            UserWarning,
            stacklevel=2,
        )
    return new_model
