"""Data on disk → train / validation / test splits: ``read_splits``, the one data-loading path.

``read_splits(data_cfg, need=...)`` reads the source ``data.path`` names (or the registered
data set's IDX folder under ``data.dir``): an IDX folder, read here; a CSV file or folder, a
Keras-layout .npz or an image folder, read by ``mlpcli.data.sources``. Every source gives uint8
pixels (N, h·w) and labels 0..K-1, the same arrays for the same pixels, whatever the format.

An IDX file (the format of MNIST, Fashion-MNIST and KMNIST) is a 4-byte magic number
``00 00 <type> <ndim>``, then ``ndim`` big-endian uint32 dimensions, then the items, row-major.
Only type 0x08 (unsigned byte) occurs in these data sets, so only that is accepted.

Nothing in a header is trusted until it has been checked against the file: the byte count the
header announces must be possible for the file's size (for gzip, at most deflate's maximum
ratio of 1032:1) before any buffer is allocated, decompression stops one byte past the
announced size (so a gzip bomb cannot exhaust memory, and that one byte detects trailing
data), and a short or long file is a ``DataError`` naming the file and the problem.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

from mlpcli.errors import ConfigError, DataError
from mlpcli.files import shown
from mlpcli.nn import functions as F
from mlpcli.nn.gradcheck import random_batch
from mlpcli.nn.network import scale01
from mlpcli.data.sources import Part, read_csv, read_image_folder, read_npz

# The four files every MNIST-format data set consists of (final names, gzip-compressed).
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
IDX_FILES = {"train": (TRAIN_IMAGES, TRAIN_LABELS), "test": (TEST_IMAGES, TEST_LABELS)}

# The sources data.path may name (data.format), the splits a caller may ask for (need), how
# image folders become pixels (data.preprocess) and a CSV folder's two files.
FORMATS = ("idx", "csv", "npz", "images")
SPLITS = ("train", "test")
PREPROCESSING = ("digits", "none")
CSV_FILES = {"train": "train.csv", "test": "test.csv"}
SOURCE_HINT = ("data.path must be a folder of the four IDX files (.gz or raw), a CSV file or a folder "
               "with train.csv and test.csv, a Keras-layout .npz, or an image folder train/<class>/, "
               "test/<class>/")

IMAGE_SHAPE = (28, 28)
N_CLASSES = 10

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    # Kuzushiji-MNIST: the ten hiragana お き す つ な は ま や れ を, romanized.
    "kmnist": ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
}

UBYTE = 0x08
_TYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32",
               0x0E: "float64"}
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_DEFLATE_RATIO = 1032  # deflate cannot expand more than this (zlib technical details)
_MAX_NDIM = 8
_CHUNK = 1 << 20


@dataclass
class Splits:
    """The three splits of a data set: X uint8 (N, h·w), y integer labels 0..K-1 (N,) (uint8
    for up to 256 classes). ``image_shape``: (h, w); ``n_classes``: K; ``named``: whether the
    class names come from the data (image folders) rather than the data set's name."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    dataset: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, int] = IMAGE_SHAPE
    n_classes: int = N_CLASSES
    named: bool = False


# ---------------------------------------------------------------------------------------------
# Reading bytes: gzip or raw, by content (not by name)


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def looks_like_html(head: bytes) -> bool:
    """True for the start of an HTML page (a proxy's or captive portal's answer)."""
    head = head.lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in head[:512]


def open_payload(path: Path) -> BinaryIO:
    """The file's IDX bytes as a stream: decompressed when the file is gzip, as-is otherwise."""
    with open(path, "rb") as f:
        compressed = f.read(2) == _GZIP_MAGIC
    # gzip.open by name owns its file: closing the stream closes it (no leaked file object).
    return gzip.open(path, "rb") if compressed else open(path, "rb")  # type: ignore[return-value]


def read_bounded(stream: BinaryIO, limit: int) -> bytearray:
    """Up to ``limit`` bytes from ``stream``; the buffer only ever grows by what was read."""
    out = bytearray()
    while len(out) < limit:
        chunk = stream.read(min(_CHUNK, limit - len(out)))
        if not chunk:
            break
        out += chunk
    return out


