"""Your own data: CSV files and folders, Keras-layout .npz archives and image folders.

Every source is built here from one small set of digit-like images (a 5×7 font, scaled,
shifted, thickened and noised; never downloaded): the same pixels as IDX, CSV and .npz must
train to bit-for-bit identical weights, and an image folder trains and evaluates with its
class names. Every kind of bad input is one ``DataError`` line naming the file and the row,
key or image.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import idx_bytes
from mlpcli.run import checkpoint
from mlpcli.data import splits as data
from mlpcli.inspection import predict
from mlpcli.cli import cli
from mlpcli.run.config import load_config
from mlpcli.data.splits import read_splits, source_of
from mlpcli.errors import ConfigError, DataError
from mlpcli.run.train import fit, start

PIL = pytest.importorskip("PIL.Image")

# A 5×7 font for the digits 0–9, one string of 7 rows per digit.
FONT = {
    0: "01110 10001 10011 10101 11001 10001 01110", 1: "00100 01100 00100 00100 00100 00100 01110",
    2: "01110 10001 00001 00010 00100 01000 11111", 3: "11110 00001 00001 01110 00001 00001 11110",
    4: "00010 00110 01010 10010 11111 00010 00010", 5: "11111 10000 11110 00001 00001 10001 01110",
    6: "00110 01000 10000 11110 10001 10001 01110", 7: "11111 00001 00010 00100 01000 01000 01000",
    8: "01110 10001 10001 01110 10001 10001 01110", 9: "01110 10001 10001 01111 00001 00010 01100",
}


def glyph(digit: int, rng: np.random.Generator, side: int = 28) -> np.ndarray:
    """A digit-like uint8 image: light ink on black, at a random place, with noise."""
    bitmap = np.array([[c == "1" for c in row] for row in FONT[digit].split()], dtype=float)
    scale = max(1, side // 10)
    ink = np.kron(bitmap, np.ones((scale, scale)))
    image = np.zeros((side, side))
    top = rng.integers(0, side - ink.shape[0] + 1)
    left = rng.integers(0, side - ink.shape[1] + 1)
    image[top:top + ink.shape[0], left:left + ink.shape[1]] = ink * rng.uniform(180, 255)
    image += rng.uniform(0, 40, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def glyphs(n: int, seed: int, classes: int = 10, side: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """n images (n, side, side) and labels cycling through 0..classes-1 (shuffled)."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % classes).astype(np.uint8)
    return np.stack([glyph(int(d), rng, side) for d in y]), y


@pytest.fixture(scope="module")
def digits():
    """80 training and 30 test digit images, 28×28, all ten classes."""
    return (*glyphs(80, 1), *glyphs(30, 2))


# --- writing each source ------------------------------------------------------------------------


def write_idx(folder: Path, X, y, Xt, yt) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(data.FILES, (X, y, Xt, yt)):
        (folder / name).write_bytes(gzip.compress(idx_bytes(array), mtime=0))
    return folder


def csv_text(X, y, header: bool = True, label_at: int = 0, newline: str = "\n") -> str:
    flat = X.reshape(len(X), -1)
    rows = [list(map(str, px)) for px in flat]
    for row, label in zip(rows, y):
        row.insert(label_at, str(label))
    lines = [",".join(row) for row in rows]
    if header:
        names = [f"pixel{i}" for i in range(flat.shape[1])]
        names.insert(label_at, "label")
        lines.insert(0, ",".join(names))
    return newline.join(lines) + newline


