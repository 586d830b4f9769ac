"""Faults in what mlpcli writes (issue: faults): stdout that cannot take the output (a full
disk, a closed pipe), and raw Python warnings (NumPy overflow, matplotlib, Pillow's
decompression-bomb check), which must never reach the user. Each runs the CLI in a real
process and checks the exit code, that no traceback or warning is shown, that the one error
line names the path or value, and that no file changed."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from mlpcli.run import checkpoint
from mlpcli.nn.network import Network


def run_mlpcli(args, *, flags=(), stdout=subprocess.PIPE, timeout=120):
    """``python [flags] -m mlpcli args`` in a real process; stdout/stderr as text."""
    return subprocess.run([sys.executable, *flags, "-m", "mlpcli", *map(str, args)], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)


def snapshot(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_clean(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "Warning" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr


@pytest.fixture
def small_checkpoint(tmp_path, tiny_config):
    """A random 784-16-10 network on tiny_data (eval and predict --index read it)."""
    config = tiny_config()
    network = Network.from_config(config, np.random.default_rng(0))
    (tmp_path / "ckpt").mkdir(exist_ok=True)
    return checkpoint.save(tmp_path / "ckpt" / "last.npz", network, config)


@pytest.fixture
def huge_checkpoint(tmp_path, tiny_config):
    """Weights of ±1e30: every forward pass overflows float32 to ±inf and NaN."""
    config = tiny_config()
    network = Network.from_config(config, np.random.default_rng(0))
    signs = np.random.default_rng(1)
    for array in network.parameters().values():
        array[...] = np.where(signs.random(array.shape) < 0.5, -1e30, 1e30)
    (tmp_path / "ckpt").mkdir(exist_ok=True)
    return checkpoint.save(tmp_path / "ckpt" / "huge.npz", network, config)


# --- stdout that cannot be written --------------------------------------------------------------

OUTPUT_COMMANDS = {
    "eval --json": lambda ckpt: ["eval", ckpt, "--json"],
    "eval": lambda ckpt: ["eval", ckpt],
    "predict --index": lambda ckpt: ["predict", ckpt, "--index", "0"],
    "--help": lambda ckpt: ["--help"],
    "eval --help": lambda ckpt: ["eval", "--help"],
}


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("command", OUTPUT_COMMANDS)
def test_full_disk_on_stdout_is_one_line_and_exit_1(small_checkpoint, tmp_path, command):
    before = snapshot(tmp_path)
    with open("/dev/full", "w") as full:
        done = run_mlpcli(OUTPUT_COMMANDS[command](small_checkpoint), stdout=full)
    assert done.returncode == 1, done.stderr
    assert_clean(done.stderr)
    assert done.stderr.strip() == "Error: cannot write the output: No space left on device"
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["eval --json", "predict --index", "--help"])
def test_closed_pipe_on_stdout_exits_1_quietly(small_checkpoint, command):
    # `mlpcli eval … | head -0`: the reader is gone before the first write (EPIPE).
    proc = subprocess.Popen([sys.executable, "-m", "mlpcli", *map(str, OUTPUT_COMMANDS[command](small_checkpoint))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    try:
        stderr = proc.stderr.read()
        proc.wait(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1, stderr
    assert_clean(stderr)
    assert stderr == ""


def test_output_that_can_be_written_still_exits_0(small_checkpoint, tmp_path):
    out = tmp_path / "out.json"
    with open(out, "w") as f:
        done = run_mlpcli(["eval", small_checkpoint, "--json"], stdout=f)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["n"] == 200


# --- no raw warnings: NumPy overflow --------------------------------------------------------------

@pytest.mark.parametrize("args", [["eval", "{ckpt}", "--json"], ["eval", "{ckpt}"],
                                  ["predict", "{ckpt}", "--index", "3", "--json"]])
@pytest.mark.parametrize("flags", [("-W", "error::RuntimeWarning"), ("-X", "dev")])
def test_overflowing_network_gives_results_not_runtime_warnings(huge_checkpoint, tmp_path, args, flags):
    before = snapshot(tmp_path)
    done = run_mlpcli([a.format(ckpt=huge_checkpoint) for a in args], flags=flags)
    assert done.returncode == 0, done.stderr
    assert_clean(done.stderr)
    if "--json" in args:
        assert "NaN" not in done.stdout and "Infinity" not in done.stdout
        json.loads(done.stdout)
    assert snapshot(tmp_path) == before


def test_eval_plot_of_an_overflowing_network_shows_no_warning(huge_checkpoint, tmp_path):
    pictures = tmp_path / "pictures"
    done = run_mlpcli(["eval", huge_checkpoint, "--plot", pictures], flags=("-W", "error::RuntimeWarning"))
    assert done.returncode == 0, done.stderr
    assert_clean(done.stderr)
    assert sorted(p.name for p in pictures.iterdir()) == ["confusion.png", "mistakes.png"]


# --- no raw warnings: matplotlib on NaN metrics ---------------------------------------------------

def write_metrics(folder, rows) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # json.dumps writes float("nan") as NaN, which json.loads (and read_metrics) accept
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def metrics_row(epoch, **values) -> dict:
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    return {"epoch": epoch, **{k: values.get(k) for k in keys}, "l2_penalty": 0.0, "learning_rate": 0.1, "seconds": 1.0}


NAN = float("nan")
NAN_RUNS = {
    "NaN in the middle": [metrics_row(1, train_loss=2.0, train_accuracy=0.3, val_loss=2.1, val_accuracy=0.3),
                          metrics_row(2, train_loss=NAN, train_accuracy=NAN, val_loss=NAN, val_accuracy=NAN),
                          metrics_row(3, train_loss=1.0, train_accuracy=0.6, val_loss=1.1, val_accuracy=0.6)],
    "NaN loss at the best epoch": [metrics_row(1, train_loss=2.0, train_accuracy=0.3, val_loss=NAN, val_accuracy=0.5)],
    "infinite loss": [metrics_row(1, train_loss=float("inf"), train_accuracy=0.1, val_loss=float("inf"), val_accuracy=0.1),
                      metrics_row(2, train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5)],
}


# Runs with no number to draw: one line saying so, exit 1, no picture of empty axes.
NOTHING_RUNS = {
    "all null": [metrics_row(1), metrics_row(2)],
    "all NaN": [metrics_row(1, train_loss=NAN, train_accuracy=NAN), metrics_row(2, train_loss=NAN, train_accuracy=NAN)],
}


@pytest.mark.parametrize("case", NOTHING_RUNS)
def test_plot_of_a_run_with_nothing_to_draw_is_one_line_and_no_file(tmp_path, case):
    run = tmp_path / "run"
    write_metrics(run, NOTHING_RUNS[case])
    done = run_mlpcli(["plot", run], flags=("-W", "error::UserWarning", "-W", "error::RuntimeWarning"))
    assert done.returncode == 1
    assert_clean(done.stderr)
    assert done.stderr.startswith(f"Error: {run} has nothing to draw") and done.stderr.count("\n") == 1
    assert not (run / "curves.png").exists()


@pytest.mark.parametrize("case", NAN_RUNS)
def test_plot_of_nan_metrics_draws_without_warnings(tmp_path, case):
    run = tmp_path / "run"
    write_metrics(run, NAN_RUNS[case])
    done = run_mlpcli(["plot", run], flags=("-W", "error::UserWarning", "-W", "error::RuntimeWarning"))
    assert done.returncode == 0, done.stderr
    assert_clean(done.stderr)
    assert done.stdout.strip() == f"wrote {run / 'curves.png'}"
    assert (run / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_plot_of_a_metric_that_is_not_a_number_is_one_line(tmp_path):
    run = tmp_path / "run"
    write_metrics(run, [metrics_row(1, train_loss=1.0), metrics_row(2, train_loss="high")])
    before = snapshot(tmp_path)
    done = run_mlpcli(["plot", run])
    assert done.returncode == 1, done.stderr
    assert_clean(done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "epoch 2" in lines[0] and "train_loss is 'high'" in lines[0]
    assert snapshot(tmp_path) == before


# --- no raw warnings: Pillow's decompression-bomb check ----------------------------------------------

def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares width×height 8-bit grey pixels (its data is empty)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side, shown", [
    # A camera's size (over Pillow's 89-megapixel limit): decoded, so the empty data is the error.
    (10_000, "cannot decode the image (image file is truncated"),
    # Sizes no camera makes: refused from the header, before anything is decoded.
    (15_900, "15900×15900 pixels (253 megapixels), more than mlpcli decodes (250 megapixels"),
    (20_000, "20000×20000 pixels (400 megapixels), more than mlpcli decodes (250 megapixels"),
    (60_000, "60000×60000 pixels (3600 megapixels), more than mlpcli decodes (250 megapixels"),
])
def test_predict_on_a_huge_image_is_one_line_without_a_warning(small_checkpoint, tmp_path, side, shown):
    image = tmp_path / "huge.png"
    image.write_bytes(png_header_only(side, side))
    before = snapshot(tmp_path)
    done = run_mlpcli(["predict", small_checkpoint, image])
    assert done.returncode == 1, done.stderr
    assert_clean(done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {image}") and shown in lines[0], lines
    assert snapshot(tmp_path) == before


def test_predict_on_a_normal_image_still_works(small_checkpoint, tmp_path):
    from PIL import Image

    image = tmp_path / "seven.png"
    pixels = np.full((64, 48), 255, np.uint8)
    pixels[10:50, 20:28] = 0
    Image.fromarray(pixels).save(image)
    done = run_mlpcli(["predict", small_checkpoint, image, "--json"], flags=("-W", "error"))
    assert done.returncode == 0, done.stderr
    assert_clean(done.stderr)
    assert json.loads(done.stdout)["predictions"][0]["source"] == str(image)


# --- no raw warnings: ResourceWarning from the IDX reader -------------------------------------------

def test_eval_on_gzip_files_leaves_no_file_open(idx_dataset, tiny_config, tmp_path):
    folder = idx_dataset.write(tmp_path / "gz")
    config = tiny_config(f"data.path={folder}", "data.validation=10")
    ckpt = checkpoint.save(tmp_path / "gz.npz", Network.from_config(config, np.random.default_rng(0)), config)
    # (data.open_payload once wrapped a .gz in GzipFile(fileobj=f), which never closes f)
    done = run_mlpcli(["eval", ckpt, "--json"], flags=("-X", "dev", "-W", "error::ResourceWarning"))
    assert done.returncode == 0, done.stderr
    assert "ResourceWarning" not in done.stderr, done.stderr
    assert_clean(done.stderr)
