"""Typed experiment configs, loaded from YAML presets with ``SECTION.KEY=VALUE`` overrides.

The dataclasses below are the schema and hold every default; a YAML file only overrides some
keys of some sections. A config is assembled in layers, each replacing keys of the one before:

1. the dataclass defaults;
2. the file named by ``base:`` at the top of a YAML file (relative to that file; bases chain);
3. the YAML file itself;
4. ``overrides`` such as ``"train.batch_size=8"`` or ``"model.shortcut_type=null"``, whose
   values are parsed as YAML.

Configs are frozen and check themselves on construction (``dataclasses.replace`` included),
so every ``ExperimentConfig`` that exists is valid. Every problem raises :class:`ConfigError`
naming the key. Checks that need more than the config live in :func:`check_against_runtime`
(replica count) and :func:`check_against_data` (a prepared dataset's manifest).

Numbers such as ``1e-4`` load as floats: PyYAML follows YAML 1.1, which would read them as
strings.
"""

import dataclasses
import difflib
import math
import re
import types
import typing
from pathlib import Path
from typing import Literal, Optional

import yaml

from dynamonet_tf.atomic_files import atomic_write
from dynamonet_tf.layout import SPLIT_PLACEHOLDER
from dynamonet_tf.names import BACKBONES, DATASET_SPLITS, FP_REDUCTIONS, STAGES


class ConfigError(ValueError):
    """An invalid config; the message names the offending key and what it accepts."""


class _Section:
    """A config section: checks field types against the annotations, then the values."""

    @classmethod
    def section_name(cls):
        return cls.__name__.removesuffix("Config").lower()

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            key = self._key(field.name)
            value = _coerce(key, getattr(self, field.name), hints[field.name])
            object.__setattr__(self, field.name, value)  # frozen: int -> float
        self._check_values()

    def _check_values(self):
        """Range and cross-field checks of one section (types are already right)."""

    def _key(self, name):
        return f"{self.section_name()}.{name}"

    def _require(self, name, condition, requirement):
        if not condition:
            value = getattr(self, name)
            raise ConfigError(f"{self._key(name)} must be {requirement}; got {value!r}.")


