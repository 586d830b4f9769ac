"""mlpcli's config: the keys, their defaults, where configs come from and what is valid.

This module owns the frozen dataclasses (every default is the ``mnist`` preset's value), the
sources (presets, YAML files, a Config or a dict, the environment, ``--data-dir``, ``--set``)
and the validation rules. The generic machinery (YAML reading, layer merging, type checks,
"did you mean" suggestions) is ``mlpcli.run.schema``; the choice lists come from the modules that
own them (optimizers and schedules: ``mlpcli.nn.optim``; inits: ``mlpcli.nn.network``; activation,
output and cost names: ``mlpcli.nn.functions``).

A config is built in layers, each a (partial) nested mapping, later layers winning:

    defaults (the dataclass defaults = the ``mnist`` preset)
      < environment (MLPCLI_DATA_DIR sets data.dir)
      < the base: a preset name, a YAML path, a Config or a dict (``config_to_dict``'s form)
      < ``--data-dir`` (sets data.dir)
      < ``--set key.path=value`` overrides, in order (values parsed as YAML)

Every layer is checked as it is merged (unknown keys, with a "did you mean"; wrong types),
so an error names the key and the layer it came from (the file, the environment variable,
``--data-dir`` or the ``--set``). The merged result is then checked as a whole (ranges, names,
combinations) and, unless it comes from a checkpoint, against this machine's memory: a model or
batch whose training cannot fit (``memory_needed``) is refused before anything is allocated.
Every value an error quotes is cut to a readable length (``schema.show``).

Relative paths (data.dir, data.path, output.dir) are resolved against the current directory
and stored absolute, so a resolved config saved in a run folder means the same thing from any
directory. Config files may carry a top-level ``name`` (the run folder's prefix); without one
the name is the preset name or the file's stem. A Config or dict base keeps its own name.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import yaml

from mlpcli.nn import functions as F
from mlpcli.data.splits import FORMATS, PREPROCESSING
from mlpcli.errors import ConfigError
from mlpcli.nn.network import INITS, per_hidden_layer
from mlpcli.nn.optim import OPTIMIZERS, SCHEDULES
from mlpcli.run.schema import (
    Checker,
    Dumper,
    Layers,
    did_you_mean,
    key,
    load_yaml,
    parse_override,
    plain,
    printable,
    quoted,
    set_label,
    shorten,
    show,
)

DATASETS = ("mnist", "fashion-mnist", "kmnist")
# Data sets whose labels do not survive a horizontal mirror image.
NO_FLIP = {"mnist": "digits", "kmnist": "handwritten characters"}
EARLY_STOPPING_METRICS = ("val_accuracy", "val_loss")
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
# The hints of a malformed --set and of a --set value that is not valid YAML.
SET_HINT = "e.g. --set training.epochs=5 or --set model.layers=[784,30,10]"
SET_VALUE_HINT = "the value after = is YAML, e.g. key=[784, 30, 10]"
# Copies of the parameters training keeps (weights, gradients, up to two optimizer slots: Adam's
# m and v), and of each batch's activations (z, a, δ per layer, and the chunk of inputs and
# targets batches are cut from): see memory_needed.
TRAINING_COPIES = 4
MEMORY_FALLBACK = 64 * 2**30  # bytes assumed where the physical memory cannot be read


# --- the config: every default here is the mnist preset's value (configs/mnist.yaml) ----------


@dataclass(frozen=True)
class ElasticConfig:
    alpha: float = key(34.0, help="A: how far, in pixels, the smoothed random field moves each pixel "
                       "(Simard et al. 2003)")
    sigma: float = key(4.0, help="S: the width, in pixels, of the Gaussian that smooths the field (> 0)")


@dataclass(frozen=True)
class AugmentConfig:
    shift: int = key(2, help="training images are shifted by a random whole number of pixels in −shift…shift "
                     "along each axis (zero fill); with rotate, scale, shear or elastic on, a continuous "
                     "translation; 0 = off; less than 28")
    flip: bool = key(False, help="random horizontal flips of training images; refused for mnist and kmnist, "
                     "whose characters do not survive a mirror image")
    rotate: float = key(15.0, help="random rotation of each training image by up to ±rotate degrees "
                        "(bilinear resampling, zero outside); in [0, 180]")
    scale: float = key(0.15, help="random scaling by a factor in [1 − scale, 1 + scale]; in [0, 0.9]")
    shear: float = key(0.0, help="random shear by up to ±shear degrees; in [0, 60]")
    elastic: ElasticConfig | None = key(
        factory=ElasticConfig, help="Simard et al.'s elastic distortion: per image a field of U(−1, 1) "
        "displacements, smoothed by a Gaussian of sigma pixels and scaled by alpha pixels; null = off")
    clean_fraction: float = key(0.1, help="the last epochs, this fraction of training.epochs (rounded), "
                                "train on the images as they are, augmentation off: a short fine-tune on "
                                "the real data at the end of the schedule; 0 = every epoch augmented; in [0, 1]")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = key("mnist", help="which registered data set to load (and fetch when missing): mnist, "
                       "fashion-mnist or kmnist")
    dir: str = key("data", help="the folder holding <dataset>/ with the four IDX files; the environment "
                   "variable MLPCLI_DATA_DIR (or --data-dir) sets it")
    path: str | None = key(None, help="your own data instead of dir/<dataset>: an IDX folder, a CSV file or "
                           "folder, a .npz or an image folder; never fetched")
    format: str | None = key(None, help="what data.path holds: idx, csv, npz or images; null: recognized "
                             "from the path")
    preprocess: str = key("digits", help="image folders: digits (MNIST's recipe, 28×28, as predict uses) or "
                          "none (the images as they are, all of one size)")
    validation: int = key(10000, help="examples held out from the END of the training set for validation; "
                          "0 = none (then no best.npz, and early_stopping is an error)")
    augment: AugmentConfig = key(factory=AugmentConfig, help="random distortions of the training images, "
                                 "drawn afresh every epoch (28×28 images only)")


@dataclass(frozen=True)
class ModelConfig:
    layers: tuple[int, ...] = key((784, 800, 800, 10), help="neurons per layer, input first; a registered "
                                  "data set needs 784 (28×28 pixels) in and 10 (classes) out")
    activation: str | tuple[str, ...] = key("relu", help="hidden-layer activation: sigmoid, tanh, relu, "
                                            "leaky_relu or identity; or a list, one per hidden layer")
    output: str = key("softmax", help="output layer: softmax, sigmoid or identity")
    init: str = key("he", help="weight initialization: normal (N(0, 1), as in 3Blue1Brown's "
                    "\"Backpropagation calculus\"), nielsen (N(0, 1/n_in)), xavier or he")
    dropout: float | tuple[float, ...] = key(0.0, help="inverted-dropout rate of the hidden layers in [0, 1), "
                                             "one for all or a list with one per hidden layer; 0 = off; "
                                             "training only")

    def hidden_activations(self) -> tuple[str, ...]:
        """One activation name per hidden layer."""
        return per_hidden_layer(self.activation, len(self.layers) - 2)

    def dropout_rates(self) -> tuple[float, ...]:
        """One dropout rate per hidden layer (0 = no dropout)."""
        return per_hidden_layer(self.dropout, len(self.layers) - 2)


@dataclass(frozen=True)
class RegularizationConfig:
    l2: float = key(1.0, help="λ ≥ 0 in J = (1/m) Σ_batch c + (λ/2n) Σ_l ‖W[l]‖², m the batch size and n "
                    "the number of examples trained on (after the validation hold-out); biases are not "
                    "regularized. Nielsen's chapter-3 convention: his λ = 5.0 means the same here")


@dataclass(frozen=True)
class AdamConfig:
    beta1: float = key(0.9, help="Adam's first-moment decay, in [0, 1)")
    beta2: float = key(0.999, help="Adam's second-moment decay, in [0, 1)")
    eps: float = key(1e-8, help="Adam's denominator guard (> 0)")


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = key("cosine", help="learning-rate schedule: constant, step (× factor every step_every "
                    "epochs) or cosine (half a cosine from the learning rate towards 0 over the run)")
    step_every: int = key(10, help="epochs between steps of the step schedule (≥ 1)")
    factor: float = key(0.5, help="multiplier of the step schedule, in (0, 1]")
    warmup_epochs: int = key(0, help="epochs of linear warm-up before the schedule (≥ 0)")


@dataclass(frozen=True)
class EarlyStoppingConfig:
    patience: int = key(10, help="stop after this many epochs without improvement (≥ 1)")
    metric: str = key("val_accuracy", help="what must improve: val_accuracy or val_loss")


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = key(65, help="passes over the training set (≥ 1)")
    batch_size: int = key(128, help="examples per mini-batch (≥ 1)")
    learning_rate: float = key(0.05, help="step size (> 0); the schedule scales it per epoch")
    optimizer: str = key("nesterov", help="sgd, momentum, nesterov or adam")
    momentum: float = key(0.9, help="momentum coefficient in [0, 1) of momentum and nesterov")
    adam: AdamConfig = key(factory=AdamConfig, help="Adam's constants")
    ema: float | None = key(0.999, help="weight averaging: θ̄, the moving average of the weights with decay "
                            "d = min(ema, (1 + t)/(10 + t)) per step t (updated every 4th step: θ̄ ← d⁴ θ̄ + "
                            "(1 − d⁴) θ), is what is validated, saved and evaluated; a decay in [0, 1) "
                            "(0.999 averages about the last 1,000 steps); null = off")
    schedule: ScheduleConfig = key(factory=ScheduleConfig, help="how the learning rate changes from epoch "
                                   "to epoch")
    early_stopping: EarlyStoppingConfig | None = key(None, help="null = off; setting any of its keys turns "
                                                     "it on, with the others at their defaults")
    seed: int = key(0, help="seeds initialization, shuffling, dropout and augmentation (≥ 0): same config "
                    "and seed, same weights on the same machine and BLAS build")
    dtype: str = key("float32", help="float32 or float64 for training (gradcheck always uses float64)")


@dataclass(frozen=True)
class OutputConfig:
    dir: str | None = key(None, help="the run folder; null = runs/<name>-<YYYYmmdd-HHMMSS>")


@dataclass(frozen=True)
class Config:
    """A resolved mlpcli config: frozen dataclasses, one per section, whose defaults are the
    ``mnist`` preset. Build one with ``load_config``; ``config_to_dict`` and ``dump_yaml``
    write it out. Every key, with its default and meaning, is in the configuration reference."""

    name: str = key(DEFAULT_NAME, help="names the run folder runs/<name>-<timestamp>; a plain name, no /. "
                    "Default: the preset's name or the config file's stem")
    data: DataConfig = key(factory=DataConfig, help="where the examples come from and how they are "
                           "held out and distorted")
    model: ModelConfig = key(factory=ModelConfig, help="the network")
    cost: str = key("log_likelihood", help="per-example cost c: quadratic (Σ_j (y_j − a_j)², no ½), "
                    "cross_entropy (sigmoid output only) or log_likelihood (−ln a_y; softmax output only)")
    regularization: RegularizationConfig = key(factory=RegularizationConfig, help="the L2 penalty")
    training: TrainingConfig = key(factory=TrainingConfig, help="the optimization")
    output: OutputConfig = key(factory=OutputConfig, help="where the run is written")


# --- public functions ---------------------------------------------------------------------------


def load_config(
    base: str | os.PathLike | Config | dict | None = None,
    overrides: Sequence[str] = (),
    *,
    data_dir: str | os.PathLike | None = None,
    flags: Sequence[tuple[str, dict]] = (),
) -> Config:
    """The resolved, validated config.

    ``base``: None (the defaults), a preset name or a YAML path, a ``Config``, or a (partial)
    dict in ``config_to_dict``'s form; a Config or dict keeps its ``name``. ``overrides``:
    ``--set`` items ``"key.path=value"`` (values parsed as YAML). ``data_dir``: the
    ``--data-dir`` layer (sets data.dir; beats the environment and the base, not ``--set``).
    ``flags``: more (label, nested mapping) layers after it, e.g. ``("--data-path", {"data":
    {"path": P}})``, whose errors name the label.
    """
    name, source = _read_base(base)
    layers: list[tuple[str, Any]] = []
    if os.environ.get(DATA_DIR_ENV):
        layers.append((f"environment variable {DATA_DIR_ENV}", {"data": {"dir": os.environ[DATA_DIR_ENV]}}))
    if source is not None:
        layers.append(source)
    if data_dir is not None:
        layers.append(("--data-dir", {"data": {"dir": _fspath(data_dir)}}))
    layers += [(label, _fspaths(layer)) for label, layer in flags]
    layers += [(set_label(item), parse_override(item, SET_HINT, SET_VALUE_HINT)) for item in overrides]
    return _resolve(Config(name=name), layers)


def config_from_dict(d: dict, source: str = "<checkpoint>") -> Config:
    """A Config from ``config_to_dict``'s output (e.g. a checkpoint's meta), fully validated;
    errors name ``source``. Unlike ``load_config``, the environment is not consulted, and the
    memory check is left out: the weights of a saved run fitted where it was trained."""
    return _resolve(Config(), [(source, d)], memory=False)


def config_to_dict(cfg: Config) -> dict:
    """Plain nested dicts and lists (YAML- and JSON-able), in the dataclasses' field order."""
    return plain(cfg)


