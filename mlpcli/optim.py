"""Update rules (sgd, momentum, nesterov, adam) and learning-rate schedules.

An optimizer updates a network's ``W[l]`` and ``b[l]`` IN PLACE from the gradients
``dW[l]``, ``db[l]`` that ``Network.backward`` returns (the L2 term (λ/n)W[l] is in ``dW``
when backward was given λ; training instead passes ``decay`` = λ/n to ``step``, which adds the
same term inside the fused update). Its state is a flat dict of named arrays (``v_W1``,
``m_b2``, ``t`` …) so that a checkpoint can save it and a resumed run continue exactly where
it stopped. In training these arrays, the parameters and the gradients are views of one
vector each (``kernels.Flat``) and ``step`` runs the fused kernels of ``kernels.py``, which
do exactly the per-parameter operations written here.

The rules, with g the gradient, η the learning rate of the epoch, μ the momentum:

    sgd        θ ← θ − η g
    momentum   v ← μ v + g;          θ ← θ − η v              (PyTorch's form)
    nesterov   v ← μ v + g;          θ ← θ − η (g + μ v)      (Sutskever's look-ahead, rewritten)
    adam       m ← β1 m + (1−β1) g;  s ← β2 s + (1−β2) g²;  t ← t + 1
               θ ← θ − η m̂ / (√ŝ + ε),  m̂ = m / (1−β1ᵗ),  ŝ = s / (1−β2ᵗ)   (Kingma & Ba)

Keeping v as the sum of gradients (not of steps) means a schedule that changes η changes the
step at once, which is what the schedules below assume.

Schedules are pure functions of (epoch, total_epochs): a resumed or extended run recomputes
them, so nothing about them needs saving. Everything is computed in the network's dtype:
Python floats are converted to that dtype once per step, so float32 training stays float32.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from mlpcli import kernels
from mlpcli.errors import CheckpointError, ConfigError

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
SCHEDULES = ("constant", "step", "cosine")


def _names(L: int) -> list[tuple[str, int, str]]:
    """(parameter name, layer, kind) for W1, b1, …, WL, bL."""
    return [(f"{kind}{l}", l, kind) for l in range(1, L + 1) for kind in ("W", "b")]


class Optimizer:
    """Plain gradient descent; subclasses add state. ``step`` updates the network in place."""

    name = "sgd"
    slots: tuple[str, ...] = ()  # per-parameter state arrays, e.g. ("v",) → v_W1, v_b1, …

    def __init__(self, network):
        self.dtype = network.dtype
        self.L = network.L
        self.state: dict[str, np.ndarray] = {}
        for slot in self.slots:
            for name, l, kind in _names(self.L):
                param = network.W[l] if kind == "W" else network.b[l]
                self.state[f"{slot}_{name}"] = np.zeros_like(param)

    flat = None  # a kernels.Flat holding parameters, gradients and state (set by kernels.Flat)

    def step(self, network, dW: Sequence, db: Sequence, learning_rate: float, decay: float = 0.0) -> None:
        """One update of every W[l], b[l] from the gradients dW, db.

        ``decay`` = λ/n adds the L2 term (λ/n) W[l] to each weight gradient first, for callers
        whose dW does not hold it yet (training folds it into the fused update this way).
        When parameters, gradients and state are the views of a ``kernels.Flat``, the update
        is that module's fused, cache-blocked kernel: the same operations, in the same order,
        element by element, as the per-parameter rules below."""
        lr, decay = self.dtype.type(learning_rate), self.dtype.type(decay)
        if self.flat is not None and self.flat.holds(network, dW, db):
            self._step_flat(self.flat, lr, decay)
            return
        for name, l, kind in _names(self.L):
            param, grad = (network.W[l], dW[l]) if kind == "W" else (network.b[l], db[l])
            if decay and kind == "W":
                grad = grad + decay * param  # g + (λ/n) W   (the L2 term)
            self._update(name, param, grad, lr)

    def _update(self, name: str, param: np.ndarray, grad: np.ndarray, lr) -> None:
        param -= lr * grad  # θ ← θ − η g

    def _step_flat(self, flat, lr, decay) -> None:
        kernels.sgd(flat, lr, decay)

    # --- state as named arrays (checkpoints) ----------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        return {key: value.copy() for key, value in self.state.items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore state saved by ``state_dict``; names and shapes must match exactly."""
        missing = sorted(set(self.state) - set(state))
        extra = sorted(set(state) - set(self.state))
        if missing or extra:
            what = ", ".join(
                [f"missing {k}" for k in missing[:3]] + [f"unexpected {k}" for k in extra[:3]]
            )
            raise CheckpointError(
                f"optimizer state does not fit optimizer {self.name!r} ({what})",
                "resume with the config the checkpoint was saved with, or use --init-from",
            )
        for key, value in state.items():
            if value.shape != self.state[key].shape:
                raise CheckpointError(
                    f"optimizer state {key} has shape {value.shape}, "
                    f"expected {self.state[key].shape}",
                    "the checkpoint does not belong to this network; use --init-from",
                )
            # in place: the arrays may be views of a kernels.Flat's state vector
            self.state[key][...] = np.asarray(value, dtype=self.state[key].dtype)


