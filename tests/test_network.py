"""Network: backward against finite differences for every combination and random shapes,
batch vs per-example gradients, float32 vs float64, initialisations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mlpcli.nn import functions as F
from mlpcli.nn import gradcheck
from mlpcli.errors import ConfigError
from mlpcli.nn.network import INITS, Network, scale01

TOL = 1e-6  # the criterion: per-array ‖a − n‖ / (‖a‖ + ‖n‖)


def batch_for(layers, output, cost, m, rng):
    return gradcheck.random_batch(layers, output, cost, m, rng)


def worst(rows):
    return max(rows, key=lambda r: r.relative_difference)


# --- every combination, float64 -----------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.0, 5.0])
@pytest.mark.parametrize("output, cost", F.VALID_PAIRS)
@pytest.mark.parametrize("activation", list(F.HIDDEN))
def test_backward_matches_finite_differences_for_every_combination(activation, output, cost, lam):
    rng = np.random.default_rng(0)
    layers = (7, 5, 4, 3)
    net = Network.create(layers, activation, output, cost, "xavier", rng, np.float64)
    X, Y = batch_for(layers, output, cost, 8, rng)
    rows = gradcheck.check_network(net, X, Y, lam, 20, rng, gradcheck.CheckOptions(params=10**6))
    assert [r.parameter for r in rows] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert all(r.checked == r.size for r in rows)  # every entry of every array
    assert worst(rows).relative_difference < TOL, worst(rows)


@pytest.mark.parametrize("output, cost", F.VALID_PAIRS)
def test_backward_matches_finite_differences_with_mixed_hidden_activations(output, cost):
    rng = np.random.default_rng(1)
    layers, activations = (7, 6, 5, 4, 3), ("tanh", "relu", "sigmoid")
    net = Network.create(layers, activations, output, cost, "xavier", rng, np.float64)
    assert net.activations == list(activations)
    X, Y = batch_for(layers, output, cost, 8, rng)
    for lam in (0.0, 5.0):
        rows = gradcheck.check_network(net, X, Y, lam, 20, rng, gradcheck.CheckOptions(params=10**6))
        assert worst(rows).relative_difference < TOL


def sparse_pixels(m: int, rng) -> np.ndarray:
    """MNIST-like rows: mostly exact zeros, a fifth of the pixels in (0, 1]."""
    X = np.zeros((m, 784))
    on = rng.random((m, 784)) < 0.2
    X[on] = rng.integers(1, 256, on.sum()) / 255
    return X


@pytest.mark.parametrize(
    "activation, output, cost, init",
    [("relu", "softmax", "log_likelihood", "he"), ("sigmoid", "sigmoid", "cross_entropy", "nielsen")],
)
def test_backward_matches_finite_differences_on_a_wide_net_with_sparse_inputs(activation, output, cost, init):
    rng = np.random.default_rng(2)
    net = Network.create((784, 100, 10), activation, output, cost, init, rng, np.float64)
    X = sparse_pixels(8, rng)
    Y = F.one_hot(rng.integers(0, 10, 8), 10, dtype=np.float64)
    rows = gradcheck.check_network(net, X, Y, 5.0, 50000, rng, gradcheck.CheckOptions(params=50))
    assert [r.checked for r in rows] == [50, 50, 50, 10]
    assert worst(rows).relative_difference < TOL, worst(rows)


# --- random shapes (hypothesis) -------------------------------------------------------------------


@st.composite
def problems(draw):
    n_layers = draw(st.integers(1, 4))  # layers with parameters; n_layers − 1 hidden
    layers = draw(st.lists(st.integers(1, 12), min_size=n_layers + 1, max_size=n_layers + 1))
    activations = draw(
        st.lists(st.sampled_from(list(F.HIDDEN)), min_size=n_layers - 1, max_size=n_layers - 1)
    )
    output, cost = draw(st.sampled_from(F.VALID_PAIRS))
    return dict(
        layers=layers,
        activations=activations,
        output=output,
        cost=cost,
        init=draw(st.sampled_from(INITS[1:])),  # "normal" N(0, 1) weights saturate at width 12
        m=draw(st.integers(1, 16)),
        lam=draw(st.one_of(st.just(0.0), st.floats(0.01, 10))),
        n=draw(st.integers(1, 60000)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


# ε = 1e-5 rather than the CLI's 1e-6: on these small nets the truncation error (∝ ε²) is
# still far below the round-off (∝ 1/ε), so the check is ten times sharper.
EPS = 1e-5


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_backward_matches_finite_differences_for_random_shapes(p):
    rng = np.random.default_rng(p["seed"])
    net = Network.create(p["layers"], p["activations"], p["output"], p["cost"], p["init"], rng, np.float64)
    X, Y = batch_for(p["layers"], p["output"], p["cost"], p["m"], rng)
    # Set aside draws where the check cannot tell right from wrong (about one in ten):
    # a gradient array that is tiny but not zero (below a narrow layer of mostly inactive
    # units) sits at the round-off floor of a float64 central difference, and a saturated
    # output makes J itself inexact (cross-entropy's ln a and ln(1 − a) of a sigmoid output
    # near 0 or 1 lose digits), so the difference of two J's is noise.
    # The check moves biases off ReLU kinks first, so look at the network it will check.
    shifted = net.astype(np.float64)
    gradcheck.avoid_kinks(shifted, lambda: shifted.forward(X), gradcheck.kink_margin(EPS))
    Z = shifted.forward(X)[0]
    dW, db = shifted.gradients(X, Y, p["lam"], p["n"])
    assume(all(np.linalg.norm(g) == 0 or np.linalg.norm(g) > 1e-3 for g in dW[1:] + db[1:]))
    assume(np.abs(Z[-1]).max() < 5)

    rows = gradcheck.check_network(net, X, Y, p["lam"], p["n"], rng,
                                     gradcheck.CheckOptions(EPS, params=10**6))
    assert len(rows) == 2 * (len(p["layers"]) - 1)
    assert worst(rows).relative_difference < TOL, worst(rows)


# --- the batch is the mean of its examples --------------------------------------------------------


@pytest.mark.parametrize(
    "activation, output, cost",
    [("relu", "softmax", "log_likelihood"), ("sigmoid", "sigmoid", "cross_entropy"),
     ("tanh", "identity", "quadratic"), ("leaky_relu", "softmax", "quadratic")],
)
def test_batch_gradient_is_the_mean_of_per_example_gradients(activation, output, cost):
    rng = np.random.default_rng(4)
    layers, m, lam, n = (6, 5, 4, 3), 9, 2.0, 30
    net = Network.create(layers, activation, output, cost, "nielsen", rng, np.float64)
    X, Y = batch_for(layers, output, cost, m, rng)
    dW, db = net.gradients(X, Y, lam, n)
    per_example = [net.gradients(X[i : i + 1], Y[i : i + 1], lam, n) for i in range(m)]
    data_only = [net.gradients(X[i : i + 1], Y[i : i + 1], 0.0, n) for i in range(m)]
    for l in range(1, net.L + 1):
        # J = mean_i c_i + (λ/2n)‖W‖² = mean_i (c_i + (λ/2n)‖W‖²): each example's gradient
        # carries the whole L2 term once, and so does their mean ...
        np.testing.assert_allclose(dW[l], np.mean([g[0][l] for g in per_example], axis=0), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(db[l], np.mean([g[1][l] for g in per_example], axis=0), rtol=1e-10, atol=1e-14)
        # ... which is the mean of the data gradients plus (λ/n) W — added once, not m times.
        data_mean = np.mean([g[0][l] for g in data_only], axis=0)
        np.testing.assert_allclose(dW[l], data_mean + lam / n * net.W[l], rtol=1e-10, atol=1e-14)


def test_a_batch_of_copies_has_the_gradient_of_one_example():
    """The 1/m of the batch mean is counted once: m copies of an example change nothing."""
    rng = np.random.default_rng(5)
    net = Network.create((6, 5, 3), "tanh", "softmax", "log_likelihood", "nielsen", rng, np.float64)
    X, Y = batch_for((6, 5, 3), "softmax", "log_likelihood", 1, rng)
    one = net.gradients(X, Y, 1.0, 10)
    many = net.gradients(np.repeat(X, 7, axis=0), np.repeat(Y, 7, axis=0), 1.0, 10)
    for l in (1, 2):
        np.testing.assert_allclose(many[0][l], one[0][l], rtol=1e-12)
        np.testing.assert_allclose(many[1][l], one[1][l], rtol=1e-12)


def test_objective_is_the_mean_cost_plus_the_l2_term():
    rng = np.random.default_rng(6)
    net = Network.create((5, 4, 3), "relu", "softmax", "log_likelihood", "he", rng, np.float64)
    X, Y = batch_for((5, 4, 3), "softmax", "log_likelihood", 4, rng)
    A = net.forward(X)[1][-1]
    mean_cost = np.mean(-np.log((A * Y).sum(axis=1)))
    penalty = 3.0 / (2 * 50) * (np.sum(net.W[1] ** 2) + np.sum(net.W[2] ** 2))  # no biases
    assert net.objective(X, Y, 3.0, 50) == pytest.approx(mean_cost + penalty, rel=1e-12)
    assert net.l2_penalty(3.0, 50) == pytest.approx(penalty, rel=1e-12)


# --- shapes and dtypes ------------------------------------------------------------------------------


def test_forward_shapes_follow_the_seeds_numbering():
    net = Network.create((784, 30, 20, 10), "relu", dtype=np.float64)
    assert net.L == 3 and net.layers == [784, 30, 20, 10]
    assert net.W[0] is None and net.b[0] is None
    assert [w.shape for w in net.W[1:]] == [(30, 784), (20, 30), (10, 20)]
    assert [b.shape for b in net.b[1:]] == [(30,), (20,), (10,)]
    Z, A = net.forward(np.zeros((5, 784)))
    assert Z[0] is None and A[0].shape == (5, 784)
    assert [z.shape for z in Z[1:]] == [(5, 30), (5, 20), (5, 10)]
    assert list(net.parameters()) == ["W1", "b1", "W2", "b2", "W3", "b3"]


@pytest.mark.parametrize("activation, output, cost", [("relu", "softmax", "log_likelihood"),
                                                       ("sigmoid", "sigmoid", "cross_entropy"),
                                                       ("tanh", "identity", "quadratic")])
def test_float32_matches_float64_closely(activation, output, cost):
    layers = (784, 64, 32, 10)
    net32 = Network.create(layers, activation, output, cost, "he", np.random.default_rng(7), np.float32)
    net64 = Network.create(layers, activation, output, cost, "he", np.random.default_rng(7), np.float64)
    for w32, w64 in zip(net32.W[1:], net64.W[1:]):
        np.testing.assert_array_equal(w32, w64.astype(np.float32))  # same draws, then cast
    pixels = np.random.default_rng(8).integers(0, 256, (16, 784), dtype=np.uint8)
    A32, A64 = net32.forward(scale01(pixels, np.float32))[1][-1], net64.forward(scale01(pixels, np.float64))[1][-1]
    assert A32.dtype == np.float32 and A64.dtype == np.float64
    np.testing.assert_allclose(A32, A64, rtol=1e-4, atol=1e-5)
    Y = F.one_hot(np.arange(16) % 10, 10, np.float64)
    g32 = net32.gradients(scale01(pixels, np.float32), Y.astype(np.float32), 5.0, 50000)
    g64 = net64.gradients(scale01(pixels, np.float64), Y, 5.0, 50000)
    for l in range(1, 4):
        assert g32[0][l].dtype == np.float32 and g32[1][l].dtype == np.float32
        scale = np.abs(g64[0][l]).max()
        np.testing.assert_allclose(g32[0][l], g64[0][l], atol=1e-4 * scale)


def test_scale01_maps_pixels_to_the_unit_interval():
    X = np.array([[0, 51, 255]], dtype=np.uint8)
    np.testing.assert_allclose(scale01(X, np.float64), [[0, 0.2, 1]])
    assert scale01(X).dtype == np.float32


# --- initialisation -----------------------------------------------------------------------------------

LAYERS = (1000, 400, 300)


@pytest.mark.parametrize(
    "init, weight_std, bias_std",
    [
        ("normal", lambda n_in, n_out: 1.0, 1.0),
        ("nielsen", lambda n_in, n_out: 1 / np.sqrt(n_in), 1.0),
        ("xavier", lambda n_in, n_out: np.sqrt(2 / (n_in + n_out)), 0.0),
        ("he", lambda n_in, n_out: np.sqrt(2 / n_in), 0.0),
    ],
)
def test_init_has_the_right_spread(init, weight_std, bias_std):
    net = Network.create(LAYERS, "relu", init=init, rng=np.random.default_rng(9), dtype=np.float64)
    for l, (n_in, n_out) in enumerate(zip(LAYERS[:-1], LAYERS[1:]), start=1):
        W, b = net.W[l], net.b[l]
        assert W.std() == pytest.approx(weight_std(n_in, n_out), rel=0.02)  # ≥ 10⁵ draws
        assert abs(W.mean()) < 0.01 * weight_std(n_in, n_out)
        if bias_std:
            assert b.std() == pytest.approx(bias_std, rel=0.15)  # 300–400 draws
        else:
            assert not b.any()


@pytest.mark.parametrize("init", INITS)
def test_init_is_reproducible_from_a_seed(init):
    def make(seed):
        return Network.create((20, 10, 5), "tanh", init=init, rng=np.random.default_rng(seed), dtype=np.float64)

    a, b, c = make(11), make(11), make(12)
    for name, array in a.parameters().items():
        np.testing.assert_array_equal(array, b.parameters()[name])
    assert not np.array_equal(a.W[1], c.W[1])


def test_unknown_init_and_bad_shapes_are_config_errors():
    with pytest.raises(ConfigError, match="normal, nielsen, xavier, he"):
        Network.create((4, 3), "relu", init="glorot")
    with pytest.raises(ConfigError, match="at least"):
        Network.create((4,), "relu")
    with pytest.raises(ConfigError, match="2 activations for 1 hidden"):
        Network.create((4, 3, 2), ["relu", "tanh"])