def write_csv(path: Path, X, y, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(csv_text(X, y, **kwargs))
    return path


def write_npz(path: Path, X, y, Xt, yt, flat: bool = False) -> Path:
    shape = (lambda a: a.reshape(len(a), -1)) if flat else (lambda a: a)
    np.savez_compressed(path, x_train=shape(X), y_train=y, x_test=shape(Xt), y_test=yt)
    return path


def write_images(root: Path, split: str, X, y, names) -> Path:
    for i, (image, label) in enumerate(zip(X, y)):
        folder = root / split / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        PIL.fromarray(image).save(folder / f"{i:03d}.png")
    return root


def tiny(path, *extra: str):
    return load_config(None, [f"data.path={path}", "data.validation=10", "model.layers=[784,16,10]",
                              "training.epochs=2", "training.batch_size=16", "model.dropout=0.2",
                              "data.augment.shift=1", "name=tiny", *extra])


def train(config, out: Path):
    return fit(start(config, out), read_splits(config.data))


# --- the same pixels from every source ----------------------------------------------------------


def test_idx_csv_and_npz_of_the_same_pixels_give_bit_for_bit_identical_weights(tmp_path, digits):
    X, y, Xt, yt = digits
    sources = {
        "idx": write_idx(tmp_path / "idx", *digits),
        "csv": write_csv(tmp_path / "csv" / "train.csv", X, y).parent,
        "npz": write_npz(tmp_path / "mnist.npz", *digits),
    }
    write_csv(tmp_path / "csv" / "test.csv", Xt, yt, header=False)
    thetas = {}
    for kind, path in sources.items():
        assert source_of(tiny(path).data)[0] == kind
        splits = read_splits(tiny(path).data)
        assert (splits.X_train == X.reshape(80, -1)[:70]).all() and (splits.y_val == y[70:]).all()
        assert (splits.X_test == Xt.reshape(30, -1)).all() and splits.y_test.dtype == np.uint8
        assert splits.class_names == tuple("0123456789") and splits.image_shape == (28, 28)
        history = train(tiny(path), tmp_path / f"run-{kind}")
        thetas[kind] = history.network.theta.copy()
    assert thetas["idx"].tobytes() == thetas["csv"].tobytes() == thetas["npz"].tobytes()


@pytest.mark.parametrize("variant", [
    dict(header=False), dict(label_at=5), dict(newline="\r\n"), dict(header=True, label_at=784),
])
def test_csv_layouts_read_the_same_arrays(tmp_path, digits, variant):
    X, y = digits[0], digits[1]
    path = write_csv(tmp_path / "train.csv", X, y, **variant)
    part = data.read_csv(path)
    assert part.X.dtype == np.uint8 and (part.X == X.reshape(80, -1)).all() and (part.y == y).all()


@pytest.mark.parametrize("end", ["", "\n\n\n", "\r\n\r\n"])
def test_csv_without_a_final_newline_or_with_empty_last_lines_over_several_blocks(tmp_path, digits,
                                                                                 monkeypatch, end):
    from mlpcli.data import sources

    X, y = digits[0], digits[1]
    path = tmp_path / "train.csv"
    path.write_text(csv_text(X, y).rstrip("\n") + end, newline="")
    monkeypatch.setattr(sources, "BLOCK", 1000)  # many blocks, each cut at a line's end
    part = data.read_csv(path)
    assert (part.X == X.reshape(80, -1)).all() and (part.y == y).all()


def test_one_csv_file_is_the_training_and_the_test_data(tmp_path, digits):
    X, y = digits[0], digits[1]
    path = write_csv(tmp_path / "mnist_train.csv", X, y)
    splits = read_splits(tiny(path).data)
    assert len(splits.y_train) == 70 and (splits.X_test == X.reshape(80, -1)).all()
    assert splits.dataset == "mnist_train.csv"


def test_npz_with_flat_images_and_column_labels(tmp_path, digits):
    X, y, Xt, yt = digits
    path = tmp_path / "flat.npz"
    np.savez(path, x_train=X.reshape(80, -1), y_train=y[:, None].astype(np.int64), x_test=Xt, y_test=yt)
    splits = read_splits(tiny(path).data)
    assert (splits.X_train == X.reshape(80, -1)[:70]).all() and splits.y_train.dtype == np.uint8
    assert (splits.y_train == y[:70]).all()


# --- any size, any number of classes ------------------------------------------------------------


def small_csv(tmp_path: Path, side: int = 8, classes: int = 3) -> Path:
    X, y = glyphs(60, 3, classes=classes, side=side)
    Xt, yt = glyphs(15, 4, classes=classes, side=side)
    write_csv(tmp_path / "small" / "train.csv", X, y)
    return write_csv(tmp_path / "small" / "test.csv", Xt, yt).parent


def test_other_image_sizes_and_class_counts_train_and_evaluate(tmp_path):
    folder = small_csv(tmp_path, side=10, classes=3)
    config = tiny(folder, "model.layers=[100,8,3]", "data.augment.shift=0", "data.augment.rotate=0", "data.augment.scale=0", "data.augment.elastic=null", "data.validation=6")
    splits = read_splits(config.data)
    assert splits.image_shape == (10, 10) and splits.n_classes == 3 and splits.class_names == ("0", "1", "2")
    history = train(config, tmp_path / "run")
    saved = checkpoint.load(history.last_checkpoint)
    assert saved.meta["class_names"] == ["0", "1", "2"] and saved.network.layers == [100, 8, 3]
    result = CliRunner().invoke(cli, ["eval", str(history.last_checkpoint), "--data-path",
                                      str(folder / "test.csv"), "--json"])
    assert result.exit_code == 0, result.output
    assert '"n": 15' in result.output


@pytest.mark.parametrize("layers, expected, hint", [
    ("[784,8,3]", "model.layers starts at 784, but the input layer must equal the data's pixels: 64 (8×8)",
     "--set model.layers=[64,8,3]"),
    ("[64,8,10]", "model.layers ends at 10, but the output layer must equal the data's classes: 3",
     "--set model.layers=[64,8,3]"),
])
def test_the_layers_must_fit_the_data_with_the_right_numbers(tmp_path, layers, expected, hint):
    config = tiny(small_csv(tmp_path), f"model.layers={layers}", "data.augment.shift=0", "data.augment.rotate=0", "data.augment.scale=0", "data.augment.elastic=null")
    with pytest.raises(ConfigError) as error:
        train(config, tmp_path / "run")
    assert error.value.message == expected and hint in error.value.hint


def test_augmentation_needs_28_by_28_images(tmp_path):
    config = tiny(small_csv(tmp_path), "model.layers=[64,8,3]", "data.augment.shift=1", "data.augment.rotate=0",
                  "data.augment.scale=0", "data.augment.elastic=null")
    with pytest.raises(ConfigError, match=r"data.augment \(shift\) works on 28×28 images, but the data's are 8×8"):
        train(config, tmp_path / "run")


def test_a_registered_data_set_still_pins_784_and_10():
    with pytest.raises(ConfigError, match="must start at 784"):
        load_config(None, ["model.layers=[64,8,3]"])
    with pytest.raises(ConfigError, match="must end at >= 2"):
        load_config(None, ["data.path=x.csv", "model.layers=[64,8,1]"])


# --- image folders ------------------------------------------------------------------------------

SHAPES = ("one", "seven", "zero")  # the class folders, in sorted order: digits 1, 7, 0


@pytest.fixture
def image_folder(tmp_path, digits):
    X, y, Xt, yt = digits
    keep, keep_t = np.isin(y, (1, 7, 0)), np.isin(yt, (1, 7, 0))
    label = {1: 0, 7: 1, 0: 2}
    root = tmp_path / "pictures"
    write_images(root, "train", 255 - X[keep], [label[int(d)] for d in y[keep]], SHAPES)  # dark on light
    write_images(root, "test", Xt[keep_t], [label[int(d)] for d in yt[keep_t]], SHAPES)
    return root


def test_an_image_folder_trains_and_evaluates_with_its_class_names(tmp_path, image_folder):
    splits = read_splits(tiny(image_folder).data)
    assert splits.class_names == SHAPES and splits.named and splits.X_train.shape[1] == 784
    assert len(set(splits.y_val.tolist())) > 1  # the hold-out is interleaved across classes
    out = tmp_path / "run"
    args = ["train", "--set", f"data.path={image_folder}", "--set", "model.layers=[784,16,3]",
            "--set", "training.epochs=2", "--set", "data.validation=4", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert checkpoint.load(out / "last.npz").meta["class_names"] == list(SHAPES)
    result = CliRunner().invoke(cli, ["eval", str(out / "last.npz"), "--data-path", str(image_folder)])
    assert result.exit_code == 0, result.output
    assert all(name in result.output for name in SHAPES)
    one = next((image_folder / "test" / "seven").iterdir())
    result = CliRunner().invoke(cli, ["predict", str(out / "last.npz"), str(one), "--top", "3"])
    assert result.exit_code == 0, result.output
    assert all(f"  {name}" in result.output for name in SHAPES)


def test_image_folder_pixels_are_what_predict_sees(image_folder, tmp_path, digits):
    part = data.read_image_folder(image_folder, ("test",), "digits")["test"]
    first = sorted((image_folder / "test" / SHAPES[0]).iterdir())[0]
    assert (part.X[0] == predict.preprocess(predict.load_image(first), "digits")).all()
    X = digits[0][:6]
    write_images(tmp_path / "plain", "train", X, [0, 1, 0, 1, 0, 1], ("a", "b"))
    part = data.read_image_folder(tmp_path / "plain", ("train",), "none")["train"]
    gray = predict.load_image(tmp_path / "plain" / "train" / "a" / "000.png")
    assert (part.X[0] == predict.preprocess(gray, "none")).all() and part.shape == (28, 28)


def test_preprocess_none_keeps_the_images_own_size(tmp_path):
    X, y = glyphs(24, 5, classes=2, side=12)
    write_images(tmp_path / "p", "train", X, y, ("a", "b"))
    write_images(tmp_path / "p", "test", X[:6], y[:6], ("a", "b"))
    config = tiny(tmp_path / "p", "data.preprocess=none", "model.layers=[144,8,2]", "data.augment.shift=0", "data.augment.rotate=0", "data.augment.scale=0", "data.augment.elastic=null",
                  "data.validation=4")
    splits = read_splits(config.data)
    assert splits.image_shape == (12, 12) and splits.X_train.shape[1] == 144
    train(config, tmp_path / "run")


def test_eval_refuses_data_with_other_classes(tmp_path, image_folder):
    out = tmp_path / "run"
    train(tiny(image_folder, "model.layers=[784,8,3]", "training.epochs=1", "data.validation=4"), out)
    (image_folder / "train" / "zero").rename(image_folder / "train" / "nought")
    (image_folder / "test" / "zero").rename(image_folder / "test" / "nought")
    result = CliRunner().invoke(cli, ["eval", str(out / "last.npz"), "--data-path", str(image_folder)])
    assert result.exit_code == 1 and "the data's classes (nought, one, seven) are not the checkpoint's" in result.output
    X, y = glyphs(20, 6, classes=5)
    result = CliRunner().invoke(cli, ["eval", str(out / "last.npz"), "--data-path",
                                      str(write_csv(tmp_path / "five.csv", X, y))])
    assert result.exit_code == 1 and "the data has 5 classes, but the network has 3 outputs" in result.output


# --- eval reads only the split it evaluates -----------------------------------------------------


def test_a_test_split_eval_never_opens_the_training_data(tmp_path, digits):
    X, y, Xt, yt = digits
    folder = write_csv(tmp_path / "csv" / "train.csv", X, y).parent
    write_csv(folder / "test.csv", Xt, yt)
    out = tmp_path / "run"
    train(tiny(folder, "training.epochs=1"), out)
    (folder / "train.csv").write_text("garbage\n1,2\n")
    result = CliRunner().invoke(cli, ["eval", str(out / "last.npz")])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["eval", str(out / "last.npz"), "--split", "validation"])
    assert result.exit_code == 1 and "train.csv" in result.output
    idx = write_idx(tmp_path / "idx", *digits)
    for name in data.IDX_FILES["train"]:
        (idx / name).unlink()
    splits = read_splits(tiny(idx).data, need=("test",))
    assert len(splits.y_test) == 30 and len(splits.y_train) == 0 and splits.X_train.shape == (0, 784)


# --- bad input: one line naming the file and the row, key or image -----------------------------

ROW = ",".join(["3"] + ["0"] * 16)  # a label and 16 pixels (4×4)


@pytest.mark.parametrize("text, expected", [
    (f"{ROW}\n{ROW},0\n", r"bad.csv, line 2: 18 columns, expected 17"),
    (f"{ROW}\n{ROW[:-1]}x\n", r"bad.csv, line 2, column 17: 'x' is not a whole number 0–255"),
    (f"{ROW}\n{ROW[:-1]}1.5\n", r"bad.csv, line 2, column 17: '1.5' is not a whole number"),
    (f"{ROW}\n{ROW[:-1]}256\n", r"bad.csv, line 2, column 17: pixel 256 is outside 0–255"),
    (f"{ROW}\n{ROW[:-1]}-1\n", r"bad.csv, line 2, column 17: '-1' is not a whole number"),
    (f"{ROW}\n\n{ROW}\n", r"bad.csv, line 2: the line is empty"),
    (f"{ROW}\n{ROW.replace('3,', '3,,', 1)[:-2]}\n", r"bad.csv, line 2, column 2: '' is an empty field"),
    ("label,a,b\ncat,1,2\n", r"bad.csv, line 2, column 1: 'cat' is not a whole number"),
    ("label,a,b\n1.5,1,2\n", r"bad.csv, line 2, column 1: '1.5' is not a whole number"),
    ("label,a,b\n", r"bad.csv: holds no rows of data"),
    ("", r"bad.csv: line 1 is empty"),
    (",".join(["0"] * 64) + "\n", r"bad.csv, line 1: 64 columns hold the pixels of a 8×8 image but no label"),
    ("pixel0,pixel1\n1,2\n", r"bad.csv: no column is named label"),
    ("label,a\n1,2\n2,3\n1,4\n", r"bad.csv: labels must be the classes 0..2, but class 0 never occurs"),
    ("label,a\n0,2\n0,3\n", r"bad.csv: every label is 0; at least 2 classes are needed"),
    ("label,a\n0,2\n1000000,3\n", r"bad.csv: label 1000000 \(line 3\) is not a class 0..K-1: only 2 examples"),
])
def test_bad_csv_is_one_line_naming_file_and_line(tmp_path, text, expected):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=expected) as error:
        read_splits(tiny(path).data, need=("train",))
    assert "\n" not in error.value.message


