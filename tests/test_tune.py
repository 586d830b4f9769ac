"""mlpcli tune on the SQLite path: trials as run folders, pruning, resume, faults, the extra.

The studies are tiny (a 784-16-10 network on the 600-image tiny_data set, 2–3 epochs a trial),
and each test reads what the study wrote back from Optuna's own database.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

optuna = pytest.importorskip("optuna", reason="the tune extra is not installed: pip install 'mlpcli[tune]'")

from mlpcli.cli import cli  # noqa: E402
from mlpcli.run import checkpoint, train  # noqa: E402
from mlpcli.run.config import load_config  # noqa: E402
from mlpcli.run.runs import read_metrics  # noqa: E402
from mlpcli.errors import MissingExtraError  # noqa: E402
from mlpcli.tune import report as report_module  # noqa: E402
from mlpcli.tune import storage as storage_module  # noqa: E402
from mlpcli.tune import study as study_module  # noqa: E402
from mlpcli.tune.storage import Storage, masked  # noqa: E402

SPACE = "training.learning_rate: {low: 0.01, high: 1.0, log: true}\nregularization.l2: {low: 0, high: 5}\n"


@pytest.fixture
def base(tiny_data, tmp_path) -> Path:
    """A base config file: 784-16-10 on tiny_data, 2 epochs, no augmentation."""
    path = tmp_path / "base.yaml"
    path.write_text(f"data: {{path: {tiny_data}, validation: 100, augment: {{shift: 0, rotate: 0, scale: 0, "
                    "elastic: null}}\nmodel: {layers: [784, 16, 10], dropout: 0}\n"
                    "training: {epochs: 2, batch_size: 32, learning_rate: 0.05}\nregularization: {l2: 0.5}\n")
    return path


@pytest.fixture
def space(tmp_path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


@pytest.fixture(autouse=True)
def no_picture(request, monkeypatch):
    """Studies draw no picture, as without the plot extra, except in tests that ask for one
    (drawing costs more than a tiny study)."""
    if "picture" in request.node.name:
        return

    def missing(*args, **kwargs):
        raise MissingExtraError("no picture in this test")

    monkeypatch.setattr(report_module, "save_picture", missing)


def tune(*args: str):
    return CliRunner().invoke(cli, ["tune", *map(str, args)])


def load(study_dir: Path):
    return optuna.load_study(study_name=study_dir.name, storage=f"sqlite:///{study_dir / 'study.db'}")


def states(study) -> list[str]:
    return [t.state.name for t in study.get_trials()]


# --- the trainer's side: a progress object may end a run -----------------------------------------


class StopAt(train.Silent):
    def __init__(self, epoch):
        self.epoch = epoch

    def end_epoch(self, metrics):
        return "pruned" if metrics["epoch"] == self.epoch else None


def test_a_progress_that_asks_to_stop_ends_the_run_like_stop_after(tiny_config, tmp_path):
    from mlpcli.data.fetch import load_splits

    config = tiny_config("training.epochs=3")
    splits = load_splits(config.data)
    stopped = train.fit(config, splits, tmp_path / "stopped", progress=StopAt(2))
    assert stopped.stopped == "pruned"
    assert [r["epoch"] for r in read_metrics(tmp_path / "stopped")] == [1, 2]
    assert checkpoint.load(tmp_path / "stopped" / "last.npz").epoch == 2
    resumed = train.fit(train.start(None, resume=tmp_path / "stopped" / "last.npz"), splits)
    whole = train.fit(config, splits, tmp_path / "whole")
    assert resumed.stopped == "completed"
    assert np.array_equal(resumed.network.theta, whole.network.theta)  # bit for bit


# --- a study ------------------------------------------------------------------------------------


def test_each_trial_is_a_run_folder_matching_its_database_record_and_a_picture(base, space, tmp_path):
    out = tmp_path / "study"
    result = tune("--config", base, "--space", space, "--trials", 3, "--sampler", "random", "--seed", 3,
                  "--out", out)
    assert result.exit_code == 0, result.output
    study = load(out)
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2] and states(study) == ["COMPLETE"] * 3
    for t in trials:
        run = out / t.user_attrs["run_dir"]
        assert run.name == f"trial-{t.number:04d}"
        config = load_config(run / "config.yaml")
        assert config.training.learning_rate == t.params["training.learning_rate"]
        assert config.regularization.l2 == t.params["regularization.l2"]
        rows = read_metrics(run)
        assert {r["epoch"]: r["val_accuracy"] for r in rows} == t.intermediate_values
        assert t.value == max(r["val_accuracy"] for r in rows)
        assert checkpoint.load(run / "last.npz").epoch == 2 and (run / "best.npz").is_file()
    # the table: a header and one line per trial, with the parameters and the epochs run
    table = (out / "trials.txt").read_text().splitlines()
    assert table[0].split() == ["trial", "learning_rate", "l2", "val_accuracy", "epochs", "state"]
    assert [line.split()[0] for line in table[1:]] == ["0", "1", "2"]
    assert all(line.split()[-2:] == ["2", "complete"] for line in table[1:])
    assert "\n".join(table) in result.output
    # the best trial's config trains as it is; the picture is there
    best = load_config(out / "best.yaml")
    assert best.training.learning_rate == study.best_trial.params["training.learning_rate"]
    assert best.output.dir is None and (out / "study.png").stat().st_size > 10_000
    # eval and train --resume work on a trial
    trial = out / "trial-0001"
    assert CliRunner().invoke(cli, ["eval", str(trial / "best.npz")]).exit_code == 0
    resumed = CliRunner().invoke(cli, ["train", "--resume", str(trial / "last.npz"), "--set", "training.epochs=3",
                                       "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert len(read_metrics(trial)) == 3


def test_the_same_command_again_runs_only_the_missing_trials(base, space, tmp_path):
    out = tmp_path / "study"
    command = ["--config", base, "--space", space, "--trials", 1, "--seed", 1, "--out", out]
    assert tune(*command).exit_code == 0
    again = tune(*command)
    assert again.exit_code == 0 and "1 of 1 trials finished" in again.output
    assert len(load(out).get_trials()) == 1
    more = tune(*command[:5], 2, *command[6:])
    assert more.exit_code == 0, more.output
    study = load(out)
    assert states(study) == ["COMPLETE"] * 2
    # a rerun with the same --seed draws new values, not the first run's again
    assert study.trials[1].params != study.trials[0].params


def test_a_pruned_trial_stops_cleanly_and_keeps_its_run_folder(base, space, tmp_path, monkeypatch):
    # the pruner's say is real Optuna's: every trial below 99.9 % validation accuracy at epoch 1 goes
    monkeypatch.setattr(study_module, "pruner", lambda plan: optuna.pruners.ThresholdPruner(lower=0.999))
    out, space = tmp_path / "study", tmp_path / "l2.yaml"
    space.write_text("regularization.l2: {low: 0, high: 5}\n")
    result = tune("--config", base, "--space", space, "--trials", 2, "--seed", 0, "--out", out,
                  "--set", "training.epochs=3", "--set", "training.learning_rate=0.001")
    assert "a picture of the study needs the plot extra" in result.output
    assert result.exit_code == 0, result.output
    study = load(out)
    assert states(study) == ["PRUNED", "PRUNED"]
    for t in study.trials:
        run = out / t.user_attrs["run_dir"]
        assert [r["epoch"] for r in read_metrics(run)] == [1] == list(t.intermediate_values)
        assert checkpoint.load(run / "last.npz").epoch == 1
    assert "1 of 3 epochs), pruned" in result.output
    assert [line.split()[-2:] for line in (out / "trials.txt").read_text().splitlines()[1:]] == [["1", "pruned"]] * 2
    assert "no trial has completed yet" in result.output and not (out / "best.yaml").exists()
    # the pruned run goes on as any stopped run does
    resumed = CliRunner().invoke(cli, ["train", "--resume", str(out / "trial-0000" / "last.npz"), "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert len(read_metrics(out / "trial-0000")) == 3


def test_a_grid_study_runs_every_point_once(base, tmp_path):
    space = tmp_path / "grid.yaml"
    space.write_text("model.layers: {choices: [[784, 8, 10], [784, 16, 10]]}\n")
    out = tmp_path / "grid"
    result = tune("--config", base, "--space", space, "--sampler", "grid", "--trials", 9, "--out", out,
                  "--pruner", "none", "--set", "training.epochs=1")
    assert result.exit_code == 0, result.output
    assert "the grid has 2 points: --trials 9 runs 2" in result.output
    trials = load(out).trials
    assert {t.params["model.layers"] for t in trials} == {"[784, 8, 10]", "[784, 16, 10]"}
    for t in trials:  # a list-valued choice reaches the config as the list
        layers = load_config(out / t.user_attrs["run_dir"] / "config.yaml").model.layers
        assert json.dumps(list(layers), separators=(", ", ": ")) == t.params["model.layers"]


# --- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, words", [
    ("training.learnin_rate: {low: 0.01, high: 1.0}", ["(training.learnin_rate low)", "unknown key",
                                                       "did you mean 'learning_rate'"]),
    ("training.epochs: {low: 1.5, high: 3}", ["(training.epochs low)", "must be an integer"]),
    ("training.learning_rate: {low: -1, high: 1.0}", ["(training.learning_rate low)", "must be > 0"]),
    ("training.optimizer: {choices: [sgd, adamm]}", ["(training.optimizer choice 2)", "did you mean 'adam'"]),
    ("training.learning_rate: {low: 0.1, hihg: 1.0}", ["training.learning_rate", "did you mean 'high'"]),
    ("training.learning_rate: {low: 1.0, high: 0.1}", ["low must be below high"]),
    ("training.learning_rate: [0.1, 1]", ["must be {low, high}"]),
])
def test_a_bad_space_is_one_line_naming_the_key_and_file_before_any_trial(base, tmp_path, text, words):
    space = tmp_path / "typo.yaml"
    space.write_text(text + "\n")
    result = tune("--config", base, "--space", space, "--trials", 2, "--out", tmp_path / "study")
    assert result.exit_code == 2
    line = result.output
    assert line.startswith("Error: ") and line.count("\n") == 1 and str(space) in line
    assert all(word in line for word in words), line
    assert not (tmp_path / "study").exists()


def test_grid_needs_a_finite_space_and_other_samplers_need_trials(base, space, tmp_path):
    grid = tune("--config", base, "--space", space, "--sampler", "grid", "--out", tmp_path / "s")
    assert grid.exit_code == 2 and "is a continuous range" in grid.output and "step" in grid.output
    tpe = tune("--config", base, "--space", space, "--out", tmp_path / "s")
    assert tpe.exit_code == 2 and "needs --trials N" in tpe.output
    assert not (tmp_path / "s").exists()


def test_a_study_of_another_search_is_refused_unless_resume(base, space, tmp_path):
    out = tmp_path / "study"
    assert tune("--config", base, "--space", space, "--trials", 1, "--out", out).exit_code == 0
    other = tune("--config", base, "--space", space, "--trials", 2, "--out", out, "--set", "training.epochs=3")
    assert other.exit_code == 2 and other.output.count("\n") == 1
    assert "training.epochs 2 → 3" in other.output and "--resume" in other.output
    assert len(load(out).trials) == 1
    space.write_text(SPACE.replace("high: 5", "high: 6"))
    moved = tune("--config", base, "--space", space, "--trials", 2, "--out", out)
    assert moved.exit_code == 2 and "space regularization.l2" in moved.output
    resumed = tune("--config", base, "--space", space, "--trials", 2, "--out", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert len(load(out).trials) == 2


def test_a_locked_sqlite_study_is_one_line(base, space, tmp_path, monkeypatch):
    out = tmp_path / "study"
    out.mkdir()
    monkeypatch.setattr(storage_module, "SQLITE_TIMEOUT", 0.2)
    holder = sqlite3.connect(out / "study.db")  # another program, writing for longer than the timeout
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = tune("--config", base, "--space", space, "--trials", 2, "--out", out)
    finally:
        holder.rollback()
        holder.close()
    assert result.exit_code == 1
    assert result.output.startswith("Error: the study database sqlite:///") and "is locked" in result.output
    assert result.output.count("\n") == 1


def test_an_unreachable_database_is_one_line_without_the_password(base, space, tmp_path):
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is not installed: pip install 'psycopg[binary]'")
    url = "postgresql://tuner:s3cr3t-pw@127.0.0.1:9/studies"  # port 9 (discard): nothing listens
    result = tune("--config", base, "--space", space, "--trials", 1, "--out", tmp_path / "s", "--storage", url)
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot reach the study database postgresql://tuner:***@127.0.0.1:9/studies")
    assert result.output.count("\n") == 1 and "s3cr3t" not in result.output
    assert not any("s3cr3t" in p.read_text(errors="replace") for p in (tmp_path / "s").rglob("*") if p.is_file())


def test_passwords_are_masked_as_sqlalchemy_does():
    storage = Storage("postgresql://me:p%40ss@db.example/studies")
    assert storage.shown == masked(storage.url) == "postgresql://me:***@db.example/studies"
    assert storage.scrub(f"FATAL for {storage.url}: password p@ss (p%40ss) rejected") == (
        "FATAL for postgresql://me:***@db.example/studies: password *** (***) rejected")
    assert masked("me:secret@host/db") == "me:***@host/db"  # the scheme forgotten: still masked
    assert masked("sqlite:////data/me:x@y/study.db") == "sqlite:////data/me:x@y/study.db"  # a file name


def test_a_password_with_an_unencoded_at_is_refused_whole(base, space, tmp_path):
    result = tune("--config", base, "--space", space, "--trials", 1, "--out", tmp_path / "s",
                  "--storage", "postgresql://tuner:p@zq9-x@127.0.0.1:9/studies")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith("Error: --storage postgresql://tuner:***@127.0.0.1:9/studies: the password")
    assert "zq9" not in result.output and "%40" in result.output


# mlpcli in a subprocess, without matplotlib: no picture (drawing costs more than a tiny study)
NO_PICTURE = "import sys; sys.modules['matplotlib'] = None; from mlpcli.cli import main; sys.argv[0] = 'mlpcli'; main()"


@pytest.mark.parametrize("signum, status, how", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                  (signal.SIGINT, 130, "interrupted")], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_marks_the_running_trial_failed_and_the_same_command_finishes_the_rest(base, space, tmp_path, signum,
                                                                                        status, how):
    out = tmp_path / "study"
    command = [sys.executable, "-c", NO_PICTURE, "tune", "--config", str(base), "--space", str(space),
               "--trials", "2", "--seed", "0", "--out", str(out), "--set", "training.epochs=15", "--pruner", "none"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "trial-0000" / "metrics.jsonl"
    deadline = time.monotonic() + 60
    while not (metrics.exists() and metrics.read_text()) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == status, stderr
    assert stderr.startswith(f"Error: {how}: 0 of 2 trials finished; trial 0 is marked failed"), stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert "interrupted" in stdout, stdout  # the table, printed on the way out
    study = load(out)
    first = study.trials[0]
    assert first.state.name == "FAIL" and first.user_attrs["stopped"] == "interrupted"
    kept = read_metrics(out / "trial-0000")  # the folder holds what it finished, consistently
    assert checkpoint.load(out / "trial-0000" / "last.npz").epoch == len(kept) >= 1
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    study = load(out)
    assert states(study)[0] == "FAIL" and states(study).count("COMPLETE") == 2
    retry = study.trials[1]
    assert retry.params == first.params and retry.user_attrs["retry_of"] == 0
    assert "complete (retry of 0)" in rerun.stdout


# --- the optional extra ----------------------------------------------------------------------

BLOCK_OPTUNA = "import sys; sys.modules['optuna'] = None; from mlpcli.cli import main; sys.argv[0] = 'mlpcli'; main()"


def test_without_optuna_tune_says_how_to_install_it_and_the_rest_works(base, space, tmp_path):
    def mlpcli(*args):
        return subprocess.run([sys.executable, "-c", BLOCK_OPTUNA, *map(str, args)], capture_output=True, text=True,
                              timeout=120)

    result = mlpcli("tune", "--config", base, "--space", space, "--trials", 1, "--out", tmp_path / "s")
    assert result.returncode == 1
    assert result.stderr == ("Error: mlpcli tune needs optuna, which is not installed — install it with: "
                             "pip install 'mlpcli[tune]'\n")
    assert not (tmp_path / "s").exists()
    assert "tune" in mlpcli("--help").stdout
    trained = mlpcli("train", "--config", base, "--out", tmp_path / "run", "--quiet")
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "run" / "best.npz").is_file()
