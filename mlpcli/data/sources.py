"""Readers for the data sources besides IDX folders: CSV files, NumPy .npz archives, image folders.

Each reader returns one ``Part`` per split asked for (``"train"``, ``"test"``): uint8 pixels
(N, h·w), integer labels (N,), the image size and, for image folders, the class names.
``mlpcli.data.splits.read_splits`` is the one entry point that picks a reader and builds the splits.

* **CSV** — one example per row: the label (the column named ``label``, else the first), then
  the pixels as whole numbers 0–255; a header row is optional (it is one when it holds a
  letter). The file is parsed in blocks of whole lines with NumPy (no per-number Python), so
  memory stays at about one block plus the result, and 60,000 × 785 parses in seconds.
* **.npz** — Keras' layout (``x_train``, ``y_train``, ``x_test``, ``y_test``; images (N, h, w) or
  (N, h·w)). Each array's header is checked against the archive before any buffer is
  allocated; object arrays are refused and nothing is unpickled (``allow_pickle=False``).
* **Image folders** — ``train/<class>/*`` and ``test/<class>/*``; classes are the sorted folder
  names of ``train/``. Images are decoded by ``images.load_image`` and turned into pixels by
  ``images.preprocess`` (``digits``) or kept at their own (common) size (``none``), so they
  are the pixels ``mlpcli predict`` would show the network.

Every problem is a ``DataError`` of one line naming the file and the line, key or image.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mlpcli.errors import DataError

BLOCK = 8 << 20  # bytes of CSV parsed at a time
MAX_LINE = 64 << 20  # a CSV line longer than this is refused (no newline in sight)
MAX_DIGITS = 9  # a CSV field of more digits is refused (and fits int64 sums)
NPZ_KEYS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}
MAX_DEFLATE_RATIO = 1032
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
_COMMA, _NEWLINE, _CR = 44, 10, 13


@dataclass
class Part:
    """One split as read from a source: X uint8 (N, h·w), y integers (N,)."""

    X: np.ndarray
    y: np.ndarray
    shape: tuple[int, int]
    where: str  # the file or folder it came from, for messages
    names: tuple[str, ...] | None = None  # class names the source gives (image folders)
    row_format: str = "example {}"  # how a message names example i: row_format.format(i + row_base)
    row_base: int = 0

    def row(self, i: int) -> str:
        return self.row_format.format(i + self.row_base)


def image_shape(width: int) -> tuple[int, int]:
    """The (h, w) of flat images of ``width`` pixels: square when it can be, else one row."""
    side = math.isqrt(width)
    return (side, side) if side * side == width else (1, width)


# ---------------------------------------------------------------------------------------------
# CSV


@dataclass
class _Layout:
    """What the first line of a CSV file says: the column count, the label column, and
    whether it was a header."""

    n_cols: int
    label_col: int
    header: bool


def read_csv(path: Path) -> Part:
    """One CSV file → a ``Part`` (labels are checked by the caller, who knows the classes)."""
    try:
        with open(path, "rb") as f:
            return _parse_csv(path, f)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a CSV file") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None


def _parse_csv(path: Path, f: BinaryIO) -> Part:
    first, rest = _first_line(path, f)
    layout = _layout(path, first)
    pixels, labels = [], []
    line = 2 if layout.header else 1  # the file line the next block starts at
    if not layout.header:
        rest = first + b"\n" + rest
    for block in _blocks(path, f, rest):
        table = _parse_block(path, block, layout.n_cols, line)
        labels.append(table[:, layout.label_col])
        pixels.append(_pixels(path, table, layout.label_col, line))
        line += len(table)
    n_rows = sum(len(y) for y in labels)
    if n_rows == 0:
        raise DataError(f"{path}: holds no rows of data", "one example per line: label, then the pixels")
    X = np.concatenate(pixels) if len(pixels) > 1 else pixels[0]
    y = np.concatenate(labels) if len(labels) > 1 else labels[0]
    return Part(X, y, image_shape(X.shape[1]), str(path), row_format="line {}",
                row_base=1 + layout.header)


def _first_line(path: Path, f: BinaryIO) -> tuple[bytes, bytes]:
    """(the first line without its end, what was read after it)."""
    buf = b""
    while b"\n" not in buf:
        chunk = f.read(BLOCK)
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_LINE:
            raise DataError(f"{path}: line 1 is longer than {MAX_LINE >> 20} MB", "is this a CSV file?")
    buf = buf.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
    first, _, rest = buf.partition(b"\n")
    first = first.rstrip(b"\r")
    if not first.strip():
        raise DataError(f"{path}: line 1 is empty", "one example per line: label, then the pixels")
    return first, rest


def _layout(path: Path, first: bytes) -> _Layout:
    fields = first.split(b",")
    if len(fields) < 2:
        raise DataError(f"{path}: line 1 has {len(fields)} column; expected a label and pixels",
                        "columns are separated by commas")
    n = len(fields)
    if not any(chr(c).isalpha() for c in first if c < 128):
        side = math.isqrt(n)
        if side >= 8 and side * side == n and math.isqrt(n - 1) ** 2 != n - 1:
            raise DataError(f"{path}, line 1: {n} columns hold the pixels of a {side}×{side} image but no label",
                            "put each row's label first, or name its column label in a header row")
        return _Layout(n, 0, header=False)
    names = [f.strip().strip(b"\"'").decode("utf-8", "replace").strip().lower() for f in fields]
    if "label" not in names and names[0].startswith("pixel"):
        raise DataError(f"{path}: no column is named label, and the first ({names[0]}) is a pixel",
                        "name the label column label (or put the labels first)")
    return _Layout(n, names.index("label") if "label" in names else 0, header=True)


def _blocks(path: Path, f: BinaryIO, rest: bytes):
    """Blocks of whole lines (each ending in a newline), about ``BLOCK`` bytes each. Empty
    lines at the end of the file are dropped (a block is held back until the next one is
    read, so the last one is known)."""
    buf, pending = rest, None
    while True:
        chunk = f.read(BLOCK)
        if not chunk:
            break
        buf += chunk
        cut = buf.rfind(b"\n")
        if cut < 0:
            if len(buf) > MAX_LINE:
                raise DataError(f"{path}: a line is longer than {MAX_LINE >> 20} MB")
            continue
        if pending is not None:
            yield pending
        pending, buf = buf[: cut + 1], buf[cut + 1:]
    tail = ((pending or b"") + buf).rstrip(b"\r\n")
    if tail:
        yield tail + b"\n"


def _parse_block(path: Path, block: bytes, n_cols: int, line: int) -> np.ndarray:
    """Whole lines of comma-separated whole numbers → an integer table (rows, n_cols).

    The fast path (no field longer than 3 digits, as pixels 0–255 are) works on the bytes:
    each field's value is computed at the separator after it from the 3 bytes before it, and
    the separators' values are then picked out. Longer fields take ``_parse_long``.
    """
    a = _without_cr(path, np.frombuffer(block, dtype=np.uint8), line)
    newline = a == _NEWLINE
    is_sep = newline | (a == _COMMA)
    digit = (a - 48) < 10  # uint8 arithmetic: only '0'..'9' fall below 10
    ok = is_sep | digit
    if not ok.all():
        _fail_at(path, a, int(np.argmin(ok)), line, "not a whole number 0–255")
    empty = is_sep[1:] & is_sep[:-1]
    if is_sep[0] or empty.any():
        _fail_at(path, a, 0 if is_sep[0] else int(np.argmax(empty)) + 1, line, "an empty field")
    if (digit[3:] & digit[2:-1] & digit[1:-2] & digit[:-3]).any():
        return _parse_long(path, a, is_sep, n_cols, line)
    d = (a - 48) * digit  # 0..9 at digits, 0 at separators
    two = np.zeros(len(a), dtype=np.uint8)  # at each separator: the field's last two digits (≤ 99)
    two[1:] = d[:-1]
    two[2:] += d[:-2] * np.uint8(10)  # (a separator two back adds 0)
    at_sep = two.astype(np.uint16)
    at_sep[3:] += (d[:-3] * digit[1:-2]).astype(np.uint16) * np.uint16(100)  # when the byte between is a digit
    at_sep += newline * np.uint16(_ROW_END)  # mark the fields that end a row
    fields = np.compress(is_sep, at_sep)  # the fields' values and where rows end (faster than at_sep[is_sep])
    rows = len(fields) // n_cols
    if (len(fields) % n_cols or np.count_nonzero(newline) != rows
            or (fields[n_cols - 1::n_cols] < _ROW_END).any()):
        _ragged(path, a, is_sep, n_cols, line)
    return (fields & np.uint16(_ROW_END - 1)).reshape(rows, n_cols)


_ROW_END = 1 << 15  # a flag bit above any 3-digit value


def _without_cr(path: Path, a: np.ndarray, line: int) -> np.ndarray:
    """The block without the carriage returns of CRLF line ends (any other one is an error)."""
    cr = a == _CR
    if not cr.any():
        return a
    at = np.flatnonzero(cr)
    stray = a[np.minimum(at + 1, len(a) - 1)] != _NEWLINE
    if stray.any():
        _fail_at(path, a, int(at[np.argmax(stray)]), line, "a carriage return inside a line")
    return a[~cr]


def _ragged(path: Path, a: np.ndarray, is_sep: np.ndarray, n_cols: int, line: int):
    counts = np.diff(np.flatnonzero(a[is_sep] == _NEWLINE), prepend=-1)
    row = int(np.argmax(counts != n_cols))
    raise DataError(f"{path}, line {line + row}: {int(counts[row])} columns, expected {n_cols} "
                    "(as on the first line)", "every row needs the label and the same number of pixels")


def _parse_long(path: Path, a: np.ndarray, is_sep: np.ndarray, n_cols: int, line: int) -> np.ndarray:
    """``_parse_block`` for fields of up to ``MAX_DIGITS`` digits (int32 sums)."""
    ends = np.flatnonzero(is_sep)
    lengths = np.diff(ends, prepend=-1) - 1
    longest = int(lengths.max())
    if longest > MAX_DIGITS:
        _fail_at(path, a, int(ends[np.argmax(lengths)]) - 1, line, "too large a number")
    padded = np.concatenate([np.full(MAX_DIGITS, 48, dtype=np.uint8), a])
    at = ends + (MAX_DIGITS - 1)  # the last digit of each field, in ``padded``
    values = padded[at].astype(np.int32) - 48
    for k in range(1, longest):  # at most 9 digits: every sum fits int32
        digit = padded[at - k].astype(np.int32) - 48
        digit[lengths <= k] = 0
        values += digit * np.int32(10 ** k)
    return values.reshape(-1, n_cols)


def _fail_at(path: Path, a: np.ndarray, i: int, line: int, what: str):
    """Raise a DataError for byte ``i`` of a block: its line, column and field."""
    line_start = int(np.flatnonzero(a[:i] == _NEWLINE)[-1]) + 1 if (a[:i] == _NEWLINE).any() else 0
    line_end = i + int(np.argmax(a[i:] == _NEWLINE)) if (a[i:] == _NEWLINE).any() else len(a)
    n = line + int(np.count_nonzero(a[:line_start] == _NEWLINE))
    text = a[line_start:line_end].tobytes()
    if not text:
        raise DataError(f"{path}, line {n}: the line is empty", "remove empty lines")
    column = int(np.count_nonzero(a[line_start:i] == _COMMA))
    field = text.split(b",")[min(column, text.count(b","))].decode("utf-8", "replace")
    raise DataError(f"{path}, line {n}, column {column + 1}: {field!r} is {what}")


def _pixels(path: Path, table: np.ndarray, label_col: int, line: int) -> np.ndarray:
    pixels = np.delete(table, label_col, axis=1)
    if pixels.size and int(pixels.max()) > 255:
        row, col = np.unravel_index(int(np.argmax(pixels > 255)), pixels.shape)
        col += col >= label_col
        raise DataError(f"{path}, line {line + row}, column {col + 1}: pixel {int(table[row, col])} "
                        "is outside 0–255")
    return pixels.astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# .npz (Keras' layout)


def read_npz(path: Path, need: tuple[str, ...]) -> dict[str, Part]:
    """The splits in ``need`` from a Keras-layout .npz archive, one ``Part`` each."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            keys = [key for split in need for key in NPZ_KEYS[split]]
            missing = [key for key in keys if key not in infos]
            if missing:
                raise DataError(f"{path}: missing {', '.join(missing)} (it holds {', '.join(sorted(infos)) or 'nothing'})",
                                "a Keras-layout .npz holds x_train, y_train, x_test and y_test")
            for key in keys:
                _check_npy_header(path, key, archive, infos[key])
        with np.load(path, allow_pickle=False) as arrays:
            loaded = {key: arrays[key] for key in keys}
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise DataError(f"{path}: not a readable .npz archive ({error})") from None
    except ValueError as error:
        raise DataError(f"{path}: cannot load ({error})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    return {split: _npz_part(path, split, loaded) for split in need}


def _check_npy_header(path: Path, key: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Refuse object arrays and headers that promise more bytes than the archive holds."""
    fmt = np.lib.format
    with archive.open(info) as f:
        try:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(f)
        except ValueError as error:
            raise DataError(f"{path}: {key} is not a NumPy array ({error})") from None
    if dtype.hasobject:
        raise DataError(f"{path}: {key} is an object array (pickled Python objects), which is never loaded",
                        "save plain integer arrays, e.g. np.savez(path, x_train=x.astype(np.uint8), …)")
    promised = math.prod(shape) * dtype.itemsize
    stored = min(info.compress_size, path.stat().st_size)
    most = min(info.file_size, stored * MAX_DEFLATE_RATIO + 1024)
    if promised > most:
        raise DataError(f"{path}: {key}'s header promises {shape} ({promised} bytes) but the archive "
                        f"holds at most {most} bytes of it", "the file is truncated or corrupt")


def _npz_part(path: Path, split: str, arrays: dict) -> Part:
    x_key, y_key = NPZ_KEYS[split]
    x, y = arrays[x_key], arrays[y_key]
    if x.dtype.kind not in "ui" or y.dtype.kind not in "ui":
        key, a = (x_key, x) if x.dtype.kind not in "ui" else (y_key, y)
        hint = "store pixels as uint8 0–255" if key == x_key else "store labels as integers 0..K-1"
        raise DataError(f"{path}: {key} holds {a.dtype} values, expected integers", hint)
    if x.ndim not in (2, 3) or 0 in x.shape[1:]:
        raise DataError(f"{path}: {x_key} has shape {x.shape}, expected (N, h, w) or (N, h·w)")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{path}: {x_key} holds {len(x)} images but {y_key} has shape {y.shape}",
                        f"{y_key} must hold one label per image")
    flat = x.reshape(len(x), -1)
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) > 255):
        row = int(np.argmax(((flat < 0) | (flat > 255)).any(axis=1)))
        raise DataError(f"{path}: {x_key}[{row}] has pixels outside 0–255")
    if y.size and int(y.min()) < 0:
        raise DataError(f"{path}: {y_key}[{int(np.argmin(y))}] is {int(y.min())}, not a class 0..K-1")
    shape = tuple(x.shape[1:]) if x.ndim == 3 else image_shape(flat.shape[1])
    return Part(flat.astype(np.uint8, copy=False), y, shape, str(path), row_format=y_key + "[{}]")


# ---------------------------------------------------------------------------------------------
# Image folders (train/<class>/*, test/<class>/*)


def class_folders(folder: Path) -> list[str]:
    """The class folders' names in ``folder``, sorted (hidden ones left out)."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_image_folder(root: Path, need: tuple[str, ...], mode: str) -> dict[str, Part]:
    """The splits in ``need`` from ``root/train/<class>/*`` and ``root/test/<class>/*``."""
    names_from = root / "train" if (root / "train").is_dir() else root / "test"
    for split in need:
        if not (root / split).is_dir():
            raise DataError(f"{root}: no {split}/ folder", "an image folder holds train/<class>/ and "
                            "test/<class>/ folders of images")
    names = tuple(class_folders(names_from))
    if len(names) < 2:
        raise DataError(f"{names_from}: holds {len(names)} class folder(s), at least 2 are needed",
                        f"one folder per class: {names_from}/<class>/<image files>")
    parts, size = {}, None
    for split in need:
        folder = root / split
        extra = sorted(set(class_folders(folder)) - set(names))
        if extra:
            raise DataError(f"{folder}: classes {', '.join(extra)} are not in {names_from}",
                            "the test set may only hold classes the training set has")
        part = _read_classes(folder, names, mode, size)
        size = part.shape
        parts[split] = part
    return parts


def _read_classes(folder: Path, names: tuple[str, ...], mode: str, size) -> Part:
    """Every image of ``folder/<class>/``, interleaved across classes (so the last examples,
    the validation hold-out, hold every class)."""
    per_class = []
    for label, name in enumerate(names):
        sub = folder / name
        if not sub.is_dir():
            continue
        files = sorted(p for p in sub.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise DataError(f"{sub}: empty class folder (no {', '.join(IMAGE_SUFFIXES[:3])}, … files)",
                            "put the class's images in it, or remove the folder")
        pixels = []
        for path in files:
            image, size = _pixels_of(path, mode, size)
            pixels.append(image)
        per_class.append((label, pixels))
    if not per_class:
        raise DataError(f"{folder}: holds no class folders", f"one folder per class: {folder}/<class>/")
    order = sorted((i, c) for c, (_, pixels) in enumerate(per_class) for i in range(len(pixels)))
    X = np.stack([per_class[c][1][i] for i, c in order])
    y = np.array([per_class[c][0] for _, c in order], dtype=np.uint8 if len(names) <= 256 else np.int32)
    return Part(X.reshape(len(X), -1), y, size, str(folder), names)


def _pixels_of(path: Path, mode: str, size):
    """(uint8 pixels (h, w), the size every image must have) of one image file."""
    from mlpcli.data import images

    gray = images.load_image(path)
    try:
        if mode == "digits":
            return images.preprocess(gray, "digits").reshape(images.SIDE, images.SIDE), size or (28, 28)
        if size is not None and gray.shape != tuple(size):
            raise DataError(f"is {gray.shape[0]}×{gray.shape[1]} pixels, but the images before it are "
                            f"{size[0]}×{size[1]}", "data.preprocess: none keeps each image's size, so all "
                            "must have one size; resize them, or use data.preprocess: digits")
        ink = images.to_ink(gray)
        return np.clip(ink, 0, 255).round().astype(np.uint8), tuple(gray.shape)
    except DataError as error:
        raise DataError(f"{path}: {error.message}", error.hint) from None
