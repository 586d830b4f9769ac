"""The documentation: a short README that starts with the two commands, references generated
from the code (and equal to it), a Python example that runs, and a site that builds strictly
and renders its math in a real browser without touching the network."""

from __future__ import annotations

import functools
import gzip
import html
import http.server
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TRAIN_COMMAND = "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/mlpcli train"
TEST_COMMAND = "python3 -m venv .venv && .venv/bin/pip install '.[test]' && .venv/bin/python -m pytest -q"


def _tool(name: str):
    """A module of tools/ (the doc generators), imported by path."""
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return module


# --- the README ---------------------------------------------------------------------------------


def test_readme_is_short_and_starts_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 12 * 1024
    lines = text.splitlines()
    for marker, command in (("<!-- train-command -->", TRAIN_COMMAND), ("<!-- test-command -->", TEST_COMMAND)):
        at = lines.index(marker)
        assert at < 15, f"{marker} must be near the top"
        assert lines[at + 1] == "    " + command  # what .ci/run reads
    # the hand-written config table moved to the generated reference
    assert "| `training.epochs` |" not in text


def test_readme_links_and_pictures_exist():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(((?!https?:)[^)#]+)(?:#[^)]*)?\)", text)
    assert any(t.startswith("docs/") for t in targets)
    for target in targets:
        assert (ROOT / target).exists(), target


# --- the generated references equal the code ----------------------------------------------------


def _value_at(tree: dict, key: str):
    for part in key.split("."):
        tree = tree[part] if tree is not None else None
    return tree


def test_config_reference_equals_the_schema():
    import yaml

    from mlpcli.run.config import Config, config_to_dict
    from mlpcli.run.schema import all_keys

    page = _tool("docgen").config_reference()
    rows = re.findall(r'<tr data-key="([^"]+)" data-default="([^"]*)">', page)
    assert [key for key, _ in rows] == all_keys(Config)  # every key, once, in order
    defaults = config_to_dict(Config())
    sub_defaults = {"training.early_stopping": {"patience": 10, "metric": "val_accuracy"}}
    for key, shown in rows:
        shown = json.loads(html.unescape(shown))
        parent = next((p for p in sub_defaults if key.startswith(p + ".")), None)
        expected = sub_defaults[parent][key[len(parent) + 1:]] if parent else _value_at(defaults, key)
        if isinstance(expected, dict):
            assert shown == "section", key
        else:
            assert yaml.safe_load(shown) == expected, key
    # the help text is the field's own, and every key has one
    for key, _, _, help_text in _tool("docgen").config_rows():
        assert help_text and html.escape(help_text.split("`")[0]) in page, key


def test_every_config_key_has_help_text():
    import dataclasses

    from mlpcli.run.config import Config
    from mlpcli.run.schema import HELP, hints, section_type

    def walk(cls):
        for f in dataclasses.fields(cls):
            assert len(f.metadata.get(HELP, "")) > 5, f"{cls.__name__}.{f.name} has no help text"
            sub, _ = section_type(hints(cls)[f.name])
            if sub is not None:
                walk(sub)

    walk(Config)


def test_cli_reference_lists_every_command_and_option():
    import click

    from mlpcli.cli import cli

    page = _tool("docgen").cli_reference()
    ctx = click.Context(cli, info_name="mlpcli")
    names = cli.list_commands(ctx)
    assert {"fetch", "train", "eval", "gradcheck", "predict", "plot", "page"} <= set(names)
    for name in names:
        command = cli.get_command(ctx, name)
        section = page.split(f"## `mlpcli {name}`", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert f'data-param="{param.name}"' in section, (name, param.opts)
                for opt in param.opts:
                    assert html.escape(opt) in section, (name, opt)
                if param.help:
                    assert html.escape(param.help.split("`")[0][:40]) in section, (name, param.opts)
        assert " ".join((command.help or "").split()[:6]) in " ".join(section.split()), name


def test_api_reference_covers_the_public_api_and_docstrings_name_every_parameter():
    import mlpcli

    page = _tool("docgen").api_reference()
    public = [name for name in mlpcli.__all__ if name != "__version__"]
    assert public
    for name in public:
        assert f"## `mlpcli.{name}`" in page, name
        obj = getattr(mlpcli, name)
        doc = inspect.getdoc(obj) or ""
        assert len(doc) > 40, f"mlpcli.{name} needs a docstring"
        if inspect.isfunction(obj):
            for param in inspect.signature(obj).parameters:
                assert re.search(rf"\b{param}\b", doc), f"mlpcli.{name}'s docstring does not say what {param} is"


# --- the equations page ---------------------------------------------------------------------------


def test_every_equation_is_on_the_page_once_and_finds_its_lines():
    equations = _tool("equations")
    text = (ROOT / "docs" / "equations.md").read_text(encoding="utf-8")
    used = re.findall(r"^<!-- equation: ([\w-]+) -->$", text, re.MULTILINE)
    assert sorted(used) == sorted(equations.EQUATIONS)
    for key in equations.EQUATIONS:
        block = equations.equation_html(key)
        assert f'id="eq-{key}"' in block and "\n\n" not in block
        assert "\\[" in block and "highlight" in block
    for tag in ("BP1", "BP2", "BP3", "BP4"):  # paired with the line whose comment names it
        assert re.search(rf"#[^<]*{tag}", html.unescape(re.sub("<[^>]+>", "", equations.equation_html(tag))))


def test_an_equations_code_is_read_from_the_source(tmp_path, monkeypatch):
    equations = _tool("equations")
    source = (ROOT / "mlpcli" / "nn" / "network.py").read_text(encoding="utf-8")
    line = next(line for line in source.splitlines() if "# ∂C/∂W[l] = Δ[l]ᵀ A[l-1]" in line)
    changed = source.replace(line, line.replace("delta.T", "delta.swapaxes(0, 1)"))
    (tmp_path / "mlpcli" / "nn").mkdir(parents=True)
    (tmp_path / "mlpcli" / "nn" / "network.py").write_text(changed, encoding="utf-8")
    monkeypatch.setattr(equations, "ROOT", tmp_path)
    assert "swapaxes" in equations.equation_html("BP4")  # a changed line changes the page
    (tmp_path / "mlpcli" / "nn" / "network.py").write_text(
        changed.replace("# ∂C/∂W[l] = Δ[l]ᵀ A[l-1]", "# the weights' gradient"), encoding="utf-8")
    with pytest.raises(LookupError, match="not exactly one"):  # a line that lost its tag fails the build
        equations.equation_html("BP4")


def test_planted_typos_fail_gradcheck_and_the_real_code_passes():
    equations = _tool("equations")
    layers = ["--config", "seed-quadratic", "--set", "model.layers=[784,30,30,30,10]"]
    sigma = equations.planted_gradcheck("sigma", ["--config", "seed-quadratic"])
    weights = equations.planted_gradcheck("weights", layers)
    correct = equations.planted_gradcheck("none", layers)
    assert "gradcheck FAILED" in sigma and "(exit status 1)" in sigma
    assert re.search(r"^2\s+W2 .*\d\s*$", sigma, re.MULTILINE)  # the output layer still passes
    assert "gradcheck FAILED" in weights and re.search(r"^3\s+W3 .*\d\s*$", weights, re.MULTILINE)
    assert "gradcheck passed" in correct and "(exit status 0)" in correct


def test_float32_cannot_check_what_float64_can():
    rows = _tool("equations").float_precision_rows()
    best64 = min(d for dtype, _, d in rows if dtype == "float64")
    best32 = min(d for dtype, _, d in rows if dtype == "float32")
    assert best64 < 1e-8 and best32 > 1e-6


# --- the Python guide's example runs ----------------------------------------------------------------


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), compresslevel=1, mtime=0)


def test_python_guide_example_runs(tmp_path):
    """The guide's code blocks, run as one script, on a small made-up Fashion-MNIST put where
    the example expects it (data/fashion-mnist/ in the current folder)."""
    text = (ROOT / "docs" / "guides" / "python.md").read_text(encoding="utf-8")
    code = "\n".join(re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL))
    assert "mlpcli.fit(" in code and "mlpcli.load_checkpoint(" in code
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "fashion-mnist"
    folder.mkdir(parents=True)
    n_train, n_test = 10_400, 200  # the preset holds out the last 10,000 for validation
    labels = rng.integers(0, 10, n_train + n_test)
    images = rng.integers(0, 40, (n_train + n_test, 28, 28))
    images[np.arange(len(labels)), labels * 2 + 4, 4:24] = 250  # a learnable stripe per class
    for name, array in (("train-images-idx3-ubyte.gz", images[:n_train]), ("train-labels-idx1-ubyte.gz", labels[:n_train]),
                        ("t10k-images-idx3-ubyte.gz", images[n_train:]), ("t10k-labels-idx1-ubyte.gz", labels[n_train:])):
        (folder / name).write_bytes(_idx(array))
    (tmp_path / "example.py").write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("MLPCLI_DATA_DIR", "MLPCLI_MIRROR")}
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "runs" / "fm-small" / "last.npz").is_file()
    assert len((tmp_path / "runs" / "fm-small" / "metrics.jsonl").read_text().splitlines()) == 4


