"""recipes.weights / checkpoint_io: converted checkpoints compute what the torch network does.

The reference is a small torch ResNet written here, independently of `recipes.resnet`: torchvision's
BasicBlock / Bottleneck (v1.5), and antialiased-cnns' variant (same module layout, so the same state
dict keys: blur inside `conv2`/`conv3`/`downsample` Sequentials with a persistent `filt` buffer)
with a torch blur (reflect pad, depthwise conv with the binomial filter). Weights and BatchNorm
running statistics are random; outputs are compared in eval mode.
"""

import math
import os
import pickle
import sys
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import keras  # noqa: E402

import recipes  # noqa: E402
from layers import BlurPool2D  # noqa: E402
from recipes import checkpoint_io, weights  # noqa: E402

IMAGE = 64
TOLERANCE = 1e-4
RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------
# Independent torch reference


class TorchBlur(nn.Module):
    """Zhang's BlurPool: reflect pad [floor, ceil]((k-1)/2), depthwise binomial filter, stride 2."""

    def __init__(self, channels, k):
        super().__init__()
        row = torch.tensor([float(math.comb(k - 1, i)) for i in range(k)])
        filt = row[:, None] * row[None, :]
        self.register_buffer("filt", (filt / filt.sum())[None, None].repeat(channels, 1, 1, 1))
        self.pad = ((k - 1) // 2, k // 2)

    def forward(self, x):
        x = F.pad(x, (*self.pad, *self.pad), mode="reflect")
        return F.conv2d(x, self.filt, stride=2, groups=x.shape[1])


def conv(cin, cout, k, stride=1):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


class Basic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, aa):
        super().__init__()
        self.conv1 = conv(cin, planes, 3, 1 if aa else stride)
        self.bn1 = nn.BatchNorm2d(planes)
        tail = conv(planes, planes, 3)
        self.conv2 = nn.Sequential(TorchBlur(planes, aa), tail) if aa and stride > 1 else tail
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = shortcut(cin, planes, stride, aa)

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, aa):
        super().__init__()
        self.conv1 = conv(cin, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 3, 1 if aa else stride)
        self.bn2 = nn.BatchNorm2d(planes)
        tail = conv(planes, planes * 4, 1)
        self.conv3 = nn.Sequential(TorchBlur(planes, aa), tail) if aa and stride > 1 else tail
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = shortcut(cin, planes * 4, stride, aa)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(out)))))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


def shortcut(cin, cout, stride, aa):
    if stride == 1 and cin == cout:
        return None
    if aa and stride > 1:
        return nn.Sequential(TorchBlur(cin, aa), conv(cin, cout, 1), nn.BatchNorm2d(cout))
    return nn.Sequential(conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))


class TorchResNet(nn.Module):
    def __init__(self, block, depths, num_classes, aa=None):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        if aa:
            self.maxpool = nn.Sequential(nn.MaxPool2d(2, stride=1), TorchBlur(64, aa))
        else:
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin, stages = 64, []
        for index, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths, strict=True)):
            blocks = []
            for j in range(depth):
                blocks.append(block(cin, planes, 2 if index and not j else 1, aa))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(cin, num_classes)

    def features(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))

    def forward(self, x):
        return self.fc(self.features(x))


def randomized(model):
    """Random weights and BatchNorm statistics, eval mode."""
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.num_batches_tracked.fill_(7)
    return model.eval()


def torch_forward(model, images, features=False):
    with torch.no_grad():
        inputs = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
        return (model.features(inputs) if features else model(inputs)).numpy()


def relative_error(actual, expected):
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def scramble(model):
    """Overwrites every weight so that a later load must really set it."""
    for variable in model.weights:
        variable.assign(np.full(variable.shape, 0.5, dtype=variable.dtype))


