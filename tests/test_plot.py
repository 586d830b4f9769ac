"""mlpcli plot and the pictures of eval --plot: files, sizes, what is drawn, missing extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_idx_folder
from PIL import Image

from mlpcli.run import checkpoint
from mlpcli.nn import infer
from mlpcli.inspection import plot
from mlpcli.run import runs
from mlpcli.cli import cli
from mlpcli.run.config import load_config
from mlpcli.errors import CheckpointError, MlpcliError
from mlpcli.nn.evaluate import EvalResult, evaluate
from mlpcli.nn.network import Network
from mlpcli.errors import MissingExtraError

FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def record(epoch: int, val_accuracy: float | None = None) -> dict:
    return {
        "epoch": epoch,
        "train_loss": 1.0 / epoch,
        "train_accuracy": 1 - 0.5 / epoch,
        "val_loss": None if val_accuracy is None else 1.2 / epoch,
        "val_accuracy": val_accuracy,
        "l2_penalty": 0.1,
        "learning_rate": 0.05,
        "seconds": 1.5,
    }


def write_run(folder: Path, records: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


VAL_ACC = [0.80, 0.85, 0.88, 0.91, 0.90, 0.91, 0.89]  # best: epoch 4 (first of the ties)


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        img.verify()  # a complete, valid PNG
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def lines_by_label(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines()}


# --- learning curves ------------------------------------------------------------------------


def test_plot_command_writes_curves_png_of_the_expected_size(tmp_path):
    run = write_run(tmp_path / "run", [record(e, a) for e, a in enumerate(VAL_ACC, 1)])
    result = CliRunner().invoke(cli, ["plot", str(run)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {run / 'curves.png'}"
    assert png_size(run / "curves.png") == (1100, 420)
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_curves_have_one_point_per_epoch_and_mark_the_best(tmp_path):
    records = [record(e, a) for e, a in enumerate(VAL_ACC, 1)]
    fig = plot.curves_figure(records)
    loss_ax, acc_ax = fig.axes[:2]
    for ax, key, scale in ((loss_ax, "loss", 1), (acc_ax, "accuracy", 100)):
        lines = lines_by_label(ax)
        for label, split in (("train", "train"), ("validation", "val")):
            x, y = lines[label].get_data()
            assert list(x) == list(range(1, 8))  # as many points as epochs
            assert np.allclose(y, [r[f"{split}_{key}"] * scale for r in records])
        best = next(line for name, line in lines.items() if name.startswith("best epoch 4"))
        assert list(best.get_xdata()) == [4]
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel() and ax.get_title()
        assert ax.get_legend() is not None
    assert lines_by_label(acc_ax)["best epoch 4: 91.00%"].get_ydata()[0] == pytest.approx(91.0)
    plot.pyplot().close(fig)


def test_resumed_run_counts_each_epoch_once(tmp_path):
    records = [record(1, 0.5), record(2, 0.6), record(3, 0.1), record(3, 0.7), record(4, 0.65)]
    run = write_run(tmp_path / "run", records)
    loaded = runs.read_metrics(run)
    assert [r["epoch"] for r in loaded] == [1, 2, 3, 4] and loaded[2]["val_accuracy"] == 0.7
    assert plot.best_epoch(loaded) == 3
    fig = plot.curves_figure(loaded)
    assert len(lines_by_label(fig.axes[0])["train"].get_xdata()) == 4
    plot.pyplot().close(fig)


def test_run_without_validation_plots_train_only(tmp_path):
    run = write_run(tmp_path / "run", [record(e) for e in range(1, 4)])
    out = tmp_path / "pictures" / "c.png"
    result = CliRunner().invoke(cli, ["plot", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert png_size(out) == (1100, 420)
    fig = plot.curves_figure(runs.read_metrics(run))
    assert set(lines_by_label(fig.axes[1])) == {"train"}
    plot.pyplot().close(fig)


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "is not a run folder"),
        (lambda d: d.mkdir(), "metrics.jsonl not found"),
        (lambda d: write_run(d, []), "holds no epochs"),
        (lambda d: (d.mkdir(), (d / "metrics.jsonl").write_text('{"epoch": 1}\n{"epo')), "line 2: not a metrics record"),
    ],
    ids=["missing-folder", "no-metrics", "empty-metrics", "bad-line"],
)
def test_bad_run_folders_are_one_line_errors(tmp_path, setup, message):
    run = tmp_path / "run"
    setup(run)
    with pytest.raises(CheckpointError, match=message):
        runs.read_metrics(run)
    result = CliRunner().invoke(cli, ["plot", str(run)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1 and message in result.output
    assert not (run / "curves.png").exists()


def test_plot_in_a_subprocess(tmp_path):
    run = write_run(tmp_path / "run", [record(e, a) for e, a in enumerate(VAL_ACC[:3], 1)])
    proc = subprocess.run(
        [sys.executable, "-m", "mlpcli", "plot", str(run), "-o", str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert png_size(tmp_path / "x.png") == (1100, 420)


def test_a_run_with_nothing_to_draw_is_one_line_and_writes_no_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2, "seconds": 1.5}\n')
    result = CliRunner().invoke(cli, ["plot", str(run)])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(f"Error: {run} has nothing to draw: none of the 2 epochs")
    assert list(run.iterdir()) == [run / "metrics.jsonl"]
    other = write_run(tmp_path / "other", [record(1, 0.5)])
    result = CliRunner().invoke(cli, ["plot", str(other), str(run), "-o", str(tmp_path / "both.png")])
    assert result.exit_code == 1 and "nothing to draw" in result.output and not (tmp_path / "both.png").exists()


# --- several runs on one figure ----------------------------------------------------------------


def write_configured_run(folder: Path, learning_rate: float, records: list[dict], **more) -> Path:
    write_run(folder, records)
    extra = "".join(f"  {key}: {value}\n" for key, value in more.items())
    (folder / "config.yaml").write_text(f"name: {folder.name}\ndata:\n  path: /data/{folder.name}\n"
                                        f"training:\n  learning_rate: {learning_rate}\n  epochs: 3\n{extra}")
    return folder


def test_several_runs_share_one_figure_labeled_by_what_differs(tmp_path):
    """Nielsen's chapter 3 comparison: three learning rates, one figure; where the data live and
    the run's name differ too, but do not tell the runs apart."""
    rates = (0.025, 0.25, 2.5)
    folders = [write_configured_run(tmp_path / f"eta{i}", eta, [record(e, 0.5 + 0.1 * i + 0.01 * e) for e in (1, 2, 3)])
               for i, eta in enumerate(rates)]
    labels, differ = plot.differing_labels(folders)
    assert differ == ["training.learning_rate"]
    assert labels == ["learning_rate=0.025", "learning_rate=0.25", "learning_rate=2.5"]
    result = CliRunner().invoke(cli, ["plot", *map(str, folders), "-o", str(tmp_path / "eta.png")])
    assert result.exit_code == 0, result.output
    assert png_size(tmp_path / "eta.png") == (1100, 420)
    fig = plot.compare_figure([(label, runs.read_metrics(f)) for label, f in zip(labels, folders)])
    loss_ax, acc_ax = fig.axes[:2]
    for ax, key, scale in ((loss_ax, "train_loss", 1), (acc_ax, "val_accuracy", 100)):
        lines = lines_by_label(ax)
        assert set(lines) == set(labels)
        for label, folder in zip(labels, folders):
            assert np.allclose(lines[label].get_ydata(), [r[key] * scale for r in runs.read_metrics(folder)])
    assert {line.get_color() for line in acc_ax.get_lines()} == {line.get_color() for line in loss_ax.get_lines()}
    assert len({line.get_color() for line in acc_ax.get_lines()}) == 3
    plot.pyplot().close(fig)


