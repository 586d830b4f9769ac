"""Layered configs for any tree of frozen dataclasses: YAML reading, merging, type checks.

This module owns the generic machinery and knows nothing about mlpcli's keys (it does not
import ``mlpcli.run.config``, which owns the dataclasses, the defaults and the validation rules):

* ``load_yaml`` — the YAML 1.2 core schema (``1e-8`` is a float, ``010`` is 10, ``yes`` is a
  string), no duplicate keys, no anchors or aliases, at most ``MAX_DEPTH`` levels of nesting;
  errors are one line naming the file and line (or the ``--set`` item);
* ``parse_override`` — ``"a.b=value"`` → ``{"a": {"b": value}}``, the value parsed as YAML;
* ``Layers`` — partial nested mappings merged in order over a base, each checked as it is
  merged (unknown keys with a "did you mean", wrong types), remembering which layer set each
  key last so that later errors can name it (``Layers.where``);
* ``build`` / ``convert`` — the merged mapping → dataclass instances (lists → tuples, ints →
  floats where a float is declared; a float must be finite: no key means anything with
  .inf or .nan, and they would slip past range checks); ``plain`` — the reverse;
* ``Checker`` — range and choice checks of a built config whose errors name the key and the
  layer that set it;
* ``describe``, ``show``, ``shorten``, ``quoted``, ``mismatch_hint``, ``hints``,
  ``section_type``, ``all_keys``, ``did_you_mean``, ``suggest_key`` — the helpers behind those
  messages; every value a message quotes goes through ``show`` (or ``quoted`` for keys and
  names), which cuts it to ``SHOW_LIMIT`` characters.
* ``key`` / ``key_rows`` — a field's default and help text declared together, and every key
  with its type, default and help (what the configuration reference is printed from).

Type hints understood: int, float, str, bool, None, ``tuple[T, ...]``, unions of these, and
nested dataclasses (optionally ``| None``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import re
import types
import typing
from typing import Any, Callable, Mapping

import yaml

from mlpcli.errors import ConfigError

# --- YAML ---------------------------------------------------------------------------------------

# Deeper nesting than this is refused: no config needs it, and PyYAML composes recursively.
MAX_DEPTH = 100
ALIAS_PROBLEM = "config files may not use YAML anchors/aliases (&/*)"
# YAML 1.2 core schema: the only implicit tags (everything else is a string), in the order
# tried, with the first characters each can start with.
CORE_SCHEMA = (
    ("tag:yaml.org,2002:null", r"~|null|Null|NULL|", "~nN"),
    ("tag:yaml.org,2002:bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("tag:yaml.org,2002:int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    ("tag:yaml.org,2002:float", r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)", "-+.0123456789"),
)
PATTERNS = {tag: re.compile(f"^(?:{pattern})$") for tag, pattern, _ in CORE_SCHEMA}
# YAML 1.1's other booleans: strings in YAML 1.2, named in the hint of a type error.
YAML11_BOOLS = {"yes", "no", "on", "off", "y", "n"}
MAX_DIGITS = 4000  # Python refuses to convert longer digit strings to int (sys.int_info)


class Refused(yaml.MarkedYAMLError):
    """Valid YAML that a config may not use (anchors and aliases, deep nesting); ``hint``
    says what to write instead."""

    def __init__(self, problem: str, mark, hint: str):
        super().__init__(None, None, problem, mark)
        self.hint = hint


class Loader(yaml.SafeLoader):
    """safe_load with the YAML 1.2 core schema (``010`` is 10, ``0o17`` 15, ``0x1A`` 26,
    ``1e-8`` a float; ``yes``/``no``/``on``/``off`` and dates are strings), no duplicate keys,
    no anchors or aliases (an alias bomb expands a few hundred bytes into billions of
    values), at most MAX_DEPTH levels of nesting, and errors with a line and column for
    explicitly tagged values that do not fit their tag (``!!float abc``)."""

    yaml_implicit_resolvers: dict = {}
    depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise Refused(ALIAS_PROBLEM, event.start_mark, "write the values out in full")
        if self.depth >= MAX_DEPTH:
            raise Refused(f"nested more than {MAX_DEPTH} levels deep", event.start_mark,
                          "a config is a few levels of mappings and lists")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            what = show(node.value) if isinstance(node, yaml.ScalarNode) else f"this {node.id}"
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {what} as {tag}", node.start_mark) from None

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {quoted(key)}", key_node.start_mark
                )
            if isinstance(key, typing.Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep)

    def core_scalar(self, node, tag: str, what: str) -> str:
        """The scalar's text, or a ConstructorError when it is not a YAML 1.2 ``what``."""
        value = self.construct_scalar(node)
        if not isinstance(value, str) or not PATTERNS[tag].match(value):
            raise yaml.constructor.ConstructorError(
                None, None, f"{show(value)} is not {what} (YAML 1.2 core schema)", node.start_mark)
        return value

    def construct_yaml_bool(self, node):
        return self.core_scalar(node, "tag:yaml.org,2002:bool", "true or false").lower() == "true"

    def construct_yaml_int(self, node):
        value = self.core_scalar(node, "tag:yaml.org,2002:int", "an integer")
        if len(value) > MAX_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(value):,} digits is too long", node.start_mark)
        if value[:2] in ("0o", "0x"):
            return int(value[2:], 8 if value[1] == "o" else 16)
        return int(value)

    def construct_yaml_float(self, node):
        value = self.core_scalar(node, "tag:yaml.org,2002:float", "a number")
        special = value.lower().lstrip("+-")
        if special in (".inf", ".nan"):
            return float(("-" if value.startswith("-") else "") + special[1:])
        return float(value)


