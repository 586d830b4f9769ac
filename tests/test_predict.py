"""mlpcli predict: image decoding, MNIST-style preprocessing, top-k, block art, the command.

The model tests train a small network in a few hundred milliseconds on synthetic
"glyphs" (ring, bar, cross, plus) drawn MNIST-style, then check that images made from its
own test examples — upscaled, inverted, moved off-center, saved as PNG — come back as
their true class.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_idx_folder
from PIL import Image

from mlpcli.run import checkpoint
from mlpcli.nn import infer
from mlpcli.data import images
from mlpcli.inspection import predict
from mlpcli.cli import cli
from mlpcli.run.config import load_config
from mlpcli.errors import ConfigError, DataError
from mlpcli.nn.functions import one_hot
from mlpcli.nn.network import Network, scale01

# --- synthetic MNIST-format data --------------------------------------------------------------

CLASSES = 4  # ring, vertical bar, X, plus — labels 0..3 of a 10-way network


def _segment_distance(yy, xx, p, q):
    p, q = np.asarray(p, float), np.asarray(q, float)
    d = q - p
    t = np.clip(((yy - p[0]) * d[0] + (xx - p[1]) * d[1]) / (d @ d), 0, 1)
    return np.hypot(yy - (p[0] + t * d[0]), xx - (p[1] + t * d[1]))


def glyph(label: int, rng: np.random.Generator) -> np.ndarray:
    """A 48×48 light-on-dark drawing of class ``label`` with random size and stroke."""
    yy, xx = np.mgrid[0:48, 0:48] - 23.5
    half = rng.uniform(1.0, 2.2)  # half the stroke width
    ry, rx = rng.uniform(12, 20), rng.uniform(10, 20)
    if label == 0:
        dist = np.abs(np.hypot(yy / ry, xx / rx) - 1) * min(ry, rx)
    elif label == 1:
        dist = _segment_distance(yy, xx, (-ry, 0), (ry, rng.uniform(-3, 3)))
    elif label == 2:
        dist = np.minimum(
            _segment_distance(yy, xx, (-ry, -rx), (ry, rx)), _segment_distance(yy, xx, (-ry, rx), (ry, -rx))
        )
    else:
        dist = np.minimum(_segment_distance(yy, xx, (-ry, 0), (ry, 0)), _segment_distance(yy, xx, (0, -rx), (0, rx)))
    return np.clip(half + 0.5 - dist, 0, 1) * 255


def make_set(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(CLASSES), n_per_class).astype(np.uint8)
    X = np.stack([images.preprocess(glyph(int(label), rng), "digits") for label in y])
    return X, y


@pytest.fixture(scope="module")
def trained():
    """(network, X_test, y_test): a 784-32-10 softmax net, full-batch gradient descent."""
    X, y = make_set(60, seed=1)
    X_test, y_test = make_set(5, seed=2)
    net = Network.create([784, 32, 10], "relu", "softmax", "log_likelihood", rng=np.random.default_rng(0))
    A0, Y = scale01(X), one_hot(y, 10, np.float32)
    for _ in range(150):
        dW, db = net.gradients(A0, Y)
        for l in range(1, net.L + 1):
            net.W[l] -= 0.5 * dW[l]
            net.b[l] -= 0.5 * db[l]
    assert (infer.labels(net, X_test) == y_test).all()  # the model is good on its own test set
    return net, X_test, y_test


def disguise(pixels: np.ndarray, factor: int, offset: tuple[int, int], canvas=(200, 260)) -> np.ndarray:
    """Upscale a 28×28 example, invert it (dark ink on white) and paste it off-center."""
    big = np.kron(pixels.reshape(28, 28), np.ones((factor, factor)))
    page = np.full(canvas, 255.0)
    page[offset[0] : offset[0] + big.shape[0], offset[1] : offset[1] + big.shape[1]] = 255 - big
    return page.astype(np.uint8)


def save_png(path: Path, gray: np.ndarray) -> Path:
    Image.fromarray(gray).save(path)
    return path


# --- preprocessing (pure NumPy) -------------------------------------------------------------------


def test_to_ink_inverts_light_backgrounds_only():
    dark = np.zeros((10, 10), np.uint8)
    dark[4:6, 4:6] = 200
    assert images.to_ink(dark)[5, 5] == 200 and images.to_ink(dark)[0, 0] == 0
    light = 255 - dark
    assert images.to_ink(light)[5, 5] == 200 and images.to_ink(light)[0, 0] == 0


def test_resize_keeps_the_mean_and_the_identity():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (90, 60))
    assert np.allclose(images.resize(img, (90, 60)), img)
    for shape in [(28, 28), (7, 130), (200, 13)]:
        out = images.resize(img, shape)
        assert out.shape == shape
        assert abs(out.mean() - img.mean()) < 0.05 * img.mean()
    assert np.allclose(images.resize(np.full((50, 70), 77.0), (28, 28)), 77.0)


def test_digits_fits_a_20_box_and_centers_the_mass():
    page = np.zeros((150, 200))
    page[10:70, 150:180] = 255  # a 60×30 block of ink in a corner
    out = images.preprocess_digits(page).astype(float)
    rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
    assert rows[-1] - rows[0] + 1 == 20  # the longer side fills the box
    assert 9 <= cols[-1] - cols[0] + 1 <= 11  # aspect ratio 2:1 kept
    mass = out.sum()
    cy = out.sum(axis=1) @ (np.arange(28) + 0.5) / mass
    cx = out.sum(axis=0) @ (np.arange(28) + 0.5) / mass
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert out.max() == 255


def test_digits_undoes_scaling_shifting_and_inversion():
    X, _ = make_set(2, seed=5)
    for pixels in X:
        page = disguise(pixels, factor=5, offset=(30, 110))
        back = images.preprocess(page, "digits").astype(float)
        original = pixels.astype(float)
        assert np.corrcoef(back, original)[0, 1] > 0.95
        assert np.abs(back - original).mean() < 12


def test_none_resizes_the_whole_frame():
    page = np.zeros((56, 84), np.uint8)
    page[:, :42] = 255  # left half lit, on a dark background (the border median is dark? no: half)
    page[0, :] = page[-1, :] = 0
    out = images.preprocess(page, "none").reshape(28, 28)
    assert out.shape == (28, 28)
    assert out[14, :12].min() > 200 and out[14, 16:].max() < 30  # no cropping, no centering


def test_blank_image_is_a_clean_error():
    with pytest.raises(DataError, match="blank"):
        images.preprocess(np.full((40, 40), 250, np.uint8), "digits")


def test_auto_mode_follows_the_dataset():
    assert images.resolve_mode("auto", "fashion-mnist") == "none"
    assert images.resolve_mode("auto", "mnist") == "digits"
    assert images.resolve_mode("auto", "kmnist") == "digits"
    assert images.resolve_mode("none", "mnist") == "none"
    with pytest.raises(ConfigError):
        images.resolve_mode("crop", "mnist")


def test_top_k_orders_by_probability_with_names():
    names = predict.class_names_for("kmnist")
    probs = np.array([0.05, 0.1, 0.0, 0.6, 0.0, 0.0, 0.0, 0.25, 0.0, 0.0])
    top = predict.top_k(probs, names, 3)
    assert [g.label for g in top] == [3, 7, 1]
    assert [g.name for g in top] == ["tsu", "ya", "ki"]
    assert top[0].probability == pytest.approx(0.6)
    assert predict.class_names_for("fashion-mnist")[9] == "Ankle boot"
    assert predict.class_names_for("no-such-set") == tuple(str(i) for i in range(10))


def test_non_softmax_outputs_become_scores_summing_to_one():
    out = infer.as_probabilities(np.array([[0.2, 0.6, -0.5, 0.2]]), "identity")
    assert np.allclose(out, [[0.2, 0.6, 0.0, 0.2]])
    assert np.allclose(infer.as_probabilities(np.zeros((1, 4)), "sigmoid"), 0.25)


def test_block_art_draws_ink_and_leaves_the_background_blank():
    img = np.zeros((28, 28), np.uint8)
    img[3, 5] = 255
    img[10, 0] = 128
    lines = predict.block_art(img).split("\n")
    assert len(lines) == 28 and all(len(line) == 56 for line in lines)
    assert lines[3][10:12] == "██" and lines[10][0:2] == "▒▒"
    assert set("".join(lines[:3])) == {" "}
    assert predict.block_art(np.zeros(784, np.uint8)).strip() == ""


# --- decoding files (Pillow) -------------------------------------------------------------------


def test_load_image_reads_grayscale_and_flattens_transparency(tmp_path):
    gray = np.zeros((30, 40), np.uint8)
    gray[5:10, 5:10] = 180
    assert (images.load_image(save_png(tmp_path / "g.png", gray)) == gray).all()
    rgba = np.zeros((30, 40, 4), np.uint8)  # black ink on a fully transparent background
    rgba[10:20, 10:20] = (0, 0, 0, 255)
    Image.fromarray(rgba).save(tmp_path / "t.png")
    loaded = images.load_image(tmp_path / "t.png")
    assert loaded[0, 0] == 255 and loaded[15, 15] == 0  # transparent → white paper
    Image.fromarray(np.dstack([gray] * 3)).save(tmp_path / "c.jpg", quality=95)
    assert np.abs(images.load_image(tmp_path / "c.jpg").astype(int) - gray).max() < 20


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_text("not a picture\n"), "not an image"),
        (lambda p: p.write_bytes(b""), "not an image"),
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a folder"),
    ],
    ids=["text-file", "empty-file", "missing", "folder"],
)
def test_unreadable_inputs_are_data_errors(tmp_path, make, message):
    path = tmp_path / "input.png"
    make(path)
    with pytest.raises(DataError, match=message):
        images.load_image(path)


def test_truncated_png_is_a_data_error(tmp_path):
    good = save_png(tmp_path / "full.png", np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError, match="cut.png"):
        images.load_image(cut)


# --- the model: disguised test examples come back as their true class -----------------------


def test_predict_files_recovers_true_classes_of_disguised_examples(trained, tmp_path):
    net, X_test, y_test = trained
    picks = [int(np.flatnonzero(y_test == label)[0]) for label in range(CLASSES)]
    paths = [
        save_png(tmp_path / f"ex{i}.png", disguise(X_test[i], factor=4 + i % 3, offset=(20 + 7 * n, 5 + 40 * n)))
        for n, i in enumerate(picks)
    ]
    names = predict.class_names_for("mnist")
    results = predict.predict_files(net, paths, names, "digits", k=3)
    assert [r.top[0].label for r in results] == [int(y_test[i]) for i in picks]
    assert all(len(r.top) == 3 and r.top[0].probability > 0.5 for r in results)


def test_predict_index_reports_the_true_label(trained):
    net, X_test, y_test = trained
    r = predict.predict_index(net, X_test, y_test, -1, ("a", "b", "c", "d") + tuple("efghij"))
    assert r.source == f"test[{len(X_test) - 1}]" and r.true_label == y_test[-1]
    assert r.top[0].label == r.true_label
    with pytest.raises(ConfigError, match="out of range"):
        predict.predict_index(net, X_test, y_test, len(X_test), predict.class_names_for("mnist"))


@pytest.mark.parametrize("output, cost", [("softmax", "log_likelihood"), ("sigmoid", "cross_entropy")])
def test_predict_gives_the_probabilities_of_infer(trained, tmp_path, output, cost):
    net, X_test, y_test = trained
    if output != "softmax":  # a sigmoid net: predict must normalize the outputs as infer does
        net = Network.create([784, 8, 10], "relu", output, cost, rng=np.random.default_rng(5))
    names = predict.class_names_for("mnist")

    def by_label(prediction):
        return [g.probability for g in sorted(prediction.top, key=lambda g: g.label)]

    everything = infer.probabilities(net, X_test)
    for i in (0, len(X_test) - 1):
        r = predict.predict_index(net, X_test, y_test, i, names, k=10)
        assert np.array_equal(by_label(r), infer.probabilities(net, X_test[i : i + 1])[0])
        np.testing.assert_allclose(by_label(r), everything[i], rtol=1e-5, atol=1e-7)  # float32 rounding
    paths = [save_png(tmp_path / f"{i}.png", X_test[i].reshape(28, 28)) for i in (0, 7)]
    results = predict.predict_files(net, paths, names, "none", k=10)
    again = infer.probabilities(net, np.stack([r.pixels for r in results]))
    assert [by_label(r) for r in results] == again.tolist()
    assert not np.array_equal(again[0], again[1])


def test_format_predictions_is_the_text_predict_prints():
    names = ("zero", "one", "two")
    pixels = np.zeros(784, np.uint8)
    top = [predict.Guess(1, "one", 0.75), predict.Guess(0, "zero", 0.25)]
    files = [predict.Prediction("a.png", pixels, top)]
    assert predict.format_predictions(files, names, "digits", show=False) == (
        "a.png  (preprocess: digits)\n  one    75.00%\n  zero   25.00%"
    )
    test = [predict.Prediction("test[3]", pixels, top, 0, "zero")]
    text = predict.format_predictions(test, names, "none", show=True)
    assert text.splitlines()[28:] == ["test[3]: true class zero — prediction wrong", "  one    75.00%",
                                      "  zero   25.00%"]
    assert text.splitlines()[:28] == predict.block_art(pixels).splitlines()
    payload = json.loads(predict.format_predictions_json(test, "m.npz", "mnist", "none"))
    assert payload == {"checkpoint": "m.npz", "dataset": "mnist", "preprocess": "none",
                       "predictions": [{"source": "test[3]", "top": [g.to_json() for g in top],
                                        "true": {"label": 0, "name": "zero"}}]}


# --- the command -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_files(trained, tmp_path_factory):
    """A checkpoint of the trained net, its data as IDX files, and two disguised PNGs."""
    net, X_test, y_test = trained
    root = tmp_path_factory.mktemp("predict")
    data = root / "data"
    data.mkdir()
    X_train, y_train = make_set(3, seed=9)
    write_idx_folder(data, X_train, y_train, X_test, y_test)
    config = load_config(None, ["model.layers=[784,32,10]", f"data.path={data}", "data.validation=2"])
    ckpt = checkpoint.save(root / "model.npz", net, config)
    ring, cross = int(np.flatnonzero(y_test == 0)[0]), int(np.flatnonzero(y_test == 2)[0])
    pngs = [
        save_png(root / "ring.png", disguise(X_test[ring], 6, (5, 90))),
        save_png(root / "cross.png", disguise(X_test[cross], 3, (110, 10))),
    ]
    return ckpt, pngs, ring


def test_cli_predict_prints_top3_per_image(model_files):
    ckpt, pngs, _ = model_files
    result = CliRunner().invoke(cli, ["predict", str(ckpt), *map(str, pngs)])
    assert result.exit_code == 0, result.output
    blocks = result.output.strip().split("\n")
    assert blocks[0].startswith(str(pngs[0])) and "preprocess: digits" in blocks[0]
    assert blocks[1].split()[0] == "0" and blocks[5].split()[0] == "2"  # ring → 0, cross → 2
    assert len(blocks) == 8 and all(line.rstrip().endswith("%") for line in blocks[1:4] + blocks[5:8])


def test_cli_predict_json_in_a_subprocess(model_files):
    ckpt, pngs, _ = model_files
    proc = subprocess.run(
        [sys.executable, "-m", "mlpcli", "predict", str(ckpt), *map(str, pngs), "--json", "--top", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["preprocess"] == "digits" and payload["dataset"] == "mnist"
    assert [p["top"][0]["label"] for p in payload["predictions"]] == [0, 2]
    assert all(len(p["top"]) == 2 for p in payload["predictions"])
    assert sum(g["probability"] for g in payload["predictions"][0]["top"]) <= 1 + 1e-6


def test_cli_predict_index_draws_the_test_image(model_files):
    ckpt, _, ring = model_files
    result = CliRunner().invoke(cli, ["predict", str(ckpt), "--index", str(ring)])
    assert result.exit_code == 0, result.output
    lines = result.output.split("\n")
    assert sum("█" in line for line in lines[:28]) >= 10  # the picture
    assert lines[28] == f"test[{ring}]: true class 0 — prediction right"
    assert lines[29].split()[0] == "0"
    out = CliRunner().invoke(cli, ["predict", str(ckpt), "--index", str(ring), "--json"])
    assert json.loads(out.output)["predictions"][0]["true"] == {"label": 0, "name": "0"}


@pytest.mark.parametrize(
    "args, message, code",
    [
        (["{png}", "--index", "0"], "not both", 2),
        ([], "--index N", 2),
        (["--index", "999"], "out of range", 2),
        (["{txt}"], "is not an image Pillow can read", 1),
        (["{missing}"], "no such file", 1),
    ],
    ids=["both", "neither", "index-range", "non-image", "missing"],
)
def test_cli_predict_errors_are_one_clean_line(model_files, tmp_path, args, message, code):
    ckpt, pngs, _ = model_files
    txt = tmp_path / "notes.png"
    txt.write_text("hello")
    values = {"png": pngs[0], "txt": txt, "missing": tmp_path / "nope.png"}
    args = [a.format(**values) for a in args]
    result = CliRunner().invoke(cli, ["predict", str(ckpt), *args])
    assert result.exit_code == code
    assert message in result.output and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # handled, not a crash
    if args and "--index 0" not in " ".join(args):  # the package's errors: exactly one line
        assert result.output.count("\n") == 1 and result.output.startswith("Error: ")


def test_cli_predict_without_pillow_says_what_to_install(model_files, monkeypatch):
    ckpt, pngs, _ = model_files
    for name in [m for m in sys.modules if m == "PIL" or m.startswith("PIL.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "PIL", None)
    result = CliRunner().invoke(cli, ["predict", str(ckpt), str(pngs[0])])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: reading images needs Pillow, which is not installed — install it with: pip install 'mlpcli[plot]'"
    )
    # --index needs no extra at all
    assert CliRunner().invoke(cli, ["predict", str(ckpt), "--index", "0"]).exit_code == 0


def test_preprocess_choices_match_the_library():
    from mlpcli.cli import predict_command

    choice = next(p for p in predict_command.params if p.name == "mode").type
    assert tuple(choice.choices) == images.PREPROCESS_MODES


# --- camera-sized photos: decoded reduced, memory bounded ----------------------------------------

PHOTO = (9000, 12000)  # rows, columns: a 108-megapixel photo, over Pillow's 89-megapixel limit


def photo(pixels: np.ndarray, rotate: int = 0) -> Image.Image:
    """A 12000×9000 photo of white paper with a 28×28 example drawn 5600 pixels tall, dark on
    light, in the middle (turned ``rotate`` degrees counter-clockwise)."""
    big = np.repeat(np.repeat(255 - pixels.reshape(28, 28), 200, axis=0), 200, axis=1)
    big = np.rot90(big, rotate // 90)
    page = np.full(PHOTO, 255, np.uint8)
    top, left = (PHOTO[0] - big.shape[0]) // 2, (PHOTO[1] - big.shape[1]) // 2
    page[top:top + big.shape[0], left:left + big.shape[1]] = big
    return Image.fromarray(page)


def predict_measured(ckpt: Path, image: Path) -> tuple[subprocess.CompletedProcess, float]:
    """``mlpcli predict ckpt image --json`` in a real process, and its peak memory in MB: the
    high-water mark of its resident memory (Linux's VmHWM, which starts afresh at exec, unlike
    getrusage's ru_maxrss, which keeps the forking test process's)."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: sys.stderr.write(''.join(line for line in "
            "open('/proc/self/status') if line.startswith('VmHWM'))))\n"
            "from mlpcli.cli import main\n"
            f"sys.argv = ['mlpcli', 'predict', {str(ckpt)!r}, {str(image)!r}, '--json']\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    peak = [line for line in proc.stderr.splitlines() if line.startswith("VmHWM")]
    return proc, int(peak[-1].split()[1]) / 1024 if peak else float("nan")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmHWM")