def _what(ndim: int) -> str:
    return {1: "labels", 3: "images"}.get(ndim, "items")


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (gzip or raw) into a uint8 array of the shape its header gives.

    Raises ``DataError`` (naming the file) for a missing file, an HTML page, a corrupt gzip
    stream, a bad magic number, a non-uint8 type, an unexpected number of dimensions
    (when ``ndim`` is given), and a payload shorter or longer than the header announces.
    """
    path = Path(path)
    try:
        file_size = path.stat().st_size
        with open(path, "rb") as raw:
            head = raw.read(512)
        if looks_like_html(head):
            raise DataError(f"{path}: is a web page (HTML/XML), not an IDX or gzip file",
                            "a proxy or web server answered instead of the data; fetch it again")
        compressed = head[:2] == _GZIP_MAGIC
        with open_payload(path) as stream:
            return _parse(path, stream, file_size, compressed, ndim)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DataError(f"{path}: corrupt gzip data ({error})",
                        "delete it and fetch it again") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None


def _parse(path: Path, stream: BinaryIO, file_size: int, compressed: bool,
           ndim: int | None) -> np.ndarray:
    magic = stream.read(4)
    if len(magic) < 4:
        raise DataError(f"{path}: truncated: {len(magic)} bytes, too short for an IDX header")
    if magic[0] != 0 or magic[1] != 0:
        raise DataError(f"{path}: bad magic number 0x{magic.hex()} (IDX files start 00 00)",
                        "is this an MNIST-format file?")
    dtype_code, n_dims = magic[2], magic[3]
    if dtype_code != UBYTE:
        name = _TYPE_NAMES.get(dtype_code, "unknown")
        raise DataError(f"{path}: IDX data type 0x{dtype_code:02X} ({name}) is not supported; "
                        "MNIST-format files hold unsigned bytes (0x08)")
    if not 1 <= n_dims <= _MAX_NDIM or (ndim is not None and n_dims != ndim):
        expected = f"{ndim}" if ndim is not None else f"1..{_MAX_NDIM}"
        raise DataError(f"{path}: header has {n_dims} dimensions, expected {expected}")
    dims_bytes = stream.read(4 * n_dims)
    header_size = 4 + 4 * n_dims
    if len(dims_bytes) < 4 * n_dims:
        raise DataError(f"{path}: truncated inside the header ({4 + len(dims_bytes)} of "
                        f"{header_size} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(dims_bytes, dtype=">u4"))
    n_items = math.prod(dims)
    expected_total = header_size + n_items
    said = f"header says {dims[0]} {_what(n_dims)} ({expected_total} bytes)"

    # Check the announced size against what the file could possibly hold BEFORE allocating.
    most = file_size * _MAX_DEFLATE_RATIO + 64 if compressed else file_size
    if expected_total > most:
        holds = f"a gzip file of {file_size} bytes holds at most ~{most}" if compressed \
            else f"file holds {file_size}"
        raise DataError(f"{path}: truncated: {said}, {holds}")
    if not compressed and expected_total != file_size:
        problem = "truncated" if file_size < expected_total else "trailing data"
        raise DataError(f"{path}: {problem}: {said}, file holds {file_size}")

    # One byte past the payload: detects trailing data without reading a bomb to its end.
    payload = read_bounded(stream, n_items + 1)
    # (Stopping short of the limit means the stream reached its end, where gzip checks its CRC.)
    if len(payload) > n_items:
        raise DataError(f"{path}: trailing data: {said}, file holds more")
    if len(payload) < n_items:
        raise DataError(f"{path}: truncated: {said}, file holds {header_size + len(payload)}")
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


# ---------------------------------------------------------------------------------------------
# Loading a data set: the one entry point, whatever the source


def find_file(folder: Path, name: str) -> Path | None:
    """``<name>`` in ``folder``, gzip-compressed (``.gz``, preferred) or raw (without it)."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def read_images(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The (N, h·w) images of an IDX file; ``shape``: the (h, w) they must have."""
    images = _image_array(path, shape)
    return images.reshape(len(images), -1)


def _image_array(path: Path, shape: tuple[int, int] | None) -> np.ndarray:
    images = read_idx(path, ndim=3)
    if shape is not None and images.shape[1:] != tuple(shape):
        raise DataError(f"{path}: images are {images.shape[1]}×{images.shape[2]}, expected "
                        f"{shape[0]}×{shape[1]} (the size of the training images)")
    if images.shape[0] == 0 or 0 in images.shape[1:]:
        raise DataError(f"{path}: holds no images")
    return images


