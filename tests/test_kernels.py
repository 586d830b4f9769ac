"""The fused kernels compute exactly what the readable definitions say, bit for bit.

functions.py defines every activation, derivative and output error; optim.py's per-parameter
rules define every update. kernels.py recomputes them in place, fused and blocked; these tests
pin that the numbers do not change, and that training through a Workspace and a Flat gives the
same forward pass, gradients and updates as calling the readable code without them.
"""

from __future__ import annotations

import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

from mlpcli import functions as F
from mlpcli import kernels as K
from mlpcli.network import Network, dropout_masks
from mlpcli.optim import Adam, Momentum, Nesterov, SGD

DTYPES = [np.float32, np.float64]


def sample(shape, dtype, seed=0, scale=3.0):
    """Values of both signs, exact zeros, and saturating extremes."""
    rng = np.random.default_rng(seed)
    Z = (rng.standard_normal(shape) * scale).astype(dtype)
    Z.flat[::7] = 0
    Z.flat[1] = 1e4
    Z.flat[2] = -1e4
    return Z


# The equations as NumPy reads them: the in-place forms in functions.py must give these bit for bit.
EQUATIONS = {
    "sigmoid": lambda Z: 0.5 * (1.0 + np.tanh(0.5 * Z)),
    "tanh": np.tanh,
    "relu": lambda Z: np.maximum(Z, 0),
    "leaky_relu": lambda Z: np.where(Z > 0, Z, F.LEAKY_RELU_SLOPE * Z).astype(Z.dtype),
    "identity": lambda Z: Z,
    "softmax": lambda Z: np.exp(Z - Z.max(axis=1, keepdims=True))
    / np.exp(Z - Z.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True),
}
DERIVATIVES = {  # g'(z) from a = g(z)
    "sigmoid": lambda A: A * (1 - A),
    "tanh": lambda A: 1 - A * A,
    "relu": lambda A: (A > 0).astype(A.dtype),
    "leaky_relu": lambda A: np.where(A > 0, 1, F.LEAKY_RELU_SLOPE).astype(A.dtype),
    "identity": np.ones_like,
}
LAYERS = [("hidden", n, g) for n, g in F.HIDDEN.items()] + [("output", n, o) for n, o in F.OUTPUTS.items()]


def test_every_registered_function_has_its_equation_here():
    assert set(EQUATIONS) == set(F.HIDDEN) | set(F.OUTPUTS) and set(DERIVATIVES) == set(F.HIDDEN)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("table,name,g", LAYERS, ids=[f"{t}-{n}" for t, n, _ in LAYERS])
