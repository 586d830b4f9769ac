"""YAML → frozen dataclasses: defaults, validation, ``--set`` overrides.

A config is built in layers, each a (partial) nested mapping, later layers winning:

    defaults (the dataclass defaults = the ``mnist`` preset)
      < environment (MLPCLI_DATA_DIR sets data.dir)
      < the config file (a preset name or a YAML path)
      < ``--set key.path=value`` overrides, in order (values parsed as YAML)

Every layer is checked as it is merged (unknown keys, with a "did you mean"; wrong types),
so an error names the key and the layer it came from (the file, the environment variable or
the ``--set``). The merged result is then checked as a whole (ranges, names, combinations).

Relative paths (data.dir, data.path, output.dir) are resolved against the current directory
and stored absolute, so a resolved config saved in a run folder means the same thing from any
directory. Config files may carry a top-level ``name`` (the run folder's prefix); without one
the name is the preset name or the file's stem.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import os
import re
import types
import typing
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import yaml

from mlpcli import functions as F
from mlpcli.errors import ConfigError
from mlpcli.network import INITS

DATASETS = ("mnist", "fashion-mnist", "kmnist")
# Data sets whose labels do not survive a horizontal mirror image.
NO_FLIP = {"mnist": "digits", "kmnist": "handwritten characters"}
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
SCHEDULES = ("constant", "step", "cosine")
METRICS = ("val_accuracy", "val_loss")
DTYPES = ("float32", "float64")
SIDE, INPUT_SIZE, N_CLASSES = 28, 784, 10  # 28×28-pixel images, 10 classes
DATA_DIR_ENV = "MLPCLI_DATA_DIR"
DEFAULT_NAME = "default"
# Other programs' names for our keys: only used to suggest the right key in an error.
ALIASES = {
    "lr": "training.learning_rate", "eta": "training.learning_rate",
    "lambda": "regularization.l2", "lmbda": "regularization.l2", "lam": "regularization.l2",
    "weight_decay": "regularization.l2", "batch": "training.batch_size",
    "mini_batch_size": "training.batch_size", "sizes": "model.layers", "hidden": "model.layers",
    "loss": "cost", "activations": "model.activation", "epoch": "training.epochs",
}


# --- the config: every default here is the mnist preset's value (configs/mnist.yaml) ----------


@dataclass(frozen=True)
class AugmentConfig:
    shift: int = 1  # random translation of each training image by up to ±shift pixels
    flip: bool = False  # random horizontal flips (only where labels survive a mirror image)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "mnist"
    dir: str = "data"
    path: str | None = None
    validation: int = 10000
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class ModelConfig:
    layers: tuple[int, ...] = (784, 800, 800, 10)
    activation: str | tuple[str, ...] = "relu"
    output: str = "softmax"
    init: str = "he"
    dropout: float | tuple[float, ...] = 0.1

    def hidden_activations(self) -> tuple[str, ...]:
        """One activation name per hidden layer."""
        return _per_hidden_layer(self.activation, len(self.layers) - 2)

    def dropout_rates(self) -> tuple[float, ...]:
        """One dropout rate per hidden layer (0 = no dropout)."""
        return _per_hidden_layer(self.dropout, len(self.layers) - 2)


def _per_hidden_layer(value, n_hidden: int) -> tuple:
    return value if isinstance(value, tuple) else (value,) * n_hidden


@dataclass(frozen=True)
class RegularizationConfig:
    l2: float = 5.0  # λ in J = (1/m) Σ c + (λ/2n) Σ‖W‖², n = examples trained on


@dataclass(frozen=True)
class AdamConfig:
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = "cosine"
    step_every: int = 10
    factor: float = 0.5
    warmup_epochs: int = 0


@dataclass(frozen=True)
class EarlyStoppingConfig:
    patience: int = 10
    metric: str = "val_accuracy"


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 0.05
    optimizer: str = "nesterov"
    momentum: float = 0.9
    adam: AdamConfig = field(default_factory=AdamConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    early_stopping: EarlyStoppingConfig | None = None
    seed: int = 0
    dtype: str = "float32"


@dataclass(frozen=True)
class OutputConfig:
    dir: str | None = None  # None: runs/<config name>-<YYYYmmdd-HHMMSS>


@dataclass(frozen=True)
class Config:
    name: str = DEFAULT_NAME
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    cost: str = "log_likelihood"
    regularization: RegularizationConfig = field(default_factory=RegularizationConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


# --- public functions ---------------------------------------------------------------------------


def load_config(source: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """The resolved config for a preset name or YAML path (None: the defaults) plus ``--set``s."""
    name, label, raw = _read_source(source)
    layers: list[tuple[str, Any]] = []
    if os.environ.get(DATA_DIR_ENV):
        layers.append((f"environment variable {DATA_DIR_ENV}", {"data": {"dir": os.environ[DATA_DIR_ENV]}}))
    if raw is not None:
        layers.append((label, raw))
    layers += [(f"--set {item}", _parse_override(item)) for item in overrides]
    return _resolve(config_to_dict(Config(name=name)), layers)


def config_from_dict(d: dict, source: str = "<checkpoint>") -> Config:
    """A Config from ``config_to_dict``'s output (e.g. a checkpoint's meta), fully validated."""
    return _resolve(config_to_dict(Config()), [(source, d)])


def config_to_dict(cfg: Config) -> dict:
    """Plain nested dicts and lists (YAML- and JSON-able), in the dataclasses' field order."""
    return _plain(cfg)


