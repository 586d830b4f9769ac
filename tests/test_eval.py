"""infer (the one inference path) and evaluate(): metrics by hand, batching; `mlpcli eval`:
JSON, human report, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from mlpcli.nn import infer
from mlpcli.cli import cli
from mlpcli.data.splits import CLASS_NAMES, read_splits
from mlpcli.errors import DataError
from mlpcli.nn.evaluate import evaluate, format_report
from mlpcli.nn.network import Network, scale01
from mlpcli.run.train import fit
from mlpcli.run.train import start as start_run


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_data):
    """A finished 3-epoch run on tiny_data (named as Fashion-MNIST for its class names)."""
    from mlpcli.run.config import load_config

    config = load_config(None, [f"data.path={tiny_data}", "data.validation=100", "model.layers=[784,16,10]",
                                "training.epochs=3", "training.batch_size=32", "data.dataset=fashion-mnist"])
    folder = tmp_path_factory.mktemp("evalrun") / "run"
    fit(config, read_splits(config.data), folder)
    return folder


def random_network(seed=0):
    return Network.create([784, 8, 10], "relu", "softmax", "log_likelihood", "he",
                          np.random.default_rng(seed), np.float32)


# --- infer: the one inference path ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_size", [1, 7, 53, 1000])
def test_batched_outputs_equal_one_unbatched_forward(batch_size, dtype):
    rng = np.random.default_rng(7)
    X = rng.integers(0, 256, (53, 784), dtype=np.uint8)  # 53 = N: one batch; 7: a ragged last batch
    network = Network.create([784, 16, 9, 10], "sigmoid", "softmax", "log_likelihood", "he", rng, dtype)
    expected = network.forward(scale01(X, dtype))[1][-1]
    out = infer.outputs(network, X, batch_size=batch_size)
    assert out.shape == (53, 10) and out.dtype == dtype
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=0)
    covered = [(rows.start, rows.stop) for rows, _ in infer.batches(network, X, batch_size)]
    assert covered == [(s, min(s + batch_size, 53)) for s in range(0, 53, batch_size)]
    assert np.array_equal(infer.labels(network, X, batch_size), out.argmax(axis=1))
    assert np.array_equal(infer.probabilities(network, X, batch_size), out.astype(np.float64))


def test_infer_normalizes_non_softmax_outputs_and_takes_images_of_any_shape():
    rng = np.random.default_rng(8)
    X = rng.integers(0, 256, (12, 784), dtype=np.uint8)
    network = Network.create([784, 8, 10], "relu", "identity", "quadratic", "he", rng, np.float64)
    out = infer.outputs(network, X)
    assert np.array_equal(infer.probabilities(network, X), infer.as_probabilities(out, "identity"))
    assert np.allclose(infer.probabilities(network, X).sum(axis=1), 1.0)
    assert np.array_equal(infer.outputs(network, X.reshape(12, 28, 28)), out)
    np.testing.assert_allclose(infer.outputs(network, X[3]), out[3:4], rtol=1e-12)  # a 1-row product
    assert infer.outputs(network, X[:0]).shape == (0, 10)
    with pytest.raises(DataError, match="do not fit the network's 784 inputs"):
        infer.outputs(network, X.reshape(24, 392))
    with pytest.raises(ValueError, match="batch_size"):
        infer.outputs(network, X, batch_size=0)


def test_evaluate_keeps_the_outputs_of_infer():
    rng = np.random.default_rng(9)
    X, y = rng.integers(0, 256, (75, 784), dtype=np.uint8), rng.integers(0, 10, 75)
    network = random_network(3)
    result = evaluate(network, X, y, batch_size=7, keep_probabilities=True)
    assert np.array_equal(result.probabilities, infer.outputs(network, X, batch_size=7))
    assert np.array_equal(infer.as_probabilities(result.probabilities, network.output),
                          infer.probabilities(network, X, batch_size=7))
    predicted = infer.labels(network, X, batch_size=7)
    assert result.accuracy == np.mean(predicted == y)
    assert np.array_equal(result.confusion_matrix.sum(axis=0), np.bincount(predicted, minlength=10))
    assert evaluate(network, X, y).probabilities is None
    with pytest.raises(ValueError, match="74 rows of pixels for 75 labels"):
        evaluate(network, X[:74], y)


# --- evaluate --------------------------------------------------------------------------------------


def test_metrics_match_a_direct_computation():
    rng = np.random.default_rng(1)
    X, y = rng.integers(0, 256, (230, 784), dtype=np.uint8), rng.integers(0, 10, 230).astype(np.uint8)
    network = random_network()
    result = evaluate(network, X, y, batch_size=64)
    P = network.forward(scale01(X))[1][-1]
    predicted = P.argmax(axis=1)
    assert result.n == 230
    assert result.accuracy == np.mean(predicted == y)
    assert result.loss == pytest.approx(-np.mean(np.log(P[np.arange(230), y])), rel=1e-5)
    assert result.confusion_matrix.sum() == 230
    for k in range(10):
        assert result.confusion_matrix[k].sum() == np.sum(y == k)  # rows are the true class
        assert result.confusion_matrix[:, k].sum() == np.sum(predicted == k)
        row = result.per_class[k]
        tp = np.sum((predicted == k) & (y == k))
        precision = tp / np.sum(predicted == k) if np.sum(predicted == k) else 0.0
        recall = tp / np.sum(y == k)
        assert row["precision"] == pytest.approx(precision) and row["recall"] == pytest.approx(recall)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert row["f1"] == pytest.approx(f1)


def test_batch_size_does_not_change_the_result():
    rng = np.random.default_rng(2)
    X, y = rng.integers(0, 256, (101, 784), dtype=np.uint8), rng.integers(0, 10, 101)
    a, b = evaluate(random_network(), X, y, batch_size=7), evaluate(random_network(), X, y, batch_size=1000)
    assert a.accuracy == b.accuracy and np.array_equal(a.confusion_matrix, b.confusion_matrix)
    assert a.loss == pytest.approx(b.loss, rel=1e-6)


def test_perfect_predictions_score_one_and_absent_classes_score_zero():
    network = random_network()
    X = np.random.default_rng(3).integers(0, 256, (40, 784), dtype=np.uint8)
    y = infer.labels(network, X)
    result = evaluate(network, X, y)
    assert result.accuracy == 1.0
    for row in result.per_class:
        expected = 1.0 if row["support"] else 0.0
        assert row["precision"] == row["recall"] == row["f1"] == expected


def test_to_json_is_plain_json():
    result = evaluate(random_network(), np.zeros((5, 784), np.uint8), np.arange(5))
    data = json.loads(json.dumps(result.to_json()))
    assert {"accuracy", "loss", "n", "confusion_matrix", "per_class"} <= set(data)
    assert len(data["confusion_matrix"]) == 10 and all(len(r) == 10 for r in data["confusion_matrix"])


def test_eval_json_on_validation_equals_the_last_epochs_val_accuracy(run):
    result = CliRunner().invoke(cli, ["eval", str(run / "last.npz"), "--split", "validation", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert data["accuracy"] == last["val_accuracy"]
    assert data["loss"] == pytest.approx(last["val_loss"], rel=1e-9)
    assert data["n"] == 100 and sum(map(sum, data["confusion_matrix"])) == 100
    assert [row["name"] for row in data["per_class"]] == list(CLASS_NAMES["fashion-mnist"])
    assert set(data["per_class"][0]) >= {"precision", "recall", "f1"}


def test_eval_defaults_to_the_test_split(run):
    data = json.loads(CliRunner().invoke(cli, ["eval", str(run / "best.npz"), "--json"]).output)
    assert data["split"] == "test" and data["n"] == 200
    assert sum(map(sum, data["confusion_matrix"])) == 200
    train_split = json.loads(CliRunner().invoke(cli, ["eval", str(run / "best.npz"), "--json",
                                                      "--split", "train"]).output)
    assert train_split["n"] == 500


def test_eval_human_report_has_matrix_and_class_names(run):
    result = CliRunner().invoke(cli, ["eval", str(run / "best.npz")])
    assert result.exit_code == 0
    out = result.output
    assert "accuracy" in out and "loss" in out and "confusion matrix" in out
    for name in CLASS_NAMES["fashion-mnist"]:
        assert name in out
    assert "precision" in out and "recall" in out and "f1" in out


def test_format_report_rows_sum_to_support():
    rng = np.random.default_rng(4)
    result = evaluate(random_network(), rng.integers(0, 256, (60, 784), dtype=np.uint8),
                      rng.integers(0, 10, 60), class_names=CLASS_NAMES["mnist"])
    lines = format_report(result).splitlines()
    start = lines.index("confusion matrix (rows: true class, columns: predicted class)") + 2
    rows = [list(map(int, line.split()[1:])) for line in lines[start : start + 10]]
    assert np.array_equal(np.array(rows), result.confusion_matrix)


def test_eval_other_data_via_data_path(run, tiny_data, tmp_path):
    result = CliRunner().invoke(cli, ["eval", str(run / "best.npz"), "--data-path", str(tiny_data), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["n"] == 200
    missing = CliRunner().invoke(cli, ["eval", str(run / "best.npz"), "--data-path", str(tmp_path)])
    assert missing.exit_code == 1 and "missing" in missing.output


def test_eval_validation_split_of_a_validation_zero_run_is_a_config_error(tiny_data, tmp_path):
    runner = CliRunner()
    out = tmp_path / "noval"
    trained = runner.invoke(cli, ["train", "--set", f"data.path={tiny_data}", "--set", "data.validation=0",
                                  "--set", "model.layers=[784,8,10]", "--set", "training.epochs=1",
                                  "--out", str(out)])
    assert trained.exit_code == 0, trained.output
    assert "no best.npz" in trained.output
    assert not (out / "best.npz").exists()
    result = runner.invoke(cli, ["eval", str(out / "last.npz"), "--split", "validation"])
    assert result.exit_code == 2
    assert "validation: 0" in result.output and "Traceback" not in result.output


def test_eval_in_a_real_subprocess(run):
    done = subprocess.run([sys.executable, "-m", "mlpcli", "eval", str(run / "last.npz"), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n"] == 200


def test_public_api_loads_predicts_and_scores(run):
    import mlpcli

    ckpt = mlpcli.load_checkpoint(run / "best.npz")
    splits = mlpcli.load_splits(ckpt.config.data)
    labels = mlpcli.predict_labels(ckpt.network, splits.X_test, batch_size=33)
    result = mlpcli.score(ckpt.network, splits.X_test, splits.y_test)
    assert result.accuracy == np.mean(labels == splits.y_test)
    assert mlpcli.predict_probabilities(ckpt.network, splits.X_test[:3]).shape == (3, 10)
    assert mlpcli.predict_labels is infer.labels and mlpcli.predict_probabilities is infer.outputs
    assert mlpcli.fit is fit and "fit" in dir(mlpcli) and mlpcli.start_run is start_run