def test_a_test_csv_with_classes_the_training_set_lacks(tmp_path):
    (tmp_path / "train.csv").write_text("label,a\n0,1\n1,2\n")
    (tmp_path / "test.csv").write_text("label,a\n0,1\n2,2\n")
    with pytest.raises(DataError, match=r"test.csv: label 2 \(line 3\) is a class the training set lacks"):
        read_splits(tiny(tmp_path, "data.validation=0").data)


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


GOOD = dict(x_train=np.zeros((4, 2, 2), np.uint8), y_train=np.array([0, 1, 0, 1], np.uint8),
            x_test=np.zeros((2, 2, 2), np.uint8), y_test=np.array([0, 1], np.uint8))


@pytest.mark.parametrize("change, expected", [
    (dict(x_train=np.array([None] * 4, dtype=object)), r"x_train is an object array"),
    (dict(y_test=None), r"missing y_test"),
    (dict(y_train=np.array([0, 1, 0], np.uint8)), r"x_train holds 4 images but y_train has shape \(3,\)"),
    (dict(x_test=np.zeros((2, 3, 3), np.uint8)), r"images have 9 pixels, but the training images .* have 4"),
    (dict(x_train=np.zeros((4, 2, 2), np.float32)), r"x_train holds float32 values, expected integers"),
    (dict(x_train=np.full((4, 2, 2), 300, np.int16)), r"x_train\[0\] has pixels outside 0–255"),
    (dict(y_train=np.array([0, 1, 0, 3], np.uint8)), r"labels must be the classes 0..3, but class 2 never occurs"),
    (dict(x_train=np.zeros(4, np.uint8)), r"x_train has shape \(4,\), expected \(N, h, w\) or \(N, h·w\)"),
])
def test_bad_npz_is_one_line_naming_the_file_and_key(tmp_path, change, expected):
    arrays = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    path = tmp_path / "bad.npz"
    path.write_bytes(npz_bytes(**arrays))
    with pytest.raises(DataError, match=expected) as error:
        read_splits(tiny(path, "data.validation=0").data)
    assert str(path) in error.value.message


