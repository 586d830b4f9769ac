"""The IDX reader and the split loader: every malformed file is a DataError, never a crash or a
giant allocation; splits come out as the config asks. (CSV, .npz and image folders:
test_sources.py.)"""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlpcli.run.config import DataConfig
from mlpcli.data.splits import CLASS_NAMES, FILES, read_splits, read_idx
from mlpcli.errors import ConfigError, DataError


def idx_bytes(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    header = bytes([0, 0, dtype_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write(path: Path, data: bytes, compress: bool = False) -> Path:
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def write_set(folder: Path, n_train=30, n_test=12, compress=True, train_labels=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    labels = train_labels if train_labels is not None else rng.integers(0, 10, n_train, dtype=np.uint8)
    arrays = [images(n_train, 2), labels, images(n_test, 3),
              rng.integers(0, 10, n_test, dtype=np.uint8)]
    for name, array in zip(FILES, arrays):
        target = folder / (name if compress else name.removesuffix(".gz"))
        write(target, idx_bytes(array), compress)
    return folder


# ---------------------------------------------------------------------------------------------
# read_idx


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_reads_gzip_and_raw(tmp_path, compress):
    array = images(7)
    got = read_idx(write(tmp_path / "x", idx_bytes(array), compress))
    assert got.dtype == np.uint8 and got.shape == (7, 28, 28) and (got == array).all()
    assert got.flags.writeable


@pytest.mark.parametrize("compress", [False, True])
def test_truncation_is_named_with_the_announced_and_actual_sizes(tmp_path, compress):
    data = idx_bytes(images(10))[:5000]
    path = write(tmp_path / "t10k-images-idx3-ubyte.gz", data, compress)
    with pytest.raises(DataError) as error:
        read_idx(path)
    assert str(error.value) == (f"{path}: truncated: header says 10 images (7856 bytes), "
                                "file holds 5000")


@pytest.mark.parametrize("compress", [False, True])
def test_trailing_data_is_an_error(tmp_path, compress):
    path = write(tmp_path / "labels", idx_bytes(np.arange(10, dtype=np.uint8)) + b"\0", compress)
    with pytest.raises(DataError, match="trailing data: header says 10 labels"):
        read_idx(path)


@pytest.mark.parametrize("data, message", [
    (b"\x01\x00\x08\x01" + bytes(8), "bad magic number 0x01000801"),
    (b"\x00\x00\x0d\x01\x00\x00\x00\x01" + bytes(4), r"data type 0x0D \(float32\) is not supported"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated inside the header"),
    (b"\x00\x00", "too short for an IDX header"),
])
def test_bad_headers_are_named(tmp_path, data, message):
    with pytest.raises(DataError, match=message):
        read_idx(write(tmp_path / "f", data))


def test_an_unexpected_number_of_dimensions_is_an_error(tmp_path):
    with pytest.raises(DataError, match="header has 1 dimensions, expected 3"):
        read_idx(write(tmp_path / "f", idx_bytes(np.zeros(4))), ndim=3)


def test_html_and_corrupt_gzip_are_errors(tmp_path):
    page = write(tmp_path / "page.gz", b"<!DOCTYPE html><html><body>Sign in</body></html>")
    with pytest.raises(DataError, match="web page"):
        read_idx(page)
    broken = bytearray(gzip.compress(idx_bytes(images(3)), mtime=0))
    broken[len(broken) // 2] ^= 0xFF
    with pytest.raises(DataError, match="corrupt gzip"):
        read_idx(write(tmp_path / "broken.gz", bytes(broken)))
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "absent.gz")


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def _expect_data_error(path: Path):
    def call():
        with pytest.raises(DataError):
            read_idx(path)
    return call


@pytest.mark.parametrize("compress", [False, True])
def test_a_huge_announced_count_is_refused_before_allocating(tmp_path, compress):
    data = b"\x00\x00\x08\x03" + struct.pack(">3I", 2**32 - 1, 28, 28) + bytes(784)
    path = write(tmp_path / "huge", data, compress)
    with pytest.raises(DataError, match="truncated: header says 4294967295 images"):
        read_idx(path)
    assert _peak_bytes(_expect_data_error(path)) < 1 << 20


def test_a_gzip_bomb_is_not_decompressed_past_the_announced_size(tmp_path):
    bomb = idx_bytes(np.zeros((1, 28, 28))) + bytes(50_000_000)  # 50 MB of zeros: ~50 kB gz
    path = write(tmp_path / "bomb.gz", bomb, compress=True)
    assert path.stat().st_size < 100_000
    with pytest.raises(DataError, match="trailing data"):
        read_idx(path)
    assert _peak_bytes(_expect_data_error(path)) < 1 << 20


def test_a_lying_header_costs_only_what_the_file_holds(tmp_path):
    # 100 kB of incompressible bytes claiming 100 MB: plausible for the gzip size, so only
    # reading can tell — and reading must not allocate the announced 100 MB first.
    noise = np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    path = write(tmp_path / "liar.gz", b"\x00\x00\x08\x01" + struct.pack(">I", 100_000_000)
                 + noise, compress=True)
    with pytest.raises(DataError, match="truncated: header says 100000000 labels"):
        read_idx(path)
    assert _peak_bytes(_expect_data_error(path)) < 4 << 20


# Hypothesis: a valid small IDX file, one corruption, raw or gzip → always DataError, and
# never more memory than a small multiple of what the file really holds.

_CORRUPTIONS = st.sampled_from(["truncate", "magic", "dtype", "ndim", "dim", "huge", "trailing"])


@st.composite
def corrupted_idx(draw):
    ndim = draw(st.sampled_from([1, 3]))
    n = draw(st.integers(1, 6))
    shape = (n,) if ndim == 1 else (n, draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    data = bytearray(idx_bytes(np.ones(shape, dtype=np.uint8)))
    kind = draw(_CORRUPTIONS)
    if kind == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif kind == "magic":
        data[draw(st.integers(0, 1))] = draw(st.integers(1, 255))
    elif kind == "dtype":
        data[2] = draw(st.integers(0, 255).filter(lambda c: c != 0x08))
    elif kind == "ndim":
        data[3] = draw(st.integers(0, 255).filter(lambda d: d != ndim))
    elif kind == "dim":
        i = draw(st.integers(0, ndim - 1))
        old = shape[i]
        data[4 + 4 * i: 8 + 4 * i] = struct.pack(">I", draw(
            st.integers(0, 2**32 - 1).filter(lambda d: d != old)))
    elif kind == "huge":
        data[4:8] = struct.pack(">I", draw(st.integers(2**24, 2**32 - 1)))
    else:
        data += draw(st.binary(min_size=1, max_size=64))
    return bytes(data), ndim, draw(st.booleans())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=corrupted_idx())
def test_any_corruption_is_a_data_error_without_a_big_allocation(tmp_path_factory, case):
    data, ndim, compress = case
    path = write(tmp_path_factory.mktemp("idx") / "f", data, compress)

    def call():
        with pytest.raises(DataError):
            read_idx(path, ndim=ndim)
    # The gzip reader itself buffers up to ~1 MiB; the file's contents are a few hundred bytes.
    assert _peak_bytes(call) < (3 << 20) + 4 * len(data)


# ---------------------------------------------------------------------------------------------
# read_splits


def test_validation_is_held_out_from_the_end_of_the_training_set(tmp_path):
    folder = write_set(tmp_path / "set")
    train = read_idx(folder / FILES[0]).reshape(30, 784)
    labels = read_idx(folder / FILES[1])
    splits = read_splits(DataConfig(path=str(folder), validation=8))
    assert splits.X_train.shape == (22, 784) and splits.X_train.dtype == np.uint8
    assert (splits.X_train == train[:22]).all() and (splits.X_val == train[22:]).all()
    assert (splits.y_train == labels[:22]).all() and (splits.y_val == labels[22:]).all()
    assert splits.X_test.shape == (12, 784) and splits.y_test.shape == (12,)
    assert splits.dataset == "mnist" and splits.class_names == CLASS_NAMES["mnist"]


def test_no_validation_set_and_raw_files(tmp_path):
    folder = write_set(tmp_path / "set", compress=False)
    splits = read_splits(DataConfig(dataset="fashion-mnist", path=str(folder), validation=0))
    assert splits.X_train.shape == (30, 784) and splits.X_val.shape == (0, 784)
    assert splits.class_names[0] == "T-shirt/top" and splits.class_names[9] == "Ankle boot"


@pytest.mark.parametrize("validation", [30, 31, -1])
def test_a_validation_count_the_training_set_cannot_give_is_a_config_error(tmp_path, validation):
    folder = write_set(tmp_path / "set")
    with pytest.raises(ConfigError, match="data.validation"):
        read_splits(DataConfig(path=str(folder), validation=validation))
    assert len(read_splits(DataConfig(path=str(folder), validation=29)).X_train) == 1


def test_missing_files_are_listed_with_what_to_do(tmp_path):
    folder = write_set(tmp_path / "mnist")
    (folder / FILES[2]).unlink()
    with pytest.raises(DataError) as error:
        read_splits(DataConfig(dir=str(tmp_path)))  # data.read_splits never fetches
    assert FILES[2] in error.value.message and "mlpcli fetch --dataset mnist" in error.value.hint
    with pytest.raises(DataError, match=FILES[2]):
        read_splits(DataConfig(path=str(folder)))  # data.path is never fetched into


def test_counts_must_agree_and_labels_must_be_classes(tmp_path):
    folder = write_set(tmp_path / "a", train_labels=np.zeros(29, dtype=np.uint8))
    with pytest.raises(DataError, match="holds 30 images but .* holds 29 labels"):
        read_splits(DataConfig(path=str(folder), validation=0))
    bad = np.zeros(30, dtype=np.uint8)
    bad[17] = 10
    folder = write_set(tmp_path / "b", train_labels=bad)
    with pytest.raises(DataError, match="label 10 at index 17"):
        read_splits(DataConfig(path=str(folder), validation=0))


def test_both_splits_must_have_one_image_size_which_may_be_any(tmp_path):
    folder = write_set(tmp_path / "set")
    write(folder / FILES[2], idx_bytes(np.zeros((12, 27, 28))), compress=True)
    with pytest.raises(DataError, match="27×28, expected 28×28"):
        read_splits(DataConfig(path=str(folder), validation=0))
    write(folder / FILES[0], idx_bytes(np.zeros((30, 27, 28))), compress=True)
    splits = read_splits(DataConfig(path=str(folder), validation=0))
    assert splits.image_shape == (27, 28) and splits.X_train.shape == (30, 27 * 28)
    assert splits.n_classes == 10 and not splits.named


def test_reading_idx_files_closes_every_file(tmp_path):
    """``python -W error`` turns an unclosed file into an error report on stderr."""
    folder = write_set(tmp_path / "gz")
    raw = write_set(tmp_path / "raw", compress=False)
    code = ("import gc, sys; from mlpcli.run.config import DataConfig; from mlpcli.data.splits import read_splits, read_idx; "
            f"read_splits(DataConfig(path={str(folder)!r}, validation=3)); read_splits(DataConfig(path={str(raw)!r}, validation=3)); "
            f"read_idx({str(folder / FILES[0])!r}); gc.collect()")
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert result.returncode == 0 and "ResourceWarning" not in result.stderr, result.stderr


def test_class_names_cover_every_dataset():
    assert set(CLASS_NAMES) == {"mnist", "fashion-mnist", "kmnist"}
    assert all(len(names) == 10 for names in CLASS_NAMES.values())
    assert CLASS_NAMES["kmnist"] == ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
