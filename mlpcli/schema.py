"""Layered configs for any tree of frozen dataclasses: YAML reading, merging, type checks.

This module owns the generic machinery and knows nothing about mlpcli's keys (it does not
import ``mlpcli.config``, which owns the dataclasses, the defaults and the validation rules):

* ``load_yaml`` — YAML 1.2-style numbers (``1e-8`` is a float) and no duplicate keys; errors
  name the file and line (or the ``--set`` item);
* ``parse_override`` — ``"a.b=value"`` → ``{"a": {"b": value}}``, the value parsed as YAML;
* ``Layers`` — partial nested mappings merged in order over a base, each checked as it is
  merged (unknown keys with a "did you mean", wrong types), remembering which layer set each
  key last so that later errors can name it (``Layers.where``);
* ``build`` / ``convert`` — the merged mapping → dataclass instances (lists → tuples, ints →
  floats where a float is declared); ``plain`` — the reverse, for YAML and JSON;
* ``Checker`` — range and choice checks of a built config whose errors name the key and the
  layer that set it;
* ``describe``, ``show``, ``hints``, ``section_type``, ``all_keys``, ``did_you_mean``,
  ``suggest_key`` — the helpers behind those messages.

Type hints understood: int, float, str, bool, None, ``tuple[T, ...]``, unions of these, and
nested dataclasses (optionally ``| None``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
import types
import typing
from typing import Any, Callable, Mapping

import yaml

from mlpcli.errors import ConfigError

# --- YAML ---------------------------------------------------------------------------------------


class Loader(yaml.SafeLoader):
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


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str, label: str, value_hint: str | None = None) -> Any:
    """Parsed YAML. ``value_hint`` None: ``text`` is a file (errors give label:line:column and
    say to fix that line); else it is one ``--set`` value and ``value_hint`` is the error's hint."""
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 — a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        file = value_hint is None
        where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark and file else label
        problem = getattr(error, "problem", None) or str(error)
        hint = "fix the YAML at that line" if file else value_hint
        raise ConfigError(f"{where}: not valid YAML: {problem}", hint) from None


def parse_override(item: str, hint: str, value_hint: str) -> dict:
    """``"a.b=value"`` → ``{"a": {"b": <value parsed as YAML>}}``; ``hint`` (an example of the
    form) and ``value_hint`` (an example value) are the hints of the two possible errors."""
    key, sep, value = item.partition("=")
    keys = key.strip().split(".")
    if not sep or not all(keys):
        raise ConfigError(f"--set {item!r} is not key.path=value", hint)
    nested: Any = load_yaml(value, f"--set {item}", value_hint)
    for k in reversed(keys):
        nested = {k: nested}
    return nested


# --- merging layers, checking keys and types ----------------------------------------------------


class Layers:
    """Partial nested mappings merged in order over ``base`` (a full mapping of ``root``).

    Each ``add`` checks its layer against ``root``'s type hints; ``aliases`` (other programs'
    names → dotted keys) only serve "did you mean" hints. ``where(*keys)`` is the label of the
    latest layer that set any of the keys ("defaults" when none did).
    """

    def __init__(self, root: type, base: dict, aliases: Mapping[str, str] | None = None):
        self.root, self.aliases = root, dict(aliases or {})
        self.merged = base
        self.origin: dict[str, tuple[int, str]] = {}  # dotted key → (layer number, label)
        self.count = 0

    def add(self, label: str, layer: Any) -> None:
        self.count += 1
        self.merged = self._merge(self.root, self.merged, layer, "", (self.count, label))

    def where(self, *paths: str) -> str:
        return max((self.origin.get(p, (0, "defaults")) for p in paths), key=lambda o: o[0])[1]

    def build(self):
        """The merged mapping as an instance of ``root``."""
        return build(self.root, self.merged)

    def _merge(self, cls, current: dict, layer: Any, prefix: str, source: tuple[int, str]) -> dict:
        label = source[1]
        section = prefix.rstrip(".") or "the config"
        if not isinstance(layer, dict):
            raise ConfigError(
                f"{label}: {section} must be a mapping of keys to values, got {show(layer)}",
                f"valid keys: {', '.join(hints(cls))}",
            )
        known = hints(cls)
        merged = dict(current)
        for key, value in layer.items():
            path = f"{prefix}{key}"
            if key not in known:
                raise ConfigError(
                    f"{label}: unknown key {path!r}",
                    f"valid keys in {section}: {', '.join(known)}"
                    + suggest_key(str(key), known, self.root, self.aliases),
                )
            sub, optional = section_type(known[key])
            if sub is not None and not (optional and value is None):
                if not isinstance(value, dict):
                    nullable = " or null" if optional else ""
                    raise ConfigError(
                        f"{label}: {path} must be a mapping{nullable}, got {show(value)}",
                        f"valid keys in {path}: {', '.join(hints(sub))}",
                    )
                start = merged[key] if merged[key] is not None else plain(sub())
                merged[key] = self._merge(sub, start, value, f"{path}.", source)
            else:
                try:
                    convert(known[key], value)
                except Mismatch:
                    raise ConfigError(
                        f"{label}: {path} must be {describe(known[key])}, got {show(value)}"
                    ) from None
                merged[key] = value
            self.origin[path] = source
        return merged


