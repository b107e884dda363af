"""Reading PyTorch `.pth` checkpoints without executing pickled code.

A `.pth` file is a pickle, and unpickling can call any importable function. With torch installed
we use `torch.load(weights_only=True)`; without it, `read_pth_restricted` reads the file with a
`pickle.Unpickler` whose `find_class` resolves only an allowlist (the tensor-rebuild function,
storage types and `collections.OrderedDict`) mapped to NumPy stand-ins, so nothing from the file
runs.

Both torch formats are read (see `torch/serialization.py`):

- zip (torch >= 1.6): `<root>/data.pkl` is the pickle; a tensor storage is the persistent id
  `("storage", <StorageType>, key, location, numel)` whose bytes are the member `<root>/data/<key>`;
  `<root>/byteorder` says "little" or "big" (little when absent).
- legacy (`_use_new_zipfile_serialization=False`, e.g. antialiased-cnns' weights): five pickles
  in a row (magic number, protocol version, sys info, the object, the sorted storage keys), then for
  each key an int64 element count and the storage's little-endian bytes. Its persistent ids carry a
  sixth field, `view_metadata`, which is `None` for ordinary tensors.
"""

from __future__ import annotations

import collections
import importlib.util
import io
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# torch storage type name -> little-endian NumPy dtype of one element ("bfloat16" is widened below).
STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "BFloat16Storage": "<u2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint's pickle refers to something other than tensors and plain containers."""


class _StorageType:
    """Stand-in for `torch.<X>Storage` in the restricted unpickler: just a name and a dtype."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name])


def _widen(array: np.ndarray, storage_name: str) -> np.ndarray:
    """bfloat16 is the upper half of a float32: widen it so NumPy can hold it."""
    if storage_name == "BFloat16Storage":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array


class _Storage:
    """A storage read into memory: a flat array of elements plus its torch type name."""

    def __init__(self, flat: np.ndarray, storage_name: str) -> None:
        self.flat = flat
        self.storage_name = storage_name


class _TensorRef:
    """A tensor as the pickle describes it; materialised once its storage's bytes are read."""

    def __init__(
        self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]
    ) -> None:
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)

    def to_numpy(self) -> np.ndarray:
        """A strided view of the storage, bounds-checked, copied into a fresh array."""
        flat = self.storage.flat
        if any(s < 0 for s in self.size + self.stride) or self.offset < 0:
            raise pickle.UnpicklingError(f"negative size/stride/offset: {self.size}, {self.stride}")
        if 0 in self.size:
            return _widen(np.zeros(self.size, flat.dtype), self.storage.storage_name)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if last >= flat.size:
            raise pickle.UnpicklingError(
                f"tensor of size {self.size} with stride {self.stride} at offset {self.offset} "
                f"reads past the end of its storage of {flat.size} elements"
            )
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=self.size,
            strides=tuple(s * flat.itemsize for s in self.stride),
            writeable=False,
        )
        return _widen(np.array(view), self.storage.storage_name)


