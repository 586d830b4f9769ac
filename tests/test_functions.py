"""Activations, output layers and costs: values, derivatives against finite differences,
numerical stability at extreme inputs, and clear errors for unknown names and pairs."""

from __future__ import annotations

import numpy as np
import pytest

from mlpcli.nn import functions as F
from mlpcli.errors import ConfigError
from mlpcli.nn.network import Network

H = 1e-6  # central-difference step (float64 everywhere below)
DTYPES = [np.float32, np.float64]


def away_from_zero(Z: np.ndarray, margin: float = 1e-2) -> np.ndarray:
    """relu and leaky_relu have a kink at 0, where a central difference measures nothing."""
    return np.where(np.abs(Z) < margin, np.copysign(margin, Z) + Z, Z)


def numeric_jacobian_vector(f, Z: np.ndarray, G: np.ndarray) -> np.ndarray:
    """∂/∂Z_ij of Σ G ⊙ f(Z), by central differences, entry by entry."""
    out = np.empty_like(Z)
    for idx in np.ndindex(Z.shape):
        Zp, Zm = Z.copy(), Z.copy()
        Zp[idx] += H
        Zm[idx] -= H
        out[idx] = ((G * f(Zp)).sum() - (G * f(Zm)).sum()) / (2 * H)
    return out


def one_hot_rows(m: int, k: int, rng) -> np.ndarray:
    return F.one_hot(rng.integers(0, k, m), k, dtype=np.float64)


# --- derivatives against finite differences -------------------------------------------------


