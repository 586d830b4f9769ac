"""The fused kernels compute exactly what the readable definitions say, bit for bit.

functions.py defines every activation, derivative and output error; optim.py's per-parameter
rules define every update. kernels.py recomputes them in place, fused and blocked; these tests
pin that the numbers do not change, and that training through a Workspace and a Flat gives the
same forward pass, gradients and updates as calling the readable code without them.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from mlpcli.nn import functions as F
from mlpcli.nn import kernels as K
from mlpcli.nn.network import Network, dropout_masks
from mlpcli.nn.optim import SGD

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
    expected = F.output_delta(output, cost, A, Y)  # allocating
    out = np.empty_like(A)
    got = F.output_delta(output, cost, A, Y, out=out)  # in place, as training calls it
    assert got is out and got.dtype == expected.dtype == dtype
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
    dW0, db0 = net.backward(Z0, A0, Y, masks)

    ws = K.Workspace(net, m)
    for _ in range(2):  # the second call reuses (overwrites) the buffers of the first
        Z, A = net.forward(X, masks, ws)
        dW, db = net.backward(Z, A, Y, masks, ws)
    for l in range(1, net.L + 1):
        assert Z[l] is ws.Z[l] and A[l] is ws.A[l] and dW[l] is ws.dW[l] and db[l] is ws.db[l]
        assert np.array_equal(Z[l], Z0[l]) and np.array_equal(A[l], A0[l])
        assert np.array_equal(dW[l], dW0[l]) and np.array_equal(db[l], db0[l])


# --- the L2 term, block by block ---------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 4), (800, 784)])  # one block, and many
@pytest.mark.parametrize("with_tmp", [False, True])
def test_add_weight_decay_is_dW_plus_decay_W_bit_for_bit(shape, with_tmp):
    W, dW = sample(shape, np.float32, seed=1, scale=1.0), sample(shape, np.float32, seed=2, scale=1.0)
    expected = dW + np.float32(5 / 60000) * W
    tmp = np.empty(K.BLOCK, dtype=np.float32) if with_tmp else None
    got = K.add_weight_decay(dW, W, 5 / 60000, tmp=tmp)
    assert got is dW and got.dtype == np.float32
    assert np.array_equal(got, expected)


def test_blocks_cover_the_vector_once():
    for size in (1, K.SPLIT_ABOVE, K.SPLIT_ABOVE + 1, 1_276_810):
        covered = np.zeros(size, dtype=int)
        for b in K.blocks(size):
            covered[b] += 1
            assert b.stop - b.start <= (K.BLOCK if size > K.SPLIT_ABOVE else size)
        assert (covered == 1).all()


def test_a_training_step_allocates_no_arrays():
    net = Network.create([784, 100, 10], "sigmoid", "sigmoid", "cross_entropy", "nielsen",
                         np.random.default_rng(0), np.float32)
    opt = SGD(net)
    ws = K.Workspace(net, 10)
    rng = np.random.default_rng(0)
    X, Y = rng.random((10, 784), dtype=np.float32), F.one_hot(np.arange(10), 10, np.float32)

    def step():
        Z, A = net.forward(X, None, ws)
        net.backward(Z, A, Y, None, ws)
        opt.step(0.5, 5.0 / 100)  # with the L2 term

    step()
    tracemalloc.start()
    for _ in range(20):
        step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20_000  # bytes: Python bookkeeping only; one (10, 100) array alone is 4,000


# --- through fit(): the fast paths keep the promises of the training loop ---------------------


@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adam"])
def test_training_through_the_fast_path_resumes_exactly(tiny_config, tmp_path, optimizer):
    """A network trained through the workspace and the flat-vector updates, stopped after
    epoch 1 and resumed, ends bit for bit where the uninterrupted run does."""
    from mlpcli.run import checkpoint
    from mlpcli.data.splits import read_splits
    from mlpcli.run.train import fit, start

    # 500 examples in batches of 40: 13 steps, the last one short (a second workspace)
    config = tiny_config("model.layers=[784,80,10]", "training.epochs=2", f"training.optimizer={optimizer}",
                         "training.learning_rate=0.01", "training.batch_size=40")
    splits = read_splits(config.data)
    whole = fit(config, splits, tmp_path / "whole")
    fit(config, splits, tmp_path / "split", stop_after=1)
    resumed = fit(start(None, resume=tmp_path / "split" / "last.npz"), splits)
    for l in (1, 2):
        assert np.array_equal(whole.network.W[l], resumed.network.W[l])
        assert np.array_equal(whole.network.b[l], resumed.network.b[l])
    a, b = checkpoint.load(whole.last_checkpoint), checkpoint.load(resumed.last_checkpoint)
    assert all(np.array_equal(a.optimizer_state[k], b.optimizer_state[k]) for k in a.optimizer_state)
    again = fit(config, splits, tmp_path / "again")  # same seed, same weights
    assert all(np.array_equal(x, y) for x, y in zip(whole.network.W[1:], again.network.W[1:]))