def dump_yaml(cfg: Config) -> str:
    """The config as YAML that ``load_config`` reads back to an equal Config."""
    body = yaml.dump(config_to_dict(cfg), Dumper=Dumper, sort_keys=False, default_flow_style=None, width=100)
    return "# mlpcli resolved config: every key, all paths absolute\n" + body


def list_presets() -> list[str]:
    """Names of the packaged presets (``--config NAME``)."""
    root = resources.files("mlpcli.presets")
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


# --- reading the base ---------------------------------------------------------------------------


def _read_base(base) -> tuple[str, tuple[str, Any] | None]:
    """(the name under the base, (label for messages, the base as a nested mapping) or None)."""
    if base is None:
        return DEFAULT_NAME, None
    if isinstance(base, Config):
        return DEFAULT_NAME, ("config object", config_to_dict(base))
    if isinstance(base, dict):
        return DEFAULT_NAME, ("config dict", base)
    if isinstance(base, (str, os.PathLike)):
        name, label, raw = _read_file(base)
        return name, (label, raw)
    raise TypeError(f"load_config: base must be None, a preset name, a path, a Config or a dict, "
                    f"not {type(base).__name__}")


def _read_file(source: str | os.PathLike) -> tuple[str, str, Any]:
    """(config name, label for messages, parsed YAML) of a YAML path or a preset name."""
    path = Path(source).expanduser()
    try:
        path.stat()
    except (OSError, ValueError) as error:  # too long a name, no permission, a NUL byte …
        if isinstance(error, OSError) and error.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise ConfigError(f"cannot read config file {shorten(str(source))}: {error.strerror}") from None
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read config file {source}: {error}") from None
        label = printable(str(source))
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
            f"no config file or preset named {quoted(str(source))}",
            f"give a path to a YAML file or one of the presets: {', '.join(presets)}"
            + did_you_mean(str(source), presets),
        )
    raw = load_yaml(text, label)
    return path.stem, label, {} if raw is None else raw


