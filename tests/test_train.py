"""The training loop: learning, exact resume, run folders, early stopping, divergence, Ctrl-C."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import rewrite

from mlpcli.run import checkpoint
from mlpcli.cli import cli
from mlpcli.run.config import load_config
from mlpcli.data.splits import read_splits
from mlpcli.errors import CheckpointError, ConfigError, DivergenceError, Interrupted
from mlpcli.nn.evaluate import evaluate
from mlpcli.nn.network import Network
from mlpcli.run.runs import METRIC_KEYS
from mlpcli.run.train import fit, start


class Recorder:
    """A Progress callback that remembers what it was told."""

    def __init__(self):
        self.events, self.messages = [], []

    def start_epoch(self, epoch, epochs, n_batches):
        self.events.append(("start", epoch, epochs, n_batches))

    def batch(self, loss):
        self.events.append(("batch", loss))

    def end_epoch(self, metrics):
        self.events.append(("end", metrics["epoch"]))

    def message(self, text):
        self.messages.append(text)


def weights(network):
    return network.W[1:] + network.b[1:]


def assert_same_weights(a, b):
    for x, y in zip(weights(a), weights(b), strict=True):
        assert np.array_equal(x, y)


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# --- learning ------------------------------------------------------------------------------


XOR_SETTINGS = ["data.validation=1000", "model.layers=[784,128,10]", "training.epochs=12",
                "training.batch_size=64", "training.optimizer=adam", "training.learning_rate=0.01",
                "training.schedule.name=constant", "regularization.l2=0.1", "name=xor",
                "model.dropout=0", "data.augment.shift=0", "data.augment.rotate=0", "data.augment.scale=0", "data.augment.elastic=null"]  # the XOR pixels must stay put


def train_xor(xor_data, tmp_path):
    config = load_config(None, [f"data.path={xor_data}", *XOR_SETTINGS])
    splits = read_splits(config.data)
    history = fit(config, splits, tmp_path / "run")
    return evaluate(history.network, splits.X_test, splits.y_test).accuracy


def test_hidden_layer_learns_the_xor_classes(xor_data, tmp_path):
    assert train_xor(xor_data, tmp_path) >= 0.95


@pytest.mark.parametrize("sabotage", ["zero hidden gradients", "flip hidden gradient sign"])
def test_without_working_hidden_gradients_it_cannot(xor_data, tmp_path, monkeypatch, sabotage):
    backward = Network.backward

    def broken(self, *args, **kwargs):
        dW, db = backward(self, *args, **kwargs)
        factor = 0 if sabotage.startswith("zero") else -1
        for l in range(1, self.L):  # hidden layers only; the output layer still learns
            dW[l] *= factor  # in place: the optimizer reads the network's gradient vector
            db[l] *= factor
        return dW, db

    monkeypatch.setattr(Network, "backward", broken)
    try:
        accuracy = train_xor(xor_data, tmp_path)
    except DivergenceError:
        accuracy = 0.0
    assert accuracy < 0.6


# --- reproducibility and exact resume ------------------------------------------------------


RESUME_CASES = {
    "adam+dropout+shift+cosine": ["training.optimizer=adam", "training.learning_rate=0.005",
                                  "model.dropout=0.2", "data.augment.shift=2", "training.schedule.name=cosine"],
    "nesterov+step": ["training.optimizer=nesterov", "training.schedule.name=step",
                      "training.schedule.step_every=1", "training.schedule.factor=0.7",
                      "data.augment.flip=true", "data.dataset=fashion-mnist"],
    "momentum+warmup+float64": ["training.optimizer=momentum", "training.schedule.warmup_epochs=2",
                                "training.dtype=float64"],
    "nesterov+ema": ["training.optimizer=nesterov", "training.ema=0.9", "data.augment.rotate=10"],
    "sgd without ema": ["training.optimizer=sgd", "training.ema=null"],
}


@pytest.mark.parametrize("case", RESUME_CASES)
def test_resume_equals_uninterrupted_run(tiny_config, tmp_path, case):
    config = tiny_config("training.epochs=4", *RESUME_CASES[case])
    splits = read_splits(config.data)
    whole = fit(config, splits, tmp_path / "whole")

    first = fit(config, splits, tmp_path / "split", stop_after=2)
    assert first.stopped == "stop_after" and len(first.epochs) == 2
    assert checkpoint.load(tmp_path / "split" / "last.npz").epoch == 2
    second = fit(start(None, resume=tmp_path / "split" / "last.npz"), splits)

    assert_same_weights(whole.network, second.network)
    a, b = checkpoint.load(whole.last_checkpoint), checkpoint.load(second.last_checkpoint)
    for name in a.optimizer_state:
        assert np.array_equal(a.optimizer_state[name], b.optimizer_state[name])
    assert a.meta["rng_state"] == b.meta["rng_state"]
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in read_metrics(tmp_path / "whole")]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in read_metrics(tmp_path / "split")]


def test_with_ema_the_checkpoints_hold_the_average_and_resume_from_the_weights(tiny_config, tmp_path):
    config = tiny_config("training.ema=0.9")
    splits = read_splits(config.data)
    history = fit(config, splits, tmp_path / "run")
    last = checkpoint.load(history.last_checkpoint)
    assert_same_weights(last.network, history.network)
    # W1..WL are θ̄ — what validation scored — and the state holds θ, which differs
    row = read_metrics(tmp_path / "run")[-1]
    assert evaluate(last.network, splits.X_val, splits.y_val).accuracy == row["val_accuracy"]
    theta = [last.optimizer_state[f"theta_{k}{l}"] for k in "Wb" for l in (1, 2)]
    assert not np.array_equal(theta[0], last.network.W[1])
    assert int(last.optimizer_state["t"]) == 3 * -(-len(splits.y_train) // 32)  # every step counted
    # the same run without averaging: its weights are θ itself
    plain = fit(tiny_config("training.ema=null"), splits, tmp_path / "plain")
    for ours, theirs in zip(theta, weights(plain.network)):
        assert np.array_equal(ours, theirs)
    assert "theta_W1" not in checkpoint.load(plain.last_checkpoint).optimizer_state


def test_a_checkpoint_from_before_ema_and_clean_fraction_resumes_as_it_was_trained(tiny_config, tmp_path):
    # Its config lacks the keys added since: it trains on without averaging and with every
    # epoch augmented, as it was trained — not with the newer defaults (ema 0.999, 0.1 clean).
    config = tiny_config("training.ema=null", "data.augment.clean_fraction=0", "data.augment.shift=1",
                         "training.epochs=3")
    splits = read_splits(config.data)
    whole = fit(config, splits, tmp_path / "whole")
    fit(config, splits, tmp_path / "old", stop_after=1)
    path = tmp_path / "old" / "last.npz"
    meta = checkpoint.read_meta(path)
    del meta["config"]["training"]["ema"], meta["config"]["data"]["augment"]["clean_fraction"]
    rewrite(path, path, meta=np.array(json.dumps(meta)))
    old = checkpoint.load(path)
    assert old.config.training.ema is None and old.config.data.augment.clean_fraction == 0
    resumed = fit(start(None, resume=path), splits)
    assert_same_weights(whole.network, resumed.network)


def test_same_seed_same_weights_other_seed_other_weights(tiny_config, tmp_path):
    config = tiny_config("training.epochs=2", "model.dropout=0.1")
    splits = read_splits(config.data)
    a = fit(config, splits, tmp_path / "a").network
    b = fit(config, splits, tmp_path / "b").network
    c = fit(tiny_config("training.epochs=2", "model.dropout=0.1", "training.seed=1"), splits, tmp_path / "c").network
    assert_same_weights(a, b)
    assert not np.array_equal(a.W[1], c.W[1])


def test_ctrl_c_mid_epoch_keeps_last_completed_epoch_and_resumes_exactly(tiny_config, tmp_path, monkeypatch):
    config = tiny_config("training.epochs=3", "model.dropout=0.2")
    splits = read_splits(config.data)
    whole = fit(config, splits, tmp_path / "whole")

    class InterruptInEpoch2(Recorder):
        def batch(self, loss):
            super().batch(loss)
            if len(self.events) > 16 + 2 + 5:  # epoch 1: start + 16 batches + end; then 5 more
                raise KeyboardInterrupt

    with pytest.raises(Interrupted) as error:
        fit(config, splits, tmp_path / "cut", progress=InterruptInEpoch2())
    run = tmp_path / "cut"
    assert error.value.exit_code == 130
    assert "holds epoch 1" in error.value.message
    assert f"--resume {run / 'last.npz'}" in error.value.hint
    assert checkpoint.load(run / "last.npz").epoch == 1
    assert len(read_metrics(run)) == 1

    resumed = fit(start(None, resume=run / "last.npz"), splits)
    assert_same_weights(whole.network, resumed.network)


def test_ctrl_c_in_the_first_epoch_says_nothing_was_saved(tiny_config, tmp_path):
    class InterruptAtOnce(Recorder):
        def batch(self, loss):
            raise KeyboardInterrupt

    config = tiny_config()
    with pytest.raises(Interrupted, match="nothing was saved"):
        fit(config, read_splits(config.data), tmp_path / "run", progress=InterruptAtOnce())
    assert not (tmp_path / "run" / "last.npz").exists()


def test_resume_can_extend_the_run_and_recomputes_the_schedule(tiny_config, tmp_path):
    config = tiny_config("training.epochs=2", "training.schedule.name=cosine")
    splits = read_splits(config.data)
    fit(config, splits, tmp_path / "run")
    longer = load_config(checkpoint.load(tmp_path / "run" / "last.npz").config, ["training.epochs=4"])
    history = fit(start(longer, resume=tmp_path / "run" / "last.npz"), splits)
    rows = read_metrics(tmp_path / "run")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and len(history.epochs) == 4
    assert rows[2]["learning_rate"] == pytest.approx(0.05 * 0.5 * (1 + np.cos(np.pi * 2 / 4)))
    assert load_config(tmp_path / "run" / "config.yaml").training.epochs == 4


def test_resume_of_a_finished_run_says_how_to_extend(tiny_config, tmp_path):
    config = tiny_config("training.epochs=1")
    splits = read_splits(config.data)
    fit(config, splits, tmp_path / "run")
    with pytest.raises(ConfigError, match="already finished") as error:
        fit(start(None, resume=tmp_path / "run" / "last.npz"), splits)
    assert "training.epochs" in error.value.hint


def test_resume_with_a_different_config_is_an_error(tiny_config, tmp_path):
    config = tiny_config("training.epochs=2")
    splits = read_splits(config.data)
    fit(config, splits, tmp_path / "run", stop_after=1)
    other = tiny_config("training.epochs=2", "training.learning_rate=0.2")
    with pytest.raises(ConfigError, match="training.learning_rate") as error:
        fit(start(other, resume=tmp_path / "run" / "last.npz"), splits)
    assert "--init-from" in error.value.hint
    # where the data lives may change
    moved = tiny_config("training.epochs=2", "data.dir=elsewhere")
    assert len(fit(start(moved, resume=tmp_path / "run" / "last.npz"), splits).epochs) == 2


# --- the run folder ------------------------------------------------------------------------


def test_run_folder_contents(tiny_config, tmp_path):
    config = tiny_config()
    progress = Recorder()
    history = fit(config, read_splits(config.data), tmp_path / "run", progress=progress)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["best.npz", "config.yaml", "last.npz", "metrics.jsonl"]
    assert load_config(run / "config.yaml") == config
    rows = read_metrics(run)
    assert [list(r) for r in rows] == [list(METRIC_KEYS)] * 3
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(r["l2_penalty"] > 0 and r["seconds"] >= 0 and 0 <= r["val_accuracy"] <= 1 for r in rows)
    last, best = checkpoint.load(run / "last.npz"), checkpoint.load(run / "best.npz")
    assert last.epoch == 3 and last.meta["metrics"] == rows[-1]
    assert best.epoch == history.best_epoch
    assert best.meta["metrics"]["val_accuracy"] == max(r["val_accuracy"] for r in rows)
    assert_same_weights(last.network, history.network)
    assert progress.messages[0] == progress.messages[-1] == f"run folder: {run.resolve()}"
    starts = [e for e in progress.events if e[0] == "start"]
    assert starts == [("start", k, 3, 16) for k in (1, 2, 3)]  # 500 examples / 32 per batch
    assert sum(1 for e in progress.events if e[0] == "batch") == 3 * 16


def test_train_loss_and_accuracy_improve_on_learnable_data(tiny_config, tmp_path):
    config = tiny_config("training.epochs=5")
    history = fit(config, read_splits(config.data), tmp_path / "run")
    first, last = history.epochs[0], history.epochs[-1]
    assert last["train_loss"] < first["train_loss"]
    assert last["val_accuracy"] > 0.9


def test_existing_checkpoints_are_never_overwritten_without_overwrite(tiny_config, tmp_path):
    config = tiny_config("training.epochs=1")
    splits = read_splits(config.data)
    fit(config, splits, tmp_path / "run")
    before = (tmp_path / "run" / "last.npz").read_bytes()
    with pytest.raises(CheckpointError, match="already holds checkpoints") as error:
        fit(config, splits, tmp_path / "run")
    assert "--overwrite" in error.value.hint and "--resume" in error.value.hint
    assert (tmp_path / "run" / "last.npz").read_bytes() == before
    fit(start(tiny_config("training.epochs=2"), tmp_path / "run", overwrite=True), splits)
    assert [r["epoch"] for r in read_metrics(tmp_path / "run")] == [1, 2]


def test_default_run_folder_is_runs_name_timestamp(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tiny_config("training.epochs=1")
    splits = read_splits(config.data)
    a = fit(config, splits).run_dir
    b = fit(config, splits).run_dir  # the same second: a new folder, never the same one
    assert a.parent == b.parent == (tmp_path / "runs").resolve()
    assert re.fullmatch(r"tiny-\d{8}-\d{6}", a.name)
    assert a != b
    out = tmp_path / "chosen"
    assert fit(tiny_config("training.epochs=1", f"output.dir={out}"), splits).run_dir == out


def test_validation_zero_writes_no_best_and_says_so(tiny_config, tmp_path):
    config = tiny_config("data.validation=0", "training.epochs=2")
    progress = Recorder()
    history = fit(config, read_splits(config.data), tmp_path / "run", progress=progress)
    assert not (tmp_path / "run" / "best.npz").exists()
    assert history.best_checkpoint is None
    assert any("no best.npz" in m for m in progress.messages)
    rows = read_metrics(tmp_path / "run")
    assert all(r["val_loss"] is None and r["val_accuracy"] is None for r in rows)


# --- early stopping, divergence, fine-tuning ------------------------------------------------


@pytest.mark.parametrize("metric", ["val_accuracy", "val_loss"])
def test_early_stopping_after_patience_epochs_without_improvement(tiny_config, tmp_path, metric):
    # A learning rate far below float32 resolution: the weights never change, nothing improves.
    config = tiny_config("training.epochs=10", "training.learning_rate=1e-30", "regularization.l2=0",
                         f"training.early_stopping={{patience: 2, metric: {metric}}}")
    progress = Recorder()
    history = fit(config, read_splits(config.data), tmp_path / "run", progress=progress)
    assert history.stopped == "early_stopping"
    assert len(history.epochs) == 3
    assert any("early stopping" in m for m in progress.messages)


def test_nan_raises_divergence_and_keeps_the_last_good_checkpoint(tiny_config, tmp_path, monkeypatch):
    config = tiny_config("training.epochs=3")
    backward, calls = Network.backward, []

    def poisoned(self, *args, **kwargs):
        calls.append(1)
        dW, db = backward(self, *args, **kwargs)
        if len(calls) > 20:  # epoch 1 has 16 batches; poison epoch 2
            dW[1] *= np.float32("nan")  # in place: the optimizer reads the gradient vector
        return dW, db

    monkeypatch.setattr(Network, "backward", poisoned)
    with pytest.raises(DivergenceError, match="epoch 2") as error:
        fit(config, read_splits(config.data), tmp_path / "run")
    assert "training.learning_rate=0.005" in error.value.hint
    kept = checkpoint.load(tmp_path / "run" / "last.npz")
    assert kept.epoch == 1 and all(np.isfinite(w).all() for w in weights(kept.network))


def test_a_huge_learning_rate_diverges_with_a_clear_error(tiny_config, tmp_path):
    config = tiny_config("training.learning_rate=1e30", "training.optimizer=sgd", "model.init=normal")
    with pytest.raises(DivergenceError, match="diverged") as error:
        fit(config, read_splits(config.data), tmp_path / "run")
    assert "lower the learning rate" in error.value.hint
    assert "no checkpoint was written" in error.value.message


def test_init_from_starts_a_new_run_from_checkpoint_weights(tiny_config, tmp_path):
    splits = read_splits(tiny_config().data)
    source = fit(tiny_config("training.epochs=1"), splits, tmp_path / "source")
    frozen = tiny_config("training.epochs=1", "training.learning_rate=1e-30", "regularization.l2=0",
                         "training.optimizer=sgd", "training.seed=5")
    tuned = fit(start(frozen, tmp_path / "tuned", init_from=source.last_checkpoint), splits)
    assert_same_weights(source.network, tuned.network)
    assert checkpoint.load(tuned.last_checkpoint).meta["init_from"] == str(source.last_checkpoint)
    fresh = fit(frozen, splits, tmp_path / "fresh")
    assert not np.array_equal(fresh.network.W[1], tuned.network.W[1])
    with pytest.raises(ConfigError, match="model.layers"):
        start(tiny_config("model.layers=[784,8,10]"), tmp_path / "x", init_from=source.last_checkpoint)


# --- the command line ------------------------------------------------------------------------


def base_args(tiny_data, *extra):
    args = ["train", "--set", f"data.path={tiny_data}", "--set", "data.validation=100",
            "--set", "model.layers=[784,16,10]", "--set", "training.epochs=2", "--set", "name=tiny"]
    return args + list(extra)


def test_cli_train_prints_folder_and_one_line_per_epoch(tiny_data, tmp_path):
    result = CliRunner().invoke(cli, base_args(tiny_data, "--out", str(tmp_path / "run")))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == lines[-2] == f"run folder: {(tmp_path / 'run').resolve()}"
    assert re.fullmatch(r"total wall time \d+:\d\d \(2 epochs, \d+\.\d s an epoch\)", lines[-1])
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_lines) == 2
    assert re.match(r"epoch 1/2  train loss \d\.\d{4} acc \d\.\d{4}  val loss \d\.\d{4} acc \d\.\d{4}", epoch_lines[0])


def test_cli_quiet_prints_only_the_run_folder(tiny_data, tmp_path):
    """stdout: the run folder alone (RUN=$(mlpcli train -q) works); stderr: the total time."""
    result = CliRunner().invoke(cli, base_args(tiny_data, "--out", str(tmp_path / "run"), "--quiet"))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{(tmp_path / 'run').resolve()}\n"
    assert re.fullmatch(r"total wall time \d+:\d\d \(2 epochs, \d+\.\d s an epoch\)\n", result.stderr)


def test_cli_print_config_round_trips(tiny_data, tmp_path):
    result = CliRunner().invoke(cli, base_args(tiny_data, "--print-config"))
    assert result.exit_code == 0
    (tmp_path / "c.yaml").write_text(result.output)
    printed = load_config(tmp_path / "c.yaml")
    assert printed.model.layers == (784, 16, 10) and printed.name == "tiny"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("setting, key", [
    ("training.batch_size=0", "training.batch_size"),
    ("model.layers=[784,30,9]", "model.layers"),
    ("training.learning_rate=-1", "training.learning_rate"),
    ("training.epoch=3", "training.epoch"),
    ("regularization.l2=-5", "regularization.l2"),
])
def test_cli_config_errors_exit_2_naming_the_key(tiny_data, setting, key):
    result = CliRunner().invoke(cli, base_args(tiny_data, "--set", setting))
    assert result.exit_code == 2
    assert result.output.startswith("Error:") and key in result.output
    assert "Traceback" not in result.output


def test_cli_config_file_error_names_file_and_key(tiny_data, tmp_path):
    (tmp_path / "bad.yaml").write_text("training:\n  optimiser: adam\n")
    result = CliRunner().invoke(cli, ["train", "--config", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2
    assert "bad.yaml" in result.output and "optimiser" in result.output and "optimizer" in result.output


def test_cli_refuses_to_overwrite_and_resumes(tiny_data, tmp_path):
    run = tmp_path / "run"
    runner = CliRunner()
    assert runner.invoke(cli, base_args(tiny_data, "--out", str(run), "--stop-after", "1")).exit_code == 0
    again = runner.invoke(cli, base_args(tiny_data, "--out", str(run)))
    assert again.exit_code == 1 and "--overwrite" in again.output
    differ = runner.invoke(cli, ["train", "--resume", str(run / "last.npz"), "--config", "mnist"])
    assert differ.exit_code == 2 and "differs" in differ.output
    resumed = runner.invoke(cli, ["train", "--resume", str(run / "last.npz"), "--set", "training.epochs=3"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming from" in resumed.output
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2, 3]




def test_cli_train_prints_a_one_line_model_summary(tiny_data, tmp_path):
    result = CliRunner().invoke(cli, base_args(tiny_data, "--out", str(tmp_path / "run")))
    assert result.exit_code == 0, result.output
    summary = [line for line in result.output.splitlines() if line.startswith("model: ")]
    assert len(summary) == 1
    # 784·16 + 16 + 16·10 + 10 parameters; the training and validation sizes of tiny_data
    assert summary[0].startswith("model: 784-16-10 (12,730 parameters), relu → softmax + log_likelihood;")
    assert "data: 500 train, 100 validation" in summary[0]


def test_threads_option_sets_the_blas_thread_count(tiny_data, monkeypatch):
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(cli, base_args(tiny_data, "--threads", "3", "--print-config"))
    assert result.exit_code == 0, result.output
    import os

    assert os.environ["OPENBLAS_NUM_THREADS"] == os.environ["OMP_NUM_THREADS"] == "3"
    bad = CliRunner().invoke(cli, base_args(tiny_data, "--threads", "0"))
    assert bad.exit_code == 2 and "--threads" in bad.output


# --- how long a run takes (elapsed, ETA, the estimate, the total) ----------------------------------

EPOCH_LINE_END = r"  \d+\.\ds · \d+:\d\d elapsed · ETA \d+:\d\d"


def test_cli_train_says_how_long_the_run_takes(tiny_data, tmp_path):
    result = CliRunner().invoke(cli, base_args(tiny_data, "--out", str(tmp_path / "run"), "--set", "training.epochs=3"))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    epochs = [i for i, line in enumerate(lines) if line.startswith("epoch ")]
    assert len(epochs) == 3 and all(re.search(EPOCH_LINE_END + "$", lines[i]) for i in epochs)
    estimates = [line for line in lines if "s an epoch), done around" in line]
    assert estimates == [lines[epochs[0] + 1]]  # once, right after epoch 1
    assert re.fullmatch(r"3 epochs: about \d+ s \(\d+\.\d s an epoch\), done around \d\d:\d\d", estimates[0])
    assert re.fullmatch(r"total wall time \d+:\d\d \(3 epochs, \d+\.\d s an epoch\)", lines[-1])


def test_cli_resumed_run_counts_only_the_epochs_left(tiny_data, tmp_path):
    run, runner = tmp_path / "run", CliRunner()
    first = runner.invoke(cli, base_args(tiny_data, "--out", str(run), "--set", "training.epochs=3", "--stop-after", "1"))
    assert first.exit_code == 0, first.output
    assert "done around" not in first.output  # one epoch: nothing left to estimate
    assert first.output.splitlines()[-1].startswith("total wall time ") and "(1 epoch, " in first.output
    resumed = runner.invoke(cli, ["train", "--resume", str(run / "last.npz")])
    assert resumed.exit_code == 0, resumed.output
    lines = resumed.output.splitlines()
    assert re.fullmatch(r"epochs 2–3 of 3: about \d+ s \(\d+\.\d s an epoch\), done around \d\d:\d\d",
                        lines[lines.index(next(x for x in lines if x.startswith("epoch 2/3"))) + 1])
    assert re.fullmatch(r"total wall time \d+:\d\d \(epochs 2–3 of 3, \d+\.\d s an epoch\)", lines[-1])


class FakeClock:
    """Seconds that pass only when a test says so."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