def test_an_npz_header_promising_more_than_it_holds_allocates_nothing(tmp_path):
    header = np.lib.format
    member = io.BytesIO()
    header.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False, "shape": (10**9, 28, 28)})
    member.write(b"\0" * 100)
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", member.getvalue())
        for key in ("y_train", "x_test", "y_test"):
            buffer = io.BytesIO()
            np.save(buffer, GOOD[key])
            archive.writestr(f"{key}.npy", buffer.getvalue())
    with pytest.raises(DataError, match=r"liar.npz: x_train's header promises \(1000000000, 28, 28\)"):
        read_splits(tiny(path).data)
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="liar.npz: not a readable .npz archive"):
        read_splits(tiny(path).data)


def bad_folder(tmp_path: Path, digits) -> Path:
    X, y = digits[0][:8], [0, 1] * 4
    write_images(tmp_path / "p", "train", X, y, ("a", "b"))
    return write_images(tmp_path / "p", "test", X[:4], y[:4], ("a", "b"))


def _empty_class(root: Path):
    (root / "train" / "c").mkdir()
    return r"train/c: empty class folder"


def _unreadable(root: Path):
    (root / "train" / "a" / "zz.png").write_bytes(b"not a png at all")
    return r"train/a/zz.png is not an image Pillow can read"


