"""The search space of a study: which config keys it varies, and over what (SPACE.yaml).

    training.learning_rate: {low: 0.001, high: 1.0, log: true}    # a range, on a log scale
    regularization.l2: {low: 0, high: 10}                           # a range
    training.batch_size: {low: 10, high: 100, step: 10}             # a range in steps
    model.layers: {choices: [[784, 100, 10], [784, 300, 10]]}       # one of a few values

Whether a range holds integers or numbers is the config key's own type (``training.epochs`` is
an integer, ``regularization.l2`` a number, whatever the bounds look like). Every key and every
value — both bounds, each choice — goes through ``load_config`` over the base config, the same
layering ``--set`` goes through: an unknown key (with a "did you mean"), a wrong type or a value
out of range is one error naming the key and the space file, before any trial starts.

Nothing here knows Optuna: a study asks each ``Param`` for its ``grid`` or its ``choices`` and
turns the values it draws back into config values with ``Param.value``.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpcli.errors import ConfigError
from mlpcli.run.config import Config, config_to_dict, load_config
from mlpcli.run.schema import did_you_mean, load_yaml, plain, printable, quoted, show

FORMS = ("low", "high", "log", "step", "choices")
EXAMPLE = "e.g. training.learning_rate: {low: 0.001, high: 1.0, log: true} or model.layers: {choices: [[784, 30, 10]]}"
MAX_GRID = 100_000  # points a grid may have: more is a typo, not a study


@dataclass(frozen=True)
class Param:
    """One config key of the space: a range (``low``..``high``, ``log``, ``step``; integers when
    the key is an integer) or a list of ``choices`` (any config values, lists included)."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False
    choices: tuple = ()

    @property
    def labels(self) -> tuple:
        """The choices as a sampler stores them: numbers, strings, booleans and null as they
        are, lists as their compact JSON text ("[784, 100, 10]")."""
        return tuple(_label(c) for c in self.choices)

    def value(self, drawn):
        """The config value for what a sampler drew (a choice's label back to the choice)."""
        if self.choices:
            return self.choices[self.labels.index(drawn)]
        return int(drawn) if self.integer else float(drawn)

    def grid(self) -> list | None:
        """Every value a grid search tries, or None for a continuous range (no step)."""
        if self.choices:
            return list(self.labels)
        if self.step is None and not self.integer:
            return None
        step = self.step or 1
        count = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        if count > MAX_GRID:
            return [None] * (MAX_GRID + 1)
        return [self.value(round(self.low + k * step, 12)) for k in range(count)]

    def describe(self) -> dict:
        """The parameter as plain data (how a study remembers its space)."""
        if self.choices:
            return {"choices": list(self.labels)}
        return {"low": self.low, "high": self.high, "log": self.log, "step": self.step, "integer": self.integer}


@dataclass(frozen=True)
class Space:
    path: Path
    params: tuple[Param, ...]

    def describe(self) -> dict:
        return {p.key: p.describe() for p in self.params}

    def grid(self, label: str = "--sampler grid") -> dict[str, list]:
        """key → values for a grid search; a ConfigError for a range without a step, or a grid
        too big to be meant."""
        grid = {}
        for p in self.params:
            values = p.grid()
            if values is None:
                raise ConfigError(f"{label} needs a finite set of values, but {p.key} in {printable(str(self.path))} "
                                  f"is a continuous range", f"give it a step or choices, e.g. {p.key}: "
                                  f"{{low: {p.low:g}, high: {p.high:g}, step: {(p.high - p.low) / 4:g}}}")
            grid[p.key] = values
        size = math.prod(len(v) for v in grid.values())
        if size > MAX_GRID:
            raise ConfigError(f"{label}: the space in {printable(str(self.path))} has {size:,} grid points",
                              f"use fewer values (at most {MAX_GRID:,} points), or --sampler tpe")
        return grid

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())


