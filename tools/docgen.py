"""The generated parts of the documentation: the CLI reference (from the click commands), the
configuration reference (from the config schema) and the Python API reference (from
``mlpcli.__all__`` and the docstrings).

Each function returns Markdown (with raw HTML tables, so that no option text is ever read as
Markdown) for ``docs_hooks.py`` to put in place of a ``<!-- generate: NAME -->`` line when the
site is built. Nothing here is typed twice: change an option, a default or a docstring and
the next build shows it.
"""

from __future__ import annotations

import html
import inspect
import json

import click
import yaml


def cell(text) -> str:
    """Text for an HTML table cell: escaped, with `code` spans kept as <code>."""
    parts = html.escape(str(text)).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def table(header: list[str], rows: list[list[str]], attrs: list[str] | None = None) -> str:
    """An HTML table; cells are already HTML. ``attrs``: extra attributes per row."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "\n".join(
        f"<tr{(' ' + attrs[i]) if attrs else ''}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
        for i, row in enumerate(rows)
    )
    return (f'<div class="reference"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n'
            "</table></div>\n")


# --- the CLI -----------------------------------------------------------------------------------


def help_markdown(text: str) -> str:
    """A click help text as Markdown: paragraphs as they are, ``\\b`` blocks as code."""
    out = []
    for block in inspect.cleandoc(text or "").split("\n\n"):
        if block.startswith("\b"):
            out.append("```text\n" + block.lstrip("\b").strip("\n") + "\n```")
        else:
            out.append(" ".join(block.split()))
    return "\n\n".join(out)


def _option_kind(param: click.Option, ctx: click.Context) -> str:
    if param.is_flag:
        return "flag"
    if isinstance(param.type, click.Choice):
        return " | ".join(map(str, param.type.choices))
    return param.metavar or param.type.name.upper()


def _default(param: click.Parameter) -> str:
    if isinstance(param, click.Option) and param.is_flag:
        return ""
    default = param.default
    return "" if callable(default) or default is None or default == () else str(default)


def command_reference(command: click.Command, path: str, ctx: click.Context) -> str:
    """One command: heading, help, usage, arguments and options."""
    pieces = " ".join(command.collect_usage_pieces(ctx))
    lines = [f"## `{path}`", "", help_markdown(command.help), "", "```text", f"{path} {pieces}", "```", ""]
    rows, attrs = [], []
    for param in command.params:
        if isinstance(param, click.Option) and param.hidden:
            continue
        if isinstance(param, click.Argument):
            names = param.human_readable_name
            kind = "argument" + (", repeatable" if param.nargs == -1 else "") + ("" if param.required else ", optional")
            rows.append([f"<code>{html.escape(names)}</code>", html.escape(kind), "", ""])
        else:
            names = ", ".join(param.opts + param.secondary_opts)
            env = f" [env: {param.envvar}]" if param.envvar and "env:" not in (param.help or "") else ""
            rows.append([f"<code>{html.escape(names)}</code>", cell(_option_kind(param, ctx)),
                         cell(_default(param)), cell((param.help or "") + env)])
        attrs.append(f'data-param="{html.escape(param.name or "")}"')
    lines.append(table(["argument / option", "value", "default", "what it does"], rows, attrs))
    return "\n".join(lines)


def cli_reference() -> str:
    """Every ``mlpcli`` command, in the order ``mlpcli --help`` lists them."""
    from mlpcli.cli import cli

    root = click.Context(cli, info_name="mlpcli")
    parts = [help_markdown(cli.help), "", "```text", "mlpcli " + " ".join(cli.collect_usage_pieces(root)), "```", "",
             "Options of `mlpcli` itself, given before the command:", "",
             table(["option", "what it does"],
                   [[f"<code>{html.escape(', '.join(p.opts))}</code>", cell(p.help or "")]
                    for p in cli.params if isinstance(p, click.Option)])]
    for name in cli.list_commands(root):
        command = cli.get_command(root, name)
        if command is None or command.hidden:
            continue
        parts.append(command_reference(command, f"mlpcli {name}", click.Context(command, info_name=name, parent=root)))
    return "\n".join(parts)


# --- the config --------------------------------------------------------------------------------


def yaml_value(value) -> str:
    """A default as it is written in a YAML config: ``mnist``, ``[784, 800, 800, 10]``, ``null``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def config_rows() -> list[tuple[str, str, str, str]]:
    """(key, type, default as YAML or "section", help) for every config key, from the schema."""
    from mlpcli.run.config import Config
    from mlpcli.run.schema import key_rows

    rows = []
    for key, kind, default, help_text in key_rows(Config):
        section = kind.startswith("a mapping")
        shown = "section" if section and default is not None else yaml_value(default)
        rows.append((key, kind, shown, help_text))
    return rows