for _tag, _pattern, _first in CORE_SCHEMA:
    Loader.add_implicit_resolver(_tag, PATTERNS[_tag], list(_first) + ([""] if _tag.endswith("null") else []))
for _tag, _method in (("bool", Loader.construct_yaml_bool), ("int", Loader.construct_yaml_int),
                      ("float", Loader.construct_yaml_float)):
    Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _method)


class Dumper(yaml.SafeDumper):
    """safe_dump that quotes every string either YAML 1.1 or the 1.2 core schema would read as
    something else (``"yes"``, ``"0o17"``, ``"1e5"``), so that what it writes, ``Loader``
    (and any other YAML reader) reads back as the same values."""


for _tag, _pattern, _first in CORE_SCHEMA:
    Dumper.add_implicit_resolver(_tag, PATTERNS[_tag], list(_first))


def load_yaml(text: str, label: str, value_hint: str | None = None) -> Any:
    """Parsed YAML. ``value_hint`` None: ``text`` is a file (errors give label:line:column and
    say to fix that line); else it is one ``--set`` value and ``value_hint`` is the error's hint.
    Every error is one line, its quoted parts cut to a readable length."""
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 — a SafeLoader subclass
    except yaml.YAMLError as error:
        raise _yaml_error(error, text, label, value_hint) from None
    except RecursionError:  # MAX_DEPTH should make this unreachable
        raise ConfigError(f"{label}: nested too deeply", "a config is a few levels of mappings and lists") from None


def _yaml_error(error: yaml.YAMLError, text: str, label: str, value_hint: str | None) -> ConfigError:
    """The ConfigError for a YAMLError of ``load_yaml``."""
    file = value_hint is None
    mark = getattr(error, "problem_mark", None)
    line = mark and (mark.line + 1, mark.column + 1)
    if isinstance(error, yaml.reader.ReaderError):  # a character YAML does not allow
        before = text[: error.position]
        line = (before.count("\n") + 1, len(before) - before.rfind("\n"))
    where = f"{label}:{line[0]}:{line[1]}" if line and file else label
    problem = shorten(" ".join(str(getattr(error, "problem", None) or error).split()), 2 * SHOW_LIMIT)
    if isinstance(error, Refused):
        return ConfigError(f"{where}: {problem}", error.hint)
    return ConfigError(f"{where}: not valid YAML: {problem}", "fix the YAML at that line" if file else value_hint)


def set_label(item: str) -> str:
    """The label of a ``--set`` item in messages: "--set a.b=value", one line, cut."""
    return f"--set {shorten(printable(item))}"