def test_fn_equals_the_equation_in_place_and_allocating(table, name, g, dtype):
    Z = sample((6, 5), dtype)
    expected = EQUATIONS[name](Z.copy())
    out, row = np.empty_like(Z), np.empty((6, 1), dtype)
    got = g.fn(Z, out=out, tmp=row)
    assert got is out and got.dtype == dtype
    assert np.array_equal(got, expected)
    fresh = g.fn(Z)
    assert fresh.dtype == dtype and np.array_equal(fresh, expected)  # allocating form


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(F.HIDDEN))
def test_derivative_and_times_derivative_equal_the_equation(name, dtype):
    g = F.HIDDEN[name]
    A = g.fn(sample((6, 5), dtype, seed=1))
    D = sample((6, 5), dtype, seed=2)
    d = DERIVATIVES[name](A)
    assert np.array_equal(g.derivative(A), d)
    tmp = np.empty_like(A)
    assert g.derivative(A, out=tmp) is tmp and np.array_equal(tmp, d)
    expected = D * d
    got = D.copy()
    assert g.times_derivative(got, A, tmp=np.empty_like(A)) is got
    assert got.dtype == dtype and np.array_equal(got, expected)
    fresh = D.copy()
    g.times_derivative(fresh, A)
    assert np.array_equal(fresh, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output,cost", F.VALID_PAIRS)
def test_output_delta_equals_the_definition(output, cost, dtype):
    A = F.OUTPUTS[output].fn(sample((8, 4), dtype, seed=3, scale=1.0))
    Y = F.one_hot(np.arange(8) % 4, 4, dtype)
    expected = F.output_delta(output, cost, A, Y)
    out, tmp = np.empty_like(A), np.empty_like(A)
    got = K.output_delta(output, cost, A, Y, out=out, tmp=tmp)
    assert got is out and got.dtype == dtype
    assert np.array_equal(got, expected)


def test_column_sums_is_the_sum_over_rows():
    D = sample((10, 7), np.float64, scale=1.0)
    np.testing.assert_allclose(K.column_sums(D), D.sum(axis=0), rtol=1e-12, atol=1e-12)


COMBOS = [
    ("sigmoid", "sigmoid", "quadratic", 0.0, 0.0),
    ("sigmoid", "sigmoid", "cross_entropy", 5.0, 0.0),
    ("relu", "softmax", "log_likelihood", 5.0, 0.3),
    (("tanh", "leaky_relu"), "softmax", "quadratic", 1.0, 0.0),
    ("identity", "identity", "quadratic", 0.0, 0.2),
]


@pytest.mark.parametrize("m", [7, K.COLUMN_MAJOR_ROWS + 6])  # row-major and column-major buffers
@pytest.mark.parametrize("activation,output,cost,lam,rate", COMBOS)
def test_forward_and_backward_through_a_workspace_equal_the_fresh_ones(activation, output, cost, lam, rate, m):
    layers = [9, 6, 5, 4] if isinstance(activation, tuple) else [9, 6, 4]
    net = Network.create(layers, activation, output, cost, "xavier", np.random.default_rng(0), np.float32)
    rng = np.random.default_rng(1)
    X = rng.random((m, 9), dtype=np.float32)
    Y = F.one_hot(rng.integers(0, 4, m), 4, np.float32)
    masks = dropout_masks(net.layers, [rate] * (net.L - 1), m, rng, np.float32) if rate else None
    Z0, A0 = net.forward(X, masks)
    dW0, db0 = net.backward(Z0, A0, Y, lam, 50, masks)

    ws = K.Workspace(net, m)
    for _ in range(2):  # the second call reuses (overwrites) the buffers of the first
        Z, A = net.forward(X, masks, ws)
        dW, db = net.backward(Z, A, Y, lam, 50, masks, ws)
    for l in range(1, net.L + 1):
        assert Z[l] is ws.Z[l] and A[l] is ws.A[l] and dW[l] is ws.dW[l] and db[l] is ws.db[l]
        assert np.array_equal(Z[l], Z0[l]) and np.array_equal(A[l], A0[l])
        assert np.array_equal(dW[l], dW0[l]) and np.array_equal(db[l], db0[l])


# --- the fused updates against optim.py's per-parameter rules ------------------------------------

OPTIMIZERS = {
    "sgd": lambda net: SGD(net),
    "momentum": lambda net: Momentum(net, 0.9),
    "nesterov": lambda net: Nesterov(net, 0.8),
    "adam": lambda net: Adam(net, 0.9, 0.99, 1e-7),
}


def big_net():
    # 784·400 + 400·10 weights: more than kernels.SPLIT_ABOVE, so adam runs in blocks (a block
    # boundary falls inside W1), and sgd, momentum and nesterov as one matrix product.
    return Network.create([784, 400, 10], "relu", "softmax", "log_likelihood", "he",
                          np.random.default_rng(0), np.float32)


def small_net():
    # 784·30 + 30·10 weights: few enough for NumPy calls (kernels.COMBINE_ABOVE)
    return Network.create([784, 30, 10], "sigmoid", "sigmoid", "cross_entropy", "nielsen",
                          np.random.default_rng(0), np.float32)


def gradients(net, k):
    rng = np.random.default_rng(10 + k)
    return ([None] + [rng.standard_normal(w.shape, dtype=np.float32) for w in net.W[1:]],
            [None] + [rng.standard_normal(b.shape, dtype=np.float32) for b in net.b[1:]])


def run_both(make_net, name, decay, steps=3):
    """The same steps through optim.py's per-parameter rule and through a Flat."""
    reference, fused = make_net(), make_net()
    ref_opt, fused_opt = OPTIMIZERS[name](reference), OPTIMIZERS[name](fused)
    flat = K.Flat(fused, fused_opt)
    for k in range(steps):
        dW, db = gradients(reference, k)
        for l in range(1, fused.L + 1):  # backward would have written them into the views
            flat.dW[l][...], flat.db[l][...] = dW[l], db[l]
        assert flat.holds(fused, flat.dW, flat.db)
        ref_opt.step(reference, dW, db, 0.01, decay)
        fused_opt.step(fused, flat.dW, flat.db, 0.01, decay)
    return reference, ref_opt, fused, fused_opt, flat


@pytest.mark.parametrize("decay", [0.0, 1e-3])
@pytest.mark.parametrize("make_net,name", [(big_net, "adam"), (small_net, "sgd"),
                                           (small_net, "momentum"), (small_net, "nesterov")])
def test_fused_update_equals_the_per_parameter_rule_bit_for_bit(make_net, name, decay):
    reference, ref_opt, fused, fused_opt, flat = run_both(make_net, name, decay)
    assert not flat.combined
    for l in range(1, fused.L + 1):
        assert np.array_equal(fused.W[l], reference.W[l]) and np.array_equal(fused.b[l], reference.b[l])
    for key, value in ref_opt.state_dict().items():
        assert np.array_equal(fused_opt.state_dict()[key], value)


@pytest.mark.parametrize("decay", [0.0, 1e-3])
@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov"])
def test_combined_update_equals_the_per_parameter_rule(name, decay):
    assert sum(w.size for w in big_net().W[1:]) > K.SPLIT_ABOVE
    reference, ref_opt, fused, fused_opt, flat = run_both(big_net, name, decay)
    assert flat.combined and flat.parity == 1  # three steps: the values live in the second place
    for l in range(1, fused.L + 1):
        np.testing.assert_allclose(fused.W[l], reference.W[l], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(fused.b[l], reference.b[l], rtol=1e-6, atol=1e-7)
        assert np.shares_memory(fused.W[l], flat.rows)
        assert name == "sgd" or np.shares_memory(fused_opt.state[f"v_W{l}"], flat.rows)
    for key, value in ref_opt.state_dict().items():
        np.testing.assert_allclose(fused_opt.state_dict()[key], value, rtol=1e-6, atol=1e-6)
    # the L2 term moved the weights: the decay is not lost in (1 − ηc)
    if decay:
        _, _, undecayed, _, _ = run_both(big_net, name, 0.0)
        assert not np.allclose(undecayed.W[1], fused.W[1], rtol=0, atol=1e-9)


def test_combined_update_does_not_depend_on_where_the_values_live():
    """A run continued from saved state (values back in the first place) computes the very
    same numbers as the uninterrupted run (values in the second place): resume stays exact."""
    whole, _, net, opt, flat = run_both(big_net, "nesterov", 1e-3, steps=1)
    assert flat.parity == 1
    resumed = big_net()
    for l in range(1, 3):
        resumed.W[l][...], resumed.b[l][...] = net.W[l], net.b[l]
    resumed_opt = OPTIMIZERS["nesterov"](resumed)
    resumed_opt.load_state_dict(opt.state_dict())
    resumed_flat = K.Flat(resumed, resumed_opt)
    assert resumed_flat.parity == 0
    for k in (1, 2):
        dW, db = gradients(net, k)
        for f, n, o in ((flat, net, opt), (resumed_flat, resumed, resumed_opt)):
            for l in (1, 2):
                f.dW[l][...], f.db[l][...] = dW[l], db[l]
            o.step(n, f.dW, f.db, 0.01, 1e-3)
    assert flat.parity != resumed_flat.parity
    for l in (1, 2):
        assert np.array_equal(net.W[l], resumed.W[l]) and np.array_equal(net.b[l], resumed.b[l])
    assert all(np.array_equal(v, resumed_opt.state_dict()[k]) for k, v in opt.state_dict().items())


def test_decay_in_step_equals_the_l2_term_added_by_backward():
    a, b = small_net(), small_net()
    opt_a, opt_b = Momentum(a, 0.9), Momentum(b, 0.9)
    K.Flat(b, opt_b)
    rng = np.random.default_rng(3)
    X, Y = rng.random((5, 784), dtype=np.float32), F.one_hot(np.arange(5), 10, np.float32)
    ws = K.Workspace(b, 5, opt_b.flat)
    for _ in range(2):
        dW, db = a.gradients(X, Y, 5.0, 100)  # backward adds (λ/n) W
        opt_a.step(a, dW, db, 0.05)
        Z, A = b.forward(X, None, ws)
        dW, db = b.backward(Z, A, Y, 0.0, 100, None, ws)  # data gradient only ...
        opt_b.step(b, dW, db, 0.05, decay=5.0 / 100)  # ... and the fused update adds it
    for l in (1, 2):
        assert np.array_equal(a.W[l], b.W[l]) and np.array_equal(a.b[l], b.b[l])


@pytest.mark.parametrize("make_net", [small_net, big_net])
def test_gradients_that_are_not_the_flat_views_take_the_per_parameter_path(make_net):
    reference, net = make_net(), make_net()
    ref_opt, opt = Momentum(reference, 0.9), Momentum(net, 0.9)
    flat = K.Flat(net, opt)
    dW, db = gradients(net, 0)  # new arrays, e.g. from a wrapped backward
    assert not flat.holds(net, dW, db)
    ref_opt.step(reference, dW, db, 0.1, 1e-3)
    opt.step(net, dW, db, 0.1, 1e-3)
    assert all(np.array_equal(x, y) for x, y in zip(net.W[1:] + net.b[1:], reference.W[1:] + reference.b[1:]))
    assert np.shares_memory(opt.state["v_W1"], flat.state["v"]) and flat.parity == 0  # updated in place


def test_flat_makes_views_and_keeps_every_value_and_name():
    net = big_net()
    opt = Adam(net)
    before = {k: v.copy() for k, v in net.parameters().items()}
    state = opt.state_dict()
    flat = K.Flat(net, opt)
    assert all(np.shares_memory(net.W[l], flat.theta) for l in (1, 2))
    assert all(np.array_equal(net.parameters()[k], v) for k, v in before.items())
    assert opt.state_dict().keys() == state.keys()
    loaded = {k: np.full_like(v, 0.5) for k, v in state.items()}
    opt.load_state_dict(loaded)  # in place: the flat vectors see it
    assert np.all(flat.state["m"] == 0.5) and np.all(flat.state["s"] == 0.5)
    # weights first, then biases: the L2 term touches theta[:n_weights] only
    assert flat.n_weights == net.W[1].size + net.W[2].size
    assert np.shares_memory(net.b[1], flat.theta[flat.n_weights:])


def test_a_training_step_allocates_no_arrays():
    net = Network.create([784, 100, 10], "sigmoid", "sigmoid", "cross_entropy", "nielsen",
                         np.random.default_rng(0), np.float32)
    opt = SGD(net)
    flat = K.Flat(net, opt)
    ws = K.Workspace(net, 10, flat)
    rng = np.random.default_rng(0)
    X, Y = rng.random((10, 784), dtype=np.float32), F.one_hot(np.arange(10), 10, np.float32)

    def step():
        Z, A = net.forward(X, None, ws)
        dW, db = net.backward(Z, A, Y, 0.0, 100, None, ws)
        opt.step(net, dW, db, 0.5, 0.05)

    step()
    tracemalloc.start()
    for _ in range(20):
        step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20_000  # bytes: Python bookkeeping only; one (10, 100) array alone is 4,000


# --- through train(): the fast paths keep the promises of the training loop ---------------------


@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adam"])
def test_training_with_fused_updates_resumes_exactly(tiny_config, tmp_path, optimizer):
    """A network over COMBINE_ABOVE parameters (the one-product update, values moving between
    two places every step) stopped after epoch 1 and resumed ends bit for bit where the
    uninterrupted run does."""
    from mlpcli import checkpoint
    from mlpcli.data import load_splits
    from mlpcli.train import train

    # 500 examples in batches of 40: 13 steps, so epoch 2 of the whole run starts with the
    # values in the second place, and the resumed run with them in the first
    config = tiny_config("model.layers=[784,80,10]", "training.epochs=2", f"training.optimizer={optimizer}",
                         "training.learning_rate=0.01", "training.batch_size=40")
    assert 784 * 80 + 80 * 10 > K.COMBINE_ABOVE
    splits = load_splits(config.data)
    whole = train(config, splits, tmp_path / "whole")
    train(config, splits, tmp_path / "split", stop_after=1)
    resumed = train(None, splits, resume=tmp_path / "split" / "last.npz")
    for l in (1, 2):
        assert np.array_equal(whole.network.W[l], resumed.network.W[l])
        assert np.array_equal(whole.network.b[l], resumed.network.b[l])
    a, b = checkpoint.load(whole.last_checkpoint), checkpoint.load(resumed.last_checkpoint)
    assert all(np.array_equal(a.optimizer_state[k], b.optimizer_state[k]) for k in a.optimizer_state)
    again = train(config, splits, tmp_path / "again")  # same seed, same weights
    assert all(np.array_equal(x, y) for x, y in zip(whole.network.W[1:], again.network.W[1:]))