def images(n=2, size=IMAGE):
    return RNG.normal(size=(n, size, size, 3)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Equivalence: ResNet-18, ResNet-50, anti-aliased ResNet-50 (and ResNet-18), three file formats

CASES = {
    "resnet18": (Basic, (2, 2, 2, 2), None),
    "resnet50": (Bottleneck, (3, 4, 6, 3), None),
    "resnet50_lpf4": (Bottleneck, (3, 4, 6, 3), 4),
    "resnet18_lpf3": (Basic, (2, 2, 2, 2), 3),
}
MEASURED = {}


@pytest.fixture(scope="module", params=list(CASES))
def converted(request, tmp_path_factory):
    block, depths, aa = CASES[request.param]
    reference = randomized(TorchResNet(block, depths, 10, aa))
    constructor = recipes.resnet18 if block is Basic else recipes.resnet50
    model = constructor(10, input_shape=(IMAGE, IMAGE, 3), antialias=aa, classifier_activation=None)
    folder = tmp_path_factory.mktemp(request.param)
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    torch.save(reference.state_dict(), folder / "model.pth")
    weights.save_state_dict(state, folder / "model.safetensors")
    weights.save_state_dict(state, folder / "model.npz")
    return request.param, reference, model, folder


@pytest.mark.parametrize("suffix", [".pth", ".safetensors", ".npz"])
def test_converted_checkpoint_matches_torch(converted, suffix):
    name, reference, model, folder = converted
    scramble(model)
    report = recipes.load_weights(model, folder / f"model{suffix}")
    x = images()
    error = relative_error(np.asarray(model(x, training=False)), torch_forward(reference, x))
    MEASURED[f"{name}{suffix}"] = error
    print(f"{name}{suffix}: max relative error {error:.2e}")
    assert error < TOLERANCE
    assert report.head_loaded and not report.messages
    assert all(k.endswith(("num_batches_tracked", ".filt")) for k in report.ignored_keys)


def test_restricted_reader_without_torch_matches_torch_load(tmp_path, monkeypatch):
    """torch hidden: the NumPy reader reads zip and legacy files bit-identically, and they load."""
    reference = randomized(TorchResNet(Basic, (2, 2, 2, 2), 10, aa=4))
    expected = {k: v.numpy() for k, v in reference.state_dict().items()}
    torch.save(reference.state_dict(), tmp_path / "zip.pth")
    # antialiased-cnns ships its weights in the legacy format, wrapped in {"state_dict": ...}.
    torch.save(
        {"state_dict": reference.state_dict()},
        tmp_path / "legacy.pth",
        _use_new_zipfile_serialization=False,
    )
    model = recipes.resnet18(
        10, input_shape=(IMAGE, IMAGE, 3), antialias=4, classifier_activation=None
    )
    x = images()
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError):
        import torch as _  # noqa: F401
    for path in (tmp_path / "zip.pth", tmp_path / "legacy.pth"):
        state = weights.read_state_dict(path)
        assert state.keys() == expected.keys()
        for key, value in expected.items():
            assert state[key].dtype == value.dtype and np.array_equal(state[key], value), key
        scramble(model)
        recipes.load_weights(model, path)
        monkeypatch.delitem(sys.modules, "torch")
        error = relative_error(np.asarray(model(x, training=False)), torch_forward(reference, x))
        monkeypatch.setitem(sys.modules, "torch", None)
        assert error < TOLERANCE


def test_torch_layer_names_map_one_to_one(converted):
    name, reference, model, _ = converted
    torch_modules = {
        n
        for n, m in reference.named_modules()
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))
    }
    normalized = weights._normalize_keys({k: v.numpy() for k, v in reference.state_dict().items()})
    keras_layers = {layer.name for layer in model.layers if layer.weights}
    assert {k.rsplit(".", 1)[0] for k in normalized.params} == keras_layers
    assert len(torch_modules) == len(keras_layers)
    blur_layers = {layer.name for layer in model.layers if isinstance(layer, BlurPool2D)}
    assert set(normalized.blurs) == blur_layers
    assert len(blur_layers) == (7 if CASES[name][2] else 0)  # stem + 3 x (main path + shortcut)
    if not CASES[name][2]:  # torchvision's key counts without fc (Barlow Twins' ResNet-50: 318)
        backbone_keys = [k for k in reference.state_dict() if not k.startswith("fc.")]
        assert len(backbone_keys) == {"resnet18": 120, "resnet50": 318}[name]


# ---------------------------------------------------------------------------------------------
# Unsafe pickles


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("hide_torch", [False, True])
@pytest.mark.parametrize("layout", ["zip", "legacy", "plain-pickle"])
def test_malicious_pickle_is_refused_and_never_executed(tmp_path, monkeypatch, hide_torch, layout):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"conv1.weight": torch.zeros(2), "x": Evil(marker)}
    if layout == "plain-pickle":
        path.write_bytes(pickle.dumps(payload["x"], protocol=2))
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=layout == "zip")
    if hide_torch:
        monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(checkpoint_io.UnsafeCheckpointError) as error:
        weights.read_state_dict(path)
    assert not marker.exists()
    if hide_torch:
        assert "system" in str(error.value) and "not a tensor or a plain container" in str(
            error.value
        )
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="fc")])
    with pytest.raises(checkpoint_io.UnsafeCheckpointError):
        recipes.load_weights(model, path)
    assert not marker.exists()


