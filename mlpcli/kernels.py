"""Fused, in-place kernels for the training hot loop — the one place where speed beats brevity.

``network.py`` and ``optim.py`` say WHAT is computed, as the seeds' equations and the update
rules; the functions here say HOW it is computed fast:

* into preallocated buffers (``out=``), so a training step allocates nothing;
* in the network's dtype, with scalars of that dtype, so float32 training stays float32;
* in as few NumPy calls and passes over memory as the math allows (each call costs about a
  microsecond of overhead, which at batch size 10 is most of a step);
* with the same floating-point operations, in the same order, as the readable definitions in
  ``functions.py`` and the per-parameter rules in ``optim.py`` — so the fast path gives the same
  numbers bit for bit (``tests/test_kernels.py`` checks every kernel against its definition).

Every kernel takes ``out=None`` (and temporaries ``tmp=None``) and then allocates, which is
what ``Network.forward``/``backward`` do when they are called without a ``Workspace`` (the
public API, ``gradcheck``); training passes a ``Workspace`` and the same code reuses buffers.

Parameters, gradients and optimizer state can live in one flat vector each (``Flat``): the
update of every parameter is then one cache-blocked loop (``sgd``, ``momentum``, ``nesterov``,
``adam``) instead of a few NumPy calls per array, with the L2 term (λ/n)W folded in.
"""

from __future__ import annotations

import math
import operator
import os
import queue
import threading
from typing import Sequence

import numpy as np

from mlpcli import functions as F

# Elements per block of the fused updates: four float32 operand blocks (parameter, gradient,
# state, temporary) of 32 Ki elements stay inside a 1 MiB L2 cache, so each block is read from
# main memory once for all the passes of an update rule instead of once per pass. Vectors of
# up to SPLIT_ABOVE elements fit in the cache whole and are not split (fewer calls).
BLOCK = 32768
SPLIT_ABOVE = 262144


_CONSTANTS: dict = {}


def _c(value, like: np.ndarray) -> np.ndarray:
    """``value`` as a read-only 0-d array of ``like``'s dtype, made once: keeps float32
    float32, and a ufunc takes a 0-d array faster than a scalar."""
    key = (value, like.dtype)
    c = _CONSTANTS.get(key)
    if c is None:
        c = _CONSTANTS[key] = np.array(value, dtype=like.dtype)
        c.flags.writeable = False
    return c


def _s(value, like: np.ndarray):
    """A number that changes (learning rate, decay) as a scalar of ``like``'s dtype."""
    return like.dtype.type(value)


# --- forward ----------------------------------------------------------------------------------


def affine(A_prev: np.ndarray, W: np.ndarray, b: np.ndarray, out=None) -> np.ndarray:
    """Z = A_prev @ Wᵀ + b   (z[l] = W[l] a[l-1] + b[l], row form): one GEMM, one add."""
    Z = np.matmul(A_prev, W.T, out=out)
    np.add(Z, b, out=Z)
    return Z


def activate(name: str, Z: np.ndarray, out=None, tmp=None) -> np.ndarray:
    """A = g(Z) for a hidden activation or an output layer named ``name`` (functions.py's fn).

    ``out`` may not be ``Z`` itself for leaky_relu, softmax or identity. Same operations, same
    order as the definitions in functions.py, so the values are identical."""
    if name == "sigmoid":  # σ(z) = ½(1 + tanh(z/2)): 0.5 * (1.0 + tanh(0.5 * z))
        half = _c(0.5, Z)
        A = np.multiply(Z, half, out=out)
        np.tanh(A, out=A)
        np.add(A, _c(1.0, Z), out=A)
        return np.multiply(A, half, out=A)
    if name == "relu":
        return np.maximum(Z, _c(0, Z), out=out)
    if name == "tanh":
        return np.tanh(Z, out=out)
    if name == "leaky_relu":  # max(z, 0.01 z) is z for z > 0 and 0.01 z otherwise
        A = np.multiply(Z, _c(F.LEAKY_RELU_SLOPE, Z), out=out)
        return np.maximum(Z, A, out=A)
    if name == "softmax":  # exp(z − max_j z) / Σ exp(z − max_j z), row by row
        row = np.max(Z, axis=1, keepdims=True, out=tmp)
        E = np.subtract(Z, row, out=out)
        np.exp(E, out=E)
        np.sum(E, axis=1, keepdims=True, out=row)
        return np.divide(E, row, out=E)
    if name == "identity":
        if out is None:
            return Z
        np.copyto(out, Z)
        return out
    raise KeyError(name)


# --- backward ---------------------------------------------------------------------------------


