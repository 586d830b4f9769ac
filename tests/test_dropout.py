"""Inverted dropout: mask statistics, forward/backward with a fixed mask, gradcheck."""

from __future__ import annotations

import numpy as np
import pytest

from mlpcli.nn import functions as F
from mlpcli.nn import gradcheck
from mlpcli.errors import ConfigError
from mlpcli.nn.network import Network, dropout_masks, dropout_rates

LAYERS = (7, 6, 5, 3)


def small_network(activation, seed=0):
    rng = np.random.default_rng(seed)
    net = Network.create(LAYERS, activation, "softmax", "log_likelihood", "xavier", rng, np.float64)
    X = rng.random((8, LAYERS[0]))
    Y = F.one_hot(rng.integers(0, LAYERS[-1], 8), LAYERS[-1], np.float64)
    masks = dropout_masks(LAYERS, [0.5, 0.3], 8, np.random.default_rng(seed + 1), np.float64)
    return net, X, Y, masks


def worst(rows):
    return max(row.relative_difference for row in rows)


# --- rates and masks ------------------------------------------------------------------------


def test_one_rate_for_all_layers_or_one_per_layer():
    assert dropout_rates(0.2, 3) == [0.2, 0.2, 0.2]
    assert dropout_rates([0.1, 0.0], 2) == [0.1, 0.0]
    with pytest.raises(ConfigError, match="2 rates for 3 hidden layers"):
        dropout_rates([0.1, 0.2], 3)
    for bad in (1.0, -0.1, "x", True):
        with pytest.raises(ConfigError, match=r"\[0, 1\)"):
            dropout_rates(bad, 2)


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mask_keeps_the_rate_and_scales_so_the_expected_activation_is_unchanged(rate, dtype):
    m, n = 2000, 500  # 10⁶ entries: the kept fraction's standard deviation is below 5e-4
    masks = dropout_masks((784, n, 10), [rate], m, np.random.default_rng(0), dtype)
    M = masks[1]
    assert masks[0] is None and masks[2] is None
    assert M.shape == (m, n) and M.dtype == dtype
    keep = 1 - rate
    values = np.unique(M)
    assert len(values) == 2 and values[0] == 0 and values[1] == pytest.approx(1 / keep, rel=1e-6)
    assert abs((M > 0).mean() - keep) < 3e-3
    # E[a ⊙ M] = a: the mean over the batch of a masked activation stays the activation.
    a = np.random.default_rng(1).random(n).astype(dtype)
    np.testing.assert_allclose((a * M).mean(axis=0, dtype=np.float64).mean(), a.mean(), rtol=5e-3)
    assert abs(M.mean(dtype=np.float64) - 1) < 5e-3


def test_masks_differ_per_example_and_per_layer_rate():
    masks = dropout_masks((784, 300, 200, 10), [0.5, 0.0], 64, np.random.default_rng(0), np.float32)
    assert masks[2] is None  # rate 0: no mask, the layer is left alone
    assert len({row.tobytes() for row in masks[1] > 0}) == 64  # each example its own mask


def test_no_dropout_draws_nothing():
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert dropout_masks((784, 100, 10), [0.0], 32, rng, np.float32) is None
    assert rng.bit_generator.state == state


def test_same_seed_same_masks():
    a = dropout_masks((784, 50, 10), [0.4], 16, np.random.default_rng(3), np.float32)
    b = dropout_masks((784, 50, 10), [0.4], 16, np.random.default_rng(3), np.float32)
    np.testing.assert_array_equal(a[1], b[1])


# --- forward ----------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "identity"])
def test_forward_multiplies_hidden_outputs_by_the_mask(activation):
    net, X, Y, masks = small_network(activation)
    Z, A = net.forward(X)
    Zd, Ad = net.forward(X, masks)
    np.testing.assert_allclose(Ad[1], A[1] * masks[1])  # layer 1 sees the same input
    np.testing.assert_array_equal(Zd[1], Z[1])  # Z is never masked (identity: g(Z) is Z)
    np.testing.assert_allclose(Zd[2], Ad[1] @ net.W[2].T + net.b[2])
    assert np.isclose(Ad[-1].sum(axis=1), 1).all()  # the output layer is never masked


def test_all_kept_masks_change_nothing():
    net, X, Y, _ = small_network("tanh")
    ones = [None, np.ones((8, LAYERS[1])), np.ones((8, LAYERS[2])), None]
    np.testing.assert_array_equal(net.forward(X, ones)[1][-1], net.forward(X)[1][-1])
    with_ones, without = net.gradients(X, Y, 0.5, 20, ones)[0], net.gradients(X, Y, 0.5, 20)[0]
    for got, want in zip(with_ones[1:], without[1:]):
        np.testing.assert_allclose(got, want, rtol=1e-12)


