"""User-facing faults from issue 12: each runs the CLI and checks the exit code, that no
traceback is shown, and that the message names the offending value or path."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mlpcli.cli import cli


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args))


# --- gradcheck: bad numbers are usage errors ------------------------------------------------

@pytest.mark.parametrize("option, value", [
    ("--seed", "-1"), ("--eps", "nan"), ("--eps", "inf"), ("--eps", "0"), ("--eps", "-inf"),
    ("--tol", "nan"), ("--tol", "inf"),
])
def test_gradcheck_rejects_bad_numbers(option, value):
    result = run_cli("gradcheck", "--all", option, value)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert option in result.output and value in result.output


# --- --json output never holds NaN or Infinity ------------------------------------------------

@pytest.fixture
def nan_checkpoint(tmp_path, tiny_config):
    """A checkpoint (on tiny_data, named Fashion-MNIST) whose weights are all NaN."""
    import numpy as np

    from mlpcli.run import checkpoint
    from mlpcli.nn.network import Network

    config = tiny_config("data.dataset=fashion-mnist")
    network = Network.create([784, 16, 10], "relu", "softmax", "log_likelihood", "he",
                             np.random.default_rng(0), np.float32)
    for array in network.parameters().values():
        array[...] = np.nan
    return checkpoint.save(tmp_path / "nan.npz", network, config)


def assert_strict_json(text: str) -> dict:
    import json

    def refuse(constant):
        raise AssertionError(f"non-JSON constant {constant} in output")

    assert "NaN" not in text and "Infinity" not in text
    return json.loads(text, parse_constant=refuse)


def test_eval_json_of_nan_weights_writes_null(nan_checkpoint):
    result = CliRunner().invoke(cli, ["eval", str(nan_checkpoint), "--json"])
    assert "Traceback" not in result.output
    assert result.exit_code == 0, result.output
    data = assert_strict_json(result.stdout)
    assert data["checkpoint"] == str(nan_checkpoint) and data["loss"] is None


def test_predict_json_of_nan_weights_writes_null(nan_checkpoint):
    result = CliRunner().invoke(cli, ["predict", str(nan_checkpoint), "--index", "0", "--json"])
    assert "Traceback" not in result.output
    assert result.exit_code == 0, result.output
    data = assert_strict_json(result.stdout)
    assert data["checkpoint"] == str(nan_checkpoint)
    assert None in [g["probability"] for g in data["predictions"][0]["top"]]


# --- FIFOs and devices are refused at once, never read ---------------------------------------

def run_subprocess(args, timeout=60, cwd=None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "mlpcli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


@pytest.fixture
def fifo(tmp_path):
    import os

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    return path


def test_predict_refuses_a_fifo_image_at_once(nan_checkpoint, fifo):
    done = run_subprocess(["predict", str(nan_checkpoint), str(fifo)], timeout=30)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert str(fifo) in done.stderr and "not a regular file" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_predict_refuses_a_fifo_checkpoint_at_once(fifo, tmp_path):
    done = run_subprocess(["predict", str(fifo), "--index", "0"], timeout=30)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert str(fifo) in done.stderr and "not a regular file" in done.stderr


@pytest.mark.parametrize("which", ["fifo", "/dev/null"])
def test_config_that_is_not_a_regular_file_is_not_called_a_folder(which, request):
    import os

    path = str(request.getfixturevalue("fifo")) if which == "fifo" else which
    if not os.path.exists(path):
        pytest.skip(f"no {path} here")
    done = run_subprocess(["train", "--config", path, "--print-config"], timeout=30)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert path in done.stderr and "not a regular file" in done.stderr and "folder" not in done.stderr


# --- Ctrl-C: one line, exit 130, in every command ------------------------------------------

def raise_interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("command, target", [
    ("eval", "mlpcli.nn.evaluate.evaluate"),
    ("predict", "mlpcli.inspection.predict.predict_index"),
    ("gradcheck", "mlpcli.nn.gradcheck.check_all"),
    ("gradcheck-config", "mlpcli.nn.gradcheck.check_config"),
    ("plot", "mlpcli.inspection.plot.plot_curves"),
])
def test_ctrl_c_exits_130_with_one_line(command, target, monkeypatch, nan_checkpoint, tmp_path):
    args = {"eval": ["eval", str(nan_checkpoint)],
            "predict": ["predict", str(nan_checkpoint), "--index", "0"],
            "gradcheck": ["gradcheck", "--all"],
            "gradcheck-config": ["gradcheck", "--config", "nielsen-ch3"],
            "plot": ["plot", str(tmp_path)]}[command]
    monkeypatch.setattr(target, raise_interrupt)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 130, result.output
    assert "Traceback" not in result.output and "Aborted!" not in result.output
    assert result.output.strip().splitlines()[-1] == "Error: interrupted (Ctrl-C) — run the command again"


SLOW_GRADCHECK = """
import time, mlpcli.nn.gradcheck
def slow(*args, **kwargs):
    print("started", flush=True)
    time.sleep(60)
mlpcli.nn.gradcheck.check_all = slow
from mlpcli.cli import main
main()
"""


def test_sigint_in_a_real_process_exits_130():
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", SLOW_GRADCHECK, "gradcheck", "--all"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # Ctrl-C's default even where this runs with SIGINT ignored (a `&` job)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout.readline().strip() == "started"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in out + err
    assert err.strip() == "Error: interrupted (Ctrl-C) — run the command again"