def output_delta(output: str, cost: str, A: np.ndarray, Y: np.ndarray, out=None, tmp=None) -> np.ndarray:
    """Δ[L] = ∂J/∂Z[L] for J = (1/m) Σ_rows c(a, y) — functions.output_delta, in place.

    sigmoid+cross_entropy, softmax+log_likelihood:  Δ = (A − Y)/m
    sigmoid+quadratic:                              Δ = (2(A − Y)/m) ⊙ A ⊙ (1 − A)
    any other pair: functions.output_delta, copied into ``out``."""
    m = A.shape[0]
    if (output, cost) in F.SIMPLIFIED_DELTA:
        D = np.subtract(A, Y, out=out)
        return np.divide(D, _c(m, A), out=D)
    if (output, cost) == ("sigmoid", "quadratic"):
        D = np.subtract(A, Y, out=out)
        # ∂c/∂a / m = 2(a − y) / m, computed as (a − y) / (m/2): 2x and m/2 are exact, so the
        # quotient rounds to the very same number in one pass instead of two
        np.divide(D, _c(m / 2, A), out=D)
        np.multiply(D, A, out=D)  # σ vjp: G ⊙ a ⊙ (1 − a)
        one_minus_a = np.subtract(_c(1, A), A, out=tmp)
        return np.multiply(D, one_minus_a, out=D)
    D = F.output_delta(output, cost, A, Y)
    if out is None:
        return D
    np.copyto(out, D)
    return out


def times_derivative(name: str, D: np.ndarray, A: np.ndarray, tmp=None) -> np.ndarray:
    """D ⊙= g'(z) for the hidden activation ``name``, from its output A = g(z), in place.

    g' as functions.py writes it: σ' = a(1 − a), tanh' = 1 − a², relu' = [a > 0],
    leaky_relu' = 1 where a > 0 else 0.01, identity' = 1."""
    if name == "identity":
        return D
    if name == "sigmoid":
        d = np.subtract(_c(1, A), A, out=tmp)
        np.multiply(A, d, out=d)
    elif name == "tanh":
        d = np.multiply(A, A, out=tmp)
        np.subtract(_c(1, A), d, out=d)
    elif name == "relu":
        d = (A > 0).astype(A.dtype) if tmp is None else np.greater(A, _c(0, A), out=tmp)
    elif name == "leaky_relu":
        d = F.HIDDEN[name].derivative(A)
    else:
        raise KeyError(name)
    return np.multiply(D, d, out=D)


def column_sums(D: np.ndarray, ones: np.ndarray | None = None, out=None) -> np.ndarray:
    """Σ_rows D as one matrix-vector product 1ᵀD (faster than D.sum(axis=0) for short batches)."""
    if ones is None:
        ones = np.ones(D.shape[0], dtype=D.dtype)
    return np.matmul(ones, D, out=out)


def add_weight_decay(dW: np.ndarray, W: np.ndarray, decay, tmp=None) -> np.ndarray:
    """dW += decay · W   (the L2 term (λ/n) W of ∂J/∂W)."""
    np.add(dW, np.multiply(W, _s(decay, W), out=tmp), out=dW)
    return dW


# --- buffers for one batch size ------------------------------------------------------------------


class Workspace:
    """Preallocated per-layer arrays for batches of ``m`` rows of ``network``: Z[l], A[l],
    Δ[l] and a temporary for layers 1..L (index 0 unused), a row vector for softmax and a
    vector of ones for bias gradients. ``dW``/``db`` are where ``backward`` writes gradients:
    views into a ``Flat``'s gradient vector when one is given, else arrays of their own.

    ``forward``/``backward`` called with a workspace return lists of these same arrays, which
    the next call overwrites."""

    def __init__(self, network, m: int, flat: "Flat | None" = None):
        dtype, sizes, L = network.dtype, network.layers, network.L
        self.m, self.L = m, L

        def per_layer():
            return [None] + [np.empty((m, n), dtype=dtype) for n in sizes[1:]]

        self.Z, self.A, self.delta, self.tmp = per_layer(), per_layer(), per_layer(), per_layer()
        self.row = np.empty((m, 1), dtype=dtype)
        self.ones = np.ones(m, dtype=dtype)
        if flat is not None:
            self.dW, self.db = flat.dW, flat.db
        else:
            self.dW = [None] + [np.empty_like(w) for w in network.W[1:]]
            self.db = [None] + [np.empty_like(b) for b in network.b[1:]]


