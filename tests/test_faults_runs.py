"""Run folders under faults: nothing a user trained is lost, an epoch is committed whole, kills
and full disks leave a folder that resumes, and every failure is one line (issue 12)."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mlpcli.run import checkpoint
from mlpcli.cli import cli
from mlpcli.data.splits import read_splits
from mlpcli.errors import CheckpointError, ConfigError, DivergenceError
from mlpcli.nn.network import Network
from mlpcli.run.runs import read_metrics
from mlpcli.run.train import Silent, fit, start


def hashes(folder: Path) -> dict[str, str]:
    """Every file of a folder (temp files included) and its sha256."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def train_args(tiny_data, *extra):
    return ["train", "--set", f"data.path={tiny_data}", "--set", "data.validation=100",
            "--set", "model.layers=[784,16,10]", "--set", "training.epochs=2", "--set", "name=tiny",
            "--set", "model.dropout=0", *extra]


@pytest.fixture
def old_run(tiny_config, tmp_path):
    """A finished two-epoch run in tmp_path/run, and the hashes of its files."""
    config = tiny_config("training.epochs=2")
    fit(config, read_splits(config.data), tmp_path / "run")
    return tmp_path / "run", hashes(tmp_path / "run")


class AtEpochStart(Silent):
    """A Progress that calls ``act()`` when an epoch starts (to interrupt it)."""

    def __init__(self, act):
        self.act = act

    def start_epoch(self, *args):
        self.act()


def poison_epoch(monkeypatch, epoch: int, batches_per_epoch: int = 13):
    """Make backward return NaN gradients from the given epoch on (tiny: 400 / 32 → 13 batches)."""
    backward, calls = Network.backward, []

    def poisoned(self, *args, **kwargs):
        calls.append(1)
        dW, db = backward(self, *args, **kwargs)
        if len(calls) > (epoch - 1) * batches_per_epoch:
            dW[1] *= np.float32("nan")
        return dW, db

    monkeypatch.setattr(Network, "backward", poisoned)


# --- --overwrite keeps the old run until the new one has an epoch ---------------------------------


def test_overwrite_that_fails_in_epoch_1_keeps_the_old_run(old_run, tiny_config, monkeypatch):
    run, before = old_run
    poison_epoch(monkeypatch, 1)
    config = tiny_config("training.epochs=2")
    with pytest.raises(DivergenceError, match="epoch 1") as error:
        fit(start(config, run, overwrite=True), read_splits(config.data))
    assert "no checkpoint was written" in error.value.message
    assert hashes(run) == before


def test_overwrite_interrupted_in_epoch_1_keeps_the_old_run(old_run, tiny_config):
    run, before = old_run

    def ctrl_c():
        raise KeyboardInterrupt

    config = tiny_config("training.epochs=2")
    with pytest.raises(Exception, match="untouched"):
        fit(start(config, run, overwrite=True), read_splits(config.data), progress=AtEpochStart(ctrl_c))
    assert hashes(run) == before


def test_overwrite_replaces_the_old_run_at_its_first_epoch(old_run, tiny_config):
    run, before = old_run
    config = tiny_config("training.epochs=1", "data.validation=0")  # this run writes no best.npz
    fit(start(config, run, overwrite=True), read_splits(config.data))
    assert not (run / "best.npz").exists()  # the old run's best.npz would be a lie
    assert [r["epoch"] for r in read_metrics(run)] == [1]
    assert checkpoint.load(run / "last.npz").config.data.validation == 0