def _coerce(key, value, annotation):
    """Returns ``value`` as ``annotation`` wants it, or raises ConfigError naming ``key``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):  # Optional[X], the only union used
        if value is None:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _coerce(key, value, inner)
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        raise ConfigError(f"{key} must be one of {', '.join(map(repr, args))}; got {value!r}.")
    # bool is a subclass of int, but `batch_size: true` is a mistake, not 1.
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, annotation) and (annotation is bool or not isinstance(value, bool)):
        if annotation is float and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number; got {value!r}.")
        return value
    raise ConfigError(
        f"{key} must be of type {annotation.__name__}; got {value!r} ({type(value).__name__})."
    )


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Section):
    """The network: :func:`dynamonet_tf.models.build_dynamonet` and its backbone options."""

    backbone: str = "resnet18"  # a name in dynamonet_tf.names.BACKBONES
    width_multiplier: float = 1.0  # below 1: narrow backbones for CPU demos
    shortcut_type: Optional[Literal["A", "B"]] = None  # None: A for ResNet-10/18/34, else B
    conv1_t_size: int = 7
    conv1_t_stride: int = 1
    no_max_pool: bool = False
    cardinality: int = 32  # groups of ResNeXt's 3x3x3 convolutions
    stc_reduction: int = 16
    kernel_size: int = 5  # side of the dynamic motion filters; the paper found 5 best
    # Beyond the paper (one filter per frame): a filter per pixel, interpolated bilinearly
    # from a filter_grid x filter_grid grid of filters per frame (unused when false).
    per_pixel_filters: bool = False
    filter_grid: int = 8
    head_filters: int = 64
    ar_units: int = 512
    dmr_units: int = 512
    dropout_rate: float = 0.0
    initial_centre_weight: Optional[float] = 0.5  # None: filters start uniform
    # BatchNorm statistics over the global batch of all replicas. Off by default: each
    # replica normalises its own share, as the paper's PyTorch DataParallel training did.
    sync_batch_norm: bool = False

    def _check_values(self):
        if self.backbone not in BACKBONES:
            raise ConfigError(
                f"Unknown backbone {self.backbone!r}; valid backbones: {', '.join(BACKBONES)}"
                f" (model.backbone).{_did_you_mean(self.backbone, BACKBONES)}"
            )
        self._require("width_multiplier", self.width_multiplier > 0, "positive")
        for name in (
            "conv1_t_size",
            "conv1_t_stride",
            "cardinality",
            "stc_reduction",
            "head_filters",
            "ar_units",
            "dmr_units",
            "filter_grid",
        ):
            self._require(name, getattr(self, name) >= 1, ">= 1")
        self._require(
            "kernel_size", self.kernel_size >= 1 and self.kernel_size % 2, "odd and positive"
        )
        self._require("dropout_rate", 0.0 <= self.dropout_rate < 1.0, "in [0, 1)")
        self._require(
            "initial_centre_weight",
            self.initial_centre_weight is None or 0.0 < self.initial_centre_weight < 1.0,
            "in (0, 1) or null",
        )


@dataclasses.dataclass(frozen=True)
class DataConfig(_Section):
    """Prepared TFRecords and clip sampling: :mod:`dynamonet_tf.data.pipelines`."""

    train_files: Optional[str] = None  # glob of TFRecords (the train subset)
    # Validation (the plateau schedule, best/): a seeded holdout of the training videos
    # (holdout-*.tfrecord), never the test split.
    val_files: Optional[str] = None
    # The end-of-run report (accuracy, frame prediction) and evaluate.py: the test split
    # (val for Kinetics-400). Never used to choose a checkpoint or a learning rate.
    eval_files: Optional[str] = None
    num_classes: Optional[int] = None  # required by the labeled stages, unused by pretrain
    # The prepared dataset trained on, as its manifest.json names it (ucf101, hmdb51,
    # kinetics400, folder, demo) and its official split; null: read from that manifest.
    # Checked against the manifests of train, val and eval files before training, and named
    # in the default run folder (dynamonet_tf.layout.default_run_dir). `{split}` in the file
    # patterns is replaced by data.split, so one preset serves the three splits.
    dataset: Optional[str] = None
    split: Optional[int] = None
    num_frames: int = 16  # T: the model sees T frames, training clips hold T + 1
    crop_size: int = 112
    short_side: int = 128  # frames are resized to this short side before cropping
    frame_stride: int = 1
    shuffle_buffer: int = 256  # videos; each holds a whole encoded video in memory

    @property
    def clip_shape(self):
        """The model input of one clip, ``(num_frames, crop_size, crop_size, 3)``."""
        return (self.num_frames, self.crop_size, self.crop_size, 3)

    def _check_values(self):
        self._require(
            "num_classes", self.num_classes is None or self.num_classes >= 2, ">= 2 or null"
        )
        for name in ("num_frames", "crop_size", "frame_stride", "shuffle_buffer"):
            self._require(name, getattr(self, name) >= 1, ">= 1")
        self._require("split", self.split is None or self.split >= 1, ">= 1 or null")
        for name in DATA_FILE_FIELDS:
            pattern = getattr(self, name)
            if pattern and SPLIT_PLACEHOLDER in pattern and self.split is None:
                raise ConfigError(
                    f"{self._key(name)} {pattern!r} holds {SPLIT_PLACEHOLDER} but data.split "
                    "is null; set data.split to 1, 2 or 3 (e.g. --set data.split=2)."
                )
        self._require(
            "short_side",
            self.short_side >= self.crop_size,
            f">= data.crop_size ({self.crop_size})",
        )


@dataclasses.dataclass(frozen=True)
class OptimizerConfig(_Section):
    """SGD with Nesterov momentum and a learning-rate schedule (paper §4.3)."""

    # sgd: the paper's (Nesterov momentum). adam: for short CPU demos, where SGD at the
    # paper's rate barely moves in a few hundred steps.
    name: Literal["sgd", "adam"] = "sgd"
    base_learning_rate: float = 0.1  # at base_batch_size; scaled linearly with the global batch
    base_batch_size: int = 64
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    # all: every trainable weight (BatchNorm gamma/beta and biases too), as PyTorch's SGD
    # decays every parameter in the paper's framework; kernels: convolution and dense
    # kernels only.
    weight_decay_scope: Literal["all", "kernels"] = "all"
    # plateau: the paper's schedule, x plateau_factor when the validation loss has not
    # improved for plateau_patience epochs.
    schedule: Literal["plateau", "cosine", "constant"] = "plateau"
    warmup_epochs: float = 0.0
    plateau_factor: float = 0.1
    plateau_patience: int = 5  # epochs without improvement before a reduction
    min_learning_rate: float = 1e-6

    def _check_values(self):
        self._require("base_learning_rate", self.base_learning_rate > 0, "positive")
        self._require("base_batch_size", self.base_batch_size >= 1, ">= 1")
        self._require("momentum", 0.0 <= self.momentum < 1.0, "in [0, 1)")
        for name in ("weight_decay", "warmup_epochs", "min_learning_rate"):
            self._require(name, getattr(self, name) >= 0, ">= 0")
        self._require("plateau_factor", 0.0 < self.plateau_factor < 1.0, "in (0, 1)")
        self._require("plateau_patience", self.plateau_patience >= 0, ">= 0")


@dataclasses.dataclass(frozen=True)
class LossConfig(_Section):
    """L_total = alpha * L_FP + beta * L_CE, L_FP a Huber loss (paper eq. 2, 3)."""

    alpha: float = 0.1
    beta: float = 1.0
    huber_delta: float = 0.01
    # frame_sum: the Huber summed over each predicted frame (the frame norms of eq. 2),
    # averaged over frames; pixel_mean: averaged over pixels too, which leaves alpha * L_FP
    # ~1e-5 of the objective (README, decisions).
    fp_reduction: Literal[FP_REDUCTIONS] = "frame_sum"

    def _check_values(self):
        for name in ("alpha", "beta"):
            self._require(name, getattr(self, name) >= 0, ">= 0")
        self._require("huber_delta", self.huber_delta > 0, "positive")


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Section):
    """The training run: stage, length, batch, precision, checkpoints."""

    # pretrain: frame prediction only; joint: both heads; finetune: joint with a new
    # classifier on weights from an earlier stage, at a lower learning rate.
    stage: Literal[STAGES] = "pretrain"
    classifier_only: bool = False  # the plain backbone + action head ablation (labeled stages)
    epochs: int = 10
    steps_per_epoch: int = 100
    eval_steps: Optional[int] = None  # None: the whole eval set
    # Batches of whole eval clips that report.json's next-frame scores cover; None: every
    # whole clip of data.eval_files (the first batches may all be of a few classes).
    frame_prediction_batches: Optional[int] = 8
    batch_size: int = 64  # GLOBAL, over all replicas
    seed: int = 0
    deterministic: bool = False
    mixed_precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    jit_compile: bool = False  # XLA; 3-5x slower on the development CPUs (docs/DESIGN.md §6)
    checkpoint_every_steps: int = 100
    finetune_learning_rate_scale: float = 0.1
    # Every this many steps of a joint run, the share of alpha * L_FP and beta * L_CE in the
    # gradient norm on the backbone and the filter layer is measured (log.csv, TensorBoard).
    balance_every_steps: int = 50
    # --init-from: a layer present in both models with other shapes (e.g. the filter layer
    # when num_frames changes) stops the run unless this says re-initialising it is intended.
    reinitialize_mismatched: bool = False

    @property
    def labeled(self):
        """Whether the stage trains a classifier, so needs labels and ``data.num_classes``."""
        return self.stage != "pretrain"

    def _check_values(self):
        for name in (
            "epochs",
            "steps_per_epoch",
            "batch_size",
            "checkpoint_every_steps",
            "balance_every_steps",
        ):
            self._require(name, getattr(self, name) >= 1, ">= 1")
        for name in ("eval_steps", "frame_prediction_batches"):
            value = getattr(self, name)
            self._require(name, value is None or value >= 1, ">= 1 or null")
        self._require("seed", self.seed >= 0, ">= 0")
        self._require(
            "finetune_learning_rate_scale", self.finetune_learning_rate_scale > 0, "positive"
        )
        self._require(
            "classifier_only",
            self.labeled or not self.classifier_only,
            "false when train.stage is 'pretrain' (it has no classifier)",
        )


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment; ``ExperimentConfig()`` is the defaults."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def __post_init__(self):
        for name, section in _SECTIONS.items():
            value = getattr(self, name)
            if not isinstance(value, section):
                raise ConfigError(f"{name} must be a {section.__name__}; got {value!r}.")
        if self.train.labeled and self.data.num_classes is None:
            raise ConfigError(
                f"data.num_classes is required when train.stage is {self.train.stage!r}; got None."
            )
        if self.optimizer.warmup_epochs > self.train.epochs:
            raise ConfigError(
                f"optimizer.warmup_epochs must be <= train.epochs ({self.train.epochs}); "
                f"got {self.optimizer.warmup_epochs!r}."
            )


_SECTIONS = {field.name: field.default_factory for field in dataclasses.fields(ExperimentConfig)}
_BASE_KEY = "base"


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` (no dot) as a float, as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _did_you_mean(name, valid):
    close = difflib.get_close_matches(str(name), valid, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _check_keys(layer, source):
    """Checks that ``layer`` is ``{section: {key: value}}`` with known names only."""
    for section, values in layer.items():
        if section not in _SECTIONS:
            raise ConfigError(
                f"Unknown section {section!r} in {source}.{_did_you_mean(section, _SECTIONS)} "
                f"Valid sections: {', '.join(_SECTIONS)}."
            )
        if not isinstance(values, dict):
            raise ConfigError(f"Section {section!r} in {source} must be a mapping; got {values!r}.")
        valid = [field.name for field in dataclasses.fields(_SECTIONS[section])]
        for key in values:
            if key not in valid:
                raise ConfigError(
                    f"Unknown key {section}.{key} in {source}.{_did_you_mean(key, valid)} "
                    f"Valid keys of {section}: {', '.join(valid)}."
                )


def _merge(into, layer):
    for section, values in layer.items():
        into.setdefault(section, {}).update(values)
    return into


def _read_yaml(path, chain=()):
    """The merged layers of ``path`` and its ``base:`` chain, ``{section: {key: value}}``."""
    path = Path(path)
    if path.resolve() in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path.resolve()))
        raise ConfigError(f"The base: chain of {path} is a cycle: {cycle}.")
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"Cannot read config file {path}: {error}.") from error
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"Config file {path} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at "
            f"offset {error.start}); save it as UTF-8."
        ) from None
    try:
        layer = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        raise ConfigError(f"Config file {path} is not valid YAML: {error}") from error
    if layer is None:  # an empty file or one of comments only
        layer = {}
    if not isinstance(layer, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of sections; got {layer!r}.")
    base = layer.pop(_BASE_KEY, None)
    # `model:` with nothing under it is an empty section.
    layer = {section: {} if values is None else values for section, values in layer.items()}
    _check_keys(layer, path)
    if base is None:
        return layer
    if not isinstance(base, str):
        raise ConfigError(f"base in {path} must be a path relative to that file; got {base!r}.")
    return _merge(_read_yaml(path.parent / base, (*chain, path.resolve())), layer)


def _parse_override(override):
    """``"section.key=value"`` -> ``{section: {key: value}}``, the value parsed as YAML."""
    source = f"override {override!r}"
    name, equals, text = str(override).partition("=")
    section, dot, key = name.strip().partition(".")
    if not equals or not dot or not section or not key or "." in key:
        raise ConfigError(f"Bad {source}: write SECTION.KEY=VALUE, for example train.batch_size=8.")
    try:
        value = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        value = text  # not YAML, e.g. a glob starting with '*': the string itself
    layer = {section: {key: value}}
    _check_keys(layer, source)
    return layer


def _build(values):
    config = ExperimentConfig(
        **{name: _SECTIONS[name](**values.get(name, {})) for name in _SECTIONS}
    )
    return with_split_paths(config)


def with_split_paths(config):
    """``config`` with :data:`SPLIT_PLACEHOLDER` in its data file patterns replaced by
    ``data.split`` (a loaded config holds concrete paths only)."""
    data = config.data
    concrete = {
        name: pattern.replace(SPLIT_PLACEHOLDER, str(data.split))
        for name in DATA_FILE_FIELDS
        if (pattern := getattr(data, name)) and SPLIT_PLACEHOLDER in pattern
    }
    if not concrete:
        return config
    return dataclasses.replace(config, data=dataclasses.replace(data, **concrete))


def load_config(path=None, overrides=()):
    """Loads the YAML preset ``path`` (None: the defaults) and applies ``overrides``.

    ``overrides``: strings ``"section.key=value"``; values are YAML (``null``, ``8``,
    ``0.05``, ``true``, a string). Raises :class:`ConfigError` on any unknown key, wrong type
    or impossible value.
    """
    values = _read_yaml(path) if path is not None else {}
    for override in overrides:
        _merge(values, _parse_override(override))
    return _build(values)


def to_dict(config):
    """``{section: {key: value}}`` of plain Python values; ``save_config`` writes it."""
    return dataclasses.asdict(config)


def save_config(config, path):
    """Writes ``config`` as YAML, atomically; :func:`load_config` reads it back equal."""
    atomic_write(path, yaml.safe_dump(to_dict(config), sort_keys=False))


def with_options(section, **options):
    """``section`` (a config section) with the fields in ``options`` replaced, checked as
    any section is; an option that is not a field raises ConfigError naming it."""
    valid = [field.name for field in dataclasses.fields(section)]
    for key in options:
        if key not in valid:
            raise ConfigError(
                f"Unknown {section.section_name()} option {key!r}.{_did_you_mean(key, valid)} "
                f"Valid options: {', '.join(valid)}."
            )
    return dataclasses.replace(section, **options)


# What a model's weights are shaped by: its section, and the clip it sees.
ARCHITECTURE_DATA_KEYS = ("num_frames", "crop_size")


def architecture_keys(config) -> list:
    """``"section.key"`` of every setting that shapes the model's weights."""
    model = [f"model.{field.name}" for field in dataclasses.fields(config.model)]
    return model + [f"data.{key}" for key in ARCHITECTURE_DATA_KEYS]