def dump_yaml(cfg: Config) -> str:
    """The config as YAML that ``load_config`` reads back to an equal Config."""
    body = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None, width=100)
    return "# mlpcli resolved config: every key, all paths absolute\n" + body


def list_presets() -> list[str]:
    """Names of the packaged presets (``--config NAME``)."""
    root = resources.files("mlpcli.presets")
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


# --- reading sources ----------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """safe_load that reads 1e-8 as a number (YAML 1.2) and refuses duplicate keys."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            if isinstance(key, typing.Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml_load(text: str, label: str, file: bool = True) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 — a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark and file else label
        problem = getattr(error, "problem", None) or str(error)
        hint = "fix the YAML at that line" if file else "the value after = is YAML, e.g. key=[784, 30, 10]"
        raise ConfigError(f"{where}: not valid YAML: {problem}", hint) from None


def _read_source(source: str | Path | None) -> tuple[str, str, Any]:
    """(config name, label for messages, parsed YAML or None)."""
    if source is None:
        return DEFAULT_NAME, "defaults", None
    path = Path(source).expanduser()
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read config file {source}: {error}") from None
        label = str(source)
    elif str(source) in list_presets():  # a bare name; a folder of that name does not hide it
        text = (resources.files("mlpcli.presets") / f"{source}.yaml").read_text(encoding="utf-8")
        label = f"preset {source}"
    elif path.is_dir():
        raise ConfigError(f"config {source} is a folder", "give a YAML file or a preset name")
    elif path.exists():
        raise ConfigError(f"config {source} is not a regular file (a FIFO, device or socket)",
                          "give a YAML file or a preset name")
    else:
        presets = list_presets()
        raise ConfigError(
            f"no config file or preset named {str(source)!r}",
            f"give a path to a YAML file or one of the presets: {', '.join(presets)}"
            + _did_you_mean(str(source), presets),
        )
    raw = _yaml_load(text, label)
    return path.stem, label, {} if raw is None else raw


def _parse_override(item: str) -> dict:
    """``"a.b=value"`` → ``{"a": {"b": <value parsed as YAML>}}``."""
    key, sep, value = item.partition("=")
    keys = key.strip().split(".")
    if not sep or not all(keys):
        raise ConfigError(
            f"--set {item!r} is not key.path=value",
            "e.g. --set training.epochs=5 or --set model.layers=[784,30,10]",
        )
    nested: Any = _yaml_load(value, f"--set {item}", file=False)
    for k in reversed(keys):
        nested = {k: nested}
    return nested


# --- merging layers, checking keys and types ----------------------------------------------------


def _resolve(base: dict, layers: list[tuple[str, Any]]) -> Config:
    origin: dict[str, tuple[int, str]] = {}  # dotted key → (layer number, label) that set it last
    merged = base
    for rank, (label, layer) in enumerate(layers, start=1):
        merged = _merge(Config, merged, layer, "", (rank, label), origin)
    cfg = _build(Config, merged)

    def where(*paths: str) -> str:  # the latest layer that set any of these keys
        return max((origin.get(p, (0, "defaults")) for p in paths), key=lambda o: o[0])[1]

    _validate(cfg, where)
    return _absolute_paths(cfg)


def _merge(cls, current: dict, layer: Any, prefix: str, source: tuple[int, str], origin: dict) -> dict:
    label = source[1]
    section = prefix.rstrip(".") or "the config"
    if not isinstance(layer, dict):
        raise ConfigError(
            f"{label}: {section} must be a mapping of keys to values, got {_show(layer)}",
            f"valid keys: {', '.join(_hints(cls))}",
        )
    hints = _hints(cls)
    merged = dict(current)
    for key, value in layer.items():
        path = f"{prefix}{key}"
        if key not in hints:
            raise ConfigError(
                f"{label}: unknown key {path!r}",
                f"valid keys in {section}: {', '.join(hints)}{_suggest_key(str(key), prefix, hints)}",
            )
        sub, optional = _section_type(hints[key])
        if sub is not None and not (optional and value is None):
            if not isinstance(value, dict):
                nullable = " or null" if optional else ""
                raise ConfigError(
                    f"{label}: {path} must be a mapping{nullable}, got {_show(value)}",
                    f"valid keys in {path}: {', '.join(_hints(sub))}",
                )
            start = merged[key] if merged[key] is not None else _plain(sub())
            merged[key] = _merge(sub, start, value, f"{path}.", source, origin)
        else:
            try:
                _convert(hints[key], value)
            except _Mismatch:
                raise ConfigError(
                    f"{label}: {path} must be {_describe(hints[key])}, got {_show(value)}"
                ) from None
            merged[key] = value
        origin[path] = source
    return merged