# --- backward against finite differences, with a FIXED mask -----------------------------------


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
@pytest.mark.parametrize("lam", [0.0, 5.0])
def test_gradcheck_passes_with_a_fixed_mask(activation, lam):
    net, X, Y, masks = small_network(activation)
    assert all((masks[l] == 0).any() for l in (1, 2))  # some units really are dropped
    rows = gradcheck.check_network(net, X, Y, lam, 20,
                                   options=gradcheck.CheckOptions(params=200, masks=masks))
    assert worst(rows) < 1e-7


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_gradcheck_fails_when_backward_ignores_the_mask(activation, monkeypatch):
    net, X, Y, masks = small_network(activation)
    backward = Network.backward

    def backward_without_mask(self, Z, A, Y, masks=None, ws=None):
        return backward(self, Z, A, Y)  # forward used the mask, backward forgets it

    monkeypatch.setattr(Network, "backward", backward_without_mask)
    options = gradcheck.CheckOptions(params=200, masks=masks)
    assert worst(gradcheck.check_network(net, X, Y, 0.0, 20, options=options)) > 1e-2


def backward_with_masked_derivative(net, Z, A, Y, masks):
    """The tempting bug: g'(A) taken from the stored, MASKED output A = g(z) ⊙ M."""
    delta = F.output_delta(net.output, net.cost, A[net.L], Y)
    dW = [None] * (net.L + 1)
    for l in range(net.L, 0, -1):
        dW[l] = delta.T @ A[l - 1]
        if l > 1:
            delta = (delta @ net.W[l]) * masks[l - 1] * net.g[l - 1].derivative(A[l - 1])
    return dW


@pytest.mark.parametrize("activation, wrong", [("sigmoid", True), ("tanh", True), ("relu", False)])
def test_derivative_needs_the_unmasked_activation(activation, wrong):
    """σ' = a(1 − a) and tanh' = 1 − a² of the masked a are wrong; relu' = [a > 0] happens to
    survive the mask (dropped units get Δ ⊙ 0 anyway). ``backward`` is right for all three."""
    net, X, Y, masks = small_network(activation)
    Z, A = net.forward(X, masks)
    right = net.backward(Z, A, Y, masks=masks)[0]
    tempting = backward_with_masked_derivative(net, Z, A, Y, masks)
    differs = not np.allclose(tempting[1], right[1], rtol=1e-6, atol=1e-12)
    assert differs == wrong
    rows = gradcheck.check_network(net, X, Y, 0.0, 20,
                                   options=gradcheck.CheckOptions(params=200, masks=masks))
    assert worst(rows) < 1e-7


# --- no dropout outside training --------------------------------------------------------------


def test_predictions_never_use_dropout():
    from mlpcli.nn import infer
    from mlpcli.nn.network import scale01

    net = small_network("relu")[0]
    X = np.random.default_rng(3).integers(0, 256, (7, net.layers[0]), dtype=np.uint8)
    first, second = infer.outputs(net, X), infer.outputs(net, X)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, net.forward(scale01(X, net.dtype))[1][-1])


# --- in training runs -------------------------------------------------------------------------


def test_validation_metrics_and_eval_never_use_dropout(tiny_config, tmp_path):
    """With half the units dropped in training, the recorded val_loss is still exactly what a
    dropout-free evaluation of the saved weights gives, and two evaluations agree bit for bit."""
    from click.testing import CliRunner

    from mlpcli.run import checkpoint
    from mlpcli.cli import cli
    from mlpcli.data.splits import read_splits
    from mlpcli.nn.evaluate import evaluate
    from mlpcli.run.train import fit

    config = tiny_config("model.dropout=0.5", "training.epochs=2")
    splits = read_splits(config.data)
    history = fit(config, splits, tmp_path / "run")
    saved = checkpoint.load(history.last_checkpoint)
    first = evaluate(saved.network, splits.X_val, splits.y_val)
    second = evaluate(saved.network, splits.X_val, splits.y_val)
    assert first.loss == second.loss and first.accuracy == second.accuracy
    assert first.loss == pytest.approx(history.epochs[-1]["val_loss"], rel=1e-12)
    assert first.accuracy == history.epochs[-1]["val_accuracy"]

    runner = CliRunner()
    args = ["eval", str(history.last_checkpoint), "--split", "validation", "--json"]
    outputs = [runner.invoke(cli, args) for _ in range(2)]
    assert all(result.exit_code == 0 for result in outputs), outputs[0].output
    assert outputs[0].output == outputs[1].output