def _value(config, key):
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def architecture_differences(source, target) -> list:
    """``"key: source -> target"`` of the architecture settings (:func:`architecture_keys`)
    in which two configs differ."""
    return [
        f"{key}: {_value(source, key)!r} -> {_value(target, key)!r}"
        for key in architecture_keys(target)
        if _value(source, key) != _value(target, key)
    ]


def inherit_architecture(config, source, keep=()):
    """``config`` with the architecture (:func:`architecture_keys`) of ``source``, the config
    of the run it starts from, except the keys in ``keep`` (``"section.key"``: the user's
    explicit overrides). Returns ``(config, changes)``, ``changes`` being
    ``"key: config's -> source's"`` for each setting taken from the source."""
    values = to_dict(config)
    changes = []
    for key in architecture_keys(config):
        if key in keep or _value(config, key) == _value(source, key):
            continue
        section, name = key.split(".")
        values[section][name] = _value(source, key)
        changes.append(f"{key}: {_value(config, key)!r} -> {_value(source, key)!r}")
    return _build(values), changes


def override_keys(overrides) -> set:
    """The ``"section.key"`` that ``--set`` overrides (``"section.key=value"``) name."""
    return {override.partition("=")[0].strip() for override in overrides}


# The DataConfig fields that hold file patterns.
DATA_FILE_FIELDS = ("train_files", "val_files", "eval_files")


