"""Shared fixtures. Keep each group under its own heading and name fixtures for what they give."""

from __future__ import annotations

import os

# The test suite's matrices are tiny: one BLAS thread is faster for them, and it keeps the suite
# from crawling when another process is busy on the other core. Set before NumPy loads its BLAS;
# subprocesses started by the tests inherit it.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import gzip  # noqa: E402
import hashlib
import http.server
import struct
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

# ---------------------------------------------------------------------------------------------
# IDX files and a fault-injecting HTTP server on 127.0.0.1 (data / fetch tests)


def idx_bytes(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    """An IDX file's bytes: magic 00 00 <type> <ndim>, big-endian uint32 dims, the items."""
    header = bytes([0, 0, dtype_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class IdxDataset:
    """A small synthetic data set registered with mlpcli.data.fetch under ``name``."""

    name: str
    spec: object  # mlpcli.data.fetch.DatasetSpec
    arrays: dict  # "train_images" etc. -> ndarray
    payloads: dict  # final file name -> raw IDX bytes
    archives: dict  # final file name -> gzip bytes (what the registry pins)

    def write(self, folder: Path, raw: tuple[str, ...] = ()) -> Path:
        """Write the four files into ``folder``: gzip, or raw (no .gz) for names in ``raw``."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, archive in self.archives.items():
            if name in raw:
                (folder / name.removesuffix(".gz")).write_bytes(self.payloads[name])
            else:
                (folder / name).write_bytes(archive)
        return folder


@pytest.fixture
def idx_dataset():
    """50 train / 20 test random 28×28 images, registered as data set "synthetic"."""
    from mlpcli.data import splits as data
    from mlpcli.data import fetch

    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, 50, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, 20, dtype=np.uint8),
    }
    names = dict(zip(arrays, data.FILES))
    payloads = {names[key]: idx_bytes(a) for key, a in arrays.items()}
    archives = {name: gzip.compress(p, mtime=0) for name, p in payloads.items()}
    spec = fetch.DatasetSpec("synthetic", mirrors=(), files=tuple(
        fetch.FileSpec(name, payload_size=len(payloads[name]), payload_sha256=sha256(payloads[name]),
                       archive_sha256=sha256(archives[name]), archive_size=len(archives[name]))
        for name in data.FILES))
    fetch.register(spec)
    yield IdxDataset("synthetic", spec, arrays, payloads, archives)
    fetch.unregister("synthetic")


@dataclass
class FaultServer:
    """A real HTTP server whose answers per path can be scripted with faults.

    ``files[path]`` is served with ETag/Last-Modified and honours ``Range`` + ``If-Range``.
    ``fail(path, *modes)`` queues one fault per coming request to ``path`` (``always=True``:
    every request). Modes: ``("status", 503)``, ``("drop", K)`` (send K body bytes, then close),
    ``("stall", K)`` (send K bytes, then hang until teardown), ``("slow", s)`` (wait s seconds
    before answering), ``("body", bytes)`` (serve other bytes), ``"html"``, ``"no_range"``
    (ignore Range: always 200). ``requests`` logs (path, headers) of every request.
    """

    port: int = 0
    files: dict = field(default_factory=dict)
    faults: dict = field(default_factory=dict)
    always: dict = field(default_factory=dict)
    requests: list = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    stalled: threading.Event = field(default_factory=threading.Event)
    etag_salt: str = ""

    def url(self, prefix: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{prefix}"

    def add(self, prefix: str, files: dict) -> str:
        """Serve ``files`` (name -> bytes) under ``/<prefix>``; returns that mirror's URL."""
        for name, body in files.items():
            self.files[f"/{prefix}{name}"] = body
        return self.url(prefix)

    def fail(self, path: str, *modes, always: bool = False) -> None:
        if always:
            self.always[path] = modes[0]
        else:
            self.faults.setdefault(path, []).extend(modes)

    def hits(self, path: str) -> list:
        return [headers for p, headers in self.requests if p == path]


def _handler(server: FaultServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):
            server.requests.append((self.path, dict(self.headers)))
            queued = server.faults.get(self.path)
            mode = queued.pop(0) if queued else server.always.get(self.path)
            kind, arg = (mode, None) if isinstance(mode, str) or mode is None else mode
            if kind == "slow":
                server.release.wait(arg)
            if kind == "status":
                return self._send(arg, b"failure\n", "text/plain")
            if kind == "html":
                return self._send(200, b"<!DOCTYPE html><html><body>Proxy login</body></html>",
                                  "text/html; charset=utf-8")
            body = arg if kind == "body" else server.files.get(self.path)
            if body is None:
                return self._send(404, b"not found\n", "text/plain")
            etag = '"' + sha256(body)[:16] + server.etag_salt + '"'
            start, status = 0, 200
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes=") and kind != "no_range":
                if self.headers.get("If-Range") in (None, etag):
                    start, status = int(ranged[6:].split("-")[0]), 206
            if start >= len(body) and status == 206:
                return self._send(416, b"", "text/plain")
            self.send_response(status)
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str(len(body) - start))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.end_headers()
            if kind in ("drop", "stall"):
                self.wfile.write(body[start:start + arg])
                self.wfile.flush()
                if kind == "stall":
                    server.stalled.set()
                    server.release.wait(60)
                self.close_connection = True
                return
            self.wfile.write(body[start:])

        def _send(self, status: int, body: bytes, content_type: str):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def serving(state, handler, release: threading.Event):
    """Serve ``handler`` in a thread on 127.0.0.1 (a free port, stored in ``state.port``) for
    the block; ``release`` is set at the end so that handlers still waiting return."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def fault_server():
    """A FaultServer running in a thread on 127.0.0.1 (a free port)."""
    state = FaultServer()
    with serving(state, _handler(state), state.release):
        yield state


# ---------------------------------------------------------------------------------------------
# Learnable synthetic data and tiny training runs (train / eval / checkpoint tests)


def rewrite(src, dst, drop=(), **replace):
    """Copy a checkpoint's arrays into ``dst``, without ``drop`` and with ``replace``."""
    with np.load(src) as npz:
        arrays = {k: npz[k] for k in npz.files if k not in drop}
    arrays.update(replace)
    np.savez(dst, **arrays)
    return dst


def write_idx_folder(folder: Path, X_train, y_train, X_test, y_test) -> Path:
    """The four raw IDX files of an MNIST-format data set (X uint8 (N, 784), y uint8 (N,))."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in (("train-images-idx3-ubyte", X_train.reshape(-1, 28, 28)),
                        ("train-labels-idx1-ubyte", y_train),
                        ("t10k-images-idx3-ubyte", X_test.reshape(-1, 28, 28)),
                        ("t10k-labels-idx1-ubyte", y_test)):
        (folder / name).write_bytes(idx_bytes(array))
    return folder


def xor_examples(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A 10-class set only a hidden layer can learn: pixels 0..7 are 8 random bits (dark or
    bright, with a margin), the class is (b0⊕b1) + 2(b2⊕b3) + 4(b4⊕b5) + 8(b6⊕b7) mod 10; the
    other 776 pixels are 0. Each XOR is invisible to a linear model."""
    bits = rng.integers(0, 2, size=(n, 8))
    values = np.where(bits == 1, rng.uniform(0.65, 1.0, (n, 8)), rng.uniform(0.0, 0.35, (n, 8)))
    X = np.zeros((n, 784), dtype=np.uint8)
    X[:, :8] = np.round(values * 255)
    y = ((bits[:, 0::2] ^ bits[:, 1::2]) @ np.array([1, 2, 4, 8])) % 10
    return X, y.astype(np.uint8)


@pytest.fixture(scope="session")
def xor_data(tmp_path_factory) -> Path:
    """Folder with the XOR set: 7,000 train (use data.validation=1000) and 1,000 test examples."""
    rng = np.random.default_rng(1234)
    X, y = xor_examples(7000, rng)
    X_test, y_test = xor_examples(1000, rng)
    return write_idx_folder(tmp_path_factory.mktemp("xor"), X, y, X_test, y_test)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Folder with a small easy set (600 train, 200 test): class k brightens pixel block k."""
    rng = np.random.default_rng(7)

    def examples(n):
        y = rng.integers(0, 10, n).astype(np.uint8)
        X = rng.integers(0, 60, (n, 784)).astype(np.uint8)
        for k in range(10):
            X[y == k, 70 * k : 70 * k + 40] += 120
        return X, y

    return write_idx_folder(tmp_path_factory.mktemp("tiny"), *examples(600), *examples(200))


@pytest.fixture
def tiny_config(tiny_data):
    """``tiny_config(*overrides)``: a fast config (784-16-10, 3 epochs, 100 held out) on tiny_data."""
    from mlpcli.run.config import load_config

    def make(*overrides: str):
        base = [f"data.path={tiny_data}", "data.validation=100", "model.layers=[784,16,10]",
                "training.epochs=3", "training.batch_size=32", "training.learning_rate=0.05",
                "regularization.l2=0.5", "model.dropout=0", "data.augment.shift=0", "data.augment.rotate=0", "data.augment.scale=0", "data.augment.elastic=null", "name=tiny"]
        return load_config(None, base + list(overrides))

    return make