NOON = __import__("datetime").datetime(2030, 1, 2, 12, 0, 0)


def ticking_progress(clock, epoch_seconds, **settings):
    """The CLI's progress display on a fake clock on which each epoch takes the next of
    ``epoch_seconds`` (and nothing else takes any time); its wall clock reads NOON at 0."""
    from datetime import timedelta

    from mlpcli.cli.progress import TrainProgress

    class Ticking(TrainProgress):
        def end_epoch(self, metrics):
            clock.t += epoch_seconds.pop(0)
            super().end_epoch(metrics)

    return Ticking(clock=clock, wall=lambda: NOON + timedelta(seconds=clock.t), **settings)


def test_eta_arithmetic_of_a_resumed_run_on_a_fake_clock(tiny_config, tmp_path, capsys):
    config = tiny_config("training.epochs=4")
    splits = read_splits(config.data)
    clock = FakeClock()
    fit(config, splits, tmp_path / "run", stop_after=2, progress=ticking_progress(clock, [50, 70], stop_after=2))
    before = capsys.readouterr().out.splitlines()
    assert [line[line.index("s · ") + 4:] for line in before if line.startswith("epoch ")] == [
        "0:50 elapsed · ETA 0:50", "2:00 elapsed · ETA 0:00"]  # --stop-after 2: the ETA counts to epoch 2
    assert "epochs 1–2 of 4: about 2 min (50.0 s an epoch), done around 12:01" in before  # 100 s

    clock = FakeClock()
    progress = ticking_progress(clock, [600, 660])
    clock.t += 30  # loading the data: part of the elapsed time
    fit(start(None, resume=tmp_path / "run" / "last.npz"), splits, progress=progress)
    progress.finish()
    lines = capsys.readouterr().out.splitlines()
    ends = [line[line.index("s · ") + 4:] for line in lines if line.startswith("epoch ")]
    # only epochs 3 and 4 are left: after epoch 3 (600 s, at 630 s) one epoch of 600 s remains
    assert ends == ["10:30 elapsed · ETA 10:00", "21:30 elapsed · ETA 0:00"]
    estimate = lines.index(next(x for x in lines if x.startswith("epoch 3/4"))) + 1
    # 630 s spent + 600 s to go = 20.5 min; the wall clock reads 12:10:30, so 12:20:30
    assert lines[estimate] == "epochs 3–4 of 4: about 20 min (600.0 s an epoch), done around 12:20"
    assert lines[-1] == "total wall time 21:30 (epochs 3–4 of 4, 630.0 s an epoch)"  # median of 600, 660