def read_labels(path: Path) -> np.ndarray:
    labels = read_idx(path, ndim=1)
    if labels.size and int(labels.max()) >= N_CLASSES:
        bad = int(np.argmax(labels >= N_CLASSES))
        raise DataError(f"{path}: label {int(labels[bad])} at index {bad} is not a class 0..9")
    return labels


def read_pair(images_path: Path, labels_path: Path, shape: tuple[int, int] | None = None) -> Part:
    """One split of an IDX data set: its images and labels files as a ``Part``."""
    images, y = _image_array(images_path, shape), read_labels(labels_path)
    X = images.reshape(len(images), -1)
    if len(X) != len(y):
        raise DataError(f"{images_path.name} holds {len(X)} images but {labels_path.name} holds "
                        f"{len(y)} labels", "the two files are not from the same data set")
    return Part(X, y, (images.shape[1], images.shape[2]), str(labels_path), row_format="index {}")


def dataset_folder(data_cfg) -> Path:
    """Where the config's data lives: ``data.path`` if set, else ``<data.dir>/<data.dataset>``."""
    if data_cfg.path is not None:
        return Path(data_cfg.path)
    return Path(data_cfg.dir) / data_cfg.dataset


def source_of(data_cfg) -> tuple[str, Path]:
    """(format, path) of the config's data: ``data.format`` when set, else recognized by what
    ``data.path`` is and holds (no ``data.path``: the data set's IDX folder under ``data.dir``)."""
    path = dataset_folder(data_cfg)
    fmt = getattr(data_cfg, "format", None)
    if fmt is not None:
        return fmt, path
    if data_cfg.path is None:
        return "idx", path
    if path.is_file() or path.suffix.lower() in (".csv", ".npz"):
        return _file_format(path), path
    if path.is_dir() and not any(find_file(path, name) for name in FILES):
        if any((path / name).is_file() for name in CSV_FILES.values()):
            return "csv", path
        if any((path / split).is_dir() for split in SPLITS):
            return "images", path
    return "idx", path


def _file_format(path: Path) -> str:
    if path.suffix.lower() in (".csv", ".npz"):
        return path.suffix.lower()[1:]
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    if head.startswith(b"PK"):
        return "npz"
    if head[:2] == _GZIP_MAGIC or head[:2] == b"\0\0":
        raise DataError(f"{path}: is one IDX file", "data.path must be the folder holding the four IDX files")
    raise DataError(f"{path}: cannot tell what kind of data file this is (not .csv or .npz)",
                    "rename it, or set data.format: csv, npz, idx or images")


def read_splits(data_cfg, need: Sequence[str] = SPLITS) -> Splits:
    """Train / validation / test splits for a ``DataConfig``, from files already on disk.

    The source is ``data_cfg.path`` when set — an IDX folder (``data_cfg.dataset`` then only
    names the classes), a CSV file or a folder with train.csv and test.csv, a Keras-layout
    .npz, or an image folder (``train/<class>/``, ``test/<class>/``) — else the IDX folder
    ``<data_cfg.dir>/<dataset>/``. ``data_cfg.format`` names the kind instead of recognizing
    it. ``need``: the splits to read, ``"train"`` (with validation) and/or ``"test"``; the
    others come back empty, and their files are not opened. A single CSV file is both the
    training and the test data. The last ``data_cfg.validation`` training examples are held
    out for validation. ``fetch.load_splits`` (what the commands call) downloads a registered
    data set first if missing.
    """
    need = tuple(split for split in SPLITS if split in need)
    if not need:
        raise ValueError(f"need names no split of {SPLITS}")
    fmt, path = source_of(data_cfg)
    parts = _read_parts(fmt, path, data_cfg, need)
    _check_shapes(parts)
    if fmt == "idx":
        names, named = CLASS_NAMES.get(data_cfg.dataset, CLASS_NAMES["mnist"]), False
    elif fmt == "images":
        names, named = next(iter(parts.values())).names, True
    else:
        names, named = _class_names(data_cfg.dataset, _count_classes(parts)), False
    dataset = data_cfg.dataset if fmt == "idx" else path.name
    return _splits(parts, data_cfg.validation, dataset, tuple(names), named)


def _read_parts(fmt: str, path: Path, data_cfg, need: tuple[str, ...]) -> dict[str, Part]:
    if fmt == "idx":
        return _idx_parts(path, data_cfg, need)
    if fmt == "csv":
        return _csv_parts(path, need)
    if fmt == "npz":
        return read_npz(path, need)
    if not path.is_dir():
        raise DataError(f"{path}: not a folder", "an image folder holds train/<class>/ and test/<class>/")
    return read_image_folder(path, need, getattr(data_cfg, "preprocess", "digits"))