def test_a_folder_with_only_metrics_is_not_replaced_without_overwrite(tiny_config, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    with pytest.raises(CheckpointError, match="metrics.jsonl") as error:
        start(tiny_config(), run)
    assert "--overwrite" in error.value.hint and "--resume" not in error.value.hint  # no last.npz to name
    assert (run / "metrics.jsonl").read_text() == '{"epoch": 1}\n'


# --- resume never rewinds a run ------------------------------------------------------------------------


def test_resume_from_an_earlier_best_is_refused(tiny_config, tmp_path, monkeypatch):
    config = tiny_config("training.epochs=3")
    splits = read_splits(config.data)
    run = tmp_path / "run"
    fit(config, splits, run, stop_after=1)
    epoch_1 = (run / "last.npz").read_bytes()
    fit(start(None, resume=run / "last.npz"), splits, stop_after=2)
    # best.npz as it is when validation was best at epoch 1 (whether it was here or not)
    (run / "best.npz").write_bytes(epoch_1)
    assert checkpoint.load(run / "best.npz").epoch == 1 and checkpoint.load(run / "last.npz").epoch == 2
    before = hashes(run)
    with pytest.raises(ConfigError, match="overwrite the later epochs") as error:
        start(None, resume=run / "best.npz")
    assert "--init-from" in error.value.hint
    assert hashes(run) == before


def test_resume_from_best_when_it_is_the_latest_is_allowed(tiny_config, tmp_path):
    config = tiny_config("training.epochs=3", "data.validation=100")
    splits = read_splits(config.data)
    run = tmp_path / "run"
    fit(config, splits, run, stop_after=1)  # one epoch: best.npz and last.npz are the same epoch
    history = fit(start(None, resume=run / "best.npz"), splits)
    assert [r["epoch"] for r in history.epochs] == [1, 2, 3]


# --- an epoch is committed whole -------------------------------------------------------------------------


def test_a_full_disk_while_saving_an_epoch_commits_none_of_it(tiny_config, tmp_path, monkeypatch):
    config = tiny_config("training.epochs=3")
    splits = read_splits(config.data)
    run = tmp_path / "run"
    fit(config, splits, run, stop_after=1)
    before = hashes(run)
    savez = np.savez

    def full(file, **arrays):  # the disk fills up while last.npz of epoch 2 is written
        savez(file, **arrays)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(CheckpointError) as error:
        fit(start(None, resume=run / "last.npz"), splits)
    assert "no space left" in error.value.message and "keeps epoch 1" in error.value.message
    assert "--resume" in error.value.hint
    assert hashes(run) == before  # metrics.jsonl, last.npz, best.npz: all still epoch 1, no temp file
    monkeypatch.setattr(np, "savez", savez)
    assert [r["epoch"] for r in fit(start(None, resume=run / "last.npz"), splits).epochs] == [1, 2, 3]


def test_an_unwritable_run_folder_is_one_line(tiny_data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(cli, train_args(tiny_data, "--out", str(blocker / "run")))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and str(blocker) in result.output
    assert blocker.read_text() == "not a folder"


def test_stale_temp_files_of_a_killed_run_are_removed(tiny_config, tmp_path):
    config = tiny_config("training.epochs=2")
    splits = read_splits(config.data)
    run = tmp_path / "run"
    fit(config, splits, run, stop_after=1)
    stale = [run / ".last.npz.4242.0badc0de.tmp", run / ".metrics.jsonl.4242.0badc0de.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    mine = run / "notes.tmp"  # not a temp file of mlpcli's: left alone
    mine.write_text("mine")
    fit(start(None, resume=run / "last.npz"), splits)
    assert not any(p.exists() for p in stale)
    assert mine.read_text() == "mine"


# --- SIGTERM is Ctrl-C ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_a_real_training_process_keeps_last_npz(tiny_data, tmp_path, sig, code):
    if os.name != "posix":
        pytest.skip("signals to a child process are POSIX-specific")
    run = tmp_path / "run"
    args = train_args(tiny_data, "--out", str(run), "--set", "training.epochs=100000")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlpcli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: (signal.signal(signal.SIGINT, signal.SIG_DFL), signal.signal(signal.SIGTERM, signal.SIG_DFL)),
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "last.npz").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no epoch completed in time"
            time.sleep(0.05)
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    assert ("terminated (SIGTERM)" if sig == signal.SIGTERM else "interrupted") in stderr
    assert "--resume" in stderr
    saved = checkpoint.load(run / "last.npz")
    assert [r["epoch"] for r in read_metrics(run)] == list(range(1, saved.epoch + 1))
    assert not list(run.glob(".*.tmp"))


def test_sigterm_during_the_first_epoch_names_no_missing_file(tiny_config, tmp_path, monkeypatch):
    config = tiny_config()
    with pytest.raises(Exception) as error:
        fit(config, read_splits(config.data), tmp_path / "run",
            progress=AtEpochStart(lambda: os.kill(os.getpid(), signal.SIGTERM)))
    assert error.value.exit_code == 143
    assert "nothing was saved" in error.value.message and "last.npz" not in str(error.value)


# --- a divergence names its cause ------------------------------------------------------------------


def test_a_huge_l2_is_blamed_not_the_learning_rate(tiny_config, tmp_path):
    config = tiny_config("regularization.l2=1e300")
    with pytest.raises(DivergenceError) as error:
        fit(config, read_splits(config.data), tmp_path / "run")
    assert "L2 term" in error.value.message and "regularization.l2" in error.value.hint
    assert "learning rate" not in error.value.hint


def test_nan_starting_weights_are_blamed(tiny_config, tmp_path):
    config = tiny_config("training.epochs=1")
    source = fit(config, read_splits(config.data), tmp_path / "source").last_checkpoint
    saved = checkpoint.load(source)
    saved.network.theta[:] = np.nan
    checkpoint.save(tmp_path / "nan.npz", saved.network, saved.config, {"epoch": 1})
    with pytest.raises(DivergenceError) as error:
        fit(start(config, tmp_path / "run", init_from=tmp_path / "nan.npz"), read_splits(config.data))
    assert "already hold NaN" in error.value.message and "nan.npz" in error.value.message
    assert "learning rate" not in error.value.hint