def _truncated(root: Path):
    path = root / "train" / "b" / "001.png"
    path.write_bytes(path.read_bytes()[:60])
    return r"train/b/001.png: cannot decode the image"


def _other_class_in_test(root: Path):
    (root / "test" / "q").mkdir()
    PIL.fromarray(np.zeros((28, 28), np.uint8)).save(root / "test" / "q" / "x.png")
    return r"test: classes q are not in .*train"


def _blank(root: Path):
    PIL.fromarray(np.zeros((28, 28), np.uint8)).save(root / "train" / "a" / "blank.png")
    return r"train/a/blank.png: the image is blank"


@pytest.mark.parametrize("spoil", [_empty_class, _unreadable, _truncated, _other_class_in_test, _blank])
def test_bad_image_folders_name_the_image_or_folder(tmp_path, digits, spoil):
    root = bad_folder(tmp_path, digits)
    expected = spoil(root)
    with pytest.raises(DataError, match=expected) as error:
        read_splits(tiny(root, "data.validation=0").data)
    assert "\n" not in error.value.message


def test_images_of_different_sizes_under_preprocess_none(tmp_path, digits):
    root = bad_folder(tmp_path, digits)
    PIL.fromarray(np.pad(digits[0][0], ((1, 1), (0, 0)))).save(root / "train" / "b" / "zz.png")
    with pytest.raises(DataError, match=r"train/b/zz.png: is 30×28 pixels, but the images before it are 28×28"):
        read_splits(tiny(root, "data.preprocess=none", "data.validation=0").data)
    assert len(read_splits(tiny(root, "data.validation=0").data).y_train) == 9  # digits: any size


def test_sources_are_recognized_or_named_by_data_format(tmp_path, digits):
    X, y = digits[0], digits[1]
    path = write_csv(tmp_path / "digits.txt", X, y)
    with pytest.raises(DataError, match="digits.txt: cannot tell what kind of data file this is"):
        read_splits(tiny(path).data)
    assert len(read_splits(tiny(path, "data.format=csv").data).y_train) == 70
    with pytest.raises(ConfigError, match="data.format"):
        tiny(path, "data.format=parquet")
    with pytest.raises(ConfigError, match="data.preprocess"):
        tiny(path, "data.preprocess=auto")
    with pytest.raises(DataError, match="missing train-images"):
        read_splits(tiny(tmp_path / "empty").data)