def _idx_parts(folder: Path, data_cfg, need: tuple[str, ...]) -> dict[str, Part]:
    wanted = [name for split in need for name in IDX_FILES[split]]
    paths = {name: find_file(folder, name) for name in wanted}
    missing = [name for name, p in paths.items() if p is None]
    if missing:
        hint = (f"run: mlpcli fetch --dataset {data_cfg.dataset} --data-dir {data_cfg.dir}"
                if data_cfg.path is None else SOURCE_HINT)
        raise DataError(f"{folder}: missing {', '.join(missing)}", hint)
    parts, shape = {}, None
    for split in need:
        images, labels = IDX_FILES[split]
        parts[split] = read_pair(paths[images], paths[labels], shape)
        shape = parts[split].shape
    return parts


def _csv_parts(path: Path, need: tuple[str, ...]) -> dict[str, Part]:
    if not path.is_dir():
        part = read_csv(path)  # one file: the training and the test data
        return {split: part for split in need}
    missing = [CSV_FILES[split] for split in need if not (path / CSV_FILES[split]).is_file()]
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)}",
                        "a CSV folder holds train.csv and test.csv (or give one CSV file as data.path)")
    return {split: read_csv(path / CSV_FILES[split]) for split in need}


def _check_shapes(parts: dict[str, Part]) -> None:
    if len(parts) == 2 and parts["train"].X.shape[1] != parts["test"].X.shape[1]:
        train, test = parts["train"], parts["test"]
        raise DataError(f"{test.where}: images have {test.X.shape[1]} pixels, but the training images "
                        f"({train.where}) have {train.X.shape[1]}", "both splits need images of one size")


def _count_classes(parts: dict[str, Part]) -> int:
    """K for labels that must be 0..K-1 (CSV, .npz): one more than the largest training label;
    every class must occur in the training set and the test set may hold no other."""
    ref = parts["train"] if "train" in parts else parts["test"]
    k = int(ref.y.max()) + 1
    if k < 2:
        raise DataError(f"{ref.where}: every label is 0; at least 2 classes are needed")
    if "train" not in parts:
        return k
    if k > len(ref.y):
        raise DataError(f"{ref.where}: label {k - 1} ({ref.row(int(np.argmax(ref.y)))}) is not a class "
                        f"0..K-1: only {len(ref.y)} examples", "number the classes 0, 1, 2, … with no gaps")
    absent = np.flatnonzero(np.bincount(ref.y, minlength=k) == 0)
    if absent.size:
        listed = ", ".join(map(str, absent[:5])) + (", …" if absent.size > 5 else "")
        raise DataError(f"{ref.where}: labels must be the classes 0..{k - 1}, but class {listed} never occurs",
                        "number the classes 0, 1, 2, … with no gaps")
    test = parts.get("test")
    if test is not None and test is not ref and len(test.y) and int(test.y.max()) >= k:
        i = int(np.argmax(test.y >= k))
        raise DataError(f"{test.where}: label {int(test.y[i])} ({test.row(i)}) is a class the training "
                        f"set lacks (its labels are 0..{k - 1})")
    return k


def _class_names(dataset: str, k: int) -> tuple[str, ...]:
    names = CLASS_NAMES.get(dataset, ())
    return names if len(names) == k else tuple(str(i) for i in range(k))


def _splits(parts: dict[str, Part], n_val, dataset: str, names: tuple[str, ...], named: bool) -> Splits:
    first = next(iter(parts.values()))
    label_dtype = np.uint8 if len(names) <= 256 else np.int32
    none = Part(np.empty((0, first.X.shape[1]), np.uint8), np.empty(0, label_dtype), first.shape, "")
    train, test = parts.get("train", none), parts.get("test", none)
    if not isinstance(n_val, int) or isinstance(n_val, bool) or n_val < 0:
        raise ConfigError(f"data.validation must be a whole number >= 0, got {n_val!r}")
    if "train" not in parts:
        n_val = 0
    elif n_val >= len(train.y):
        raise ConfigError(
            f"data.validation is {n_val} but the training set holds {len(train.y)} examples",
            f"hold out at most {len(train.y) - 1} (0 for no validation set)")
    n_train = len(train.y) - n_val
    y_all, y_test = train.y.astype(label_dtype, copy=False), test.y.astype(label_dtype, copy=False)
    return Splits(train.X[:n_train], y_all[:n_train], train.X[n_train:], y_all[n_train:],
                  test.X, y_test, dataset=dataset, class_names=names, image_shape=tuple(first.shape),
                  n_classes=len(names), named=named)