def _build(cls, d: dict):
    kwargs = {}
    for name, hint in _hints(cls).items():
        sub, _ = _section_type(hint)
        value = d[name]
        kwargs[name] = _build(sub, value) if sub is not None and value is not None else _convert(hint, value)
    return cls(**kwargs)


class _Mismatch(Exception):
    pass


def _convert(hint, value):
    """``value`` as type ``hint`` (lists → tuples, ints → floats), or raise _Mismatch."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _convert(option, value)
            except _Mismatch:
                pass
        raise _Mismatch
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        return tuple(_convert(typing.get_args(hint)[0], v) for v in value)
    if hint is type(None) and value is None:
        return None
    if hint is bool and isinstance(value, bool):
        return value
    # bool is a subclass of int in Python, but `epochs: true` is a mistake, not a 1.
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    raise _Mismatch


_NAMES = {int: ("an integer", "integers"), float: ("a number", "numbers"), str: ("a string", "strings"),
          bool: ("true or false", "booleans"), type(None): ("null", "nulls")}


def _describe(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if origin is tuple:
        return f"a list of {_NAMES[typing.get_args(hint)[0]][1]}"
    return _NAMES[hint][0]


def _show(value) -> str:
    """A value as YAML/JSON would write it (true, null, "text", [1, 2])."""
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _section_type(hint):
    """(dataclass, may be null) when ``hint`` is a nested section, else (None, False)."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for option in options:
        if dataclasses.is_dataclass(option):
            return option, type(None) in options
    return None, False


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _did_you_mean(word: str, candidates) -> str:
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def _all_keys(cls=Config, prefix: str = "") -> list[str]:
    keys = []
    for name, hint in _hints(cls).items():
        keys.append(f"{prefix}{name}")
        sub, _ = _section_type(hint)
        if sub is not None:
            keys += _all_keys(sub, f"{prefix}{name}.")
    return keys


def _suggest_key(key: str, prefix: str, hints: dict) -> str:
    """A close key in the same section, else the same (or a close) key in another section."""
    same = _did_you_mean(key, hints)
    if same:
        return same
    if key.lower() in ALIASES:
        return f"; did you mean {ALIASES[key.lower()]!r}?"
    elsewhere = {k.rsplit(".", 1)[-1]: k for k in _all_keys()}
    match = difflib.get_close_matches(key, list(elsewhere), n=1, cutoff=0.75)
    return f"; did you mean {elsewhere[match[0]]!r}?" if match else ""


# --- checking the merged config as a whole -------------------------------------------------------


class _Checker:
    """Raises a ConfigError that names the key and the layer (file, --set, env) that set it."""

    def __init__(self, where):
        self.where = where

    def fail(self, path: str, problem: str, hint: str | None = None, also: tuple[str, ...] = ()):
        raise ConfigError(f"{self.where(path, *also)}: {path} {problem}", hint)

    def choice(self, path: str, value, valid) -> None:
        if value not in valid:
            self.fail(path, f"is {value!r}, which is not known",
                      f"choose one of: {', '.join(valid)}{_did_you_mean(str(value), valid)}")

    def at_least(self, path: str, value, low, unit: str = "") -> None:
        if not value >= low:  # `not >=` so that NaN fails too
            self.fail(path, f"must be >= {low}{unit}, got {value}")

    def positive(self, path: str, value) -> None:
        if not 0 < value < float("inf"):
            self.fail(path, f"must be > 0, got {value}")

    def fraction(self, path: str, value) -> None:
        if not 0 <= value < 1:
            self.fail(path, f"must be in [0, 1), got {value}")


def _validate(cfg: Config, where) -> None:
    """Ranges, names and combinations; ``where(*keys)`` names the layer that set the keys."""
    check = _Checker(where)
    if not cfg.name or cfg.name in (".", "..") or "/" in cfg.name or "\\" in cfg.name:
        check.fail("name", f"must be a plain name for a run folder, got {cfg.name!r}")
    for key, value in (("data.dir", cfg.data.dir), ("data.path", cfg.data.path), ("output.dir", cfg.output.dir)):
        if value == "":
            check.fail(key, "must not be empty", "give a folder, or null where that is allowed")
    _validate_data(cfg.data, check)
    _validate_model(cfg.model, cfg.cost, check)
    _validate_training(cfg.training, cfg.data, cfg.regularization, check)


