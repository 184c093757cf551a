"""Hara et al.'s Kinetics checkpoints (3D-ResNets-PyTorch) as weights of our backbones.

The public checkpoints of kenshohara/3D-ResNets-PyTorch, both the CVPR 2018 release
(``resnet-18-kinetics.pth``, ``resnext-101-kinetics.pth``, ...) and the 2020 one
(``r3d18_K_200ep.pth``, ``r3d50_KM_200ep.pth``, ...), are PyTorch files holding a dict with a
``state_dict`` (and ``arch``, ``epoch``, ``optimizer``, ``scheduler``, which are ignored) or a
bare state dict. Our backbones are those networks layer for layer (docs/DESIGN.md §3.2), so
the tensors map one to one:

==============================================  =============================================
Hara's tensor                                   our variable (``backbone`` of a DynamoNet)
==============================================  =============================================
``conv1.weight``                                ``conv1/kernel``
``bn1.{weight,bias,running_mean,running_var}``  ``bn1/{gamma,beta,moving_mean,moving_variance}``
``layer{s}.{i}.conv{k}.weight``                 ``layer{s}_block{i}_conv{k}/kernel``
``layer{s}.{i}.bn{k}.*``                        ``layer{s}_block{i}_bn{k}/*``
``layer{s}.{i}.downsample.0.weight``            ``layer{s}_block{i}_downsample_conv/kernel``
``layer{s}.{i}.downsample.1.*``                 ``layer{s}_block{i}_downsample_bn/*``
``fc.{weight,bias}``                            ignored; or a Dense head on the pooled features
==============================================  =============================================

Convolution weights ``(out, in / groups, t, h, w)`` become Keras kernels
``(t, h, w, in / groups, out)``; grouped convolutions order their output channels group by
group in both frameworks, and :class:`~dynamonet_tf.layers.GroupedConv3D` keeps
``Conv3D``'s kernel, so the same transpose serves ResNeXt. Our BatchNorm has PyTorch's
epsilon (1e-5) and momentum (:mod:`dynamonet_tf.layers.normalization`).
``num_batches_tracked`` and DataParallel's ``module.`` prefix are dropped.

**No PyTorch needed, no code run.** Files are parsed here: the zip format of
``torch.save`` (torch >= 1.6: ``<name>/data.pkl`` and one ``<name>/data/<key>`` record per
storage) and the legacy format of earlier versions (five pickles: magic number, protocol
version, system info, the object, the storage keys; then, per storage, an 8-byte element
count and its raw data). The pickles are read by a restricted unpickler that knows only what a
state dict is made of (``collections.OrderedDict``, torch's tensor and parameter rebuild
functions, its storage types and dtypes, and the ``collections.Counter`` of a scheduler's
state): any other global (``os.system``, a class of some module) stops the read with a
:class:`HaraCheckpointError` naming it, before anything of it is called.

**The architecture is read from the tensors** (:func:`hara_architecture`): the blocks per
stage, basic or bottleneck blocks, grouped convolutions (ResNeXt and its cardinality),
shortcut A (no ``downsample`` tensors) or B, the width (the 2020 code's ``widen_factor`` is our
``width_multiplier``) and conv1's temporal size (``conv1_t_size``). ``conv1_t_stride`` and
``no_max_pool`` have no weights: they are the target backbone's. Loading into a backbone whose
tensors would differ is refused, naming the first tensor that disagrees. Networks we do not
build (ResNet-200, Wide ResNet, pre-activation ResNets, DenseNet, R(2+1)D, the 2020 code's
ResNeXt with its 128-filter conv1) are refused the same way.
"""

import collections
import dataclasses
import io
import os
import pickle
import re
import struct
import zipfile
from pathlib import Path
from typing import Optional

import keras
import numpy as np

from dynamonet_tf.models.dynamonet import WeightTransferReport, weighted_layers
from dynamonet_tf.models.resnet3d import (
    BLOCKS_PER_STAGE,
    RESNET_WIDTHS,
    RESNEXT_WIDTHS,
    STEM_WIDTH,
)

# The first pickle of a legacy (pre-1.6) torch.save file, and the protocol version after it.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
ZIP_MAGIC = b"PK\x03\x04"

# Options of a backbone that no tensor records: the target backbone's are used.
NOT_IN_FILE = ("conv1_t_stride", "no_max_pool")


class HaraCheckpointError(ValueError):
    """A file that cannot be read as, or does not fit as, a Hara et al. checkpoint (one line)."""


# --------------------------------------------------------------------------------------------
# Reading torch.save files without torch