def parse_override(item: str, hint: str, value_hint: str) -> dict:
    """``"a.b=value"`` → ``{"a": {"b": <value parsed as YAML>}}``; ``hint`` (an example of the
    form) and ``value_hint`` (an example value) are the hints of the two possible errors."""
    key, sep, value = item.partition("=")
    keys = key.strip().split(".")
    if not sep or not all(keys):
        raise ConfigError(f"--set {shorten(item)!r} is not key.path=value", hint)
    nested: Any = load_yaml(value, set_label(item), value_hint)
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
                    f"{label}: unknown key {quoted(path)}",
                    f"valid keys in {section}: {', '.join(known)}"
                    + suggest_key(shorten(str(key)), known, self.root, self.aliases),
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
                except NotFinite:
                    what = "finite numbers" if isinstance(value, list) else "a finite number"
                    raise ConfigError(f"{label}: {path} must be {what}, got {show(value)}",
                                      "no key takes .inf or .nan: write an ordinary number"
                                      ) from None
                except Mismatch:
                    raise ConfigError(
                        f"{label}: {path} must be {describe(known[key])}, got {show(value)}",
                        mismatch_hint(known[key], value),
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


class NotFinite(Mismatch):
    """A number where a float is declared, but infinite or NaN (or an integer too large to be a
    float): no key of a config means anything with it, so every float key refuses it here."""


def convert(hint, value):
    """``value`` as type ``hint`` (lists → tuples, ints → floats), or raise Mismatch (NotFinite
    for .inf, -.inf, .nan where a float is declared)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        not_finite = False
        for option in typing.get_args(hint):
            try:
                return convert(option, value)
            except NotFinite:
                not_finite = True
            except Mismatch:
                pass
        raise NotFinite if not_finite else Mismatch
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
        try:
            number = float(value)
        except OverflowError:  # an integer of more than 308 digits
            raise NotFinite from None
        if not math.isfinite(number):
            raise NotFinite
        return number
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


SHOW_LIMIT = 80  # characters of a value quoted in a message


def shorten(text: str, limit: int = SHOW_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, the last of them "…", when it is longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def printable(text: str) -> str:
    """``text`` with control characters (newlines, NUL …) written as escapes, so that a label
    made from a command-line argument or a file name keeps a message on one line."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], text)


def quoted(key) -> str:
    """A key or name for a message: a string in quotes ('epochs'), cut by ``shorten``; other
    keys as ``show`` writes them."""
    return repr(shorten(key)) if isinstance(key, str) else show(key)


def mismatch_hint(hint, value) -> str | None:
    """What to write instead of ``value`` for type ``hint``, where a YAML 1.1 habit explains
    the mistake (``yes``/``no``/``on``/``off`` are strings in YAML 1.2)."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if bool in options and isinstance(value, str) and value.lower() in YAML11_BOOLS:
        return f"write true or false: YAML 1.2 reads {value} as a string, not a boolean"
    return None


def show(value, limit: int = SHOW_LIMIT) -> str:
    """A value as YAML/JSON would write it (true, null, "text", [1, 2], .nan), cut to
    ``limit`` characters ending in "…". Every value a config message quotes goes through
    here, so a million-element list costs a line, not megabytes."""
    return shorten(_render(value, limit + 1), limit)


def _render(value, budget: int) -> str:
    """``value`` written out, stopping soon after ``budget`` characters."""
    if budget <= 0:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ".inf" if value > 0 else "-.inf"
    if isinstance(value, dict):
        return "{" + _render_items(((f"{_render(k, budget)}: ", v) for k, v in value.items()), budget) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + _render_items((("", v) for v in value), budget) + "]"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * budget:
        return f"<an integer of about {int(value.bit_length() * math.log10(2)):,} digits>"
    if isinstance(value, (str, bytes)):
        value = value[:budget]  # escapes only make it longer
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _render_items(items, budget: int) -> str:
    """(prefix, value) pairs written out and joined by ", ", stopping once over ``budget``."""
    parts, used = [], 1
    for prefix, item in items:
        parts.append(prefix + _render(item, budget - used - len(prefix)))
        used += len(parts[-1]) + 2
        if used > budget:
            break
    return ", ".join(parts)


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
    match = difflib.get_close_matches(shorten(word), list(candidates), n=1, cutoff=0.6)
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


# --- each key's help text, beside its default ------------------------------------------------------

HELP = "help"  # the field metadata entry that holds a key's help text


def key(default=dataclasses.MISSING, *, help: str, factory=dataclasses.MISSING):
    """A dataclass field with its help text, so the default and the words that explain it
    live in one place: ``epochs: int = key(300, help="passes over the training set")``;
    a nested section takes ``factory`` (``key(factory=AdamConfig, help=…)``)."""
    return dataclasses.field(default=default, default_factory=factory, metadata={HELP: help})


def key_rows(cls, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(dotted key, type in words, default, help) for every key of dataclass ``cls``,
    sections included, in field order: the configuration reference is printed from this.
    The keys of a section that defaults to null show the section's own defaults."""
    rows, defaults = [], cls()
    for f in dataclasses.fields(cls):
        hint = hints(cls)[f.name]
        sub, optional = section_type(hint)
        kind = ("a mapping or null" if optional else "a mapping") if sub is not None else describe(hint)
        rows.append((f"{prefix}{f.name}", kind, plain(getattr(defaults, f.name)), f.metadata.get(HELP, "")))
        if sub is not None:
            rows += key_rows(sub, f"{prefix}{f.name}.")
    return rows


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
            self.fail(path, f"is {quoted(value)}, which is not known",
                      f"choose one of: {', '.join(valid)}{did_you_mean(str(value), valid)}")

    def at_least(self, path: str, value, low, unit: str = "") -> None:
        if not value >= low:  # `not >=` so that NaN fails too
            self.fail(path, f"must be >= {low}{unit}, got {show(value)}")

    def positive(self, path: str, value) -> None:
        if not 0 < value < float("inf"):
            self.fail(path, f"must be > 0, got {show(value)}")

    def fraction(self, path: str, value) -> None:
        if not 0 <= value < 1:
            self.fail(path, f"must be in [0, 1), got {show(value)}")