def build(cls, d: dict):
    """Dataclass ``cls`` from a full nested mapping whose values ``convert`` accepts."""
    kwargs = {}
    for name, hint in hints(cls).items():
        sub, _ = section_type(hint)
        value = d[name]
        kwargs[name] = build(sub, value) if sub is not None and value is not None else convert(hint, value)
    return cls(**kwargs)


class Mismatch(Exception):
    """A value that does not fit a type hint (``convert``)."""


def convert(hint, value):
    """``value`` as type ``hint`` (lists → tuples, ints → floats), or raise Mismatch."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return convert(option, value)
            except Mismatch:
                pass
        raise Mismatch
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise Mismatch
        return tuple(convert(typing.get_args(hint)[0], v) for v in value)
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
    raise Mismatch


_NAMES = {int: ("an integer", "integers"), float: ("a number", "numbers"), str: ("a string", "strings"),
          bool: ("true or false", "booleans"), type(None): ("null", "nulls")}


def describe(hint) -> str:
    """A type hint in words: "an integer", "a string or a list of strings" …"""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(h) for h in typing.get_args(hint))
    if origin is tuple:
        return f"a list of {_NAMES[typing.get_args(hint)[0]][1]}"
    return _NAMES[hint][0]


def show(value) -> str:
    """A value as YAML/JSON would write it (true, null, "text", [1, 2])."""
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)


@functools.cache
def hints(cls) -> dict:
    """A dataclass's field names → resolved type hints, in field order."""
    return typing.get_type_hints(cls)


def section_type(hint):
    """(dataclass, may be null) when ``hint`` is a nested section, else (None, False)."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for option in options:
        if dataclasses.is_dataclass(option):
            return option, type(None) in options
    return None, False


def plain(value):
    """Dataclasses → dicts, tuples → lists, recursively (YAML- and JSON-able)."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value


# --- suggestions --------------------------------------------------------------------------------


def did_you_mean(word: str, candidates) -> str:
    """"; did you mean 'x'?" for the closest candidate, or "" when none is close."""
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def all_keys(cls, prefix: str = "") -> list[str]:
    """Every dotted key of dataclass ``cls``, sections included, in field order."""
    keys = []
    for name, hint in hints(cls).items():
        keys.append(f"{prefix}{name}")
        sub, _ = section_type(hint)
        if sub is not None:
            keys += all_keys(sub, f"{prefix}{name}.")
    return keys


def suggest_key(key: str, known: dict, root: type, aliases: Mapping[str, str]) -> str:
    """A close key in the same section (``known``), else an alias's key, else the same (or a
    close) key in another section of ``root``."""
    same = did_you_mean(key, known)
    if same:
        return same
    if key.lower() in aliases:
        return f"; did you mean {aliases[key.lower()]!r}?"
    elsewhere = {k.rsplit(".", 1)[-1]: k for k in all_keys(root)}
    match = difflib.get_close_matches(key, list(elsewhere), n=1, cutoff=0.75)
    return f"; did you mean {elsewhere[match[0]]!r}?" if match else ""


# --- checking a built config as a whole ---------------------------------------------------------


class Checker:
    """Raises a ConfigError that names the key and the layer that set it (``where``, e.g.
    ``Layers.where``: dotted keys → a label such as a file name or ``--set …``)."""

    def __init__(self, where: Callable[..., str]):
        self.where = where

    def fail(self, path: str, problem: str, hint: str | None = None, also: tuple[str, ...] = ()):
        raise ConfigError(f"{self.where(path, *also)}: {path} {problem}", hint)

    def choice(self, path: str, value, valid) -> None:
        if value not in valid:
            self.fail(path, f"is {value!r}, which is not known",
                      f"choose one of: {', '.join(valid)}{did_you_mean(str(value), valid)}")

    def at_least(self, path: str, value, low, unit: str = "") -> None:
        if not value >= low:  # `not >=` so that NaN fails too
            self.fail(path, f"must be >= {low}{unit}, got {value}")

    def positive(self, path: str, value) -> None:
        if not 0 < value < float("inf"):
            self.fail(path, f"must be > 0, got {value}")

    def fraction(self, path: str, value) -> None:
        if not 0 <= value < 1:
            self.fail(path, f"must be in [0, 1), got {value}")
