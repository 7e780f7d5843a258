"""The training config: nested dataclasses, presets, YAML files and ``key=value`` overrides.

A config is resolved in layers, each one overriding the last::

    defaults  ->  preset (``--preset`` or a file's ``preset:`` key)  ->  YAML file(s)
              ->  ``--set section.key=value`` overrides

Unknown keys are errors (with a suggestion), never silently ignored. The run directory
keeps the resolved config as ``config.yaml``; resuming a run reads it back.

Batch sizes are *global* (all processes together); see ``docs/training.md`` for how the
learning rate scales with the global batch (``optim.scale_lr``).

A few keys may be ``auto`` (the ``custom`` preset's defaults for own data): they are taken
from the WORKDIR and its skeleton cache when a run starts (``train.data.fit``) and the
values found are what ``config.yaml`` records.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from data_manifest.cache_names import check_cache_name
from data_manifest.class_map import ClassMapError, builtin_class_maps, load_class_map
from data_manifest.formats.reading import CHANNELS
from data_manifest.layouts import Layout, LayoutError, layout_spec, load_layout
from train.errors import ConfigError
from train.models.registry import IMPLS, MODEL_NAMES
from train.presets import PRESETS
from train.tracking import parse_log_with

MODALITIES = ("joint", "bone", "joint-motion", "bone-motion")
FEEDERS = ("ntu", "nw-ucla", "custom")
SCHEDULES = ("step", "cosine")
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
AUTO = "auto"     # a value taken from the data when the run starts
# keys that may change when a run is resumed: they do not change what is learned
RESUME_SAFE_KEYS = ("data.num_workers", "run.progress", "run.checkpoint_every_steps",
                    "run.eval_every_epochs", "run.log_with", "run.log_every_steps",
                    "schedule.epochs", "model.impl", "run.threads")


@dataclass
class DataConfig:
    workdir: str | None = None            # WORKDIR with a skeleton cache (required to train)
    skeleton_cache: str = "default"       # name of the skeleton cache in the WORKDIR
    protocol: str = "ntu60-xsub"          # split protocol (data_manifest.splits): ntu60-
                                          # xsub, ..., csv, pyskl-<split>; auto: the
                                          # WORKDIR's (pyskl: its manifest's --split)
    feeder: str = "ntu"                   # "ntu": crop/resize/rotate; "nw-ucla": view aug.;
                                          # "custom": centre, scale, crop/resize, rotate
    modality: str = "joint"               # joint, bone, joint-motion, bone-motion
    channels: str = "xyz"                 # xyz, xy or xy-score; auto: the skeleton cache's
    window: int | str = 64                # frames fed to the model; auto: the median of
                                          # the training samples' lengths
    # the feeders' own keys: a new run refuses a non-default value of one its feeder ignores
    p_interval_train: list[float] = field(default_factory=lambda: [0.5, 1.0])   # ntu/custom
    p_interval_test: list[float] = field(default_factory=lambda: [0.95])        # ntu/custom
    random_rot: bool = True               # ntu/custom feeder: random rotation in training
                                          # (custom: 3 axes for 3-D points, in-plane for 2-D)
    rot_theta: float = 0.3                # ntu/custom feeder: max rotation angle (rad)
    random_flip: bool = False             # custom feeder: mirror left/right (the layout's
                                          # flip_pairs) in half the training samples
    ucla_max_angle_deg: int = 60          # nw-ucla feeder: random view angle, +- degrees
    ucla_scale_range: list[float] = field(default_factory=lambda: [0.5, 1.5])
    ucla_center_joint: int | None = None  # nw-ucla feeder: 1-based joint of frame 0 ->
                                          # origin; null: the layout's origin joint(s)
    repeat: int = 1                       # training set repeated this many times per epoch
    val_fraction: float = 0.0             # hold out this share of train (per class) as "val"
    num_workers: int = 2                  # DataLoader worker processes per training process


@dataclass
class ModelConfig:
    name: str = "ctrgcn"                  # backbone: ctrgcn, stgcn, hdgcn, infogcn
    layout: str | dict = "ntu"            # a built-in layout name, a layout YAML file (its
                                          # content is recorded) or auto: the WORKDIR's
    num_classes: int | str = 60           # auto: the WORKDIR's class names (or labels)
    num_persons: int | str = 2            # auto: the skeleton cache's persons per sample
    in_channels: int | str = 3            # auto: the values per joint of data.channels
    dropout: float = 0.0
    init_from: str | None = None          # new runs start from these weights: a .pt/.npz
                                          # or a run directory (its auto checkpoint)
    init_skip: list[str] = field(default_factory=list)   # name prefixes left fresh, e.g. fc
    init_class_map: str | dict | None = None   # classifier row k from init_from's row
                                          # map[k]: a class map (built-in name, YAML file
                                          # (its content is recorded) or {this run: source})
    options: dict[str, Any] = field(default_factory=dict)  # the backbone's own settings,
                                          # checked by it (docs/training.md, "Backbones")
    impl: str = "fast"                    # fast: same math and weights, reordered for speed;
                                          # reference: the eager model of the published code


@dataclass
class OptimConfig:
    lr: float = 0.1                       # for the global batch below (see scale_lr)
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-4
    batch_size: int = 64                  # global training batch, all processes together
    test_batch_size: int = 64             # global evaluation batch
    scale_lr: bool = False                # lr *= batch_size / reference_batch
    reference_batch: int = 64             # the batch that ``lr`` was tuned for
    grad_clip: float = 0.0                # max gradient norm; 0 = off
    grad_accumulation: int = 1            # split each batch into this many micro-batches
                                          # (same optimizer steps, less memory)


@dataclass
class ScheduleConfig:
    epochs: int = 65
    warmup_epochs: int = 5                # linear warm-up, lr * (epoch + 1) / warmup_epochs
    kind: str = "step"                    # after warm-up: "step" decay or "cosine" annealing
    steps: list[int] = field(default_factory=lambda: [35, 55])   # step: lr *= gamma here
    gamma: float = 0.1
    min_lr_ratio: float = 0.001           # cosine: the lr falls to lr * min_lr_ratio


@dataclass
class RunConfig:
    seed: int = 1
    mixed_precision: str = "auto"         # auto: bf16/fp16 on GPU, no on CPU
    threads: int | str = "auto"           # torch threads per process: auto or a number
    checkpoint_every_steps: int = 0       # also checkpoint every N optimizer steps; 0 = off
    eval_every_epochs: int = 1            # evaluate on val/test every N epochs; 0 = never
    drop_last: bool = True                # drop the last incomplete training batch
    progress: bool = True                 # progress bar on the main process
    find_unused_parameters: bool = False  # DDP setting, for objectives that skip parameters
    sync_bn: bool = False                 # several processes: BatchNorm statistics over the
                                          # global batch (SyncBatchNorm), not per process
    log_with: str = "auto"                # trackers: auto (tensorboard if installed), none,
                                          # all, or a list: tensorboard,wandb,mlflow
    log_every_steps: int = 50             # trackers also get the loss every N steps; 0 = off


@dataclass
class ObjectiveConfig:
    name: str = "classification"          # a key of train.objectives.OBJECTIVES
    options: dict[str, Any] = field(default_factory=dict)   # checked by the objective


@dataclass
class TrainConfig:
    preset: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    run: RunConfig = field(default_factory=RunConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        config = _build(cls, data, "")
        validate(config)
        return config

    def effective_lr(self) -> float:
        if self.optim.scale_lr:
            return self.optim.lr * self.optim.batch_size / self.optim.reference_batch
        return self.optim.lr


# --------------------------------------------------------------------------- building


def _build(cls, data: Mapping[str, Any], prefix: str):
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, "
                          f"not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in data if key not in names]
    if unknown:
        raise ConfigError(_unknown_message(prefix, unknown[0], names))
    values = {}
    for name in names:
        if name not in data:
            continue
        kind = hints[name]
        value = data[name]
        if dataclasses.is_dataclass(kind):
            values[name] = _build(kind, value if value is not None else {}, f"{prefix}{name}.")
        else:
            values[name] = _coerce(value, kind, f"{prefix}{name}")
    return cls(**values)


def _unknown_message(prefix: str, key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(str(key), names, n=1)
    hint = f"; did you mean {prefix}{close[0]}?" if close else f"; known: {', '.join(names)}"
    return f"unknown config key {prefix}{key}{hint}"


def _coerce(value: Any, kind: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options[:-1]:   # the first type that takes the value
            try:
                return _coerce(value, option, where)
            except ConfigError:
                continue
        return _coerce(value, options[-1], where)
    if kind is Any:
        return value
    if origin is list:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, not {value!r}")
        return [_coerce(item, args[0], f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict or kind is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, not {value!r}")
        return copy.deepcopy(dict(value))
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, not {value!r}")
        return value
    if kind is float:
        if isinstance(value, str):   # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, not {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, not {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported config type {kind}")   # a bug in this module


# --------------------------------------------------------------------------- validation


def validate(config: TrainConfig) -> None:
    d, m, o, s, r = config.data, config.model, config.optim, config.schedule, config.run
    _choice("data.feeder", d.feeder, FEEDERS)
    _choice("model.name", m.name, MODEL_NAMES)
    _choice("schedule.kind", s.kind, SCHEDULES)
    _choice("data.modality", d.modality, MODALITIES)
    _choice("data.channels", d.channels, (*CHANNELS, AUTO))
    _choice("run.mixed_precision", r.mixed_precision, MIXED_PRECISION)
    parse_log_with(r.log_with)
    check_cache_names({"data.skeleton_cache": d.skeleton_cache})
    layout = None if m.layout == AUTO else model_layout(config)
    _choice("model.impl", m.impl, IMPLS)
    if isinstance(r.threads, str) and r.threads != "auto" or \
            isinstance(r.threads, int) and r.threads < 1:
        raise ConfigError(f"run.threads must be auto or a positive number, not {r.threads!r}")
    for where, interval in (("data.p_interval_train", d.p_interval_train),
                            ("data.p_interval_test", d.p_interval_test)):
        if len(interval) not in (1, 2) or not all(0 < p <= 1 for p in interval):
            raise ConfigError(f"{where} must be [p] or [low, high] with 0 < p <= 1, "
                              f"not {interval}")
        if len(interval) == 2 and interval[0] > interval[1]:
            raise ConfigError(f"{where}: low {interval[0]} > high {interval[1]}")
    if len(d.ucla_scale_range) != 2 or not 0 < d.ucla_scale_range[0] <= d.ucla_scale_range[1]:
        raise ConfigError(f"data.ucla_scale_range must be [low, high] with 0 < low <= high, "
                          f"not {d.ucla_scale_range}")
    if layout is not None and d.ucla_center_joint is not None \
            and not 1 <= d.ucla_center_joint <= layout.num_joints:
        raise ConfigError(f"data.ucla_center_joint {d.ucla_center_joint} is not a joint of "
                          f"the {layout.name} layout (1..{layout.num_joints})")
    if not 0 <= d.val_fraction < 1:
        raise ConfigError(f"data.val_fraction must be in [0, 1), not {d.val_fraction}")
    for where, value in (("data.window", d.window), ("model.num_classes", m.num_classes),
                         ("model.num_persons", m.num_persons),
                         ("model.in_channels", m.in_channels)):
        if isinstance(value, str) and value != AUTO:
            raise ConfigError(f"{where} must be an integer or {AUTO}, not {value!r}")
    for where, value in (("data.window", d.window), ("data.repeat", d.repeat),
                         ("model.num_classes", m.num_classes),
                         ("model.num_persons", m.num_persons),
                         ("model.in_channels", m.in_channels),
                         ("optim.batch_size", o.batch_size),
                         ("optim.test_batch_size", o.test_batch_size),
                         ("optim.reference_batch", o.reference_batch),
                         ("optim.grad_accumulation", o.grad_accumulation),
                         ("schedule.epochs", s.epochs)):
        if value != AUTO and value < 1:
            raise ConfigError(f"{where} must be at least 1, not {value}")
    for where, value in (("data.num_workers", d.num_workers),
                         ("schedule.warmup_epochs", s.warmup_epochs),
                         ("run.checkpoint_every_steps", r.checkpoint_every_steps),
                         ("run.eval_every_epochs", r.eval_every_epochs),
                         ("run.log_every_steps", r.log_every_steps),
                         ("optim.weight_decay", o.weight_decay),
                         ("optim.grad_clip", o.grad_clip), ("model.dropout", m.dropout)):
        if value < 0:
            raise ConfigError(f"{where} must not be negative, not {value}")
    if o.batch_size % o.grad_accumulation:
        raise ConfigError(f"optim.batch_size {o.batch_size} does not split into "
                          f"optim.grad_accumulation={o.grad_accumulation} equal micro-batches")
    if o.lr <= 0:
        raise ConfigError(f"optim.lr must be positive, not {o.lr}")
    if not 0 <= s.min_lr_ratio <= 1:
        raise ConfigError(f"schedule.min_lr_ratio must be in [0, 1], not {s.min_lr_ratio}")
    if list(s.steps) != sorted(s.steps):
        raise ConfigError(f"schedule.steps must be increasing, not {s.steps}")
    if m.init_skip and not m.init_from:
        raise ConfigError("model.init_skip is set but model.init_from is not: name the "
                          "checkpoint to start from")
    if not all(m.init_skip):
        raise ConfigError(f"model.init_skip entries must not be empty, not {m.init_skip}")
    if m.init_class_map is not None and not m.init_from:
        raise ConfigError("model.init_class_map is set but model.init_from is not: name the "
                          "run (or checkpoint) whose classifier it re-maps")


def model_layout(config: TrainConfig) -> Layout:
    """The skeleton layout of ``model.layout`` (not ``auto``: fit the config to its data
    first, see ``train.data.fit``)."""
    spec = config.model.layout
    if spec == AUTO:
        raise ConfigError("model.layout is auto: it is taken from the WORKDIR when the run "
                          "starts (train.data.fit.fit_to_data)")
    try:
        return load_layout(spec)
    except LayoutError as error:
        raise ConfigError(f"model.layout: {error}") from None


def unresolved(config: TrainConfig) -> list[str]:
    """The keys still ``auto``."""
    d, m = config.data, config.model
    return [key for key, value in (("data.protocol", d.protocol),
                                   ("data.channels", d.channels), ("data.window", d.window),
                                   ("model.layout", m.layout),
                                   ("model.num_classes", m.num_classes),
                                   ("model.num_persons", m.num_persons),
                                   ("model.in_channels", m.in_channels)) if value == AUTO]


def check_cache_names(names: Mapping[str, str | None]) -> None:
    """Each setting -> cache name (unless None) must be a plain name, never a path (see
    :func:`data_manifest.store.check_cache_name`)."""
    for where, name in names.items():
        if name is not None:
            try:
                check_cache_name(name, where)
            except ValueError as error:
                raise ConfigError(str(error)) from None


def _choice(where: str, value: str, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(choices)}, not {value!r}")


# --------------------------------------------------------------------------- layering


def deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``update``, recursing into mappings (lists are replaced)."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_override(text: str) -> dict[str, Any]:
    """``optim.lr=0.05`` -> ``{"optim": {"lr": 0.05}}``; values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    path, raw = text.split("=", 1)
    keys = [key.strip() for key in path.split(".")]
    if not all(keys):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: cannot parse the value ({error})") from error
    result: dict[str, Any] = {}
    node = result
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return result


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML ({error})") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def preset_dict(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"unknown preset {name!r}{hint} (known: {', '.join(PRESETS)})")
    return copy.deepcopy(PRESETS[name])


