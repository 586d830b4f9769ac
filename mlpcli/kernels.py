"""Fused, in-place kernels for the training hot loop — the one place where speed beats brevity.

``network.py`` and ``optim.py`` say WHAT is computed, as the derivations' equations and the update
rules; the functions here say HOW it is computed fast:

* into preallocated buffers (``out=``), so a training step allocates nothing;
* in the network's dtype, with scalars of that dtype, so float32 training stays float32;
* in as few NumPy calls and passes over memory as the math allows (each call costs about half
  a microsecond of overhead, which at batch size 10 is most of a step);
* with the same floating-point operations, in the same order, as the readable definitions in
  ``functions.py`` and the per-parameter rules in ``optim.py`` — so the fast path gives the same
  numbers bit for bit (``tests/test_kernels.py`` checks every kernel against its definition).
  The one exception is named where it happens: the one-product updates of a large ``Flat``
  compute the same linear map as the per-parameter rule, summed in another order.

Every kernel takes ``out=None`` (and temporaries ``tmp=None``) and then allocates, which is
what ``Network.forward``/``backward`` do when they are called without a ``Workspace`` (the
public API, ``gradcheck``); training passes a ``Workspace`` and the same code reuses buffers.

Activations and their derivatives are not here: each is registered once, already in place,
in ``functions.HIDDEN``/``OUTPUTS`` (``fn(Z, out, tmp)``, ``times_derivative(D, A, tmp)``),
and ``network.py`` calls those table entries directly.

Parameters, gradients and optimizer state can live in one flat vector each (``Flat``): the
update of every parameter is then a few cache-blocked NumPy calls over the whole vector
(``sgd``, ``momentum``, ``nesterov``, ``adam``) instead of a few calls per array, with the L2
term (λ/n)W folded in — or, for sgd, momentum and nesterov on more than COMBINE_ABOVE
parameters, a single matrix product over the stacked vectors (one pass over memory).
"""

from __future__ import annotations

import math
import operator
from typing import Sequence

import numpy as np

from mlpcli import functions as F

# Elements per block of the fused updates: four float32 operand blocks (parameter, gradient,
# state, temporary) of 32 Ki elements stay inside a 1 MiB L2 cache, so each block is read from
# main memory once for all the passes of an update rule instead of once per pass. Vectors of
# up to SPLIT_ABOVE elements fit in the cache whole and are not split (fewer calls).
BLOCK = 32768
SPLIT_ABOVE = 262144
# sgd, momentum and nesterov on more parameters than this update with one matrix product (Flat).
# Below, a few NumPy calls on cache-resident vectors are as fast.
COMBINE_ABOVE = 50000


# The numbers the kernels use, as read-only 0-d arrays of one dtype (functions.Constants).
_k = F.constants


def _s(value, like: np.ndarray):
    """A number that changes (learning rate, decay) as a scalar of ``like``'s dtype."""
    return like.dtype.type(value)


# --- forward ----------------------------------------------------------------------------------


# Batches of at least this many rows are kept in column-major (batch, units) arrays: the
# matrix products are then about 5% faster (measured for [784, 800, 800, 10] at batch 128),
# while for short batches (10 rows) the elementwise work is faster row-major.
COLUMN_MAJOR_ROWS = 64


def _order(m: int) -> str:
    return "F" if m >= COLUMN_MAJOR_ROWS else "C"


def _new(m: int, n: int, like: np.ndarray) -> np.ndarray:
    """A new (m, n) result array, laid out as a Workspace's would be: a call without a
    workspace then computes the very same numbers as one with."""
    return np.empty((m, n), dtype=like.dtype, order=_order(m))


def affine(A_prev: np.ndarray, W: np.ndarray, b: np.ndarray, out=None) -> np.ndarray:
    """Z = A_prev @ Wᵀ + b   (z[l] = W[l] a[l-1] + b[l], row form): one GEMM, one add."""
    Z = np.matmul(A_prev, W.T, out=_new(A_prev.shape[0], W.shape[0], W) if out is None else out)
    return np.add(Z, b, out=Z)