def read_space(path, base: Config) -> Space:
    """The space in YAML file ``path``, every key and value checked against ``base`` (the
    resolved base config) by the config's own rules."""
    path = Path(path)
    label = printable(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        why = getattr(error, "strerror", None) or error
        raise ConfigError(f"cannot read the search space {label}: {why}", "give a YAML file like: " + EXAMPLE) from None
    raw = load_yaml(text, label)
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{label}: a search space is a mapping of config keys to ranges or choices, "
                          f"got {show(raw)}", EXAMPLE)
    base_dict = config_to_dict(base)
    return Space(path, tuple(_param(label, str(key), spec, base_dict) for key, spec in raw.items()))


def _param(label: str, key: str, spec: Any, base: dict) -> Param:
    if not isinstance(spec, dict) or not spec:
        raise ConfigError(f"{label}: {key} must be {{low, high}} (with log or step) or {{choices: [...]}}, "
                          f"got {show(spec)}", EXAMPLE if "." in key else
                          f"write each key in full, with dots: {key}.<key>: {{low: …, high: …}}")
    for word in spec:
        if word not in FORMS:
            raise ConfigError(f"{label}: {key} has an unknown field {quoted(str(word))}",
                              f"the fields are {', '.join(FORMS)}" + did_you_mean(str(word), FORMS))
    if "choices" in spec:
        return _choices(label, key, spec, base)
    return _range(label, key, spec, base)


def _choices(label: str, key: str, spec: dict, base: dict) -> Param:
    choices = spec["choices"]
    others = sorted(set(spec) - {"choices"})
    if others:
        raise ConfigError(f"{label}: {key} has choices and {', '.join(others)}", "give either choices or a range")
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{label}: {key}: choices must be a non-empty list, got {show(choices)}", EXAMPLE)
    values = tuple(_checked(base, key, c, f"{label} ({key} choice {i})") for i, c in enumerate(choices, 1))
    labels = [_label(v) for v in values]
    twice = sorted({str(x) for x in labels if labels.count(x) > 1})
    if twice:
        raise ConfigError(f"{label}: {key} lists {twice[0]} twice", "give each choice once")
    return Param(key, choices=values)


def _range(label: str, key: str, spec: dict, base: dict) -> Param:
    missing = [w for w in ("low", "high") if w not in spec]
    if missing:
        raise ConfigError(f"{label}: {key} has no {' and no '.join(missing)}", EXAMPLE)
    low = _checked(base, key, spec["low"], f"{label} ({key} low)")
    high = _checked(base, key, spec["high"], f"{label} ({key} high)")
    if not isinstance(low, (int, float)) or isinstance(low, bool):
        raise ConfigError(f"{label}: {key} is {show(low)}-like, not a number: a range needs a number key",
                          f"give choices instead: {key}: {{choices: [...]}}")
    integer = isinstance(low, int)
    log, step = spec.get("log", False), spec.get("step")
    where = f"{label}: {key}"
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {show(log)}")
    if not low < high:
        raise ConfigError(f"{where}: low must be below high, got low {low:g}, high {high:g}",
                          "swap them, or give choices for a single value")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low:g}", "raise low, or drop log: true")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step) or step <= 0:
            raise ConfigError(f"{where}: step must be a number > 0, got {show(step)}")
        if integer and not isinstance(step, int):
            raise ConfigError(f"{where}: {key} is an integer, so step must be one, got {show(step)}")
        if log:
            raise ConfigError(f"{where}: give log or step, not both", "a log range is continuous")
    return Param(key, low=low, high=high, log=log, step=step, integer=integer)


def _checked(base: dict, key: str, value: Any, label: str) -> Any:
    """``value`` as the config holds it (plain data: 0 → 0.0 for a number key) once set over
    the base with the same layering and checks as ``--set``; errors name ``label``."""
    cfg = load_config(base, flags=[(label, nested(key, value))])
    return plain(functools.reduce(getattr, key.split("."), cfg))


def nested(key: str, value: Any) -> dict:
    """``"a.b", v`` → ``{"a": {"b": v}}``: one key as a config layer."""
    layer: Any = value
    for part in reversed(key.split(".")):
        layer = {part: layer}
    return layer


def _label(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, separators=(", ", ": "))


def shown_value(value) -> str:
    """A parameter's value in a table or a label: numbers to 4 significant digits."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(shown_value(v) for v in value) + "]"
    return str(value)