def names_for_network(splits: Splits, layers: Sequence[int], saved=None) -> tuple[str, ...]:
    """The class names to report a network's results on ``splits`` with, after checking that
    the data fits the network: h·w pixels for its input layer, no more classes than its output
    layer, and (for data that names its classes, i.e. image folders) the names the checkpoint
    saved (``saved``: its meta's "class_names", or None). A DataError says which differs."""
    width, k = splits.X_test.shape[1], layers[-1]
    h, w = splits.image_shape
    if width != layers[0]:
        raise DataError(f"the data has {width} inputs ({h}×{w} pixels), but the network takes {layers[0]}",
                        "evaluate on images of the size the checkpoint was trained on")
    ok = isinstance(saved, (list, tuple)) and len(saved) == k and all(isinstance(x, str) for x in saved)
    saved = tuple(saved) if ok else None
    if splits.named and saved is not None and tuple(splits.class_names) != saved:
        raise DataError(f"the data's classes ({', '.join(splits.class_names)}) are not the checkpoint's "
                        f"({', '.join(saved)})", "evaluate on data with the classes it was trained on")
    if splits.n_classes > k or (splits.named and splits.n_classes != k):
        raise DataError(f"the data has {splits.n_classes} classes, but the network has {k} outputs",
                        "evaluate on data with the classes it was trained on")
    if saved is not None:
        return saved
    return splits.class_names if len(splits.class_names) == k else _class_names(splits.dataset, k)


# --- a batch for gradcheck ---------------------------------------------------------------

# Training images in each registered data set; n for the L2 term when the data is absent.
TRAINING_IMAGES = 60000


def check_layers(splits: Splits, layers: Sequence[int]) -> None:
    """A config's network must fit the data it trains or is checked on: the input layer takes
    the images' h·w pixels and the output layer has one unit per class. A ConfigError (exit 2)
    says which end differs and the layers that would fit."""
    width, k = splits.X_train.shape[1], splits.n_classes
    h, w = splits.image_shape
    right = "use --set model.layers=[" + ",".join(map(str, (width, *layers[1:-1], k))) + "]"
    if width != layers[0]:
        raise ConfigError(f"model.layers starts at {layers[0]}, but the input layer must equal the "
                          f"data's pixels: {width} ({h}×{w})", right)
    if layers[-1] != k:
        raise ConfigError(f"model.layers ends at {layers[-1]}, but the output layer must equal the "
                          f"data's classes: {k}", right)


def _on_disk(data_cfg) -> bool:
    """Whether the configured data is there to read (an IDX folder: all four files)."""
    fmt, path = source_of(data_cfg)
    if fmt == "idx":
        return all(find_file(path, name) is not None for name in FILES)
    return path.exists()


def gradcheck_batch(cfg, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, str]:
    """X, Y, n and a line saying where they came from: ``m`` rows of the configured training
    split when its files are present (nothing is downloaded; the network must fit them, see
    ``check_layers``), else seeded random pixels and labels as wide as the configured layers.
    n is the size of the training split the config trains on."""

    layers, output, cost = cfg.model.layers, cfg.model.output, cfg.cost
    folder = dataset_folder(cfg.data)
    if _on_disk(cfg.data):
        splits = read_splits(cfg.data, need=("train",))
        check_layers(splits, layers)
        rows = rng.choice(len(splits.y_train), size=min(m, len(splits.y_train)), replace=False)
        X = scale01(splits.X_train[rows], np.float64)
        Y = F.one_hot(splits.y_train[rows], layers[-1], dtype=np.float64)
        where = f"{len(rows)} rows of the {splits.dataset} training split ({shown(folder)})"
        return X, Y, len(splits.y_train), where
    X, Y = random_batch(layers, output, cost, m, rng, pixels=True)
    n = max(1, TRAINING_IMAGES - cfg.data.validation)
    where = (
        f"{m} seeded random rows (pixels uniform in [0, 1), random targets): no data in "
        f"{shown(folder)} — run `mlpcli fetch` to check on real rows; n = {n} assumed"
    )
    return X, Y, n, where