def test_eta_follows_recent_epochs_and_the_pace_inside_the_first():
    from mlpcli.run.eta import RunTimer, about, clock

    timer = RunTimer(started=0.0, first=1, last=10, epochs=10)
    timer.start_epoch(5.0)
    assert timer.eta(25.0, fraction=0.25) == 10 * 80 - 20  # 20 s for a quarter: 80 s an epoch
    assert timer.eta(25.0) is None and timer.eta(25.0, fraction=0.0) is None
    ends = [85.0, 165.0, 1165.0, 1245.0]  # 80, 80, then one slow epoch (1000 s), then 80 again
    for end in ends:
        timer.end_epoch(end)
        timer.start_epoch(end)
    assert timer.done == 4 and timer.per_epoch == 80.0  # the median: one slow epoch does not swing it
    assert timer.eta(1245.0) == 6 * 80.0
    assert timer.eta(1285.0, fraction=0.5) == 5 * 80.0 + 40.0  # the rest of this epoch, then 5 more
    assert timer.status(1285.0, 0.5) == "21:25 elapsed · ETA 7:20"
    # the last line's pace is the mean of all the epochs (1245 s over 4, the slow one included)
    assert timer.total(1245.0) == "total wall time 20:45 (4 epochs, 310.0 s an epoch)"
    assert [clock(s) for s in (7, 754, 3723)] == ["0:07", "12:34", "1:02:03"]
    assert [about(s) for s in (0.2, 40, 1260, 3 * 3600 + 5 * 60)] == ["1 s", "40 s", "21 min", "3 h 05 min"]