def test_runs_whose_configs_do_not_tell_them_apart_are_labeled_by_folder(tmp_path):
    same = [write_configured_run(tmp_path / name, 0.1, [record(1, 0.5)]) for name in ("seed-a", "seed-b")]
    assert plot.differing_labels(same)[0] == ["seed-a", "seed-b"]
    bare = [write_run(tmp_path / name, [record(1, 0.5)]) for name in ("x", "y")]  # no config.yaml
    assert plot.differing_labels(bare)[0] == ["x", "y"]


def test_a_study_folder_draws_every_trial(tmp_path):
    study = tmp_path / "study"
    for n, (eta, l2) in enumerate([(0.1, 1.0), (0.5, 1.0), (0.1, 5.0)]):
        write_configured_run(study / f"trial-{n:04d}", eta, [record(e, 0.6 + 0.01 * e) for e in range(1, 4 - n)],
                             l2=l2)
    (study / "trial-0003").mkdir()  # a trial stopped before its first epoch: nothing to draw, left out
    (study / "study.db").write_bytes(b"")
    assert plot.run_folders([study]) == [study / f"trial-{n:04d}" for n in range(3)]
    labels, _ = plot.differing_labels(plot.run_folders([study]))
    assert labels == ["l2=1, learning_rate=0.1", "l2=1, learning_rate=0.5", "l2=5, learning_rate=0.1"]
    result = CliRunner().invoke(cli, ["plot", str(study)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {study / 'curves.png'}"
    assert png_size(study / "curves.png") == (1100, 420)


# --- missing extra ---------------------------------------------------------------------------


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Make ``import matplotlib`` fail as if the extra were not installed."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_plot_without_matplotlib_says_what_to_install(tmp_path, no_matplotlib):
    run = write_run(tmp_path / "run", [record(1, 0.5)])
    result = CliRunner().invoke(cli, ["plot", str(run)])
    assert result.exit_code == 1
    assert result.output == (
        "Error: plotting needs matplotlib, which is not installed — install it with: pip install 'mlpcli[plot]'\n"
    )
    assert not (run / "curves.png").exists()


def test_eval_pictures_without_matplotlib_fail_before_any_work(tmp_path, no_matplotlib):
    with pytest.raises(MissingExtraError, match=r"pip install 'mlpcli\[plot\]'"):
        plot.eval_pictures(tmp_path / "pics", np.zeros((2, 784), np.uint8), [0, 1], eval_result([0, 1], np.eye(10)[:2]))
    assert not (tmp_path / "pics").exists()


# --- confusion matrix and mistakes --------------------------------------------------------------


def eval_result(y, probs, names=FASHION) -> EvalResult:
    """What evaluate would say for labels y and outputs probs (its confusion matrix, by hand)."""
    y, probs = np.asarray(y), np.asarray(probs)
    counts = np.zeros((probs.shape[1],) * 2, dtype=np.int64)
    np.add.at(counts, (y, probs.argmax(axis=1)), 1)
    return EvalResult(float(np.mean(probs.argmax(axis=1) == y)), 0.5, len(y), counts, tuple(names), probs)


def drawn_figures(monkeypatch) -> dict:
    """Make save_figure record each figure's cell texts and titles by file name (and still save)."""
    drawn, save = {}, plot.save_figure

    def recording(fig, path):
        drawn[Path(path).name] = {"texts": [[t.get_text() for t in ax.texts] for ax in fig.axes],
                                  "titles": [ax.get_title() for ax in fig.axes if ax.get_images()],
                                  "suptitle": fig.axes[0].get_title()}
        return save(fig, path)

    monkeypatch.setattr(plot, "save_figure", recording)
    return drawn


def test_confusion_figure_labels_every_cell_and_class():
    counts = np.arange(100).reshape(10, 10)
    fig = plot.confusion_figure(counts, FASHION)
    ax = fig.axes[0]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert len(cells) == 100 and cells[(3, 7)] == "37" and cells[(9, 0)] == "90"
    assert [t.get_text() for t in ax.get_xticklabels()] == list(FASHION)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(FASHION)
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    plot.pyplot().close(fig)


def make_eval(n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (n, 784), dtype=np.uint8)
    y = rng.integers(0, 10, n)
    probs = rng.dirichlet(np.ones(10) * 0.5, n)
    return X, y, probs


def test_mistakes_are_the_most_confident_wrong_predictions():
    X, y, probs = make_eval()
    chosen = plot.most_confident_mistakes(y, probs, 24)
    pred = probs.argmax(axis=1)
    assert len(chosen) == 24 and (pred[chosen] != y[chosen]).all()
    conf = probs[chosen, pred[chosen]]
    assert (np.diff(conf) <= 0).all()
    wrong = pred != y
    assert conf[-1] == np.sort(probs[wrong, pred[wrong]])[::-1][23]  # no wrong one left out is surer

    fig = plot.mistakes_figure(X, y, probs, FASHION, n=24)
    titles = [ax.get_title() for ax in fig.axes if ax.get_images()]
    i = chosen[0]
    assert len(titles) == 24
    assert titles[0] == f"{FASHION[y[i]]} → {FASHION[pred[i]]} ({probs[i, pred[i]]:.2f})"
    shown = next(ax for ax in fig.axes if ax.get_images()).get_images()[0].get_array()
    assert (np.asarray(shown) == X[i].reshape(28, 28)).all()
    plot.pyplot().close(fig)


def test_no_mistakes_draws_a_note_not_an_empty_grid():
    y = np.arange(10)
    fig = plot.mistakes_figure(np.zeros((10, 784), np.uint8), y, np.eye(10), FASHION)
    assert not any(ax.get_images() for ax in fig.axes)
    assert any(t.get_text() == "no mistakes" for ax in fig.axes for t in ax.texts)
    plot.pyplot().close(fig)


def test_eval_pictures_writes_confusion_and_mistakes(tmp_path):
    X, y, probs = make_eval()
    paths = plot.eval_pictures(tmp_path / "pics", X, y, eval_result(y, probs))
    assert [p.name for p in paths] == ["confusion.png", "mistakes.png"]
    assert png_size(paths[0]) == (750, 650)
    assert png_size(paths[1]) == (1020, 830)  # 4 rows × 6 columns of 24 mistakes


def test_eval_pictures_with_few_mistakes_shrink_the_grid(tmp_path):
    X, y, _ = make_eval(50)
    probs = np.eye(10)[y] * 0.9 + 0.01
    probs[:5] = np.roll(probs[:5], 1, axis=1)  # exactly 5 mistakes → one row
    paths = plot.eval_pictures(tmp_path, X, y, eval_result(y, probs), output="sigmoid")
    assert png_size(paths[1]) == (1020, 245)


def test_the_confusion_picture_is_the_eval_results_matrix(tmp_path, monkeypatch):
    X, y, probs = make_eval(30)
    result = eval_result(y, probs)
    result.confusion_matrix = np.arange(100).reshape(10, 10) * 7  # not what probs would give
    drawn = drawn_figures(monkeypatch)
    plot.eval_pictures(tmp_path, X, y, result)
    cells = drawn["confusion.png"]["texts"][0]
    assert cells == [str(v) for v in result.confusion_matrix.ravel()]
    assert "n=34650" in drawn["confusion.png"]["suptitle"]


def test_eval_pictures_without_kept_probabilities_is_a_clear_error(tmp_path):
    X, y, probs = make_eval(10)
    result = eval_result(y, probs)
    result.probabilities = None
    with pytest.raises(ValueError, match="keep_probabilities=True"):
        plot.eval_pictures(tmp_path, X, y, result)


@pytest.mark.parametrize("output, cost", [("softmax", "log_likelihood"), ("identity", "quadratic")])
def test_plot_and_eval_show_the_probabilities_of_infer(tmp_path, monkeypatch, output, cost):
    X, y, _ = make_eval(90, seed=4)
    net = Network.create([784, 12, 10], "relu", output, cost, rng=np.random.default_rng(2))
    result = evaluate(net, X, y, batch_size=7, class_names=FASHION, keep_probabilities=True)
    assert np.array_equal(result.probabilities, infer.outputs(net, X, batch_size=7))
    seen = {}
    mistakes = plot.mistakes_figure

    def recording(X_uint8, y_true, probs, *args, **kwargs):
        seen["probs"] = probs
        return mistakes(X_uint8, y_true, probs, *args, **kwargs)

    monkeypatch.setattr(plot, "mistakes_figure", recording)
    plot.eval_pictures(tmp_path, X, y, result, output=net.output)
    expected = infer.probabilities(net, X, batch_size=7)
    assert seen["probs"].dtype == np.float64 and np.array_equal(seen["probs"], expected)
    assert np.array_equal(result.confusion_matrix.sum(axis=0),
                          np.bincount(infer.labels(net, X, batch_size=7), minlength=10))


# --- eval --plot ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fashion_checkpoint(tmp_path_factory):
    """An (untrained) Fashion-MNIST-shaped checkpoint whose data are 60 random images."""
    root = tmp_path_factory.mktemp("evalplot")
    data = root / "data"
    data.mkdir()
    X, y, _ = make_eval(60, seed=3)
    write_idx_folder(data, X[:20], y[:20], X[20:], y[20:])
    config = load_config(
        None, ["data.dataset=fashion-mnist", f"data.path={data}", "data.validation=5", "model.layers=[784,16,10]"]
    )
    net = Network.create([784, 16, 10], "relu", "softmax", "log_likelihood", rng=np.random.default_rng(0))
    return checkpoint.save(root / "best.npz", net, config), X[20:], y[20:], net


def test_eval_plot_writes_both_pictures(fashion_checkpoint, tmp_path):
    ckpt, X_test, y_test, net = fashion_checkpoint
    result = CliRunner().invoke(cli, ["eval", str(ckpt), "--plot", str(tmp_path / "pics")])
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'pics' / 'confusion.png'}" in result.output
    assert png_size(tmp_path / "pics" / "confusion.png") == (750, 650)
    wrong = int((infer.labels(net, X_test) != y_test).sum())
    rows = min(4, -(-wrong // 6))
    assert png_size(tmp_path / "pics" / "mistakes.png") == (1020, int(rows * 195 + 50))


def test_eval_plot_with_json_keeps_stdout_json(fashion_checkpoint, tmp_path):
    ckpt = fashion_checkpoint[0]
    proc = subprocess.run(
        [sys.executable, "-m", "mlpcli", "eval", str(ckpt), "--json", "--plot", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n"] == 40
    assert "wrote" in proc.stderr and (tmp_path / "mistakes.png").is_file()


def test_eval_plot_without_matplotlib_fails_first(fashion_checkpoint, tmp_path, no_matplotlib):
    result = CliRunner().invoke(cli, ["eval", str(fashion_checkpoint[0]), "--plot", str(tmp_path / "p")])
    assert result.exit_code == 1
    assert result.output == (
        "Error: plotting needs matplotlib, which is not installed — install it with: pip install 'mlpcli[plot]'\n"
    )
    assert not (tmp_path / "p").exists()


def test_eval_plot_into_a_path_under_a_file_fails_before_the_report(fashion_checkpoint, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    target = blocker / "pics"
    result = CliRunner().invoke(cli, ["eval", str(fashion_checkpoint[0]), "--plot", str(target)])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""  # no report: the check comes before the evaluation
    assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
    assert str(target) in result.output and "is a file" in result.output
    assert "Traceback" not in result.output and blocker.read_text() == "a file, not a folder"


def test_eval_plot_into_an_unwritable_folder_fails_before_the_report(fashion_checkpoint, tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):  # a read-only folder (as root, chmod alone would not stop us)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    result = CliRunner().invoke(cli, ["eval", str(fashion_checkpoint[0]), "--plot", str(tmp_path / "new" / "p")])
    assert result.exit_code == 1, result.output
    assert result.stdout == "" and result.output.count("\n") == 1
    assert f"{tmp_path / 'new' / 'p'} cannot be created in {tmp_path}" in result.output
    assert "Permission denied" in result.output and not (tmp_path / "new").exists()
    existing = CliRunner().invoke(cli, ["eval", str(fashion_checkpoint[0]), "--plot", str(tmp_path)])
    assert existing.exit_code == 1 and existing.stdout == ""
    assert f"{tmp_path} is not writable" in existing.output


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_eval_plot_into_a_read_only_folder_fails_before_the_report(fashion_checkpoint, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = CliRunner().invoke(cli, ["eval", str(fashion_checkpoint[0]), "--plot", str(folder)])
    finally:
        folder.chmod(0o755)
    assert result.exit_code == 1 and result.stdout == ""
    assert f"{folder} is not writable" in result.output


def test_picture_folder_errors_are_mlpcli_errors(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(MlpcliError, match="exists and is not a folder"):
        plot.check_picture_folder(tmp_path / "f")
    plot.check_picture_folder(tmp_path / "a" / "b")  # creatable: fine, and nothing is created
    assert not (tmp_path / "a").exists() and list(tmp_path.iterdir()) == [tmp_path / "f"]


def test_plot_augment_draws_the_distortions_of_a_config(tiny_data, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "aug.png"
    args = ["plot", "--augment", "mnist", "--set", f"data.path={tiny_data}", "--set", "data.validation=100",
            "--set", "data.augment.rotate=15", "--set", "data.augment.elastic={alpha: 34, sigma: 4}", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(out) in result.output


def test_augment_figure_shows_each_image_then_its_draws():
    pytest.importorskip("matplotlib")
    from mlpcli.run.config import AugmentConfig

    X = np.random.default_rng(0).integers(0, 256, (3, 784), dtype=np.uint8)
    fig = plot.augment_figure(X, AugmentConfig(shift=2, rotate=10, elastic=None), np.random.default_rng(1))
    axes = fig.get_axes()
    assert len(axes) == 3 * (plot.AUGMENT_DRAWS + 1)
    first = axes[0].images[0].get_array()
    assert np.array_equal(np.asarray(first), X[0].reshape(28, 28))  # column 0: the image as stored
    assert not np.array_equal(np.asarray(axes[1].images[0].get_array()), X[0].reshape(28, 28))


def test_plot_needs_exactly_one_thing_to_draw(tmp_path):
    result = CliRunner().invoke(cli, ["plot", str(tmp_path), "--augment", "mnist"])
    assert result.exit_code == 2 and "one of them" in result.output


@pytest.mark.parametrize("where", ["under a file", "proc"])
def test_plot_to_a_place_that_cannot_be_written_is_one_line(tmp_path, where):
    run = write_run(tmp_path / "run", [record(e, a) for e, a in enumerate(VAL_ACC, 1)])
    if where == "proc" and not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    out = run / "metrics.jsonl" / "c.png" if where == "under a file" else Path("/proc/curves.png")
    before = (run / "metrics.jsonl").read_bytes()
    result = CliRunner().invoke(cli, ["plot", str(run), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert str(out.parent) in result.output
    assert (run / "metrics.jsonl").read_bytes() == before and not list(run.glob(".*.tmp"))