class Fresh:
    """The workspace of a call without one: every buffer is None, so every kernel allocates."""

    row = ones = None

    def __init__(self, L: int):
        self.Z = self.A = self.delta = self.tmp = self.dW = self.db = [None] * (L + 1)


# --- one flat vector per kind of array ------------------------------------------------------------


def _views(flat: np.ndarray, shapes: Sequence[tuple]) -> list[np.ndarray]:
    out, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        out.append(flat[start : start + size].reshape(shape))
        start += size
    return out


class Flat:
    """A network's parameters, their gradients and an optimizer's state, each kind in ONE
    contiguous vector — weights W1..WL first, then biases b1..bL — with per-array views.

    Creating it copies the values into the vectors and rebinds ``network.W[l]``/``b[l]`` and
    ``optimizer.state[...]`` to the views, so everything that reads them by name (forward,
    checkpoints, ``optimizer.state_dict``) sees the same numbers, and an update of the whole
    vector updates every array. The weights form a prefix (``n_weights`` entries), so the L2
    term is applied to ``theta[:n_weights]`` only: biases are not regularized.
    """

    def __init__(self, network, optimizer=None):
        L, dtype = network.L, network.dtype
        self.L = L
        arrays = network.W[1:] + network.b[1:]
        shapes = [a.shape for a in arrays]
        self.n_weights = sum(w.size for w in network.W[1:])
        size = sum(a.size for a in arrays)
        self.theta = np.empty(size, dtype=dtype)
        views = _views(self.theta, shapes)
        for view, array in zip(views, arrays):
            view[...] = array
        network.W[1:], network.b[1:] = views[:L], views[L:]
        self.W, self.b = [None] + views[:L], [None] + views[L:]
        self.grad = np.zeros(size, dtype=dtype)
        grads = _views(self.grad, shapes)
        self.dW, self.db = [None] + grads[:L], [None] + grads[L:]
        self.tmp = np.empty((2, min(size, BLOCK) if size > SPLIT_ABOVE else size), dtype=dtype)
        self.state: dict[str, np.ndarray] = {}  # slot ("v", "m", "s") → flat vector
        if optimizer is not None:
            for slot in getattr(optimizer, "slots", ()):
                flat = np.empty(size, dtype=dtype)
                names = [f"{slot}_W{l}" for l in range(1, L + 1)] + [f"{slot}_b{l}" for l in range(1, L + 1)]
                for name, view in zip(names, _views(flat, shapes)):
                    view[...] = optimizer.state[name]
                    optimizer.state[name] = view
                self.state[slot] = flat
            optimizer.flat = self
        self.network = network
        self._blocks = {decay: self._make_blocks(decay) for decay in (False, True)}

    def holds(self, network, dW: Sequence, db: Sequence) -> bool:
        """True when the network's parameters and these gradients are this Flat's views (they
        are unless something replaced an array, e.g. a test wrapping ``backward``)."""
        return (network is self.network and all(map(operator.is_, dW, self.dW))
                and all(map(operator.is_, db, self.db)) and all(map(operator.is_, network.W, self.W))
                and all(map(operator.is_, network.b, self.b)))

    def blocks(self, decay: bool) -> list["Block"]:
        """Blocks covering the vectors, of at most BLOCK entries where they are longer than
        SPLIT_ABOVE; with ``decay`` no block straddles the weights/biases boundary."""
        return self._blocks[decay]

    def _make_blocks(self, decay: bool) -> list["Block"]:
        size = self.theta.size
        bounds = [(0, self.n_weights, True), (self.n_weights, size, False)] if decay else [(0, size, False)]
        step = BLOCK if size > SPLIT_ABOVE else size
        spans = [slice(a, min(a + step, stop)) for start, stop, weight in bounds for a in range(start, stop, step)]
        weights = [weight for start, stop, weight in bounds for a in range(start, stop, step)]
        blocks = []
        for i, (b, weight) in enumerate(zip(spans, weights)):
            # the two halves of the list may run at the same time (_run): one temporary each
            tmp = self.tmp[0] if i < len(spans) // 2 else self.tmp[1]
            state = {slot: vector[b] for slot, vector in self.state.items()}
            blocks.append(Block(self.theta[b], self.grad[b], tmp[: b.stop - b.start], weight, state))
        return blocks


class Block:
    """Views of one block of a ``Flat``: parameters p, gradients g, a temporary t, the
    optimizer state by slot, and whether these are weights (which the L2 term applies to)."""

    __slots__ = ("p", "g", "t", "weight", "state")

    def __init__(self, p, g, t, weight, state):
        self.p, self.g, self.t, self.weight, self.state = p, g, t, weight, state