def _fspath(value):
    """A path-like as its str (bytes and other types are left for the type check to name)."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _fspaths(layer):
    """``_fspath`` applied to every value of a nested mapping."""
    if isinstance(layer, dict):
        return {key: _fspaths(value) for key, value in layer.items()}
    return _fspath(layer)


def _resolve(base: Config, layers: list[tuple[str, Any]], memory: bool = True) -> Config:
    """``layers`` merged over ``base``, built, validated (with ``memory``: also whether training
    fits in this machine's memory), with absolute paths."""
    merged = Layers(Config, config_to_dict(base), ALIASES)
    for label, layer in layers:
        merged.add(label, layer)
    cfg = merged.build()
    _validate(cfg, merged.where)
    if memory:
        _validate_memory(cfg, Checker(merged.where))
    return _absolute_paths(cfg)


# --- checking the merged config as a whole -------------------------------------------------------


def _validate(cfg: Config, where) -> None:
    """Ranges, names and combinations; ``where(*keys)`` names the layer that set the keys."""
    check = Checker(where)
    if not cfg.name or cfg.name in (".", "..") or "/" in cfg.name or "\\" in cfg.name:
        check.fail("name", f"must be a plain name for a run folder, got {quoted(cfg.name)}")
    for key, value in (("data.dir", cfg.data.dir), ("data.path", cfg.data.path), ("output.dir", cfg.output.dir)):
        if value == "":
            check.fail(key, "must not be empty", "give a folder, or null where that is allowed")
        if value is not None and "\0" in value:
            check.fail(key, f"must not contain a NUL byte, got {show(value)}")
    _validate_data(cfg.data, check)
    _validate_model(cfg.model, cfg.cost, check, registered=cfg.data.path is None)
    _validate_training(cfg.training, cfg.data, cfg.regularization, check)


def _validate_data(d: DataConfig, check: Checker) -> None:
    check.choice("data.dataset", d.dataset, DATASETS)
    if d.format is not None:
        check.choice("data.format", d.format, FORMATS)
    check.choice("data.preprocess", d.preprocess, PREPROCESSING)
    check.at_least("data.validation", d.validation, 0, " (examples held out; 0 = none)")
    check.at_least("data.augment.shift", d.augment.shift, 0, " pixels")
    if not 0 <= d.augment.clean_fraction <= 1:
        check.fail("data.augment.clean_fraction", f"must be in [0, 1], got {show(d.augment.clean_fraction)}")
    a = d.augment
    for key, value, top in (("rotate", a.rotate, 180), ("scale", a.scale, 0.9), ("shear", a.shear, 60)):
        if not 0 <= value <= top:
            check.fail(f"data.augment.{key}", f"must be in [0, {top}], got {value}")
    if a.elastic is not None:
        check.at_least("data.augment.elastic.alpha", a.elastic.alpha, 0, " pixels")
        check.positive("data.augment.elastic.sigma", a.elastic.sigma)
    if d.augment.shift >= SIDE:
        check.fail("data.augment.shift", f"must be < {SIDE} pixels (the image size), got {show(d.augment.shift)}")
    if d.augment.flip and d.dataset in NO_FLIP:
        check.fail("data.augment.flip", f"cannot be true for {d.dataset}: {NO_FLIP[d.dataset]} do not "
                   "survive a mirror image", "use flip only for fashion-mnist", also=("data.dataset",))


def _validate_model(m: ModelConfig, cost: str, check: Checker, registered: bool = True) -> None:
    example = f"e.g. [{INPUT_SIZE}, 100, {N_CLASSES}]"
    if not m.layers:
        check.fail("model.layers", "must not be empty", example)
    if any(n < 1 for n in m.layers):
        check.fail("model.layers", f"must all be >= 1, got {show(m.layers)}")
    # A registered data set is 28×28 pixels in 10 classes; data.path may hold any h×w and K ≥ 2,
    # checked against the data when it is loaded.
    if len(m.layers) < 2 or (registered and (m.layers[0] != INPUT_SIZE or m.layers[-1] != N_CLASSES)):
        check.fail("model.layers", f"must start at {INPUT_SIZE} ({SIDE}×{SIDE} pixels) and end at "
                   f"{N_CLASSES} (classes), got {show(m.layers)}", example)
    if m.layers[-1] < 2:
        check.fail("model.layers", f"must end at >= 2 (classes), got {show(m.layers)}", example)
    n_hidden = len(m.layers) - 2
    for key, value in (("model.activation", m.activation), ("model.dropout", m.dropout)):
        if isinstance(value, tuple) and len(value) != n_hidden:
            check.fail(key, f"has {len(value)} entries for {n_hidden} hidden layers ({show(value)})",
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
        check.fail("cost", f"{quoted(cost)} does not fit model.output {quoted(m.output)}", error.hint,
                   also=("model.output",))


def _validate_training(t: TrainingConfig, d: DataConfig, r: RegularizationConfig, check: Checker) -> None:
    check.at_least("regularization.l2", r.l2, 0, " (λ)")
    check.at_least("training.epochs", t.epochs, 1)
    check.at_least("training.batch_size", t.batch_size, 1)
    check.positive("training.learning_rate", t.learning_rate)
    check.choice("training.optimizer", t.optimizer, OPTIMIZERS)
    check.fraction("training.momentum", t.momentum)
    if t.ema is not None:
        check.fraction("training.ema", t.ema)
    check.fraction("training.adam.beta1", t.adam.beta1)
    check.fraction("training.adam.beta2", t.adam.beta2)
    check.positive("training.adam.eps", t.adam.eps)
    check.choice("training.schedule.name", t.schedule.name, SCHEDULES)
    check.at_least("training.schedule.step_every", t.schedule.step_every, 1, " epochs")
    if not 0 < t.schedule.factor <= 1:
        check.fail("training.schedule.factor", f"must be in (0, 1], got {show(t.schedule.factor)}")
    check.at_least("training.schedule.warmup_epochs", t.schedule.warmup_epochs, 0)
    if t.early_stopping is not None:
        check.at_least("training.early_stopping.patience", t.early_stopping.patience, 1, " epochs")
        check.choice("training.early_stopping.metric", t.early_stopping.metric, EARLY_STOPPING_METRICS)
        if d.validation == 0:
            check.fail("training.early_stopping", "needs a validation set, but data.validation is 0",
                       "set data.validation > 0 or training.early_stopping: null", also=("data.validation",))
    check.at_least("training.seed", t.seed, 0)
    check.choice("training.dtype", t.dtype, DTYPES)


# --- will training fit in memory? --------------------------------------------------------------


def memory_needed(layers: Sequence[int], batch_size: int, dtype: str) -> tuple[int, int]:
    """(bytes for the parameters, bytes for one batch's activations) that training ``layers``
    in batches of ``batch_size`` needs at least, estimated before anything is allocated.

    Parameters: Σ (n_in × n_out + n_out) weights and biases × the dtype's bytes ×
    TRAINING_COPIES (4: the parameters, their gradients and up to two optimizer slots).
    Activations: batch_size × Σ layers × the dtype's bytes × TRAINING_COPIES (z, a and δ of
    every layer, plus the chunk of inputs and targets that batches are cut from).
    """
    size = _itemsize(dtype)
    parameters = sum(n_in * n_out + n_out for n_in, n_out in zip(layers, layers[1:]))
    return parameters * size * TRAINING_COPIES, batch_size * sum(layers) * size * TRAINING_COPIES


def physical_memory() -> int:
    """This machine's physical memory in bytes, or MEMORY_FALLBACK where it cannot be read."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return MEMORY_FALLBACK
    return total if total > 0 else MEMORY_FALLBACK


def _validate_memory(cfg: Config, check: Checker) -> None:
    """Refuse a model or batch whose training would not fit in this machine's memory."""
    layers, t = cfg.model.layers, cfg.training
    weights, activations = memory_needed(layers, t.batch_size, t.dtype)
    have = physical_memory()
    if weights + activations <= have:
        return
    total = f"needs about {_bytes(weights + activations)} to train"
    machine = f"this machine has {_bytes(have)} of memory"
    smaller = ", or training.dtype float32 (half the bytes)" if t.dtype == "float64" else ""
    if weights >= activations:
        terms = shorten(" + ".join(f"{_count(a)}×{_count(b)}" for a, b in zip(layers, layers[1:])), 120)
        n = weights // TRAINING_COPIES // _itemsize(t.dtype)
        check.fail("model.layers", f"{total}: the weights alone need {_bytes(weights // TRAINING_COPIES)} "
                   f"({terms} + biases = {_count(n)} {t.dtype} parameters), ×{TRAINING_COPIES} with "
                   f"gradients and optimizer state; {machine}",
                   f"use fewer or smaller hidden layers, e.g. [{INPUT_SIZE}, 800, 800, {N_CLASSES}]{smaller}",
                   also=("training.dtype",))
    check.fail("training.batch_size", f"{_count(t.batch_size)} {total}: one batch's activations take "
               f"{_bytes(activations)} ({_count(t.batch_size)} examples × {_count(sum(layers))} units × "
               f"{_itemsize(t.dtype)} bytes × {TRAINING_COPIES}); "
               f"{machine}", f"use a smaller batch, e.g. 128{smaller}", also=("model.layers", "training.dtype"))


def _itemsize(dtype: str) -> int:
    """Bytes per number of ``dtype`` ("float32" or "float64")."""
    return 8 if dtype == "float64" else 4


def _count(n: int) -> str:
    """An integer with thousands separators (10^k beyond what is worth writing out)."""
    return f"{n:,}" if n < 10**30 else f"~10^{int(n.bit_length() * 0.30103)}"


def _bytes(n: int) -> str:
    """A byte count in decimal units: "313.6 GB"."""
    if n >= 10**24:
        return f"{_count(n)} bytes"
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB", "EB"):
        if n < 1000 or unit == "EB":
            break
        n /= 1000
    return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"


def _absolute_paths(cfg: Config) -> Config:
    def absolute(p: str | None) -> str | None:
        return None if p is None else os.path.abspath(os.path.expanduser(p))

    data = dataclasses.replace(cfg.data, dir=absolute(cfg.data.dir), path=absolute(cfg.data.path))
    return dataclasses.replace(cfg, data=data, output=OutputConfig(dir=absolute(cfg.output.dir)))