@dataclasses.dataclass(frozen=True)
class _StorageType:
    """What ``torch.FloatStorage`` (etc.) unpickles to here: the element type's name."""

    name: str
    dtype: str  # a NumPy dtype name; "bfloat16" is read as uint16 and widened to float32


_STORAGE_DTYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "UntypedStorage": "uint8",  # bytes, viewed by _rebuild_tensor_v3's dtype
}
_TORCH_DTYPES = {
    "float64": "float64",
    "double": "float64",
    "float32": "float32",
    "float": "float32",
    "float16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "int64": "int64",
    "long": "int64",
    "int32": "int32",
    "int": "int32",
    "int16": "int16",
    "short": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
}


@dataclasses.dataclass(frozen=True)
class _TorchDtype:
    """What ``torch.float32`` (etc.) unpickles to here."""

    dtype: str


@dataclasses.dataclass(frozen=True)
class _Storage:
    """A storage named by a persistent id: its key, element type and size in elements, and
    for a legacy view of another storage, the root storage's key and the view's offset."""

    key: str
    storage_type: _StorageType
    numel: int
    root_key: str
    root_offset: int = 0


@dataclasses.dataclass(frozen=True)
class _LazyTensor:
    """A tensor whose storage may come later in the file (legacy format)."""

    storage: _Storage
    offset: int
    size: tuple
    stride: tuple
    dtype: Optional[str] = None  # _rebuild_tensor_v3's dtype; else the storage's


class _Damaged(Exception):
    """Raised inside the unpickler; reported as a damaged file."""


def _int_tuple(value, what):
    if not isinstance(value, (tuple, list)) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise _Damaged(f"a tensor's {what} is {value!r}, not a tuple of integers")
    return tuple(value)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    if not isinstance(storage, _Storage):
        raise _Damaged(f"a tensor's storage is {type(storage).__name__}, not a storage")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise _Damaged(f"a tensor's storage offset is {storage_offset!r}")
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise _Damaged(f"a tensor has size {size} but stride {stride}")
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, hooks, dtype, *_):
    tensor = _rebuild_tensor(storage, storage_offset, size, stride)
    if not isinstance(dtype, _TorchDtype):
        raise _Damaged(f"a tensor's dtype is {dtype!r}")
    return dataclasses.replace(tensor, dtype=dtype.dtype)


def _rebuild_parameter(data, *_ignored):
    return data


# (module, name) -> what the restricted unpickler returns for that global.
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    # A 2020 checkpoint's 'scheduler' (MultiStepLR) holds its milestones as a Counter.
    ("collections", "Counter"): collections.Counter,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,  # torch < 0.4
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}
for _name, _dtype in _STORAGE_DTYPES.items():
    # GPU-saved files (the CVPR 2018 release) name torch.cuda's storage types.
    for _module in ("torch", "torch.cuda"):
        _ALLOWED_GLOBALS[(_module, _name)] = _StorageType(_name, _dtype)
for _name, _dtype in _TORCH_DTYPES.items():
    _ALLOWED_GLOBALS[("torch", _name)] = _TorchDtype(_dtype)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only the globals of :data:`_ALLOWED_GLOBALS`; storages by persistent id."""

    def __init__(self, file, path, storages):
        super().__init__(file, encoding="utf-8")
        self._path = path
        self._storages = storages  # key -> _Storage, filled as persistent ids are met

    def find_class(self, module, name):
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise HaraCheckpointError(
                f"{self._path}: refused to unpickle the global {module}.{name}: a checkpoint "
                "of weights needs only tensors, storages and dicts, and objects of other kinds "
                "(which can run code) are never loaded from a file"
            )
        return found

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise _Damaged(f"an unknown persistent id {pid!r}")
        typename = pid[0].decode() if isinstance(pid[0], bytes) else pid[0]
        if typename == "module":
            raise HaraCheckpointError(
                f"{self._path}: holds a pickled module (torch.save(model)), not a state dict: "
                "save model.state_dict() instead"
            )
        if typename != "storage" or len(pid) not in (5, 6):
            raise _Damaged(f"an unknown persistent id {pid[:1]!r}")
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if not isinstance(storage_type, _StorageType):
            raise _Damaged(f"a storage of type {storage_type!r}")
        key = str(key)
        if not isinstance(numel, int) or numel < 0:
            raise _Damaged(f"storage {key} has {numel!r} elements")
        root = self._storages.get(key)
        if root is None:
            root = _Storage(key, storage_type, numel, key)
            self._storages[key] = root
        if view is None:
            return root
        # Old torch: a view (view_key, offset, size) into the root storage `key`.
        view_key, offset, view_size = view
        return _Storage(str(view_key), storage_type, view_size, key, offset)


def _fail(path, reason):
    return HaraCheckpointError(f"{path}: damaged PyTorch checkpoint: {reason}")


def _file_kind(path) -> Optional[str]:
    """``"zip"``, ``"legacy"`` or None, by the file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                if _data_pickle_name(archive.namelist()):
                    return "zip"
        except (zipfile.BadZipFile, OSError):
            return None
        return None
    try:
        magic = _RestrictedUnpickler(io.BytesIO(head), path, {}).load()
    except Exception:
        return None
    return "legacy" if magic == LEGACY_MAGIC_NUMBER else None