def test_restricted_reader_rejects_out_of_bounds_tensor(tmp_path, monkeypatch):
    """A crafted size/stride that would read past its storage is an error, not a memory read."""
    path = tmp_path / "x.pth"
    torch.save({"w": torch.arange(6.0)}, path)
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    pkl = next(n for n in members if n.endswith("data.pkl"))
    # Same pickle, with the tensor's size (6,) rewritten to (600,): protocol-2 BININT1 6 -> 600.
    members[pkl] = members[pkl].replace(b"K\x06\x85", b"M\x58\x02\x85", 1)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(pickle.UnpicklingError, match="past the end"):
        checkpoint_io.read_pth(path)


# ---------------------------------------------------------------------------------------------
# Heads and key errors (ResNet-18)


@pytest.fixture(scope="module")
def resnet18_reference():
    return randomized(TorchResNet(Basic, (2, 2, 2, 2), 10))


def _state(reference):
    return {k: v.numpy() for k, v in reference.state_dict().items()}


def test_barlow_style_checkpoint_without_fc_loads_backbone(resnet18_reference, tmp_path):
    state = {k: v for k, v in _state(resnet18_reference).items() if not k.startswith("fc.")}
    weights.save_state_dict(state, tmp_path / "backbone.safetensors")
    model = recipes.resnet18(5, input_shape=(IMAGE, IMAGE, 3))
    head_before = [w.copy() for w in model.get_layer("fc").get_weights()]
    with pytest.warns(UserWarning, match="no classifier"):
        report = recipes.load_weights(model, tmp_path / "backbone.safetensors")
    assert not report.head_loaded and "fc" not in report.loaded_layers
    for before, after in zip(head_before, model.get_layer("fc").get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    x = images()
    features = keras.Model(model.input, model.get_layer("avgpool").output)(x)
    expected = torch_forward(resnet18_reference, x, features=True)
    assert relative_error(np.asarray(features), expected) < TOLERANCE
    with pytest.raises(ValueError, match=r"fc\.weight"):
        recipes.load_weights(model, tmp_path / "backbone.safetensors", skip_mismatched_head=False)


def test_backbone_without_top_ignores_checkpoint_head(resnet18_reference, tmp_path):
    weights.save_state_dict(_state(resnet18_reference), tmp_path / "full.npz")
    backbone = recipes.resnet18(
        None, input_shape=(IMAGE, IMAGE, 3), include_top=False, pooling="avg"
    )
    with pytest.warns(UserWarning, match="no 'fc' head"):
        recipes.load_weights(backbone, tmp_path / "full.npz")
    x = images()
    expected = torch_forward(resnet18_reference, x, features=True)
    assert relative_error(np.asarray(backbone(x, training=False)), expected) < TOLERANCE


def test_class_count_mismatch_skips_head_or_errors(resnet18_reference, tmp_path):
    weights.save_state_dict(_state(resnet18_reference), tmp_path / "ten.npz")
    model = recipes.resnet18(37, input_shape=(IMAGE, IMAGE, 3))
    with pytest.warns(UserWarning, match="10 classes, the model 37"):
        report = recipes.load_weights(model, tmp_path / "ten.npz")
    assert not report.head_loaded and len(report.loaded_layers) == 40  # 20 convs + 20 BNs
    with pytest.raises(ValueError, match=r"fc\.weight: checkpoint \(10, 512\), model \(37, 512\)"):
        recipes.load_weights(model, tmp_path / "ten.npz", skip_mismatched_head=False)


def test_missing_unexpected_and_misshaped_keys_are_listed_in_one_error(
    resnet18_reference, tmp_path
):
    state = _state(resnet18_reference)
    del state["layer1.0.conv1.weight"], state["layer2.0.bn1.running_var"]
    state["layer9.extra.weight"] = np.zeros(3, np.float32)
    state["bn1.bias"] = np.zeros(65, np.float32)
    weights.save_state_dict(state, tmp_path / "broken.npz")
    model = recipes.resnet18(10, input_shape=(IMAGE, IMAGE, 3))
    scramble(model)
    with pytest.raises(ValueError) as error:
        recipes.load_weights(model, tmp_path / "broken.npz")
    message = str(error.value)
    for expected in (
        "missing from the checkpoint (2)",
        "layer1.0.conv1.weight (64, 64, 3, 3)",
        "layer2.0.bn1.running_var (128,)",
        "unexpected in the checkpoint (1)",
        "layer9.extra.weight",
        "bn1.bias: checkpoint (65,), model (64,)",
        "nothing was loaded",
    ):
        assert expected in message
    assert all(np.all(np.asarray(v) == 0.5) for v in model.weights)  # untouched


def test_antialiased_checkpoint_into_plain_model_is_refused(tmp_path):
    reference = randomized(TorchResNet(Basic, (2, 2, 2, 2), 10, aa=4))
    torch.save({"state_dict": reference.state_dict()}, tmp_path / "lpf4.pth")
    with pytest.raises(ValueError, match="build it with antialias=4"):
        recipes.load_weights(recipes.resnet18(10, input_shape=(32, 32, 3)), tmp_path / "lpf4.pth")
    with pytest.raises(ValueError, match="checkpoint blur filter size 4, model layer"):
        recipes.load_weights(
            recipes.resnet18(10, input_shape=(32, 32, 3), antialias=3), tmp_path / "lpf4.pth"
        )


def test_unknown_suffix_and_non_state_dict_are_rejected(tmp_path):
    (tmp_path / "w.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="suffix must be one of"):
        weights.read_state_dict(tmp_path / "w.h5")
    torch.save({"epoch": 3, "state_dict": {"a": torch.zeros(1)}, "lr": 0.1}, tmp_path / "ckpt.pth")
    assert list(weights.read_state_dict(tmp_path / "ckpt.pth")) == ["a"]
    torch.save({"epoch": 3, "a": torch.zeros(1)}, tmp_path / "mixed.pth")
    with pytest.raises(ValueError, match=r"non-tensor entries \['epoch'\]"):
        weights.read_state_dict(tmp_path / "mixed.pth")


# ---------------------------------------------------------------------------------------------
# Known weights


def test_known_weights_registry():
    known = weights.known_weights()
    for name in (
        "torchvision-resnet18-imagenet",
        "torchvision-resnet50-imagenet",
        "barlowtwins-resnet50",
        "antialiased-resnet50-lpf4",
        "antialiased-resnet18-lpf4-finetune",
    ):
        assert name in known
    for entry in known.values():
        assert entry.url.startswith("https://")
        if entry.sha256_prefix:  # torch.hub convention: <name>-<sha256 prefix>.pth
            assert entry.url.endswith(f"-{entry.sha256_prefix}.pth")
            assert len(entry.sha256_prefix) == 8
    assert known["torchvision-resnet18-imagenet"].sha256_prefix == "f37072fd"
    assert known["barlowtwins-resnet50"].num_classes is None
    assert len({entry.filename for entry in known.values()}) == len(known)


@pytest.fixture
def local_entry(resnet18_reference, tmp_path, monkeypatch):
    """A registry entry served from a file:// URL, with the file's real SHA-256 prefix."""
    served = tmp_path / "served" / "tiny-resnet18.pth"
    served.parent.mkdir()
    torch.save(resnet18_reference.state_dict(), served)
    prefix = weights._sha256(served)[:8]
    entry = weights.KnownWeights(
        "test-resnet18",
        "resnet18",
        None,
        served.as_uri(),
        "tiny-resnet18.pth",
        None,
        prefix,
        10,
        "",
    )
    monkeypatch.setattr(weights, "_KNOWN", (entry,))
    return entry


def test_known_weights_download_into_cache_and_verify(local_entry, resnet18_reference, tmp_path):
    cache = tmp_path / "cache" / "models"
    model = recipes.resnet18(10, input_shape=(IMAGE, IMAGE, 3))
    recipes.load_weights(model, "test-resnet18", cache_dir=cache)
    assert (cache / "tiny-resnet18.pth").exists()
    x = images()
    logits = np.log(np.asarray(model(x, training=False)))
    expected = torch.log_softmax(torch.from_numpy(torch_forward(resnet18_reference, x)), -1).numpy()
    assert relative_error(logits, expected) < TOLERANCE
    (cache / "tiny-resnet18.pth").write_bytes(b"corrupted")
    with pytest.raises(ValueError, match="does not match test-resnet18"):
        weights.fetch_weights("test-resnet18", cache)


def test_offline_error_says_what_to_download_and_where(local_entry, tmp_path, monkeypatch):
    offline = weights.KnownWeights(
        "test-offline",
        "resnet18",
        None,
        (tmp_path / "absent.pth").as_uri(),
        "absent.pth",
        None,
        "0123abcd",
        1000,
        "",
    )
    monkeypatch.setattr(weights, "_KNOWN", (offline,))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    with pytest.raises(weights.WeightsUnavailableError) as error:
        weights.fetch_weights("test-offline")
    message = str(error.value)
    assert offline.url in message and "0123abcd" in message
    assert str(tmp_path / "home" / "models" / "absent.pth") in message
    with pytest.raises(FileNotFoundError, match="neither a file nor a known weight name"):
        recipes.load_weights(keras.Sequential([keras.Input((1,))]), "no-such-weights")