def resolve_config(preset: str | None = None, files: Iterable[str | Path] = (),
                   overrides: Iterable[str] = (),
                   updates: Iterable[Mapping[str, Any]] = (),
                   base: Mapping[str, Any] | None = None) -> TrainConfig:
    """Layer defaults (or ``base``, e.g. a recorded config), a preset, YAML files,
    ``key=value`` overrides and dict updates."""
    layers = [load_yaml(path) for path in files]
    layers += [parse_override(text) for text in overrides]
    layers += [dict(update) for update in updates]
    chosen = preset
    for layer in layers:
        if layer.get("preset") is not None:
            chosen = layer["preset"]
    merged = copy.deepcopy(dict(base)) if base is not None else TrainConfig().to_dict()
    if chosen is not None:
        merged = deep_merge(merged, preset_dict(chosen))
        merged["preset"] = chosen
    for layer in layers:
        merged = deep_merge(merged, layer)
    return TrainConfig.from_dict(merged)


def absolute_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with relative ``data.workdir`` and ``model.init_from`` made absolute (from
    the current folder) and a layout file in ``model.layout`` or a class map file in
    ``model.init_class_map`` replaced by its content, so a recorded config means the same
    thing from anywhere, whatever happens to the file."""
    config = copy.deepcopy(config)
    if config.data.workdir:
        config.data.workdir = str(Path(config.data.workdir).expanduser().resolve())
    if config.model.init_from:
        config.model.init_from = str(Path(config.model.init_from).expanduser().resolve())
    if config.model.init_class_map is not None:
        config.model.init_class_map = class_map_spec(config.model.init_class_map)
    if config.model.layout != AUTO:
        config.model.layout = layout_spec(model_layout(config))
    return config


def class_map_spec(spec: str | dict) -> str | dict:
    """How a config records a class map: a built-in's name, else its content."""
    if isinstance(spec, str) and spec in builtin_class_maps():
        return spec
    try:
        return load_class_map(spec).to_dict()
    except ClassMapError as error:
        raise ConfigError(f"model.init_class_map: {error}") from None


def config_differences(old: TrainConfig, new: TrainConfig) -> list[str]:
    """``key: old -> new`` for every leaf that differs."""
    return mapping_differences(old.to_dict(), new.to_dict())


def mapping_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``dotted.key: old -> new`` for every leaf of two nested mappings that differs."""
    differences: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{prefix}{key}.")
        elif a != b:
            differences.append(f"{prefix.rstrip('.')}: {a!r} -> {b!r}")

    walk(old, new, "")
    return differences