def matmul(A: np.ndarray, B: np.ndarray, out=None) -> np.ndarray:
    """A @ B into ``out``, or into a new array laid out as a Workspace's would be."""
    return np.matmul(A, B, out=_new(A.shape[0], B.shape[1], A) if out is None else out)


# --- backward ---------------------------------------------------------------------------------


def output_delta(output: str, cost: str, A: np.ndarray, Y: np.ndarray, out=None, tmp=None) -> np.ndarray:
    """Δ[L] = ∂J/∂Z[L] for J = (1/m) Σ_rows c(a, y) — functions.output_delta, in place.

    sigmoid+cross_entropy, softmax+log_likelihood:  Δ = (A − Y)/m
    sigmoid+quadratic:                              Δ = (2(A − Y)/m) ⊙ A ⊙ (1 − A)
    any other pair: functions.output_delta, copied into ``out``."""
    k, m = _k(A), A.shape[0]
    if out is None:
        out = _new(*A.shape, A)
    if (output, cost) in F.SIMPLIFIED_DELTA:
        D = np.subtract(A, Y, out=out)
        return np.divide(D, k(m), out=D)
    if output == "sigmoid" and cost == "quadratic":
        D = np.subtract(A, Y, out=out)
        # ∂c/∂a / m = 2(a − y) / m, computed as (a − y) / (m/2): 2x and m/2 are exact, so the
        # quotient rounds to the very same number in one pass instead of two
        np.divide(D, k(m / 2), out=D)
        np.multiply(D, A, out=D)  # σ vjp: G ⊙ a ⊙ (1 − a)
        return np.multiply(D, np.subtract(k.one, A, out=tmp), out=D)
    np.copyto(out, F.output_delta(output, cost, A, Y))
    return out


def column_sums(D: np.ndarray, ones: np.ndarray | None = None, out=None) -> np.ndarray:
    """Σ_rows D as one matrix-vector product 1ᵀD (faster than D.sum(axis=0) for short batches)."""
    if ones is None:
        ones = np.ones(D.shape[0], dtype=D.dtype)
    return np.matmul(ones, D, out=out)