@pytest.mark.parametrize("suffix, limit_mb", [(".png", 220), (".jpg", 120)])
def test_a_108_megapixel_photo_is_predicted_with_memory_bounded(model_files, trained, tmp_path,
                                                                 suffix, limit_mb):
    """A PNG is decoded in full (108 MB of gray pixels) and shrunk a strip at a time: about
    150 MB in all; a JPEG is decoded at 1/8 of its size: about 60 MB. Decoding either in full
    and shrinking the whole took about 260 MB."""
    ckpt, _, ring = model_files
    _, X_test, _ = trained
    path = tmp_path / f"photo{suffix}"
    photo(X_test[ring]).save(path, **({"quality": 90} if suffix == ".jpg" else {}))
    proc, peak_mb = predict_measured(ckpt, path)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr and "Traceback" not in proc.stderr
    print(f"{path.name}: peak memory {peak_mb:.0f} MB")
    (prediction,) = json.loads(proc.stdout)["predictions"]
    assert prediction["source"] == str(path) and prediction["top"][0]["label"] == 0  # the ring
    assert peak_mb < limit_mb, peak_mb


@pytest.mark.parametrize("orientation, rotate", [(6, 90), (8, 270), (3, 180)])
def test_a_large_photo_is_turned_upright_by_its_exif_orientation(model_files, trained, tmp_path,
                                                                  orientation, rotate):
    """The bar (class 1) stored turned, with the EXIF tag that says how to turn it back."""
    ckpt, _, _ = model_files
    _, X_test, y_test = trained
    bar = int(np.flatnonzero(y_test == 1)[0])
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "turned.jpg"
    photo(X_test[bar], rotate).save(path, quality=90, exif=exif)
    gray = images.load_image(path)
    assert gray.shape == (1024, 768) if rotate in (90, 270) else gray.shape == (768, 1024)
    result = CliRunner().invoke(cli, ["predict", str(ckpt), str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["predictions"][0]["top"][0]["label"] == 1


def test_large_images_of_every_mode_decode_to_the_same_gray(tmp_path):
    """Shrunk strip by strip, a 3000×2200 picture (over twice MAX_SIDE) gives the same pixels
    whatever mode it is stored in: gray, RGB, with alpha (flattened), with a palette."""
    page = np.full((2200, 3000), 255, np.uint8)
    page[600:1600, 1000:1300] = 0
    base = Image.fromarray(page)
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.where(page == 0, 255, 0).astype(np.uint8)))  # ink on nothing
    stored = {"L": base, "RGB": base.convert("RGB"), "RGBA": rgba, "P": base.convert("P"),
              "I;16": base.convert("I;16")}
    decoded = {}
    for mode, img in stored.items():
        img.save(tmp_path / f"{mode.replace(';', '')}.png")
        decoded[mode] = images.load_image(tmp_path / f"{mode.replace(';', '')}.png").astype(int)
    assert decoded["L"].shape == (751, 1024)  # 2200 × 1024 / 3000, rounded
    for mode, gray in decoded.items():
        assert gray.shape == decoded["L"].shape and np.abs(gray - decoded["L"]).max() <= 2, mode