def _data_pickle_name(names):
    for name in names:
        if name.count("/") == 1 and name.endswith("/data.pkl"):
            return name
    return None


def is_torch_checkpoint(path) -> bool:
    """Whether ``path`` is a ``torch.save`` file, by its first bytes: a zip archive holding a
    ``<name>/data.pkl`` (torch >= 1.6) or a pickle of the legacy format's magic number."""
    try:
        return _file_kind(path) is not None
    except OSError:
        return False


def _storage_array(raw, storage_type, byteorder):
    """The elements of a storage from its raw bytes."""
    if storage_type.dtype == "bfloat16":
        bits = np.frombuffer(raw, dtype=np.dtype("uint16").newbyteorder(byteorder))
        return (bits.astype(np.uint32) << 16).view(np.float32)
    dtype = np.dtype(storage_type.dtype)
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(byteorder)
    return np.frombuffer(raw, dtype=dtype)


def _element_size(storage_type):
    return 2 if storage_type.dtype == "bfloat16" else np.dtype(storage_type.dtype).itemsize


def _materialize(tensor: _LazyTensor, roots: dict, path) -> np.ndarray:
    """A NumPy copy of ``tensor``, its offset and strides applied to its storage's elements."""
    storage = tensor.storage
    elements = roots[storage.root_key]
    if storage.root_offset:
        elements = elements[storage.root_offset : storage.root_offset + storage.numel]
    if tensor.dtype is not None and tensor.dtype != storage.storage_type.dtype:
        if storage.storage_type.dtype != "uint8":
            raise _fail(path, f"a {tensor.dtype} tensor on a {storage.storage_type.name}")
        elements = _storage_array(elements.tobytes(), _StorageType("", tensor.dtype), "<")
    size, stride = tensor.size, tensor.stride
    if any(s < 0 for s in stride):
        raise _fail(path, f"a tensor has negative strides {stride}")
    if 0 in size:
        return np.zeros(size, dtype=elements.dtype.newbyteorder("="))
    last = tensor.offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= elements.size:
        raise _fail(
            path,
            f"a tensor of size {size}, stride {stride} and offset {tensor.offset} reads past "
            f"its storage of {elements.size} elements",
        )
    item = elements.itemsize
    view = np.lib.stride_tricks.as_strided(
        elements[tensor.offset :], shape=size, strides=[s * item for s in stride], writeable=False
    )
    return np.array(view, dtype=view.dtype.newbyteorder("="), order="C")