# --- fused update rules (optim.py's rules, over a Flat, block by block) ------------------------
#
# The caller passes scalars of the parameters' dtype. Each rule first adds the L2 term to the
# weights' gradient exactly as backward would (g + decay·W), then applies optim.py's rule with
# the same operations in the same order, so the result equals the per-parameter update.
# Blocks are independent, so a large vector's blocks are shared between this thread and a
# helper thread (NumPy releases the GIL inside each call): the numbers do not depend on it.


def sgd(flat: Flat, lr, decay) -> None:
    """θ ← θ − η (g + (λ/n)W)   for every parameter of ``flat``."""
    _run(flat, decay, _sgd, lr, decay)


def _sgd(blocks, lr, decay):
    for b in blocks:
        if b.weight:
            np.add(b.g, np.multiply(b.p, decay, out=b.t), out=b.g)
        np.subtract(b.p, np.multiply(b.g, lr, out=b.t), out=b.p)


def momentum(flat: Flat, lr, mu, decay, nesterov: bool = False) -> None:
    """v ← μ v + g;  θ ← θ − η v   (nesterov: θ ← θ − η (g + μ v)), g including (λ/n)W."""
    _run(flat, decay, _momentum, lr, mu, decay, nesterov)


def _momentum(blocks, lr, mu, decay, nesterov):
    for b in blocks:
        g, p, t, v = b.g, b.p, b.t, b.state["v"]
        if b.weight:
            np.add(g, np.multiply(p, decay, out=t), out=g)
        np.multiply(v, mu, out=v)
        np.add(v, g, out=v)
        if nesterov:
            np.add(g, np.multiply(v, mu, out=t), out=t)
            np.multiply(t, lr, out=t)
        else:
            np.multiply(v, lr, out=t)
        np.subtract(p, t, out=p)


def adam(flat: Flat, lr_c1, b1, b2, c2, eps, decay) -> None:
    """m ← β1 m + (1−β1) g;  s ← β2 s + (1−β2) g²;  θ ← θ − (η c1) m / (√s c2 + ε)."""
    one = b1.dtype.type(1)
    _run(flat, decay, _adam, lr_c1, b1, b2, one - b1, one - b2, c2, eps, decay)


def _adam(blocks, lr_c1, b1, b2, one_b1, one_b2, c2, eps, decay):
    for b in blocks:
        g, p, t, m, s = b.g, b.p, b.t, b.state["m"], b.state["s"]
        if b.weight:
            np.add(g, np.multiply(p, decay, out=t), out=g)
        np.multiply(m, b1, out=m)
        np.add(m, np.multiply(g, one_b1, out=t), out=m)
        np.multiply(s, b2, out=s)
        np.multiply(g, g, out=t)
        np.add(s, np.multiply(t, one_b2, out=t), out=s)
        np.sqrt(s, out=t)
        np.multiply(t, c2, out=t)
        np.add(t, eps, out=t)
        np.divide(np.multiply(m, lr_c1, out=g), t, out=t)  # g is free now: it held this step's gradient
        np.subtract(p, t, out=p)


# Use a helper thread for vectors of more than SPLIT_ABOVE elements (and more than one core).
THREADS = min(2, os.cpu_count() or 1)


def _run(flat: Flat, decay, rule, *args) -> None:
    blocks = flat.blocks(bool(decay))
    if THREADS < 2 or len(blocks) < 4:
        rule(blocks, *args)
        return
    half = len(blocks) // 2
    _helper().submit(rule, blocks[half:], *args)
    try:
        rule(blocks[:half], *args)
    finally:
        _helper().wait()  # also on KeyboardInterrupt: never leave the helper writing


class _Helper:
    """One daemon thread that runs the second half of an update's blocks."""

    def __init__(self):
        self.jobs, self.done = queue.SimpleQueue(), queue.SimpleQueue()
        threading.Thread(target=self._serve, name="mlpcli-update", daemon=True).start()

    def _serve(self):
        while True:
            rule, blocks, args = self.jobs.get()
            try:
                rule(blocks, *args)
                self.done.put(None)
            except BaseException as error:  # handed to the caller by wait()
                self.done.put(error)

    def submit(self, rule, blocks, *args):
        self.jobs.put((rule, blocks, args))

    def wait(self):
        error = self.done.get()
        if error is not None:
            raise error


_HELPER: list = []
_HELPER_LOCK = threading.Lock()


def _helper() -> _Helper:
    if not _HELPER:
        with _HELPER_LOCK:
            if not _HELPER:
                _HELPER.append(_Helper())
    return _HELPER[0]