def with_absolute_data_paths(config, base=None):
    """``config`` with its data file patterns made absolute against ``base`` (default: the
    working directory).

    A run saves its config this way, so that evaluate.py, export.py and predict.py find the
    run's data (and its label names) from any working directory.
    """
    base = Path(base) if base is not None else Path.cwd()
    absolute = {
        name: str(base / pattern)  # `base / "/abs"` is "/abs"
        for name in DATA_FILE_FIELDS
        if (pattern := getattr(config.data, name))
    }
    return dataclasses.replace(config, data=dataclasses.replace(config.data, **absolute))


def learning_rate(config):
    """The initial learning rate for ``train.batch_size``.

    Linear scaling with the global batch (Goyal et al. 2017), times
    ``train.finetune_learning_rate_scale`` when fine-tuning.
    """
    rate = (
        config.optimizer.base_learning_rate
        * config.train.batch_size
        / config.optimizer.base_batch_size
    )
    if config.train.stage == "finetune":
        rate *= config.train.finetune_learning_rate_scale
    return rate


def check_against_runtime(config, num_replicas):
    """Checks that the global batch splits evenly over ``num_replicas`` replicas."""
    if config.train.batch_size % num_replicas:
        raise ConfigError(
            f"train.batch_size {config.train.batch_size} is not divisible by the "
            f"{num_replicas} replicas; use a multiple of {num_replicas}."
        )


