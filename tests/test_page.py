"""mlpcli page (one self-contained HTML file) and mlpcli plot --weights.

The first half checks the written file from Python: what it embeds, the bad inputs, the size.
The second half opens the page from disk in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium pointed at them — never a browser download), draws
strokes with real mouse events, clicks test images and compares what the page computes with
mlpcli's Python: probabilities within 1e-5 of ``infer.probabilities``, the drawing's 28×28
pixels within ``PIXEL_TOLERANCE`` of ``predict.preprocess`` with the same top class. Without a
browser those tests skip, saying how to install one.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_idx_folder
from test_predict import make_set

from mlpcli.run import checkpoint
from mlpcli.nn import infer
from mlpcli.inspection import page
from mlpcli.inspection import predict
from mlpcli.cli import cli
from mlpcli.run.config import load_config
from mlpcli.nn.functions import one_hot
from mlpcli.nn.network import Network, scale01

PROBABILITY_TOLERANCE = 1e-5
PIXEL_TOLERANCE = 1  # grey levels out of 255: the JS and NumPy sums round in different orders
FORWARD_BUDGET_MS = 50
SIZE_BUDGET = 8_000_000  # bytes, for 784-800-800-10
ROOT = Path(__file__).resolve().parents[1]


# --- checkpoints ------------------------------------------------------------------------------------


def _train(layers, X, y, steps=200, rate=0.5):
    net = Network.create(layers, "relu", "softmax", "log_likelihood", rng=np.random.default_rng(0))
    A0, Y = scale01(X), one_hot(y, 10, np.float32)
    for _ in range(steps):
        dW, db = net.gradients(A0, Y)
        for l in range(1, net.L + 1):
            net.W[l] -= rate * dW[l]
            net.b[l] -= rate * db[l]
    return net


def _save(folder: Path, net: Network, dataset: str, data_path: Path | None, name="best.npz") -> Path:
    """Save ``net`` with a config whose data are ``data_path`` (None: data.dir=folder/no-data)."""
    layers = "[" + ",".join(str(n) for n in net.layers) + "]"
    where = f"data.path={data_path}" if data_path is not None else f"data.dir={folder / 'no-data'}"
    config = load_config(None, [f"data.dataset={dataset}", where, "data.validation=20",
                                f"model.layers={layers}", "model.dropout=0", f"model.output={net.output}",
                                f"model.activation=[{','.join(net.activations)}]", f"cost={net.cost}"])
    return checkpoint.save(folder / name, net, config)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """(checkpoint path, network, X_test, y_test): a 784-32-16-10 net trained a little on
    MNIST-style glyphs (4 classes), whose data (40 test images) are on disk."""
    root = tmp_path_factory.mktemp("page")
    X, y = make_set(40, seed=1)
    X_test, y_test = make_set(10, seed=2)
    write_idx_folder(root / "data", X, y, X_test, y_test)
    net = _train([784, 32, 16, 10], X, y, steps=60)
    return _save(root, net, "mnist", root / "data"), net, X_test, y_test


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """(checkpoint path, network): an untrained 784-800-800-10 (the presets' shape) whose data
    set is not on disk."""
    root = tmp_path_factory.mktemp("page-big")
    net = Network.create([784, 800, 800, 10], "relu", "softmax", "log_likelihood", rng=np.random.default_rng(3))
    return _save(root, net, "mnist", None), net


def _written(path: Path) -> dict:
    return page.read_page_data(path.read_text(encoding="utf-8"))


def _one_line_error(result, folder: Path, before: set) -> str:
    assert result.exit_code != 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert set(folder.iterdir()) == before, "nothing is written, not even a temporary file"
    return lines[0]


# --- the written file ---------------------------------------------------------------------------------


def test_page_is_one_self_contained_file_with_the_checkpoint_inside(digits, tmp_path):
    ckpt, net, X_test, y_test = digits
    out = tmp_path / "digits.html"
    result = CliRunner().invoke(cli, ["page", str(ckpt), "--out", str(out), "--examples", "12"])
    assert result.exit_code == 0, result.output
    accuracy = float(np.mean(infer.labels(net, X_test) == y_test))
    assert result.output.startswith(f"wrote {out} (") and f"12 test images, test accuracy {accuracy:.2%}" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.html"]
    text = out.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert "://" not in text and "<script src" not in text and "<link" not in text  # nothing to fetch
    data = page.read_page_data(text)
    for l in range(1, net.L + 1):
        assert np.array_equal(page.decode(data["network"]["W"][l - 1], "<f4"), net.W[l].ravel())
        assert np.array_equal(page.decode(data["network"]["b"][l - 1], "<f4"), net.b[l])
    assert data["network"]["layers"] == [784, 32, 16, 10] and data["network"]["activations"] == ["relu", "relu"]
    ex = data["examples"]
    pixels = page.decode(ex["pixels"], "u1").reshape(-1, 784)
    assert np.array_equal(pixels, X_test[ex["indices"]]) and ex["labels"] == y_test[ex["indices"]].tolist()
    assert data["accuracy"] == pytest.approx(accuracy) and ex["nTest"] == 40
    assert data["dataset"] == "mnist" and data["preprocess"] == "digits" and data["drawing"]
    assert data["classNames"] == list(predict.class_names_for("mnist"))


def test_default_out_and_number_of_examples(digits):
    ckpt, *_ = digits
    result = CliRunner().invoke(cli, ["page", str(ckpt)])
    assert result.exit_code == 0, result.output
    out = ckpt.with_suffix(".html")
    assert f"wrote {out}" in result.output
    assert len(_written(out)["examples"]["indices"]) == 40  # 50, or the whole test set when smaller
    out.unlink()


def test_examples_put_the_most_confident_mistakes_first():
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    probs = np.full((8, 4), 0.1)
    probs[np.arange(8), y] = 0.7  # right …
    probs[5] = [0.05, 0.05, 0.05, 0.85]  # … except 5 (sure, wrong), 2 and 6 (less sure)
    probs[2] = [0.6, 0.2, 0.1, 0.1]
    probs[6] = [0.2, 0.5, 0.2, 0.1]
    indices, k = page.choose_examples(y, probs, 6)
    assert k == 3 and indices.tolist() == [5, 2, 6, 0, 1, 3]
    indices, k = page.choose_examples(y, probs, 3)
    assert k == 1 and indices.tolist() == [5, 0, 1]  # at most half are mistakes
    assert page.choose_examples(y, probs, 0)[0].tolist() == []


def test_preprocessing_is_chosen_as_predict_chooses(digits, tmp_path):
    ckpt, net, X_test, y_test = digits
    fashion = _save(tmp_path, net, "fashion-mnist", Path(ckpt).parent / "data")
    page.write_page(fashion, tmp_path / "f.html")
    data = _written(tmp_path / "f.html")
    assert data["preprocess"] == "none" and not data["drawing"] and data["classNames"][9] == "Ankle boot"
    page.write_page(fashion, tmp_path / "g.html", mode="digits")
    assert _written(tmp_path / "g.html")["preprocess"] == "digits" and _written(tmp_path / "g.html")["drawing"]


def test_a_data_set_not_on_disk_gives_a_page_without_examples_saying_so(big, tmp_path):
    ckpt, _ = big
    out = tmp_path / "big.html"
    result = CliRunner().invoke(cli, ["page", str(ckpt), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "warning: the data set mnist is not on disk" in result.stderr
    assert "the page has no test images and no test accuracy" in result.stderr
    data = _written(out)
    assert data["accuracy"] is None and data["examples"]["indices"] == []
    assert "not on disk" in data["examples"]["note"]


def test_a_test_set_that_cannot_be_read_is_a_note_too(digits, tmp_path):
    ckpt, net, *_ = digits
    elsewhere = _save(tmp_path, net, "mnist", tmp_path / "missing-folder")
    result = page.write_page(elsewhere, tmp_path / "p.html")
    assert result.examples == 0 and "the test set of mnist cannot be used" in result.note
    wider = Network.create([100, 8, 10], "relu", "softmax", "log_likelihood")  # 10×10 inputs: not the data's 28×28
    result = page.write_page(_save(tmp_path, wider, "mnist", Path(ckpt).parent / "data", "w.npz"), tmp_path / "w.html")
    assert result.examples == 0 and "784 inputs" in result.note


def test_a_network_on_other_images_gets_their_shape_and_no_drawing(tmp_path):
    from mlpcli.inspection import plot

    net = Network.create([64, 12, 3], "relu", "softmax", "log_likelihood", rng=np.random.default_rng(4))
    ckpt = _save(tmp_path, net, "mnist", tmp_path / "my-8x8-images")  # your own data: any size
    page.write_page(ckpt, tmp_path / "p.html")
    data = _written(tmp_path / "p.html")
    assert data["imageShape"] == [8, 8] and not data["drawing"] and data["classNames"] == ["0", "1", "2"]
    fig = plot.weights_figure(net.W[1])
    assert [ax.images[0].get_array().shape for ax in fig.axes if ax.images] == [(8, 8)] * 12
    plot.pyplot().close(fig)


def test_the_presets_page_fits_in_8_mb(big, tmp_path):
    ckpt, _ = big
    result = page.write_page(ckpt, tmp_path / "big.html")
    size = (tmp_path / "big.html").stat().st_size
    assert size == result.size <= SIZE_BUDGET
    print(f"\n784-800-800-10 page: {size / 1e6:.2f} MB")


@pytest.mark.parametrize("case", ["not-a-checkpoint", "missing-checkpoint", "out-is-a-folder", "out-under-a-file",
                                  "out-folder-missing", "examples-negative", "examples-too-many"])
def test_bad_input_is_one_line_and_writes_nothing(digits, tmp_path, case):
    ckpt, *_ = digits
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    (tmp_path / "folder").mkdir()
    args = {
        "not-a-checkpoint": [str(tmp_path / "notes.txt"), "--out", str(tmp_path / "p.html")],
        "missing-checkpoint": [str(tmp_path / "nope.npz"), "--out", str(tmp_path / "p.html")],
        "out-is-a-folder": [str(ckpt), "--out", str(tmp_path / "folder")],
        "out-under-a-file": [str(ckpt), "--out", str(tmp_path / "notes.txt" / "p.html")],
        "out-folder-missing": [str(ckpt), "--out", str(tmp_path / "nowhere" / "p.html")],
        "examples-negative": [str(ckpt), "--out", str(tmp_path / "p.html"), "--examples", "-1"],
        "examples-too-many": [str(ckpt), "--out", str(tmp_path / "p.html"), "--examples", "41"],
    }[case]
    before = set(tmp_path.iterdir())
    line = _one_line_error(CliRunner().invoke(cli, ["page", *args]), tmp_path, before)
    expected = {"not-a-checkpoint": "not a valid mlpcli checkpoint", "missing-checkpoint": "does not exist",
                "out-is-a-folder": "is a folder", "out-under-a-file": "is a file",
                "out-folder-missing": "does not exist", "examples-negative": "is negative",
                "examples-too-many": "more than the test set's 40 images"}[case]
    assert expected in line


def test_an_unwritable_folder_is_one_line(digits, tmp_path, monkeypatch):
    ckpt, *_ = digits
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    before = set(tmp_path.iterdir())
    line = _one_line_error(CliRunner().invoke(cli, ["page", str(ckpt), "--out", str(tmp_path / "p.html")]),
                           tmp_path, before)
    assert "is not writable (Permission denied)" in line


def test_a_failed_write_leaves_nothing(digits, tmp_path, monkeypatch):
    ckpt, *_ = digits
    import mlpcli.files

    real = mlpcli.files.atomic_write_all

    def full_disk(files):
        def write(f):
            f.write(b"<!DOCTYPE html>")
            raise OSError(28, "No space left on device")
        return real([(path, write) for path, _ in files])

    monkeypatch.setattr(mlpcli.files, "atomic_write_all", full_disk)
    before = set(tmp_path.iterdir())
    line = _one_line_error(CliRunner().invoke(cli, ["page", str(ckpt), "--out", str(tmp_path / "p.html")]),
                           tmp_path, before)
    assert "No space left on device" in line and "nothing was written" in line


def test_the_template_and_script_are_package_data():
    text = (ROOT / "pyproject.toml").read_text()
    shipped = re.search(r'^"mlpcli.inspection" = \[(.*)\]$', text, re.M).group(1)
    for name in ("page_template.html", "page.js"):
        assert f'"{name}"' in shipped and (ROOT / "mlpcli" / "inspection" / name).is_file()
    test_extra = re.search(r"^test = \[(.*?)\]", text, re.M | re.S).group(1)
    assert '"selenium' in test_extra


# --- plot --weights -------------------------------------------------------------------------------------


def _png_size(path: Path) -> tuple[int, int]:
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_plot_weights_draws_one_28x28_image_per_unit(digits, big, tmp_path):
    from mlpcli.inspection import plot

    ckpt, net, *_ = digits
    result = CliRunner().invoke(cli, ["plot", "--weights", str(ckpt), "--out", str(tmp_path / "w.png")])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {tmp_path / 'w.png'}"
    assert _png_size(tmp_path / "w.png") == (round(8 * 1.15 * 100), round((4 * 1.15 + 0.5) * 100))
    fig = plot.weights_figure(big[1].W[1])
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 64 and images[0].get_array().shape == (28, 28)
    assert np.allclose(images[5].get_array(), big[1].W[1][5].reshape(28, 28))
    plot.pyplot().close(fig)


def test_plot_weights_default_out_and_bad_input(digits, tmp_path):
    ckpt, *_ = digits
    result = CliRunner().invoke(cli, ["plot", "--weights", str(ckpt)])
    assert result.exit_code == 0 and (ckpt.parent / "weights.png").is_file(), result.output
    (ckpt.parent / "weights.png").unlink()
    (tmp_path / "notes.txt").write_text("no")
    before = set(tmp_path.iterdir())
    line = _one_line_error(CliRunner().invoke(cli, ["plot", "--weights", str(tmp_path / "notes.txt")]), tmp_path, before)
    assert "not a valid mlpcli checkpoint" in line
    line = _one_line_error(CliRunner().invoke(cli, ["plot", "--weights", str(ckpt), "--out",
                                                    str(tmp_path / "notes.txt" / "w.png")]), tmp_path, before)
    assert "notes.txt exists and is not a folder" in line
    both = CliRunner().invoke(cli, ["plot", str(tmp_path), "--weights", str(ckpt)])
    assert both.exit_code == 2 and "one of them" in both.output
    assert CliRunner().invoke(cli, ["plot"]).exit_code == 2


# --- in a real browser ------------------------------------------------------------------------------------

CHROMIUM = os.environ.get("MLPCLI_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MLPCLI_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL = ("install one with: apt-get install -y --no-install-recommends chromium chromium-driver "
           "fonts-liberation, and pip install selenium (it is in the test extra)")
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-domain-reliability",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars", "--force-device-scale-factor=1",
)


def start_chromium(user_data_dir: Path, size=(1280, 1100)):
    """A headless Chromium through Selenium, pointed at the system browser and driver; Selenium
    Manager stays offline (SE_OFFLINE) and no name resolves, so nothing is ever downloaded."""
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + (f"--window-size={size[0]},{size[1]}", f"--user-data-dir={user_data_dir}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def draw(driver, strokes, kind: str = "mouse") -> None:
    """Real pointer events on the drawing pad: each stroke a list of (x, y) in pad pixels
    (0..280), pressed at the first point, moved through the others, released. ``kind``:
    "mouse" (ActionChains), "touch" or "pen"."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    pad = driver.find_element(By.ID, "pad")
    half_w, half_h = pad.size["width"] / 2, pad.size["height"] / 2
    for stroke in strokes:
        points = [(int(round(x)), int(round(y))) for x, y in stroke]
        if kind != "mouse":
            _touch_or_pen(driver, pad, [(x - int(half_w), y - int(half_h)) for x, y in points], kind)
            continue
        chain = ActionChains(driver, duration=0)
        chain.move_to_element_with_offset(pad, points[0][0] - int(half_w), points[0][1] - int(half_h))
        chain.click_and_hold()
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            chain.move_by_offset(x1 - x0, y1 - y0)
        chain.release().perform()


def _touch_or_pen(driver, pad, offsets, kind: str) -> None:
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    pointer = PointerInput(interaction.POINTER_TOUCH if kind == "touch" else interaction.POINTER_PEN, kind)
    actions = ActionBuilder(driver, mouse=pointer, duration=0)
    actions.pointer_action.move_to(pad, *offsets[0]).pointer_down()
    for x, y in offsets[1:]:
        actions.pointer_action.move_to(pad, x, y)
    actions.pointer_action.pointer_up()
    actions.perform()


def _polyline(points, step=12):
    """Points every ``step`` pixels along a polyline (one mouse move each)."""
    out = [points[0]]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        n = max(1, int(np.hypot(x1 - x0, y1 - y0) // step))
        out += [(x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n) for k in range(1, n + 1)]
    return out


def _ring(cx, cy, rx, ry, n=28):
    return [(cx + rx * np.sin(t), cy - ry * np.cos(t)) for t in np.linspace(0, 2 * np.pi, n)]


# The drawings the tests make (pad pixels): a bar, a cross, a ring, a plus off-center, a seven.
DRAWINGS = {
    "bar": [_polyline([(140, 40), (146, 240)])],
    "cross": [_polyline([(70, 60), (210, 220)]), _polyline([(210, 60), (70, 220)])],
    "ring": [_ring(140, 140, 70, 95)],
    "small-plus": [_polyline([(60, 40), (60, 120)]), _polyline([(20, 80), (100, 80)])],
    "seven": [_polyline([(70, 50), (210, 50), (120, 240)])],
}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.skip(f"no headless browser ({', '.join(missing)} not found): {INSTALL}")
    pytest.importorskip("selenium", reason=f"selenium is not installed: {INSTALL}")
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def digits_page(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("digits-page") / "digits.html"
    page.write_page(digits[0], out)
    return out


def _open(driver, path: Path) -> None:
    """Load the page from disk and wait until its script has run (a 7 MB page takes a moment)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.as_uri())
    ready = "return location.href === arguments[0] && typeof window.mlpcli === 'object'"
    WebDriverWait(driver, 60, poll_frequency=0.05).until(lambda d: d.execute_script(ready, path.as_uri()))


def _bars(driver) -> dict:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#bars .bar")
    return {"names": [r.find_element(By.CLASS_NAME, "name").text for r in rows],
            "p": [float(r.get_attribute("data-probability") or "nan") for r in rows],
            "top": [r.find_element(By.CLASS_NAME, "name").text for r in rows if "top" in r.get_attribute("class")],
            "true": [int(r.get_attribute("data-label")) for r in rows if "true" in r.get_attribute("class").split()]}


def test_classify_equals_predicts_probabilities(browser, digits, digits_page):
    _, net, X_test, _ = digits
    _open(browser, digits_page)
    rng = np.random.default_rng(5)
    X = np.vstack([X_test[:10], rng.integers(0, 256, (5, 784)), np.zeros((1, 784)), np.full((1, 784), 255)])
    X = X.astype(np.uint8)
    got = np.array(browser.execute_script("return arguments[0].map(p => window.mlpcli.classify(p))", X.tolist()))
    assert np.abs(got - infer.probabilities(net, X)).max() <= PROBABILITY_TOLERANCE


@pytest.mark.parametrize("activations, output, cost", [
    (["sigmoid"], "softmax", "log_likelihood"),
    (["tanh", "leaky_relu"], "sigmoid", "cross_entropy"),
    (["identity", "relu"], "identity", "quadratic"),
], ids=["sigmoid-softmax", "tanh-leaky-sigmoid", "identity-relu-identity"])
def test_every_activation_and_output_layer_gives_predicts_numbers(browser, tmp_path, activations, output, cost):
    layers = [784] + [24] * len(activations) + [10]
    net = Network.create(layers, activations, output, cost, init="xavier", rng=np.random.default_rng(8))
    net.b[1][:] = np.linspace(-1, 1, 24)  # biases that matter
    ckpt = _save(tmp_path, net, "kmnist", None)
    page.write_page(ckpt, tmp_path / "p.html")
    _open(browser, tmp_path / "p.html")
    X = np.random.default_rng(9).integers(0, 256, (6, 784)).astype(np.uint8)
    got = np.array(browser.execute_script("return arguments[0].map(p => window.mlpcli.classify(p))", X.tolist()))
    assert np.abs(got - infer.probabilities(net, X)).max() <= PROBABILITY_TOLERANCE
    acts = browser.execute_script("return window.mlpcli.forward(arguments[0]).activations", X[0].tolist())
    _, A = net.forward(scale01(X[:1]))
    for l in range(1, net.L + 1):
        assert np.allclose(acts[l - 1], A[l][0], rtol=1e-4, atol=1e-5)
    assert _bars(browser)["names"] == list(predict.class_names_for("kmnist"))


def test_the_presets_network_in_the_browser_same_numbers_and_fast(browser, big, tmp_path):
    ckpt, net = big
    page.write_page(ckpt, tmp_path / "big.html")
    _open(browser, tmp_path / "big.html")
    X = np.random.default_rng(6).integers(0, 256, (8, 784)).astype(np.uint8)
    X[:4, :400] = 0  # drawings are mostly background
    got = np.array(browser.execute_script("return arguments[0].map(p => window.mlpcli.classify(p))", X.tolist()))
    assert np.abs(got - infer.probabilities(net, X)).max() <= PROBABILITY_TOLERANCE
    times = browser.execute_script("""
        const px = arguments[0], t = [];
        for (let i = 0; i < 40; i++) { const s = performance.now(); window.mlpcli.classify(px[i % px.length]); t.push(performance.now() - s); }
        t.sort((a, b) => a - b);
        return [t[0], t[20], t[39]];""", X.tolist())
    print(f"\n784-800-800-10 forward pass in Chromium: min {times[0]:.1f} ms, median {times[1]:.1f} ms, max {times[2]:.1f} ms")
    assert times[1] <= FORWARD_BUDGET_MS
    draw(browser, DRAWINGS["seven"])
    prep = browser.execute_script("""
        const d = window.mlpcli.drawing(), t = [];
        for (let i = 0; i < 10; i++) { const s = performance.now(); window.mlpcli.preprocess(d.pixels, d.width, d.height); t.push(performance.now() - s); }
        t.sort((a, b) => a - b);
        const nav = performance.getEntriesByType("navigation")[0];
        return [t[5], nav.domContentLoadedEventEnd];""")
    print(f"preprocessing a 280×280 drawing: median {prep[0]:.1f} ms; page ready after {prep[1]:.0f} ms")


def test_drawings_are_preprocessed_as_python_does(browser, digits, digits_page):
    _, net, *_ = digits
    _open(browser, digits_page)
    worst = 0
    for name, strokes in DRAWINGS.items():
        browser.execute_script("window.mlpcli.clear()")
        draw(browser, strokes)
        canvas = browser.execute_script("return window.mlpcli.drawing()")
        gray = np.array(canvas["pixels"], dtype=np.float64).reshape(canvas["height"], canvas["width"])
        assert gray.max() == 255 and gray[0, 0] == 0, name  # white strokes on black
        seen = np.array(browser.execute_script("return window.mlpcli.input()"))
        expected = predict.preprocess(gray, "digits").astype(int)
        diff = int(np.abs(seen - expected).max())
        worst = max(worst, diff)
        assert diff <= PIXEL_TOLERANCE, name
        shown = browser.execute_script("return window.mlpcli.shown()")
        assert shown["source"] == "drawing" and shown["pixels"] == seen.tolist()
        python = infer.probabilities(net, expected.astype(np.uint8))[0]
        assert np.argmax(shown["probabilities"]) == np.argmax(python), name
        assert np.abs(np.array(shown["probabilities"]) - infer.probabilities(net, seen.astype(np.uint8))[0]).max() \
            <= PROBABILITY_TOLERANCE
        bars = _bars(browser)
        assert bars["top"] == [predict.class_names_for("mnist")[int(np.argmax(python))]]
        assert np.allclose(bars["p"], shown["probabilities"])
    print(f"\nlargest pixel difference page vs predict.preprocess over {len(DRAWINGS)} drawings: {worst}")


def _compare_drawing(driver, net, mode: str) -> int:
    """The largest pixel difference between the page's input and predict.preprocess of the
    pad's pixels; also checks the same top class."""
    canvas = driver.execute_script("return window.mlpcli.drawing()")
    gray = np.array(canvas["pixels"], dtype=np.float64).reshape(canvas["height"], canvas["width"])
    seen = np.array(driver.execute_script("return window.mlpcli.input()"))
    expected = predict.preprocess(gray, mode).astype(int)
    probs = driver.execute_script("return window.mlpcli.shown().probabilities")
    assert np.argmax(probs) == np.argmax(infer.probabilities(net, expected.astype(np.uint8))[0])
    return int(np.abs(seen - expected).max())


@pytest.mark.parametrize("kind", ["touch", "pen"])
def test_touch_and_pen_draw_too(browser, digits, digits_page, kind):
    _open(browser, digits_page)
    draw(browser, DRAWINGS["seven"], kind=kind)
    assert browser.execute_script("return window.mlpcli.input()") is not None
    assert _compare_drawing(browser, digits[1], "digits") <= PIXEL_TOLERANCE


def test_preprocess_none_on_a_drawing_matches_python(browser, digits, tmp_path):
    ckpt, net, *_ = digits
    page.write_page(ckpt, tmp_path / "none.html", mode="none")
    _open(browser, tmp_path / "none.html")
    worst = 0
    for name in ("ring", "small-plus"):
        browser.execute_script("window.mlpcli.clear()")
        draw(browser, DRAWINGS[name])
        worst = max(worst, _compare_drawing(browser, net, "none"))
    assert worst <= PIXEL_TOLERANCE
    print(f"\nlargest pixel difference page vs predict.preprocess (none): {worst}")


def test_the_page_shows_activations_units_and_header(browser, digits, digits_page):
    from selenium.webdriver.common.by import By

    _, net, X_test, y_test = digits
    _open(browser, digits_page)
    summary = browser.find_element(By.ID, "summary").text
    accuracy = float(np.mean(infer.labels(net, X_test) == y_test))
    assert "data set mnist" in summary and "layers 784-32-16-10 (relu, relu, softmax)" in summary
    assert f"test accuracy {100 * accuracy:.2f} % on 40 images" in summary and "best.npz" in summary
    assert _bars(browser)["names"] == list(predict.class_names_for("mnist"))
    assert browser.execute_script("return window.mlpcli.input()") is None  # nothing drawn yet
    draw(browser, DRAWINGS["cross"])
    layers = browser.find_elements(By.CSS_SELECTOR, "#hidden .layer")
    assert [el.find_element(By.TAG_NAME, "canvas").get_attribute("data-layer") for el in layers] == ["1", "2"]
    seen = browser.execute_script("return window.mlpcli.input()")
    acts = browser.execute_script("return window.mlpcli.forward(arguments[0]).activations", seen)
    _, A = net.forward(scale01(np.array([seen], dtype=np.uint8)))
    for l in (1, 2):
        assert np.allclose(acts[l - 1], A[l][0], atol=1e-4)
        assert f"{int((A[l][0] > 0).sum())} active" in layers[l - 1].text
    units = [int(u.get_attribute("data-unit")) for u in browser.find_elements(By.CSS_SELECTOR, "#units .unit")]
    assert units == list(np.argsort(-A[1][0], kind="stable")[:8])  # the most active units of layer 1
    browser.find_element(By.ID, "clear").click()
    assert browser.execute_script("return window.mlpcli.input()") is None
    assert all(np.isnan(_bars(browser)["p"]))


def test_clicking_a_test_image_shows_it_as_predict_would(browser, digits, digits_page):
    from selenium.webdriver.common.by import By

    _, net, X_test, y_test = digits
    _open(browser, digits_page)
    data = _written(digits_page)
    examples = browser.find_elements(By.CSS_SELECTOR, "#examples .example")
    assert len(examples) == 40
    wrong = infer.labels(net, X_test) != y_test
    listed = browser.execute_script("return window.mlpcli.examples()")
    assert [e["mistake"] for e in listed] == wrong[data["examples"]["indices"]].tolist()
    for k in (0, 7, 39):
        examples[k].click()
        shown = browser.execute_script("return window.mlpcli.shown()")
        index = data["examples"]["indices"][k]
        assert shown["source"] == "example" and shown["pixels"] == X_test[index].tolist()
        python = infer.probabilities(net, X_test[index : index + 1])[0]
        assert np.abs(np.array(shown["probabilities"]) - python).max() <= PROBABILITY_TOLERANCE
        assert _bars(browser)["true"] == [int(y_test[index])]
        assert "selected" in examples[k].get_attribute("class")
        assert f"test[{index}]" in browser.find_element(By.ID, "input-note").text


def test_a_page_without_examples_says_so_and_still_draws(browser, big, tmp_path):
    from selenium.webdriver.common.by import By

    ckpt, net = big
    page.write_page(ckpt, tmp_path / "big.html")
    _open(browser, tmp_path / "big.html")
    note = browser.find_element(By.ID, "examples-note").text
    assert "No test images on this page: the data set mnist is not on disk" in note
    assert "test accuracy not computed" in browser.find_element(By.ID, "summary").text
    draw(browser, DRAWINGS["seven"])
    seen = browser.execute_script("return window.mlpcli.input()")
    assert seen is not None and len(seen) == 784
    units = browser.find_elements(By.CSS_SELECTOR, "#units .unit")
    assert len(units) == 8


def test_a_fashion_page_has_no_drawing_and_shows_its_first_test_image(browser, digits, tmp_path):
    from selenium.webdriver.common.by import By

    ckpt, net, X_test, _ = digits
    fashion = _save(tmp_path, net, "fashion-mnist", Path(ckpt).parent / "data")
    page.write_page(fashion, tmp_path / "f.html", examples=5)
    _open(browser, tmp_path / "f.html")
    assert not browser.find_element(By.ID, "pad").is_displayed()
    shown = browser.execute_script("return window.mlpcli.shown()")
    first = _written(tmp_path / "f.html")["examples"]["indices"][0]
    assert shown["source"] == "example" and shown["pixels"] == X_test[first].tolist()
    assert _bars(browser)["names"][9] == "Ankle boot"
    assert browser.execute_script("return window.mlpcli.preprocessing") == "none"


def test_the_page_fetches_nothing(browser, digits_page):
    _open(browser, digits_page)
    draw(browser, DRAWINGS["bar"])
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0


def test_a_page_for_8x8_inputs_works_in_the_browser(browser, tmp_path):
    from selenium.webdriver.common.by import By

    net = Network.create([64, 12, 3], "relu", "softmax", "log_likelihood", rng=np.random.default_rng(4))
    page.write_page(_save(tmp_path, net, "mnist", tmp_path / "my-8x8-images"), tmp_path / "p.html")
    _open(browser, tmp_path / "p.html")
    X = np.random.default_rng(2).integers(0, 256, (4, 64)).astype(np.uint8)
    got = np.array(browser.execute_script("return arguments[0].map(p => window.mlpcli.classify(p))", X.tolist()))
    assert np.abs(got - infer.probabilities(net, X)).max() <= PROBABILITY_TOLERANCE
    assert not browser.find_element(By.ID, "pad").is_displayed()
    browser.execute_script("window.mlpcli.show(arguments[0])", X[0].tolist())
    assert browser.execute_script("const c = document.getElementById('input'); return [c.width, c.height]") == [8, 8]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#bars .bar")) == 3