def _validate_data(d: DataConfig, check: _Checker) -> None:
    check.choice("data.dataset", d.dataset, DATASETS)
    check.at_least("data.validation", d.validation, 0, " (examples held out; 0 = none)")
    check.at_least("data.augment.shift", d.augment.shift, 0, " pixels")
    if d.augment.shift >= SIDE:
        check.fail("data.augment.shift", f"must be < {SIDE} pixels (the image size), got {d.augment.shift}")
    if d.augment.flip and d.dataset in NO_FLIP:
        check.fail("data.augment.flip", f"cannot be true for {d.dataset}: {NO_FLIP[d.dataset]} do not "
                   "survive a mirror image", "use flip only for fashion-mnist", also=("data.dataset",))


def _validate_model(m: ModelConfig, cost: str, check: _Checker) -> None:
    example = f"e.g. [{INPUT_SIZE}, 100, {N_CLASSES}]"
    if not m.layers:
        check.fail("model.layers", "must not be empty", example)
    if any(n < 1 for n in m.layers):
        check.fail("model.layers", f"must all be >= 1, got {list(m.layers)}")
    if len(m.layers) < 2 or m.layers[0] != INPUT_SIZE or m.layers[-1] != N_CLASSES:
        check.fail("model.layers", f"must start at {INPUT_SIZE} ({SIDE}×{SIDE} pixels) and end at "
                   f"{N_CLASSES} (classes), got {list(m.layers)}", example)
    n_hidden = len(m.layers) - 2
    for key, value in (("model.activation", m.activation), ("model.dropout", m.dropout)):
        if isinstance(value, tuple) and len(value) != n_hidden:
            check.fail(key, f"has {len(value)} entries for {n_hidden} hidden layers ({list(value)})",
                       "give one value for all hidden layers, or exactly one per hidden layer",
                       also=("model.layers",))
    for name in m.hidden_activations():
        check.choice("model.activation", name, F.HIDDEN)
    for rate in m.dropout_rates():
        check.fraction("model.dropout", rate)
    check.choice("model.output", m.output, F.OUTPUTS)
    check.choice("model.init", m.init, INITS)
    check.choice("cost", cost, F.COSTS)
    try:
        F.check_pair(m.output, cost)
    except ConfigError as error:
        check.fail("cost", f"{cost!r} does not fit model.output {m.output!r}", error.hint,
                   also=("model.output",))


def _validate_training(t: TrainingConfig, d: DataConfig, r: RegularizationConfig, check: _Checker) -> None:
    check.at_least("regularization.l2", r.l2, 0, " (λ)")
    check.at_least("training.epochs", t.epochs, 1)
    check.at_least("training.batch_size", t.batch_size, 1)
    check.positive("training.learning_rate", t.learning_rate)
    check.choice("training.optimizer", t.optimizer, OPTIMIZERS)
    check.fraction("training.momentum", t.momentum)
    check.fraction("training.adam.beta1", t.adam.beta1)
    check.fraction("training.adam.beta2", t.adam.beta2)
    check.positive("training.adam.eps", t.adam.eps)
    check.choice("training.schedule.name", t.schedule.name, SCHEDULES)
    check.at_least("training.schedule.step_every", t.schedule.step_every, 1, " epochs")
    if not 0 < t.schedule.factor <= 1:
        check.fail("training.schedule.factor", f"must be in (0, 1], got {t.schedule.factor}")
    check.at_least("training.schedule.warmup_epochs", t.schedule.warmup_epochs, 0)
    if t.early_stopping is not None:
        check.at_least("training.early_stopping.patience", t.early_stopping.patience, 1, " epochs")
        check.choice("training.early_stopping.metric", t.early_stopping.metric, METRICS)
        if d.validation == 0:
            check.fail("training.early_stopping", "needs a validation set, but data.validation is 0",
                       "set data.validation > 0 or training.early_stopping: null", also=("data.validation",))
    check.at_least("training.seed", t.seed, 0)
    check.choice("training.dtype", t.dtype, DTYPES)


def _absolute_paths(cfg: Config) -> Config:
    def absolute(p: str | None) -> str | None:
        return None if p is None else os.path.abspath(os.path.expanduser(p))

    data = dataclasses.replace(cfg.data, dir=absolute(cfg.data.dir), path=absolute(cfg.data.path))
    return dataclasses.replace(cfg, data=data, output=OutputConfig(dir=absolute(cfg.output.dir)))
