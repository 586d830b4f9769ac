"""Update rules against hand-written references, their state, dtype, and the lr schedules."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from mlpcli.run.config import AdamConfig, ScheduleConfig, TrainingConfig
from mlpcli.errors import CheckpointError
from mlpcli.nn.network import Network
from mlpcli.nn.optim import Adam, Momentum, Nesterov, SGD, learning_rate, make_optimizer


def net(dtype=np.float64, seed=0):
    return Network.create([6, 5, 3], "tanh", "softmax", "log_likelihood", "xavier",
                          np.random.default_rng(seed), dtype)


def grads(network, k):
    """Deterministic pseudo-gradients for step k, shaped like the parameters."""
    rng = np.random.default_rng(100 + k)
    dW = [None] + [rng.standard_normal(w.shape).astype(w.dtype) for w in network.W[1:]]
    db = [None] + [rng.standard_normal(b.shape).astype(b.dtype) for b in network.b[1:]]
    return dW, db


def params(network):
    return [p.copy() for p in network.W[1:] + network.b[1:]]


def flat(dW, db):
    return dW[1:] + db[1:]


def step(optimizer, network, dW, db, lr):
    """Put the gradients where backward puts them (the network's gradient vector), then step."""
    for l in range(1, network.L + 1):
        network.dW[l][...], network.db[l][...] = dW[l], db[l]
    optimizer.step(lr)


def run(optimizer_cls, steps=4, lr=0.1, **kwargs):
    network = net()
    optimizer = optimizer_cls(network, **kwargs)
    start = params(network)
    history = []
    for k in range(steps):
        dW, db = grads(network, k)
        history.append(flat(dW, db))
        step(optimizer, network, dW, db, lr)
    return start, history, params(network)


def test_sgd_is_theta_minus_lr_g():
    start, history, end = run(SGD, lr=0.3)
    for i, p in enumerate(start):
        expected = p - 0.3 * sum(g[i] for g in history)
        np.testing.assert_allclose(end[i], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [Momentum, Nesterov])
def test_momentum_and_nesterov_match_reference(cls):
    mu, lr = 0.9, 0.05
    start, history, end = run(cls, lr=lr, momentum=mu)
    for i, p in enumerate(start):
        theta, v = p.copy(), np.zeros_like(p)
        for g in history:
            v = mu * v + g[i]
            theta = theta - lr * ((g[i] + mu * v) if cls is Nesterov else v)
        np.testing.assert_allclose(end[i], theta, rtol=1e-12, atol=1e-12)


def test_nesterov_differs_from_momentum():
    assert not np.allclose(run(Momentum, momentum=0.9)[2][0], run(Nesterov, momentum=0.9)[2][0])


def test_adam_matches_kingma_ba():
    b1, b2, eps, lr = 0.8, 0.99, 1e-6, 0.01
    start, history, end = run(Adam, lr=lr, beta1=b1, beta2=b2, eps=eps)
    for i, p in enumerate(start):
        theta, m, v = p.copy(), np.zeros_like(p), np.zeros_like(p)
        for t, g in enumerate(history, start=1):
            m = b1 * m + (1 - b1) * g[i]
            v = b2 * v + (1 - b2) * g[i] ** 2
            m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
            theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        np.testing.assert_allclose(end[i], theta, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
def test_float32_stays_float32(name):
    network = net(np.float32)
    optimizer = make_optimizer(network, TrainingConfig(optimizer=name))
    for k in range(3):
        step(optimizer, network, *grads(network, k), 0.05)  # a Python float learning rate
    assert all(p.dtype == np.float32 for p in params(network))
    assert all(a.dtype == np.float32 for key, a in optimizer.state_dict().items() if key != "t")


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
def test_every_optimizer_lowers_the_objective(name):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((64, 6))
    labels = X[:, :3].argmax(axis=1)
    Y = np.eye(3)[labels]
    network = net()
    optimizer = make_optimizer(network, TrainingConfig(optimizer=name))
    before = network.objective(X, Y, 0.1, 64)
    for _ in range(50):
        step(optimizer, network, *network.gradients(X, Y, 0.1, 64), 0.01 if name == "adam" else 0.1)
    assert network.objective(X, Y, 0.1, 64) < 0.7 * before


@pytest.mark.parametrize("name", ["momentum", "nesterov", "adam"])
def test_state_round_trip_continues_identically(name):
    training = TrainingConfig(optimizer=name, adam=AdamConfig(beta1=0.85))
    a = net()
    opt_a = make_optimizer(a, training)
    for k in range(3):
        step(opt_a, a, *grads(a, k), 0.1)
    b = Network([None] + [w.copy() for w in a.W[1:]], [None] + [x.copy() for x in a.b[1:]],
                a.activations, a.output, a.cost)
    opt_b = make_optimizer(b, training)
    opt_b.load_state_dict(opt_a.state_dict())
    for k in range(3, 6):
        step(opt_a, a, *grads(a, k), 0.1)
        step(opt_b, b, *grads(b, k), 0.1)
    for p, q in zip(params(a), params(b)):
        assert np.array_equal(p, q)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
def test_a_network_larger_than_one_block_gets_the_same_update(name):
    # [784, 400, 10] has 318,010 parameters: more than kernels.SPLIT_ABOVE, so the update
    # runs block by block; it must equal the same rule on a small network, array by array.
    from mlpcli.nn import kernels

    big = Network.create([784, 400, 10], "relu", "softmax", "log_likelihood", "he",
                         np.random.default_rng(1), np.float32)
    assert big.theta.size > kernels.SPLIT_ABOVE and len(kernels.blocks(big.theta.size)) > 1
    training = TrainingConfig(optimizer=name)
    opt = make_optimizer(big, training)
    parts = [Network([None, big.W[l].copy()], [None, big.b[l].copy()], [], "softmax", "log_likelihood")
             for l in (1, 2)]
    part_opts = [make_optimizer(p, training) for p in parts]
    for k in range(3):
        dW, db = grads(big, k)
        step(opt, big, dW, db, 0.01)
        for l, (p, o) in enumerate(zip(parts, part_opts), start=1):
            step(o, p, [None, dW[l]], [None, db[l]], 0.01)
    for l, p in enumerate(parts, start=1):
        assert np.array_equal(big.W[l], p.W[1]) and np.array_equal(big.b[l], p.b[1])


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("layers", [[6, 5, 3], [784, 400, 10]])  # one block; many blocks
def test_step_with_decay_is_the_rule_on_the_gradient_of_j(name, layers):
    # Training passes ∂C/∂θ and decay = λ/n to step; the result must be the rule applied to
    # ∂J/∂θ = gradients(X, Y, λ, n), bit for bit: the L2 term on the weights, not the biases.
    rng = np.random.default_rng(5)
    X = rng.random((16, layers[0]))
    Y = np.eye(layers[-1])[rng.integers(0, layers[-1], 16)]
    lam, n = 3.0, 16
    a = Network.create(layers, "tanh", "softmax", "log_likelihood", "xavier", np.random.default_rng(0), np.float64)
    b = a.astype(np.float64)
    opt_a, opt_b = make_optimizer(a, TrainingConfig(optimizer=name)), make_optimizer(b, TrainingConfig(optimizer=name))
    for _ in range(3):
        dC = a.backward(*a.forward(X), Y)
        for l in range(1, a.L + 1):
            a.dW[l][...], a.db[l][...] = dC[0][l], dC[1][l]
        opt_a.step(0.05, lam / n)
        step(opt_b, b, *b.gradients(X, Y, lam, n), 0.05)
    if name == "sgd":  # sgd applies the L2 term as the scaling (1 − ηλ/n)θ: equal to rounding
        np.testing.assert_allclose(a.theta, b.theta, rtol=1e-13, atol=1e-15)
        return
    assert np.array_equal(a.theta, b.theta)
    if name != "sgd":
        assert all(np.array_equal(u, v) for u, v in zip(opt_a.vectors.values(), opt_b.vectors.values()))


def test_parameters_and_gradients_are_views_of_one_vector_each():
    network = net()
    for l in range(1, network.L + 1):
        assert np.shares_memory(network.W[l], network.theta) and np.shares_memory(network.b[l], network.theta)
        assert np.shares_memory(network.dW[l], network.grad) and np.shares_memory(network.db[l], network.grad)
    network.theta[:] = 0.5
    assert all((w == 0.5).all() for w in network.W[1:])
    optimizer = make_optimizer(network, TrainingConfig(optimizer="momentum"))
    assert optimizer.vectors["v"].shape == network.theta.shape
    assert np.shares_memory(optimizer.state["v_W1"], optimizer.vectors["v"])


def test_state_names_are_per_parameter():
    state = make_optimizer(net(), TrainingConfig(optimizer="adam", ema=None)).state_dict()
    assert set(state) == {f"{s}_{k}{l}" for s in "ms" for k in "Wb" for l in (1, 2)} | {"t"}
    assert set(make_optimizer(net(), TrainingConfig(optimizer="sgd", ema=None)).state_dict()) == set()
    averaged = make_optimizer(net(), TrainingConfig(optimizer="nesterov", ema=0.9)).state_dict()
    assert set(averaged) == {f"{s}_{k}{l}" for s in ("v", "theta") for k in "Wb" for l in (1, 2)} | {"t"}


# --- weight averaging (training.ema) --------------------------------------------------------


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("layers", [[6, 5, 3], [784, 400, 10]])  # one block; many blocks
def test_ema_is_the_moving_average_of_the_weights_the_rule_produces(name, layers):
    # θ moves exactly as without averaging; θ̄ (the model) is d⁴ θ̄ + (1 − d⁴) θ after every
    # 4th step, d = min(ema, (1 + t)/(10 + t)), computed here in float64 from the θ sequence.
    ema, steps = 0.75, 40  # the min is the warm-up term up to t = 26, then 0.75: both regimes
    plain, averaged = (Network.create(layers, "tanh", "softmax", "log_likelihood", "xavier",
                                      np.random.default_rng(0), np.float64) for _ in range(2))
    opt_plain = make_optimizer(plain, TrainingConfig(optimizer=name, ema=None))
    opt = make_optimizer(averaged, TrainingConfig(optimizer=name, ema=ema))
    assert opt_plain.model is plain and opt.model is not averaged
    reference = averaged.theta.copy()  # θ̄ starts as the initial θ
    for k in range(steps):
        dW, db = grads(plain, k)
        step(opt_plain, plain, dW, db, 0.05)
        step(opt, averaged, dW, db, 0.05)
        assert np.array_equal(averaged.theta, plain.theta)  # averaging never touches θ
        t = k + 1  # steps so far
        if t % 4 == 0:
            d = min(ema, (1 + t) / (10 + t)) ** 4
            reference = d * reference + (1 - d) * plain.theta
        np.testing.assert_allclose(opt.model.theta, reference, rtol=1e-12, atol=1e-15)
    assert int(opt.state["t"]) == steps
    assert not np.allclose(opt.model.theta, plain.theta)  # a lagging average, not θ


def test_ema_switches_from_the_warm_up_term_to_the_decay():
    # with ema 0.9 the min is (1 + t)/(10 + t) up to t = 80, then 0.9: both regimes checked
    network = net()
    opt = make_optimizer(network, TrainingConfig(optimizer="sgd", ema=0.9))
    reference = network.theta.copy()
    for k in range(100):
        step(opt, network, *grads(network, k % 7), 0.01)
        t = k + 1
        if t % 4 == 0:
            d = min(0.9, (1 + t) / (10 + t)) ** 4
            reference = d * reference + (1 - d) * network.theta
    np.testing.assert_allclose(opt.model.theta, reference, rtol=1e-11, atol=1e-14)


def test_ema_zero_is_the_weights_at_every_fourth_step():
    network = net()
    opt = make_optimizer(network, TrainingConfig(optimizer="momentum", ema=0.0))
    expected = network.theta.copy()  # θ̄ is θ as of the last 4th step (the start before step 4)
    for t in range(1, 9):
        step(opt, network, *grads(network, t), 0.1)
        if t % 4 == 0:
            expected = network.theta.copy()
        np.testing.assert_allclose(opt.model.theta, expected, rtol=0, atol=1e-15)  # θ̄ − (θ̄ − θ): rounding


@pytest.mark.parametrize("name", ["sgd", "nesterov", "adam"])
def test_ema_state_round_trip_continues_identically(name):
    # as a resume does it: the new network starts from θ̄ (a checkpoint's weights), the state
    # puts θ back; both then continue bit for bit
    training = TrainingConfig(optimizer=name, ema=0.8)
    a = net()
    opt_a = make_optimizer(a, training)
    for k in range(4):
        step(opt_a, a, *grads(a, k), 0.1)
    model = opt_a.model
    b = Network([None] + [w.copy() for w in model.W[1:]], [None] + [x.copy() for x in model.b[1:]],
                model.activations, model.output, model.cost)
    opt_b = make_optimizer(b, training)
    opt_b.load_state_dict(opt_a.state_dict())
    assert np.array_equal(b.theta, a.theta) and np.array_equal(opt_b.model.theta, opt_a.model.theta)
    for k in range(4, 8):
        step(opt_a, a, *grads(a, k), 0.1)
        step(opt_b, b, *grads(b, k), 0.1)
    assert np.array_equal(a.theta, b.theta) and np.array_equal(opt_a.model.theta, opt_b.model.theta)


def test_load_state_of_another_optimizer_is_refused():
    momentum_state = make_optimizer(net(), TrainingConfig(optimizer="momentum")).state_dict()
    with pytest.raises(CheckpointError, match="optimizer"):
        make_optimizer(net(), TrainingConfig(optimizer="adam")).load_state_dict(momentum_state)
    bad = dict(momentum_state, v_W1=np.zeros((2, 2)))
    with pytest.raises(CheckpointError, match="shape"):
        make_optimizer(net(), TrainingConfig(optimizer="momentum")).load_state_dict(bad)


# --- schedules -----------------------------------------------------------------------------


def test_constant_schedule():
    assert [learning_rate(0.1, ScheduleConfig(name="constant"), e, 5) for e in range(5)] == [0.1] * 5


def test_step_schedule_multiplies_by_factor_every_n_epochs():
    s = ScheduleConfig(name="step", step_every=2, factor=0.5)
    assert [learning_rate(0.8, s, e, 7) for e in range(7)] == [0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.1]


def test_cosine_schedule_decays_from_base_and_never_reaches_zero():
    s = ScheduleConfig(name="cosine")
    rates = [learning_rate(1.0, s, e, 10) for e in range(10)]
    assert rates[0] == 1.0
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert rates[-1] > 0
    assert rates[5] == pytest.approx(0.5)
    assert rates[3] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.3)))


def test_cosine_is_recomputed_for_a_longer_run():
    s = ScheduleConfig(name="cosine")
    assert learning_rate(1.0, s, 4, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.4)))
    assert learning_rate(1.0, s, 4, 20) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)))


def test_warmup_is_linear_then_the_schedule_starts():
    s = ScheduleConfig(name="cosine", warmup_epochs=3)
    rates = [learning_rate(0.4, s, e, 13) for e in range(5)]
    assert rates[:3] == pytest.approx([0.1, 0.2, 0.3])
    assert rates[3] == 0.4
    assert rates[4] == pytest.approx(0.4 * 0.5 * (1 + math.cos(math.pi * 0.1)))


def test_schedule_is_a_pure_function():
    s = SimpleNamespace(name="step", step_every=3, factor=0.1, warmup_epochs=0)
    assert learning_rate(1.0, s, 7, 10) == learning_rate(1.0, s, 7, 10) == pytest.approx(0.01)