def test_progress_bar_shows_the_whole_runs_elapsed_time_and_eta():
    from mlpcli.cli.progress import TrainProgress

    clock = FakeClock()
    progress = TrainProgress(clock=clock, wall=lambda: NOON)
    clock.t = 10.0
    progress.start_epoch(1, 4, 100)
    clock.t = 30.0
    for _ in range(25):
        progress.batch(0.5)
    # a quarter of epoch 1 in 20 s: 80 s an epoch, 60 s of this one and 3 more to go
    assert progress.postfix() == "loss 0.5000 · run 0:30 elapsed · ETA 5:00"
    progress.close()


def test_the_lines_name_what_this_invocation_trains():
    from mlpcli.run.eta import RunTimer

    def after_one_epoch(first, last, epochs):
        timer = RunTimer(started=0.0, first=first, last=last, epochs=epochs)
        timer.start_epoch(0.0)
        timer.end_epoch(10.0)
        return timer

    assert after_one_epoch(1, 3, 3).epochs_named() == "3 epochs"
    assert after_one_epoch(1, 2, 3).epochs_named() == "epochs 1–2 of 3"  # --stop-after 2
    assert after_one_epoch(3, 6, 6).total(10.0) == "total wall time 0:10 (epoch 3 of 6, 10.0 s an epoch)"
    assert after_one_epoch(1, 6, 6).total(10.0) == "total wall time 0:10 (1 epoch, 10.0 s an epoch)"
    assert RunTimer(0.0, 3, 6, 6).total(4.0) == "total wall time 0:04 (0 epochs)"  # interrupted in its first