def prepared_identity(manifest):
    """``(dataset, split)`` of a prepared dataset's ``manifest.json`` (a dict): the dataset
    as data/prepare.py names it, ``"demo"`` for the demo's sets (whose labeled set is read
    by the HMDB51 reader); the split only for a dataset with official splits, else None."""
    source = manifest.get("source") or {}
    dataset = "demo" if "demo" in source else manifest.get("dataset")
    split = source.get("split") if len(DATASET_SPLITS.get(dataset, ())) > 1 else None
    return dataset, split


def check_short_side(config, manifest):
    """``data.short_side`` must not exceed the short side a prepared dataset's frames were
    stored at (its ``manifest.json``, a dict): they would be upsampled."""
    stored = manifest.get("options", {}).get("short_side")
    if stored is not None and config.data.short_side > stored:
        raise ConfigError(
            f"data.short_side {config.data.short_side} exceeds the short side the frames were "
            f"prepared at ({stored}): they would be upsampled. Lower data.short_side to at most "
            f"{stored} or prepare the videos again with --short-side {config.data.short_side}."
        )


def check_against_data(config, manifest):
    """Checks the config against a prepared dataset's ``manifest.json`` (a dict).

    - ``data.dataset`` and ``data.split``, when set, must be the prepared ones
      (:func:`prepared_identity`);
    - a labeled stage needs a labeled dataset with ``data.num_classes`` classes;
    - ``data.short_side`` must not exceed the short side the frames were stored at (they
      would be upsampled);
    - the median video must be long enough for one training clip (``num_frames + 1``
      frames, ``frame_stride`` apart): shorter videos are looped, which fakes motion at the
      seam, so a few are fine but not most.
    """
    dataset, split = prepared_identity(manifest)
    if config.data.dataset is not None and dataset is not None and config.data.dataset != dataset:
        raise ConfigError(
            f"data.dataset is {config.data.dataset!r} but the prepared dataset is {dataset!r} "
            f"(its manifest.json); set data.dataset={dataset} or point the data files at "
            f"{config.data.dataset}."
        )
    if config.data.split is not None and split is not None and config.data.split != split:
        raise ConfigError(
            f"data.split is {config.data.split} but the data were prepared as split {split} "
            f"(their manifest.json); set data.split={split} or use split {config.data.split}'s "
            "prepared folder."
        )
    classes = manifest.get("classes") or []
    if config.train.labeled and not classes:
        raise ConfigError(
            f"train.stage {config.train.stage!r} needs labels, but the prepared dataset is "
            "unlabeled (its manifest lists no classes)."
        )
    if config.train.labeled and config.data.num_classes != len(classes):
        raise ConfigError(
            f"data.num_classes is {config.data.num_classes} but the prepared dataset has "
            f"{len(classes)} classes; set data.num_classes={len(classes)}."
        )
    check_short_side(config, manifest)
    if "frames_per_video" not in manifest:
        return  # a manifest not written by data/prepare.py: nothing more to compare
    frames = manifest["frames_per_video"]
    if frames is None:
        raise ConfigError("The prepared dataset holds no videos (frames_per_video is null).")
    span = config.data.num_frames * config.data.frame_stride + 1
    if frames["median"] < span:
        raise ConfigError(
            f"data.num_frames {config.data.num_frames} with data.frame_stride "
            f"{config.data.frame_stride} needs {span} frames per clip, but the median prepared "
            f"video has {frames['median']} frames."
        )
