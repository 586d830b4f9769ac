"""MkDocs hook (``hooks:`` in mkdocs.yml): fills in the generated parts of the pages at build
time, so the references and the equations page are read from the code, never typed twice.

A line ``<!-- generate: NAME -->`` in a page becomes ``GENERATORS[NAME]()``; a line
``<!-- equation: KEY -->`` becomes equation KEY beside the source lines that compute it
(``equations.EQUATIONS``). An unknown name, or an equation whose line cannot be found, fails
the build.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import docgen  # noqa: E402
import equations  # noqa: E402


def _fenced(text: str) -> str:
    return "```text\n" + text.rstrip("\n") + "\n```\n"


GENERATORS = {
    "cli": docgen.cli_reference,
    "config": docgen.config_reference,
    "api": docgen.api_reference,
    "layout": docgen.layout_reference,
    "float-precision": equations.float_precision_table,
    "gradcheck-sigma": lambda: _fenced(equations.planted_gradcheck("sigma", ["--config", "seed-quadratic"])),
    "gradcheck-weights": lambda: _fenced(equations.planted_gradcheck(
        "weights", ["--config", "seed-quadratic", "--set", "model.layers=[784,30,30,30,10]"])),
    "gradcheck-correct": lambda: _fenced(equations.planted_gradcheck(
        "none", ["--config", "seed-quadratic", "--set", "model.layers=[784,30,30,30,10]"])),
}
MARKER = re.compile(r"^<!-- (generate|equation): ([\w-]+) -->$", re.MULTILINE)


def expand(markdown: str) -> str:
    """``markdown`` with every marker line replaced by what it names."""

    def replace(match: re.Match) -> str:
        kind, name = match.groups()
        if kind == "equation":
            if name not in equations.EQUATIONS:
                raise KeyError(f"no equation {name!r} in tools/equations.py")
            return equations.equation_html(name)
        if name not in GENERATORS:
            raise KeyError(f"no generator {name!r} in tools/docs_hooks.py")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown, page, config, files):  # noqa: ARG001 — MkDocs' hook signature
    return expand(markdown)