def _resolve(value, roots, path):
    """``value`` with every lazy tensor replaced by its array."""
    if isinstance(value, _LazyTensor):
        return _materialize(value, roots, path)
    if isinstance(value, dict):
        return type(value)((k, _resolve(v, roots, path)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve(v, roots, path) for v in value)
    return value


def _lazy_tensors(value):
    if isinstance(value, _LazyTensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _lazy_tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _lazy_tensors(v)


def _load_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickle_name = _data_pickle_name(names)
        prefix = pickle_name[: -len("data.pkl")]
        byteorder = "<"
        if f"{prefix}byteorder" in names:
            order = archive.read(f"{prefix}byteorder").decode().strip()
            byteorder = {"little": "<", "big": ">"}.get(order)
            if byteorder is None:
                raise _fail(path, f"unknown byte order {order!r}")
        storages = {}
        obj = _RestrictedUnpickler(io.BytesIO(archive.read(pickle_name)), path, storages).load()

    def read_storages(keys):
        roots = {}
        with zipfile.ZipFile(path) as archive:
            for key in keys:
                storage = storages[key]
                record = f"{prefix}data/{key}"
                if record not in names:
                    raise _fail(path, f"no record {record} for storage {key}")
                raw = archive.read(record)
                size = storage.numel * _element_size(storage.storage_type)
                if len(raw) < size:
                    raise _fail(path, f"record {record} holds {len(raw)} bytes, not {size}")
                roots[key] = _storage_array(raw[:size], storage.storage_type, byteorder)
        return roots

    return obj, read_storages


def _load_legacy(path):
    with open(path, "rb") as f:
        header = []
        for _ in range(3):
            header.append(_RestrictedUnpickler(f, path, {}).load())
        magic, version, sys_info = header
        if magic != LEGACY_MAGIC_NUMBER:
            raise HaraCheckpointError(f"{path} is not a PyTorch checkpoint")
        if version != LEGACY_PROTOCOL_VERSION:
            raise _fail(path, f"legacy protocol version {version!r}, not {LEGACY_PROTOCOL_VERSION}")
        little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
        byteorder = "<" if little else ">"
        storages = {}
        obj = _RestrictedUnpickler(f, path, storages).load()
        keys = _RestrictedUnpickler(f, path, {}).load()
        if not isinstance(keys, list):
            raise _fail(path, "no list of storage keys after the object")
        keys = [str(key) for key in keys]
        # Where each storage's data lies: 8 bytes of element count, then the elements.
        positions = {}
        position = f.tell()
        file_size = os.fstat(f.fileno()).st_size
        for key in keys:
            if key not in storages:
                raise _fail(path, f"storage {key} is listed but no tensor uses it")
            f.seek(position)
            count_bytes = f.read(8)
            if len(count_bytes) != 8:
                raise _fail(path, f"the file ends before storage {key}")
            (count,) = struct.unpack(f"{byteorder}q", count_bytes)
            storage = storages[key]
            size = count * _element_size(storage.storage_type)
            if count < storage.numel or position + 8 + size > file_size:
                raise _fail(path, f"storage {key} is truncated")
            positions[key] = (position + 8, storage.numel * _element_size(storage.storage_type))
            position += 8 + size

    def read_storages(wanted):
        roots = {}
        with open(path, "rb") as f:
            for key in wanted:
                if key not in positions:
                    raise _fail(path, f"storage {key} has no data")
                start, size = positions[key]
                f.seek(start)
                roots[key] = _storage_array(f.read(size), storages[key].storage_type, byteorder)
        return roots

    return obj, read_storages


def _open_checkpoint(path):
    """The object of a ``torch.save`` file with tensors still lazy, and a function that
    replaces the lazy tensors of a part of it by NumPy arrays (reading only their data)."""
    path = Path(path)
    if not path.is_file():
        raise HaraCheckpointError(f"{path}: no such file")
    with _ReadErrors(path):
        kind = _file_kind(path)
        if kind is None:
            raise HaraCheckpointError(
                f"{path} is not a PyTorch checkpoint (neither torch.save's zip archive nor its "
                "legacy pickle format)"
            )
        obj, read_storages = _load_zip(path) if kind == "zip" else _load_legacy(path)

    def materialize(part):
        with _ReadErrors(path):
            keys = dict.fromkeys(t.storage.root_key for t in _lazy_tensors(part))
            return _resolve(part, read_storages(keys), path)

    return obj, materialize


class _ReadErrors:
    """Turns what a damaged file raises while it is parsed into a one-line
    :class:`HaraCheckpointError`."""

    CAUGHT = (
        pickle.UnpicklingError,
        EOFError,
        zipfile.BadZipFile,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        struct.error,
        OverflowError,
        MemoryError,
    )

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None or isinstance(error, HaraCheckpointError):
            return False
        if isinstance(error, _Damaged):
            raise _fail(self.path, error) from None
        if isinstance(error, self.CAUGHT):
            raise _fail(self.path, f"{type(error).__name__}: {error}") from None
        return False


def read_torch_file(path):
    """The object a ``torch.save`` file holds, every tensor a NumPy array, without torch.

    Raises:
        HaraCheckpointError: no such file, not a PyTorch file, a refused global, damage.
    """
    obj, materialize = _open_checkpoint(path)
    return materialize(obj)


def _state_dict_of(obj, path):
    """The state dict inside a checkpoint object: its ``state_dict`` or the object itself."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        return obj["state_dict"]
    if isinstance(obj, dict) and obj and all(isinstance(k, str) for k in obj):
        return obj
    raise HaraCheckpointError(
        f"{path}: holds a {type(obj).__name__}, neither a state dict nor a dict with one under "
        "'state_dict'"
    )


def read_hara_state_dict(path) -> dict:
    """``{tensor name: NumPy array}`` of a Hara-format checkpoint's state dict.

    The state dict is the file's ``state_dict`` entry, or the file's dict itself when it has
    none (a bare state dict); its other entries (``arch``, ``epoch``, ``optimizer``,
    ``scheduler``) are not read. DataParallel's ``module.`` prefix is removed and
    ``num_batches_tracked`` entries are dropped. Arrays keep the file's dtype and shape (a
    PyTorch layout: convolutions ``(out, in / groups, t, h, w)``).

    Raises:
        HaraCheckpointError: see :func:`read_torch_file`; or no state dict in the file.
    """
    path = Path(path)
    obj, materialize = _open_checkpoint(path)
    # Only the state dict's tensors are read (not an optimizer's momentum buffers).
    state = materialize(_state_dict_of(obj, path))
    result = {}
    for name, value in state.items():
        if not isinstance(name, str):
            raise HaraCheckpointError(f"{path}: a state dict key is {name!r}, not a name")
        if name.startswith("module."):
            name = name[len("module.") :]
        if name.endswith("num_batches_tracked"):
            continue
        if not isinstance(value, np.ndarray):
            raise HaraCheckpointError(
                f"{path}: state dict entry {name} is a {type(value).__name__}, not a tensor"
            )
        if name in result:
            raise HaraCheckpointError(f"{path}: state dict holds {name} twice")
        result[name] = value
    if not result:
        raise HaraCheckpointError(f"{path}: the state dict holds no tensors")
    return result


# --------------------------------------------------------------------------------------------
# Hara's layout: tensor names and shapes of a backbone


_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")
_BLOCK_MODULES = ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "downsample.0", "downsample.1")
_TENSOR_PATTERN = re.compile(
    r"^(?:(conv1|bn1|fc)|layer([1-4])\.(\d+)\.(conv[123]|bn[123]|downsample\.[01]))\."
    r"(weight|bias|running_mean|running_var)$"
)


def _order_key(name):
    """Hara's module order: conv1, bn1, layer1.0.conv1 ... layer4.*, fc; unknown names last."""
    match = _TENSOR_PATTERN.match(name)
    if match is None:
        return (3, 0, 0, 0, 0)
    stem, stage, block, module, tensor = match.groups()
    tensor_rank = ("weight", "bias", "running_mean", "running_var").index(tensor)
    if stem == "fc":
        return (2, 0, 0, 0, tensor_rank)
    if stem:
        return (0, 0, 0, ("conv1", "bn1").index(stem), tensor_rank)
    return (1, int(stage), int(block), _BLOCK_MODULES.index(module), tensor_rank)


def hara_layout(
    backbone: str,
    *,
    shortcut_type=None,
    width_multiplier=1.0,
    conv1_t_size=7,
    cardinality=32,
    input_channels=3,
) -> dict:
    """``{tensor name: shape}`` of Hara's state dict for one of our backbones (without fc and
    ``num_batches_tracked``), by the rules of :mod:`dynamonet_tf.models.resnet3d`."""
    family = backbone[4:] if backbone.startswith("stc_") else backbone
    resnext = family.startswith("resnext")
    depth = int(family[len("resnext") if resnext else len("resnet") :])
    bottleneck = resnext or depth >= 50
    if shortcut_type is None:
        shortcut_type = "B" if bottleneck else "A"
    base = RESNEXT_WIDTHS if resnext else RESNET_WIDTHS
    widths = [max(1, int(w * width_multiplier)) for w in base]
    stem = max(1, int(STEM_WIDTH * width_multiplier))
    layout = {"conv1.weight": (stem, input_channels, conv1_t_size, 7, 7)}
    layout.update({f"bn1.{t}": (stem,) for t in _BN_TENSORS})
    channels = stem

    def conv(prefix, out, inp, k):
        layout[f"{prefix}.weight"] = (out, inp, k, k, k)

    def bn(prefix, width):
        layout.update({f"{prefix}.{t}": (width,) for t in _BN_TENSORS})

    for stage, (width, blocks) in enumerate(zip(widths, BLOCKS_PER_STAGE[depth]), start=1):
        for index in range(blocks):
            prefix = f"layer{stage}.{index}"
            stride = 2 if stage > 1 and index == 0 else 1
            if bottleneck:
                expansion = 2 if resnext else 4
                groups = cardinality if resnext else 1
                inner = cardinality * (width // 32) if resnext else width
                out = width * expansion
                conv(f"{prefix}.conv1", inner, channels, 1)
                bn(f"{prefix}.bn1", inner)
                conv(f"{prefix}.conv2", inner, inner // groups, 3)
                bn(f"{prefix}.bn2", inner)
                conv(f"{prefix}.conv3", out, inner, 1)
                bn(f"{prefix}.bn3", out)
            else:
                out = width
                conv(f"{prefix}.conv1", out, channels, 3)
                bn(f"{prefix}.bn1", out)
                conv(f"{prefix}.conv2", out, out, 3)
                bn(f"{prefix}.bn2", out)
            if shortcut_type == "B" and (stride != 1 or channels != out):
                conv(f"{prefix}.downsample.0", out, channels, 1)
                bn(f"{prefix}.downsample.1", out)
            channels = out
    return layout


def _shape(value):
    return tuple(int(n) for n in (value.shape if hasattr(value, "shape") else value))


def _first_difference(file_shapes: dict, expected: dict):
    """The first tensor, in Hara's module order, whose presence or shape differs, as
    ``(name, shape in the file or None, expected shape or None)``; None when they agree."""
    for name in sorted(set(file_shapes) | set(expected), key=lambda n: (_order_key(n), n)):
        found, wanted = file_shapes.get(name), expected.get(name)
        if found != wanted:
            return name, found, wanted
    return None


def _describe_difference(difference):
    name, found, wanted = difference
    if found is None:
        return f"{name} is missing from the file (expected shape {wanted})"
    if wanted is None:
        return f"{name} {found} is in the file but not in that backbone"
    return f"{name} is {found} in the file, {wanted} expected"


def _without_fc(state):
    return {name: value for name, value in state.items() if not name.startswith("fc.")}


def hara_architecture(state: dict) -> dict:
    """The backbone a Hara state dict (names to arrays or shapes) was saved from.

    Returns:
        ``{"backbone": name, "options": {...}, "input_channels": n, "num_classes": k}``:
        ``options`` are :class:`~dynamonet_tf.config.ModelConfig` fields (``shortcut_type``,
        ``width_multiplier``, ``conv1_t_size``, and ``cardinality`` for ResNeXt), so
        ``build_backbone(arch["backbone"], **arch["options"])`` builds its counterpart;
        ``num_classes`` is the size of the classifier ``fc`` (None without one).
        ``conv1_t_stride`` and ``no_max_pool`` (:data:`NOT_IN_FILE`) have no weights and
        cannot be read from the file.

    Raises:
        HaraCheckpointError: the tensors are not those of a network we build (naming the
        first tensor that disagrees with the closest one we do).
    """
    shapes = {name: _shape(value) for name, value in state.items()}
    unknown = [name for name in shapes if not _TENSOR_PATTERN.match(name)]
    if unknown:
        raise HaraCheckpointError(
            f"tensor {unknown[0]} is not a tensor of Hara et al.'s 3D ResNet/ResNeXt "
            "(conv1, bn1, layer1-4, fc)"
        )
    if "conv1.weight" not in shapes or len(shapes["conv1.weight"]) != 5:
        raise HaraCheckpointError("no 3D conv1.weight: not a Hara et al. 3D ResNet/ResNeXt")
    stem, input_channels, conv1_t_size, _, _ = shapes["conv1.weight"]
    blocks = []
    for stage in (1, 2, 3, 4):
        indices = {int(name.split(".")[1]) for name in shapes if name.startswith(f"layer{stage}.")}
        if indices != set(range(len(indices))) or not indices:
            raise HaraCheckpointError(
                f"layer{stage} has blocks {sorted(indices)}: not numbered 0, 1, ... as "
                "nn.Sequential numbers them"
            )
        blocks.append(len(indices))
    blocks = tuple(blocks)
    bottleneck = "layer1.0.conv3.weight" in shapes
    depths = [d for d, b in BLOCKS_PER_STAGE.items() if b == blocks and (d >= 50) == bottleneck]
    if not depths:
        kind = "bottleneck" if bottleneck else "basic"
        raise HaraCheckpointError(
            f"{kind} blocks {blocks} per stage are no depth we build "
            f"(ResNet/ResNeXt {', '.join(map(str, BLOCKS_PER_STAGE))})"
        )
    depth = depths[0]
    options = {}
    first = shapes.get("layer1.0.conv1.weight", (0,))
    if bottleneck:
        inner = first[0]
        out = shapes.get("layer1.0.conv3.weight", (0,))[0]
        groups = inner // max(1, shapes.get("layer1.0.conv2.weight", (0, inner))[1])
        resnext = groups > 1
        if resnext:
            backbone = f"resnext{depth}"
            width = out // 2
            options["cardinality"] = groups
        else:
            backbone = f"resnet{depth}"
            width = inner
    else:
        resnext = False
        backbone, width = f"resnet{depth}", first[0]
    base = RESNEXT_WIDTHS[0] if resnext else RESNET_WIDTHS[0]
    shortcut = "B" if any(".downsample." in name for name in shapes) else "A"
    options = dict(
        shortcut_type=shortcut,
        width_multiplier=width / base,
        conv1_t_size=conv1_t_size,
        **options,
    )
    expected = hara_layout(backbone, input_channels=input_channels, **options)
    difference = _first_difference(_without_fc(shapes), expected)
    if difference is not None:
        raise HaraCheckpointError(
            f"the tensors are closest to {backbone} ({_options_text(options)}) but "
            f"{_describe_difference(difference)}: a network this package does not build"
        )
    fc = shapes.get("fc.weight")
    return {
        "backbone": backbone,
        "options": options,
        "input_channels": input_channels,
        "num_classes": fc[0] if fc else None,
    }


def _options_text(options):
    return ", ".join(f"{key}={value!r}" for key, value in options.items())


# --------------------------------------------------------------------------------------------
# Loading into a Keras backbone or DynamoNet


_KERAS_BLOCK_LAYER = re.compile(
    r"^layer([1-4])_block(\d+)_(conv[123]|bn[123]|downsample_conv|downsample_bn)$"
)
_KERAS_TO_TORCH_BN = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def _torch_module(layer_name) -> Optional[str]:
    """Hara's module name of one of our backbone layers, or None (STC blocks, ...)."""
    if layer_name in ("conv1", "bn1"):
        return layer_name
    match = _KERAS_BLOCK_LAYER.match(layer_name)
    if match is None:
        return None
    stage, block, module = match.groups()
    module = {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}.get(
        module, module
    )
    return f"layer{stage}.{block}.{module}"


def _variable_role(variable):
    return variable.path.rsplit("/", 1)[-1]


def _backbone_targets(backbone):
    """``{tensor name: (variable, Hara shape)}`` for our backbone, and its other layers."""
    targets, others = {}, []
    for layer in backbone.layers:
        if not layer.weights:
            continue
        module = _torch_module(layer.name)
        if module is None:
            others.append(layer.name)
            continue
        for variable in layer.weights:
            role = _variable_role(variable)
            shape = tuple(variable.shape)
            if role == "kernel":
                targets[f"{module}.weight"] = (variable, shape[-1:] + shape[-2:-1] + shape[:3])
            elif role in _KERAS_TO_TORCH_BN:
                targets[f"{module}.{_KERAS_TO_TORCH_BN[role]}"] = (variable, shape)
            else:
                raise HaraCheckpointError(
                    f"backbone layer {layer.name} has a variable {variable.path} with no "
                    "counterpart in Hara's network"
                )
    return targets, others


def _is_backbone(model):
    names = {layer.name for layer in model.layers}
    return "conv1" in names and "layer1_block0_conv1" in names


def find_backbone(model: keras.Model):
    """The backbone inside ``model`` (itself, a nested model called ``backbone``, or the one
    nested model with our backbone's layers) and the prefix of its layer names in reports."""
    if _is_backbone(model):
        return model, ""
    found = []

    def search(parent, prefix):
        for layer in parent.layers:
            if isinstance(layer, keras.Model):
                if _is_backbone(layer):
                    found.append((layer, f"{prefix}{layer.name}/"))
                else:
                    search(layer, f"{prefix}{layer.name}/")

    search(model, "")
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise HaraCheckpointError(
            f"model {model.name} holds {what} 3D ResNet/ResNeXt backbones (a model with layers "
            "conv1, layer1_block0_conv1, ...); pass the backbone or a model with exactly one"
        )
    return found[0]


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else history.operation


def _classifier_head(model, backbone):
    """The Dense layer of ``model`` reading the global average pool of ``backbone``'s output
    (Hara's avgpool + fc), through Dropout or Flatten; or a one-line reason there is none."""
    candidates = [
        layer
        for layer in weighted_layers(model).values()
        if isinstance(layer, keras.layers.Dense) and layer is not backbone
    ]
    if not candidates:
        return None, f"model {model.name} has no Dense layer"
    reasons = []
    for dense in candidates:
        operation = _producer(dense.input)
        while isinstance(operation, (keras.layers.Dropout, keras.layers.Flatten)):
            operation = _producer(operation.input)
        pooled_backbone = (
            isinstance(operation, keras.layers.GlobalAveragePooling3D)
            and _producer(operation.input) is backbone
        )
        if pooled_backbone:
            return dense, None
        source = getattr(operation, "name", operation)
        reasons.append(f"{dense.name} reads {source}")
    return None, (
        "no Dense layer reads the global average pool of the backbone features, as Hara's fc "
        f"does ({'; '.join(reasons)})"
    )


def load_hara_checkpoint(
    model_or_backbone: keras.Model, path, *, load_classifier: bool = False
) -> WeightTransferReport:
    """Loads a Hara et al. checkpoint into a backbone, or into the backbone of a model.

    Args:
        model_or_backbone: a backbone of :func:`~dynamonet_tf.models.build_backbone`, or a
            model holding one as a nested model (a DynamoNet: its ``backbone`` layer). Its
            architecture must be the file's: same depth, block kind, shortcut type, width,
            cardinality and conv1 size (:func:`hara_architecture`); an ``stc_`` backbone
            takes the weights of its plain counterpart, its STC blocks reported as new.
            ``conv1_t_stride`` and ``no_max_pool`` are not in the file: the model's are used.
        path: the checkpoint (``.pth``, either PyTorch format).
        load_classifier: also load ``fc`` into the model's Dense layer on the global average
            pool of the backbone features (a model built as backbone, pooling, Dense, as
            Hara's network ends), which must have fc's size. A DynamoNet's classifier reads
            its AR/DMR heads, not pooled backbone features, so it cannot take fc.

    Returns:
        A :class:`~dynamonet_tf.models.WeightTransferReport`: ``loaded``, the layers that took
        weights (``backbone/conv1``, ...; a bare backbone's without prefix); ``new``, every
        other layer with weights (a DynamoNet's heads, STC blocks); ``mismatched``, empty (a
        mismatch is an error); ``unused``, the file's tensors not loaded (``fc.weight``,
        ``fc.bias``). Nothing is loaded unless everything fits.

    Raises:
        HaraCheckpointError: one line; the file is missing, not a PyTorch checkpoint, holds a
            refused global, or does not fit the backbone (naming the first tensor that
            disagrees, its shape in the file and the shape expected).
    """
    path = Path(path)
    state = read_hara_state_dict(path)
    backbone, prefix = find_backbone(model_or_backbone)
    targets, others = _backbone_targets(backbone)
    file_shapes = {name: _shape(value) for name, value in _without_fc(state).items()}
    expected = {name: shape for name, (_, shape) in targets.items()}
    difference = _first_difference(file_shapes, expected)
    if difference is not None:
        try:
            architecture = hara_architecture(state)
            holds = (
                f"the file holds {architecture['backbone']} "
                f"({_options_text(architecture['options'])})"
            )
        except HaraCheckpointError as error:
            holds = f"the file holds no backbone this package builds ({error})"
        raise HaraCheckpointError(
            f"{path} does not fit backbone {backbone.name}: {_describe_difference(difference)}; "
            f"{holds}"
        )

    assignments = []
    for name, (variable, _) in targets.items():
        value = state[name]
        if _variable_role(variable) == "kernel":
            value = np.transpose(value, (2, 3, 4, 1, 0))
        assignments.append((variable, value))
    unused = [name for name in state if name.startswith("fc.")]
    classifier = None
    if load_classifier:
        if "fc.weight" not in state or "fc.bias" not in state:
            raise HaraCheckpointError(f"{path}: load_classifier: the file has no fc")
        classifier, reason = _classifier_head(model_or_backbone, backbone)
        if classifier is None:
            raise HaraCheckpointError(f"{path}: load_classifier: {reason}")
        weight, bias = state["fc.weight"], state["fc.bias"]
        kernel_shape = tuple(classifier.kernel.shape)
        if kernel_shape != weight.shape[::-1] or classifier.bias is None:
            raise HaraCheckpointError(
                f"{path}: load_classifier: fc.weight {weight.shape} (classes, features) does not "
                f"fit {classifier.name}, whose kernel is {kernel_shape} (features, classes)"
            )
        assignments += [(classifier.kernel, weight.T), (classifier.bias, bias)]
        unused = [name for name in unused if name not in ("fc.weight", "fc.bias")]

    for variable, value in assignments:
        variable.assign(np.asarray(value, dtype=variable.dtype))

    report = WeightTransferReport(loaded=[], new=[], mismatched=[], unused=unused)
    backbone_layers = {f"{prefix}{layer.name}": layer for layer in backbone.layers}
    for qualified, layer in weighted_layers(model_or_backbone).items():
        inside = qualified in backbone_layers and backbone_layers[qualified] is layer
        if (inside and layer.name not in others) or layer is classifier:
            report.loaded.append(qualified)
        else:
            report.new.append(qualified)
    return report