class SGD(Optimizer):
    name = "sgd"


class Momentum(Optimizer):
    name = "momentum"
    slots = ("v",)

    def __init__(self, network, momentum: float = 0.9):
        super().__init__(network)
        self.mu = self.dtype.type(momentum)

    def _update(self, name, param, grad, lr):
        v = self.state[f"v_{name}"]
        v *= self.mu  # v ← μ v + g
        v += grad
        param -= lr * v  # θ ← θ − η v

    def _step_flat(self, flat, lr, decay):
        kernels.momentum(flat, lr, self.mu, decay)


class Nesterov(Momentum):
    name = "nesterov"

    def _update(self, name, param, grad, lr):
        v = self.state[f"v_{name}"]
        v *= self.mu  # v ← μ v + g
        v += grad
        param -= lr * (grad + self.mu * v)  # θ ← θ − η (g + μ v)

    def _step_flat(self, flat, lr, decay):
        kernels.momentum(flat, lr, self.mu, decay, nesterov=True)


class Adam(Optimizer):
    name = "adam"
    slots = ("m", "s")

    def __init__(self, network, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(network)
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.eps = self.dtype.type(eps)
        self.state["t"] = np.zeros((), dtype=np.int64)

    def step(self, network, dW, db, learning_rate, decay=0.0):
        self.state["t"] += 1
        t = int(self.state["t"])
        # Bias corrections in float64 once per step, then the dtype for the arrays.
        self._c1 = self.dtype.type(1 / (1 - self.beta1**t))
        self._c2 = self.dtype.type(1 / math.sqrt(1 - self.beta2**t))
        self._b1, self._b2 = self.dtype.type(self.beta1), self.dtype.type(self.beta2)
        super().step(network, dW, db, learning_rate, decay)

    def _step_flat(self, flat, lr, decay):
        kernels.adam(flat, lr * self._c1, self._b1, self._b2, self._c2, self.eps, decay)

    def _update(self, name, param, grad, lr):
        m, s = self.state[f"m_{name}"], self.state[f"s_{name}"]
        m *= self._b1  # m ← β1 m + (1 − β1) g
        m += (1 - self._b1) * grad
        s *= self._b2  # s ← β2 s + (1 − β2) g²
        s += (1 - self._b2) * (grad * grad)
        # θ ← θ − η m̂ / (√ŝ + ε)
        param -= (lr * self._c1) * m / (np.sqrt(s) * self._c2 + self.eps)


def make_optimizer(network, training) -> Optimizer:
    """The optimizer a ``TrainingConfig`` names, for ``network``."""
    name = training.optimizer
    if name == "sgd":
        return SGD(network)
    if name == "momentum":
        return Momentum(network, training.momentum)
    if name == "nesterov":
        return Nesterov(network, training.momentum)
    if name == "adam":
        a = training.adam
        return Adam(network, a.beta1, a.beta2, a.eps)
    raise ConfigError(
        f"unknown training.optimizer {name!r}", f"choose one of: {', '.join(OPTIMIZERS)}"
    )


# --- learning-rate schedules ---------------------------------------------------------------


def learning_rate(base: float, schedule, epoch: int, total_epochs: int) -> float:
    """The learning rate of epoch ``epoch`` (0-based) of a run planned for ``total_epochs``.

    constant: η;  step: η · factor^⌊epoch / step_every⌋;
    cosine: ½ η (1 + cos(π p)), p = (epoch − warmup) / (total − warmup) ∈ [0, 1).
    Any schedule may start with ``warmup_epochs`` epochs of linear warm-up,
    η (epoch + 1) / (warmup + 1), reaching η at the first epoch after it.
    """
    warmup = int(getattr(schedule, "warmup_epochs", 0) or 0)
    if epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    name = schedule.name
    if name == "constant":
        return base
    if name == "step":
        return base * schedule.factor ** (epoch // schedule.step_every)
    if name == "cosine":
        progress = (epoch - warmup) / max(1, total_epochs - warmup)
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    raise ConfigError(
        f"unknown training.schedule.name {name!r}", f"choose one of: {', '.join(SCHEDULES)}"
    )
