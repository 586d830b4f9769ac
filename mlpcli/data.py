"""IDX files → train / validation / test splits.

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
from typing import BinaryIO

import numpy as np

from mlpcli.errors import ConfigError, DataError

# The four files every MNIST-format data set consists of (final names, gzip-compressed).
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

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
    """The three splits of a data set: X uint8 (N, 784), y uint8 (N,)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    dataset: str
    class_names: tuple[str, ...]


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
    f = open(path, "rb")
    if f.read(2) == _GZIP_MAGIC:
        f.seek(0)
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    f.seek(0)
    return f


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
# Loading a data set


def find_file(folder: Path, name: str) -> Path | None:
    """``<name>`` in ``folder``, gzip-compressed (``.gz``, preferred) or raw (without it)."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def read_images(path: Path) -> np.ndarray:
    images = read_idx(path, ndim=3)
    if images.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{path}: images are {images.shape[1]}×{images.shape[2]}, expected 28×28")
    if images.shape[0] == 0:
        raise DataError(f"{path}: holds no images")
    return images.reshape(len(images), -1)


def read_labels(path: Path) -> np.ndarray:
    labels = read_idx(path, ndim=1)
    if labels.size and int(labels.max()) >= N_CLASSES:
        bad = int(np.argmax(labels >= N_CLASSES))
        raise DataError(f"{path}: label {int(labels[bad])} at index {bad} is not a class 0..9")
    return labels


def read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    X, y = read_images(images_path), read_labels(labels_path)
    if len(X) != len(y):
        raise DataError(f"{images_path.name} holds {len(X)} images but {labels_path.name} holds "
                        f"{len(y)} labels", "the two files are not from the same data set")
    return X, y


def dataset_folder(data_cfg) -> Path:
    """Where the config's data lives: ``data.path`` if set, else ``<data.dir>/<data.dataset>``."""
    if data_cfg.path is not None:
        return Path(data_cfg.path)
    return Path(data_cfg.dir) / data_cfg.dataset


def load_splits(data_cfg) -> Splits:
    """Train / validation / test splits for a ``DataConfig``, from files already on disk.

    Reads ``data_cfg.path`` when set (any folder holding the four files, ``.gz`` or raw;
    ``data_cfg.dataset`` then only names the classes), else ``<data_cfg.dir>/<dataset>/``.
    The last ``data_cfg.validation`` training examples are held out for validation.
    ``fetch.load_splits`` is the same, but downloads a registered data set first if missing.
    """
    folder = dataset_folder(data_cfg)
    paths = {name: find_file(folder, name) for name in FILES}
    missing = [name for name, p in paths.items() if p is None]
    if missing:
        hint = (f"run: mlpcli fetch --dataset {data_cfg.dataset} --data-dir {data_cfg.dir}"
                if data_cfg.path is None
                else "data.path must be a folder holding the four IDX files (.gz or raw)")
        raise DataError(f"{folder}: missing {', '.join(missing)}", hint)

    X_all, y_all = read_pair(paths[TRAIN_IMAGES], paths[TRAIN_LABELS])
    X_test, y_test = read_pair(paths[TEST_IMAGES], paths[TEST_LABELS])
    n_val = data_cfg.validation
    if not isinstance(n_val, int) or isinstance(n_val, bool) or n_val < 0:
        raise ConfigError(f"data.validation must be a whole number >= 0, got {n_val!r}")
    if n_val >= len(X_all):
        raise ConfigError(
            f"data.validation is {n_val} but the training set holds {len(X_all)} examples",
            f"hold out at most {len(X_all) - 1} (0 for no validation set)")
    n_train = len(X_all) - n_val
    names = CLASS_NAMES.get(data_cfg.dataset, CLASS_NAMES["mnist"])
    return Splits(X_all[:n_train], y_all[:n_train], X_all[n_train:], y_all[n_train:],
                  X_test, y_test, dataset=data_cfg.dataset, class_names=names)