# --- the site ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built with ``mkdocs build --strict`` (what CI runs)."""
    pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install '.[docs]' (also in the test extra)")
    pytest.importorskip("material", reason="mkdocs-material is not installed: pip install '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_site_builds_strictly_with_the_generated_pages(site):
    from mlpcli.run.config import Config
    from mlpcli.run.schema import all_keys

    config_page = (site / "reference" / "config.html").read_text(encoding="utf-8")
    for key in all_keys(Config):
        assert f'data-key="{key}"' in config_page
    cli_page = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    assert "mlpcli gradcheck" in cli_page and "--stop-after" in cli_page
    equations_page = (site / "equations.html").read_text(encoding="utf-8")
    assert equations_page.count('class="equation"') == len(_tool("equations").EQUATIONS)
    assert "gradcheck FAILED" in equations_page and "<!-- generate" not in equations_page
    for page in site.rglob("*.html"):  # nothing on any page loads from elsewhere
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"""<(script|img|iframe|source)[^>]+src=["']?(https?:)?//""", text), page
        assert not re.search(r"""<link[^>]+href=["']?(https?:)?//""", text), page


def test_equations_page_renders_math_offline_in_chromium(site, tmp_path, monkeypatch):
    test_page = pytest.importorskip("test_page")
    missing = [p for p in (test_page.CHROMIUM, test_page.CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.skip(f"no headless browser ({', '.join(missing)} not found): {test_page.INSTALL}")
    pytest.importorskip("selenium", reason=f"selenium is not installed: {test_page.INSTALL}")
    from selenium.webdriver.support.ui import WebDriverWait

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}/"
    # the page tests' browser, with no name resolving but the site's own 127.0.0.1
    flags = [f for f in test_page.CHROMIUM_FLAGS if not f.startswith("--host-resolver-rules")]
    monkeypatch.setattr(test_page, "CHROMIUM_FLAGS", (*flags, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"))
    driver = test_page.start_chromium(tmp_path / "chromium")
    try:
        driver.get(origin + "equations.html")
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(
            "return document.readyState === 'complete' && document.querySelectorAll('.katex').length > 0"))
        state = driver.execute_script("""
            return document.fonts.ready.then(() => ({
              text: document.querySelector('article').innerText,
              katex: document.querySelectorAll('.equation .katex-display').length,
              inline: document.querySelectorAll('span.arithmatex .katex').length,
              raw: [...document.querySelectorAll('.arithmatex')].filter(e => !e.querySelector('.katex')).length,
              errors: document.querySelectorAll('.katex-error').length,
              font: document.fonts.check('16px KaTeX_Main') && document.fonts.check('16px KaTeX_Math'),
              resources: performance.getEntriesByType('resource').map(r => r.name),
              code: [...document.querySelectorAll('.equation-code')].length,
            }));""")
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
    equations = _tool("equations").EQUATIONS
    assert state["katex"] == len(equations) and state["inline"] > 20
    assert state["raw"] == 0 and state["errors"] == 0
    for raw in ("$$", "\\(", "\\[", "\\frac"):
        assert raw not in state["text"], raw
    assert state["code"] >= len(equations)
    assert state["font"], "KaTeX's fonts did not load from the site"
    # every script, stylesheet and font came from the site itself (KaTeX's fonts among them)
    assert any("KaTeX_Main" in url for url in state["resources"]), state["resources"]
    assert all(url.startswith(origin) for url in state["resources"]), state["resources"]


def test_the_layout_page_lists_every_package_and_module():
    """The code page is read from the tree: each subpackage of mlpcli is one of its layers
    (a new one fails here until it is placed), and every module appears with its line count."""
    docgen = _tool("docgen")
    layers = {layer for layer, _ in docgen.LAYERS}
    packages = {p.parent.name for p in (ROOT / "mlpcli").glob("*/__init__.py")} - {"presets"}
    assert packages == layers - {""}
    page = docgen.layout_reference()
    for path in (ROOT / "mlpcli").rglob("*.py"):
        if path.parent.name == "presets" or path.name == "__main__.py" or path == ROOT / "mlpcli" / "__init__.py":
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert f"<td><code>{path.name}</code></td><td>{lines}</td>" in page, path