def add_weight_decay(dW: np.ndarray, W: np.ndarray, decay, tmp=None) -> np.ndarray:
    """dW += decay · W   (the L2 term (λ/n) W of ∂J/∂W)."""
    return np.add(dW, np.multiply(W, _s(decay, W), out=tmp), out=dW)


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

        def per_layer():  # laid out as _new lays out results
            return [None] + [np.empty((m, n), dtype=dtype, order=_order(m)) for n in sizes[1:]]

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

    ``combined`` (sgd, momentum and nesterov on more than COMBINE_ABOVE parameters): the new
    θ (and v) are linear in the old (g, θ) or (g, v, θ), so one matrix product (1×2 or 2×3
    coefficients times the vectors stacked as rows) computes the whole update in one pass
    over memory, on every BLAS thread. Its output cannot overwrite its input, so v and θ live
    in two places and the views are rebound to the new ones after every step (``swap``). The
    rows are laid out so that both directions read their inputs in the same order (g, v, θ):
    the same sums in the same order, wherever the values live.
    """

    # Rows of the combined layouts. sgd: 0 g, 1 θ_a, 2 θ_b. momentum: 0 g, 1 v_a, 2 θ_a,
    # 3 v_b, 6 θ_b (rows 4 and 5 are never written, so never resident).
    # source[parity]: (g, [v,] θ) read; target[parity]: ([v,] θ) written.
    _LAYOUT = {
        (): dict(rows=3, places=[{"theta": 1}, {"theta": 2}],
                 source=(slice(0, 2), slice(0, 3, 2)), target=(slice(2, 3), slice(1, 2))),
        ("v",): dict(rows=7, places=[{"v": 1, "theta": 2}, {"v": 3, "theta": 6}],
                     source=(slice(0, 3), slice(0, 7, 3)), target=(slice(3, 7, 3), slice(1, 3))),
    }

    def __init__(self, network, optimizer=None):
        L, dtype = network.L, network.dtype
        self.L, self.network = L, network
        arrays = network.W[1:] + network.b[1:]
        self.shapes = [a.shape for a in arrays]
        self.n_weights = sum(w.size for w in network.W[1:])
        self.size = size = sum(a.size for a in arrays)
        slots = tuple(getattr(optimizer, "slots", ())) if optimizer is not None else ()
        layout = self._LAYOUT.get(slots) if optimizer is not None else None
        self.combined = layout is not None and size > COMBINE_ABOVE
        if self.combined:
            stride = -(-size // 16) * 16  # every row starts 64-byte aligned
            self.rows = np.empty((layout["rows"], stride), dtype=dtype)[:, :size]
            self.grad = self.rows[0]
            places = [{kind: self.rows[row] for kind, row in place.items()} for place in layout["places"]]
            self._source, self._target = layout["source"], layout["target"]
        else:
            self.grad = np.empty(size, dtype=dtype)
            places = [{"theta": np.empty(size, dtype=dtype), **{s: np.empty(size, dtype=dtype) for s in slots}}]
        self.grad[...] = 0
        grads = _views(self.grad, self.shapes)
        self.dW, self.db = [None] + grads[:L], [None] + grads[L:]
        self._places = places
        self._optimizer = optimizer
        self._names = {slot: [f"{slot}_W{l}" for l in range(1, L + 1)] + [f"{slot}_b{l}" for l in range(1, L + 1)]
                       for slot in slots}
        self._place_views = [{kind: _views(vector, self.shapes) for kind, vector in place.items()}
                             for place in places]
        for view, array in zip(self._place_views[0]["theta"], arrays):
            view[...] = array
        for slot, names in self._names.items():
            for name, view in zip(names, self._place_views[0][slot]):
                view[...] = optimizer.state[name]
        self.parity = 0
        self._bind(0)
        if optimizer is not None:
            optimizer.flat = self
        self.tmp = np.empty((2, min(size, BLOCK) if size > SPLIT_ABOVE else size), dtype=dtype)
        self.coefficients: dict = {}  # combined updates: (rule, η, …) → coefficient matrices
        self._blocks = {} if self.combined else {d: self._make_blocks(d) for d in (False, True)}

    def _bind(self, parity: int) -> None:
        """Point the network, the optimizer and this object at the vectors of ``parity``."""
        L, views = self.L, self._place_views[parity]
        self.theta = self._places[parity]["theta"]
        self.state = {slot: self._places[parity][slot] for slot in self._names}
        self.network.W[1:], self.network.b[1:] = views["theta"][:L], views["theta"][L:]
        self.W, self.b = [None] + views["theta"][:L], [None] + views["theta"][L:]
        for slot, names in self._names.items():
            for name, view in zip(names, views[slot]):
                self._optimizer.state[name] = view

    def combine(self, coefficients: np.ndarray, columns: slice) -> None:
        """([v,] θ)[:, columns] ← coefficients @ (g, [v,] θ)[:, columns], into the other place."""
        np.matmul(coefficients, self.rows[self._source[self.parity], columns],
                  out=self.rows[self._target[self.parity], columns])

    def swap(self) -> None:
        """After ``combine``: the new v and θ are the current ones."""
        self.parity ^= 1
        self._bind(self.parity)

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
        size = self.size
        bounds = [(0, self.n_weights, True), (self.n_weights, size, False)] if decay else [(0, size, False)]
        step = BLOCK if size > SPLIT_ABOVE else size
        blocks = []
        for start, stop, weight in bounds:
            for a in range(start, stop, step):
                b = slice(a, min(a + step, stop))
                state = {slot: vector[b] for slot, vector in self.state.items()}
                blocks.append(Block(self.theta[b], self.grad[b], self.tmp[0, : b.stop - b.start], weight, state))
        return blocks


class Block:
    """Views of one block of a ``Flat``: parameters p, gradients g, a temporary t, the
    optimizer state by slot, and whether these are weights (which the L2 term applies to)."""

    __slots__ = ("p", "g", "t", "weight", "state")

    def __init__(self, p, g, t, weight, state):
        self.p, self.g, self.t, self.weight, self.state = p, g, t, weight, state


# --- fused update rules (optim.py's rules, over a Flat) ------------------------------------------
#
# The caller passes scalars of the parameters' dtype. Block by block, each rule first adds the
# L2 term to the weights' gradient exactly as backward would (g + decay·W), then applies
# optim.py's rule with the same operations in the same order: the result equals the
# per-parameter update bit for bit. A combined Flat does momentum and nesterov as one matrix
# product instead: the same linear map, summed in another order (equal to rounding).


def sgd(flat: Flat, lr, decay) -> None:
    """θ ← θ − η (g + (λ/n)W)   for every parameter of ``flat``."""
    if flat.combined:  # θ' = −η g + (1 − ηc) θ
        eta = float(lr)
        _combine(flat, ("sgd", eta, float(decay)), decay, lambda c: [[-eta, 1 - eta * c]])
        return
    for b in flat.blocks(bool(decay)):
        if b.weight:
            np.add(b.g, np.multiply(b.p, decay, out=b.t), out=b.g)
        np.subtract(b.p, np.multiply(b.g, lr, out=b.t), out=b.p)


def momentum(flat: Flat, lr, mu, decay, nesterov: bool = False) -> None:
    """v ← μ v + g;  θ ← θ − η v   (nesterov: θ ← θ − η (g + μ v)), g including (λ/n)W."""
    if flat.combined:
        _momentum_combined(flat, lr, mu, decay, nesterov)
        return
    for b in flat.blocks(bool(decay)):
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


def _momentum_combined(flat: Flat, lr, mu, decay, nesterov: bool) -> None:
    """With g the data gradient and c = λ/n (0 for biases), the rules are linear in (g, v, θ):
        momentum  v' = g + μ v + c θ     θ' = θ − η v' = −η g − ημ v + (1 − ηc) θ
        nesterov  v' = g + μ v + c θ     θ' = θ − η (g + cθ + μ v')
                                            = −η(1+μ) g − ημ² v + (1 − ηc(1+μ)) θ
    """
    eta, mu = float(lr), float(mu)

    def coefficients(c):
        if nesterov:
            return [[1, mu, c], [-eta * (1 + mu), -eta * mu * mu, 1 - eta * c * (1 + mu)]]
        return [[1, mu, c], [-eta, -eta * mu, 1 - eta * c]]

    _combine(flat, ("nesterov" if nesterov else "momentum", eta, mu, float(decay)), decay, coefficients)


def _combine(flat: Flat, key, decay, coefficients) -> None:
    """Weights with the L2 coefficient c = λ/n, biases with c = 0; then the new values are
    the current ones. The coefficient matrices (in the parameters' dtype) are made once per
    learning rate."""
    made = flat.coefficients.get(key)
    if made is None:
        made = flat.coefficients[key] = tuple(np.array(coefficients(c), dtype=flat.grad.dtype)
                                              for c in (float(decay), 0.0))
    n = flat.n_weights if decay else flat.size
    flat.combine(made[0], slice(0, n))
    if n < flat.size:
        flat.combine(made[1], slice(n, flat.size))
    flat.swap()


def adam(flat: Flat, lr_c1, b1, b2, c2, eps, decay) -> None:
    """m ← β1 m + (1−β1) g;  s ← β2 s + (1−β2) g²;  θ ← θ − (η c1) m / (√s c2 + ε)."""
    one = b1.dtype.type(1)
    one_b1, one_b2 = one - b1, one - b2
    for b in flat.blocks(bool(decay)):
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