@pytest.mark.parametrize("name", list(F.HIDDEN))
def test_hidden_derivative_from_the_output_matches_finite_differences(name):
    g = F.HIDDEN[name]
    Z = away_from_zero(np.random.default_rng(0).normal(0, 3, size=(6, 5)))
    numeric = (g.fn(Z + H) - g.fn(Z - H)) / (2 * H)  # elementwise: g'(z) entry by entry
    np.testing.assert_allclose(g.derivative(g.fn(Z)), numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", list(F.OUTPUTS))
def test_output_vjp_matches_finite_differences(name):
    out = F.OUTPUTS[name]
    rng = np.random.default_rng(1)
    Z, G = rng.normal(0, 2, size=(4, 5)), rng.normal(size=(4, 5))
    numeric = numeric_jacobian_vector(out.fn, Z, G)
    np.testing.assert_allclose(out.vjp(out.fn(Z), G), numeric, rtol=1e-6, atol=1e-9)


def test_softmax_vjp_is_not_elementwise():
    """Softmax mixes its inputs: a gradient on one output moves every z of that row."""
    Z = np.array([[0.3, -1.0, 2.0]])
    G = np.array([[1.0, 0.0, 0.0]])
    delta = F.OUTPUTS["softmax"].vjp(F.softmax(Z), G)
    assert (delta[0, 1:] != 0).all()
    np.testing.assert_allclose(delta.sum(), 0, atol=1e-15)  # shift-invariance: Σ_i Δ_i = 0


@pytest.mark.parametrize("output, cost", F.VALID_PAIRS)
def test_cost_gradient_matches_finite_differences(output, cost):
    rng = np.random.default_rng(2)
    A = F.OUTPUTS[output].fn(rng.normal(size=(5, 4)))  # a valid output of that layer
    Y = rng.normal(size=A.shape) if output == "identity" else one_hot_rows(5, 4, rng)
    c = F.COSTS[cost]
    numeric = numeric_jacobian_vector(lambda a: c.fn(a, Y)[:, None], A, np.ones((5, 1)))
    np.testing.assert_allclose(c.gradient(A, Y), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("output, cost", F.VALID_PAIRS)
def test_output_delta_is_the_gradient_of_the_batch_mean_cost(output, cost):
    """Δ[L] = ∂J/∂Z[L] for J = (1/m) Σ c(g(z), y), including the simplified (A − Y)/m pairs."""
    rng = np.random.default_rng(3)
    m = 6
    Z = rng.normal(size=(m, 4))
    Y = rng.normal(size=Z.shape) if output == "identity" else one_hot_rows(m, 4, rng)
    g, c = F.OUTPUTS[output], F.COSTS[cost]
    numeric = numeric_jacobian_vector(lambda z: c.fn(g.fn(z), Y)[:, None] / m, Z, np.ones((m, 1)))
    np.testing.assert_allclose(F.output_delta(output, cost, g.fn(Z), Y), numeric, rtol=1e-6, atol=1e-9)


# --- values: the definitions the seeds use ------------------------------------------------------


def test_values_are_the_textbook_definitions():
    z = np.array([[-3.0, -0.5, 0.0, 0.5, 3.0]])
    np.testing.assert_allclose(F.sigmoid(z), 1 / (1 + np.exp(-z)), rtol=1e-14)
    np.testing.assert_allclose(F.HIDDEN["tanh"].fn(z), np.tanh(z))
    np.testing.assert_array_equal(F.relu(z), [[0, 0, 0, 0.5, 3.0]])
    np.testing.assert_allclose(F.leaky_relu(z), [[-0.03, -0.005, 0, 0.5, 3.0]])
    np.testing.assert_allclose(F.softmax(z), np.exp(z) / np.exp(z).sum(), rtol=1e-14)
    a, y = np.array([[0.2, 0.7]]), np.array([[0.0, 1.0]])
    # seed 000: c = Σ_j (y_j − a_j)², no ½
    np.testing.assert_allclose(F.COSTS["quadratic"].fn(a, y), [0.04 + 0.09])
    np.testing.assert_allclose(F.COSTS["cross_entropy"].fn(a, y), [-(np.log(0.8) + np.log(0.7))])
    np.testing.assert_allclose(F.COSTS["log_likelihood"].fn(a, y), [-np.log(0.7)])


def test_one_hot():
    Y = F.one_hot(np.array([2, 0]), 3, dtype=np.float64)
    np.testing.assert_array_equal(Y, [[0, 0, 1], [1, 0, 0]])
    assert F.one_hot(np.array([1]), 10).dtype == np.float32


# --- numerical stability ------------------------------------------------------------------------

EXTREME = np.array(
    [
        [-1e4, -800.0, -50.0, 0.0, 50.0, 800.0, 1e4],
        [1e4, 1e4, 1e4, 1e4, 1e4, 1e4, 1e4],
        [-1e4, -1e4, -1e4, -1e4, -1e4, -1e4, -1e4],
        [-1e4, 1e4, -1e4, 1e4, 0.0, -1.0, 1.0],
    ]
)


def raise_on_float_errors():
    # Overflow, 0/0, x/0 and log(0) raise. Underflow does not: exp(−20000) = 0 IS the
    # correctly rounded answer (softmax of a far-below-max logit).
    return np.errstate(over="raise", divide="raise", invalid="raise", under="ignore")


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(F.HIDDEN))
def test_hidden_activations_are_stable_and_keep_the_dtype(name, dtype):
    g, Z = F.HIDDEN[name], EXTREME.astype(dtype)
    with raise_on_float_errors():
        A = g.fn(Z)
        D = g.derivative(A)
    for x in (A, D):
        assert x.dtype == dtype and np.isfinite(x).all()


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output, cost", F.VALID_PAIRS)
def test_outputs_and_costs_are_stable_at_extreme_inputs(output, cost, dtype):
    Z = EXTREME.astype(dtype)
    Y = np.zeros_like(Z)
    Y[:, 1] = 1  # the target is often the output the network is most sure is wrong
    with raise_on_float_errors():
        A = F.OUTPUTS[output].fn(Z)
        values = [
            A,
            F.OUTPUTS[output].vjp(A, np.ones_like(A)),
            F.COSTS[cost].fn(A, Y),
            F.COSTS[cost].gradient(A, Y),
            F.output_delta(output, cost, A, Y),
        ]
    for x in values:
        assert x.dtype == dtype and np.isfinite(x).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_rows_are_probabilities_even_at_extremes(dtype):
    with raise_on_float_errors():
        P = F.softmax(EXTREME.astype(dtype))
    assert ((P >= 0) & (P <= 1)).all()
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(P[1], 1 / 7, rtol=1e-6)  # equal logits: uniform


def test_log_of_a_zero_probability_is_finite():
    """A probability that rounded to exactly 0 must not give log(0) = −inf."""
    A, Y = np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]])
    with raise_on_float_errors():
        for cost in ("cross_entropy", "log_likelihood"):
            assert np.isfinite(F.COSTS[cost].fn(A, Y)).all()
            assert np.isfinite(F.COSTS[cost].gradient(A, Y)).all()


# --- names and pairs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lookup, table",
    [(F.hidden, F.HIDDEN), (F.output, F.OUTPUTS), (F.cost, F.COSTS)],
)
def test_unknown_name_is_a_config_error_listing_the_valid_ones(lookup, table):
    with pytest.raises(ConfigError) as info:
        lookup("swish")
    message = str(info.value)
    assert "'swish'" in message
    for name in table:
        assert name in message
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "output, cost",
    [("identity", "cross_entropy"), ("softmax", "cross_entropy"), ("sigmoid", "log_likelihood"),
     ("identity", "log_likelihood")],
)
def test_invalid_pair_is_a_config_error_listing_every_valid_pair(output, cost):
    with pytest.raises(ConfigError) as info:
        F.check_pair(output, cost)
    message = str(info.value)
    assert f"'{output}'" in message and f"'{cost}'" in message
    for o, c in F.VALID_PAIRS:
        assert f"{o}+{c}" in message
    with pytest.raises(ConfigError):
        Network.create([4, 3, 2], "relu", output, cost, dtype=np.float64)


def test_every_valid_pair_is_accepted():
    for output, cost in F.VALID_PAIRS:
        F.check_pair(output, cost)
        Network.create([4, 3, 2], "tanh", output, cost, dtype=np.float64)