def config_reference() -> str:
    """The table of every config key: its type, default (the ``mnist`` preset) and meaning."""
    rows, attrs = [], []
    for key, kind, default, help_text in config_rows():
        depth = key.count(".")
        rows.append([f'<code class="depth-{depth}">{html.escape(key)}</code>', html.escape(kind),
                     "" if default == "section" else f"<code>{html.escape(default)}</code>", cell(help_text)])
        attrs.append(f'data-key="{html.escape(key)}" data-default="{html.escape(json.dumps(default))}"')
    return table(["key", "type", "default", "meaning"], rows, attrs)


# --- the Python API ----------------------------------------------------------------------------


def _signature(obj, name: str) -> str:
    """``name(parameters) -> result``, one parameter per line when it is long."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(…)"
    text = f"{name}{signature}".replace("'", "")
    if len(text) <= 88:
        return text
    result = "" if signature.return_annotation is inspect.Signature.empty else f" -> {signature.return_annotation}"
    parameters = [str(p).replace("'", "") for p in signature.parameters.values()]
    if any(p.kind is p.KEYWORD_ONLY for p in signature.parameters.values()) and not any(
            p.kind is p.VAR_POSITIONAL for p in signature.parameters.values()):
        first = next(i for i, p in enumerate(signature.parameters.values()) if p.kind is p.KEYWORD_ONLY)
        parameters.insert(first, "*")
    return f"{name}(\n" + "".join(f"    {p},\n" for p in parameters) + ")" + result.replace("'", "")


def _doc(obj) -> str:
    return inspect.getdoc(obj) or ""


def _members(cls) -> list[tuple[str, object]]:
    """Public methods and properties defined on ``cls`` itself, in source order."""
    out = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, property):
            out.append((name, value))
    return out


def api_entry(name: str) -> str:
    """One public name: where it is defined, its signature and docstring (and a class's
    fields or methods)."""
    import dataclasses

    import mlpcli

    module, attribute = mlpcli._EXPORTS[name]
    obj = getattr(mlpcli, name)
    kind = "class" if inspect.isclass(obj) else "function"
    lines = [f"## `mlpcli.{name}`", "", f"*{kind}* `{module}.{attribute}`", "", "```python",
             f"{'class ' if kind == 'class' else ''}{_signature(obj, 'mlpcli.' + name)}", "```", "", _doc(obj), ""]
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
        fields = [[f"<code>{f.name}</code>", cell(str(f.type))] for f in dataclasses.fields(obj)]
        lines += [table(["field", "type"], fields), ""]
    if inspect.isclass(obj):
        for member, value in _members(obj):
            if isinstance(value, property):
                lines += [f"### `.{member}`", "", "*property*", "", _doc(value.fget), ""]
            else:
                lines += [f"### `.{member}`", "", "```python", _signature(value, member), "```", "",
                          _doc(value), ""]
    return "\n".join(lines)


def api_reference() -> str:
    """Every name in ``mlpcli.__all__`` but ``__version__``."""
    import mlpcli

    return "\n".join(api_entry(name) for name in mlpcli.__all__ if name != "__version__")


# --- the package layout -----------------------------------------------------------------------

# The layers, top to bottom: a module imports only from its own layer or the ones below it
# (tests/test_layout.py holds the code to this order).
LAYERS = (
    ("cli", "the command line: parses, calls the library, prints"),
    ("tune", "hyperparameter search on Optuna (the tune extra): trials are ordinary runs"),
    ("inspection", "what looks at a trained network: predictions, pictures, the page, the eval report"),
    ("run", "a training run: the config and its schema, the epoch loop, run folders, checkpoints"),
    ("data", "data on disk → uint8 splits: IDX and other sources, images, distortions, downloads"),
    ("nn", "the math: activations and costs, the network, BP1–BP4, update rules, scoring, gradcheck"),
    ("", "shared by all: the error family, atomic file writes"),
)


def _summary(path) -> str:
    import ast

    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def layout_reference() -> str:
    """The package tree, layer by layer: each module with its line count and the first
    paragraph of its docstring, read from the source at build time."""
    from pathlib import Path

    import mlpcli

    root = Path(mlpcli.__file__).parent
    rows = []
    for layer, what in LAYERS:
        folder = root / layer if layer else root
        modules = sorted(folder.glob("*.py"), key=lambda p: (p.name != "__init__.py", p.name))
        if not layer:
            modules = [p for p in modules if p.name not in ("__init__.py", "__main__.py")]
        name = f"mlpcli/{layer}/" if layer else "mlpcli/"
        rows.append([f"<strong><code>{name}</code></strong>", "", f"<strong>{html.escape(what)}</strong>"])
        for path in modules:
            lines = len(path.read_text(encoding="utf-8").splitlines())
            rows.append([f"<code>{path.name}</code>", str(lines), cell(_summary(path))])
    return table(["module", "lines", "what it holds"], rows)