def _rebuild_tensor_v2(
    storage: _Storage,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _TensorRef:
    """Stand-in for `torch._utils._rebuild_tensor_v2`; gradient flags and hooks are dropped."""
    del requires_grad, backward_hooks, metadata
    shape_ok = all(isinstance(v, tuple) and all(type(n) is int for n in v) for v in (size, stride))
    if not isinstance(storage, _Storage) or type(storage_offset) is not int or not shape_ok:
        raise pickle.UnpicklingError("malformed tensor record in the checkpoint")
    return _TensorRef(storage, storage_offset, size, stride)


def _materialize(obj: Any) -> Any:
    """Replaces every `_TensorRef` in nested dicts/lists/tuples by its NumPy array."""
    if isinstance(obj, _TensorRef):
        return obj.to_numpy()
    if isinstance(obj, dict):
        return type(obj)((key, _materialize(value)) for key, value in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(value) for value in obj)
    return obj


# (module, name) -> factory of the object a pickle may use; nothing else resolves. Each lookup
# gets a fresh object so that a pickle's BUILD opcode cannot alter shared state for later loads.
_ALLOWED_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    ("collections", "OrderedDict"): lambda: collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): lambda: lambda *args: _rebuild_tensor_v2(*args),
    **{("torch", name): (lambda name=name: _StorageType(name)) for name in STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only `_ALLOWED_GLOBALS` and reads storages through a callback.

    Args:
        file: the pickle stream.
        read_storage: `(storage_type, key, numel) -> flat array` for each persistent storage id.
        source: the file name, for error messages.
    """

    def __init__(
        self,
        file: io.BufferedIOBase,
        read_storage: Callable[[_StorageType, str, int], np.ndarray],
        source: str,
    ) -> None:
        super().__init__(file)
        self._read_storage = read_storage
        self._source = source
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            factory = _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"refusing to load {self._source}: its pickle uses the global {module}.{name}, "
                "which is not a tensor or a plain container; only state dicts of tensors can be "
                "read without torch (allowed: collections.OrderedDict, "
                "torch._utils._rebuild_tensor_v2 and torch.*Storage)"
            ) from None
        return factory()

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"unsupported persistent id in {self._source}: {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"storage of unknown type in {self._source}: {pid!r}")
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError(
                f"{self._source} stores storage views (legacy format), which are not supported"
            )
        key = str(key)
        if key not in self._storages:
            flat = self._read_storage(storage_type, key, int(numel))
            self._storages[key] = _Storage(flat, storage_type.name)
        return self._storages[key]


def _restricted_load(stream: io.BufferedIOBase, source: str) -> Any:
    """Loads one header pickle of a legacy file; it may not refer to storages."""

    def no_storage(*_: Any) -> np.ndarray:
        raise UnsafeCheckpointError(f"unexpected storage in a header pickle of {source}")

    return RestrictedUnpickler(stream, no_storage, source).load()


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise pickle.UnpicklingError(
                f"{path} is a zip file but not a torch checkpoint (no single data.pkl member)"
            )
        root = pickles[0][: -len("data.pkl")]
        names = set(archive.namelist())
        byteorder = "little"
        if f"{root}byteorder" in names:
            byteorder = archive.read(f"{root}byteorder").decode("ascii").strip()
        if byteorder not in ("little", "big"):
            raise pickle.UnpicklingError(f"unknown byte order {byteorder!r} in {path}")

        def read_storage(storage_type: _StorageType, key: str, numel: int) -> np.ndarray:
            data = archive.read(f"{root}data/{key}")
            dtype = storage_type.dtype.newbyteorder("<" if byteorder == "little" else ">")
            if len(data) != numel * dtype.itemsize:
                raise pickle.UnpicklingError(
                    f"storage {key} in {path} has {len(data)} bytes, expected {numel} elements "
                    f"of {dtype.itemsize} bytes"
                )
            return np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="))

        with archive.open(pickles[0]) as stream:
            return RestrictedUnpickler(stream, read_storage, str(path)).load()


def _read_legacy(path: Path) -> Any:
    with open(path, "rb") as stream:
        if _restricted_load(stream, str(path)) != LEGACY_MAGIC_NUMBER:
            raise pickle.UnpicklingError(f"{path} is not a torch checkpoint (bad magic number)")
        version = _restricted_load(stream, str(path))
        if version != LEGACY_PROTOCOL_VERSION:
            raise pickle.UnpicklingError(f"unsupported legacy torch protocol {version} in {path}")
        sys_info = _restricted_load(stream, str(path))
        if not sys_info.get("little_endian", True):
            raise pickle.UnpicklingError(f"{path} was saved on a big-endian machine; unsupported")

        pending: dict[str, tuple[_StorageType, np.ndarray]] = {}

        file_size = path.stat().st_size

        def defer_storage(storage_type: _StorageType, key: str, numel: int) -> np.ndarray:
            # Storage bytes follow the object pickle; fill the array in once they are read.
            if not 0 <= numel * storage_type.dtype.itemsize <= file_size:
                raise pickle.UnpicklingError(f"storage {key} in {path} is larger than the file")
            flat = np.empty(numel, dtype=storage_type.dtype)
            pending[key] = (storage_type, flat)
            return flat

        result = RestrictedUnpickler(stream, defer_storage, str(path)).load()
        for key in _restricted_load(stream, str(path)):
            if str(key) not in pending:
                raise pickle.UnpicklingError(f"storage {key} in {path} is not used by any tensor")
            storage_type, flat = pending[str(key)]
            header = stream.read(8)
            numel = int(np.frombuffer(header, dtype="<i8")[0]) if len(header) == 8 else -1
            data = stream.read(flat.nbytes)
            if numel != flat.size or len(data) != flat.nbytes:
                raise pickle.UnpicklingError(f"storage {key} in {path} is truncated or mis-sized")
            flat[:] = np.frombuffer(data, dtype=storage_type.dtype)
    return result


def read_pth_restricted(path: str | Path) -> Any:
    """Reads a torch checkpoint (zip or legacy format) with NumPy only, executing nothing from it.

    Args:
        path: a `.pth` file written by `torch.save` of a state dict (possibly in plain dicts).

    Returns:
        The saved object with every tensor replaced by a NumPy array (bfloat16 widened to float32).

    Raises:
        UnsafeCheckpointError: the pickle refers to anything but tensors and plain containers.
        pickle.UnpicklingError: the file is not a readable torch checkpoint.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        return _materialize(_read_zip(path))
    with open(path, "rb") as stream:
        head = stream.read(262)
    if len(head) >= 262 and head[257:262] == b"ustar":
        raise pickle.UnpicklingError(
            f"{path} uses torch's pre-0.4 tar format, which is not supported; re-save it with a "
            "recent torch (torch.save(torch.load(path, weights_only=True), new_path))"
        )
    return _materialize(_read_legacy(path))


def read_pth(path: str | Path) -> Any:
    """Reads a `.pth` checkpoint without executing pickled code.

    Uses `torch.load(weights_only=True)` when torch is installed, `read_pth_restricted` otherwise.

    Args:
        path: the checkpoint file.

    Returns:
        The saved object with tensors as NumPy arrays (bfloat16 widened to float32).

    Raises:
        UnsafeCheckpointError: the checkpoint holds anything but tensors and plain containers.
    """
    if importlib.util.find_spec("torch") is None:
        return read_pth_restricted(path)
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(f"refusing to load {path}: {error}") from error
    return _tensors_to_numpy(obj, torch)


def _tensors_to_numpy(obj: Any, torch: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return tensor.numpy().copy()
    if isinstance(obj, dict):
        return type(obj)((key, _tensors_to_numpy(value, torch)) for key, value in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_tensors_to_numpy(value, torch) for value in obj)
    return obj
