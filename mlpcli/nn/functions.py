"""Activations, output layers and costs, each registered once by name.

Three tables are the only place names are looked up (scikit-learn's ``ACTIVATIONS`` /
``DERIVATIVES`` idea):

* ``HIDDEN``  — hidden-layer activations g, each an elementwise value ``fn(Z)`` and a
  derivative ``derivative(A)`` written in terms of the layer's OUTPUT A = g(Z)
  (σ' = a(1 − a), tanh' = 1 − a², relu' = [a > 0]), so backprop needs only stored activations;
  ``times_derivative(D, A)`` (Δ ⊙= g'(z)) is built from ``derivative``.
* ``OUTPUTS`` — output-layer functions, each a value ``fn(Z)`` and a vector-Jacobian product
  ``vjp(A, G) = Δ`` that maps G = ∂J/∂A to Δ = ∂J/∂Z.  Softmax mixes its inputs, so it has no
  elementwise derivative: its vjp is A ⊙ (G − Σ_j G_j A_j).
* ``COSTS``   — per-example costs c(a, y) (one value per row) and their gradients ∂c/∂a.

Valid (output, cost) pairs are listed in ``VALID_PAIRS``; two of them have an output error
that simplifies analytically (and stably) to Δ[L] = (A[L] − Y)/m — see ``output_delta``.

Every function works on float32 and float64 arrays without changing their dtype, never
overflows for |z| up to 1e4, and never takes log(0). Values and derivatives take ``out=``
(and ``tmp=``) buffers so the training loop allocates nothing; that in-place form is the only
implementation, so training, ``gradcheck`` and the tests all run the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from mlpcli.errors import ConfigError

Array = np.ndarray

LEAKY_RELU_SLOPE = 0.01


class Constants:
    """The numbers the in-place forms use, as read-only 0-d arrays of one dtype: keeps float32
    float32, and a ufunc takes a 0-d array faster than a scalar."""

    def __init__(self, dtype):
        def c(value):
            a = np.array(value, dtype=dtype)
            a.flags.writeable = False
            return a

        self.zero, self.half, self.one, self.slope = c(0), c(0.5), c(1), c(LEAKY_RELU_SLOPE)
        self.dtype, self._by_value = dtype, {}

    def __call__(self, value) -> np.ndarray:
        """Any other constant (e.g. a batch size), made once."""
        c = self._by_value.get(value)
        if c is None:
            c = self._by_value[value] = np.array(value, dtype=self.dtype)
            c.flags.writeable = False
        return c


_CONSTANTS: dict = {}


def constants(like: Array) -> Constants:
    """The ``Constants`` of ``like``'s dtype (made once per dtype)."""
    k = _CONSTANTS.get(like.dtype)
    if k is None:
        k = _CONSTANTS[like.dtype] = Constants(like.dtype)
    return k


@dataclass(frozen=True)
class Activation:
    """A hidden-layer activation g: ``fn(Z, out=None, tmp=None) = g(Z)``;
    ``derivative(A, out=None) = g'(Z)`` from A = g(Z).

    ``out`` (optional) is where the result is written; ``fn`` may return Z itself when no
    ``out`` is given (identity). The backward step Δ ⊙= g'(z) is ``times_derivative``, built
    from ``derivative`` alone, so each function is defined once."""

    name: str
    fn: Callable[..., Array]
    derivative: Callable[..., Array]

    def times_derivative(self, D: Array, A: Array, tmp: Array | None = None) -> Array:
        """D ⊙= g'(z) in place, from A = g(z); ``tmp`` (shaped like A) holds g'(z)."""
        return np.multiply(D, self.derivative(A, out=tmp), out=D)


@dataclass(frozen=True)
class Output:
    """An output layer: ``fn(Z, out=None, tmp=None) = A[L]`` (``tmp``: an (m, 1) row buffer);
    ``vjp(A, G)`` = ∂J/∂Z[L] given G = ∂J/∂A[L]."""

    name: str
    fn: Callable[..., Array]
    vjp: Callable[[Array, Array], Array]


@dataclass(frozen=True)
class Cost:
    """A per-example cost: ``fn(A, Y)`` has shape (m,); ``gradient(A, Y)`` = ∂c/∂a, shape (m, n_L)."""

    name: str
    fn: Callable[[Array, Array], Array]
    gradient: Callable[[Array, Array], Array]


# --- elementwise functions ----------------------------------------------------------------
#
# Each takes ``out=`` (and ``tmp=``) so the training loop reuses buffers; without them each
# allocates. Scalars are 0-d arrays of the input's dtype (float32 stays float32).


def sigmoid(Z: Array, out=None, tmp=None) -> Array:
    # σ(z) = ½(1 + tanh(z/2)) = 0.5 * (1 + tanh(0.5 * z)): never overflows (exp(−z) would for
    # z < −88 in float32) and float32 tanh is much faster than float32 exp on saturated inputs.
    k = constants(Z)
    A = np.multiply(Z, k.half, out=out)
    np.tanh(A, out=A)
    np.add(A, k.one, out=A)
    return np.multiply(A, k.half, out=A)


def relu(Z: Array, out=None, tmp=None) -> Array:
    return np.maximum(Z, constants(Z).zero, out=out)


def tanh(Z: Array, out=None, tmp=None) -> Array:
    return np.tanh(Z, out=out)


def leaky_relu(Z: Array, out=None, tmp=None) -> Array:
    # max(z, 0.01 z) is z for z > 0 and 0.01 z otherwise; ``out`` may not be Z
    A = np.multiply(Z, constants(Z).slope, out=out)
    return np.maximum(Z, A, out=A)


def identity(Z: Array, out=None, tmp=None) -> Array:
    if out is None:
        return Z
    np.copyto(out, Z)
    return out


def softmax(Z: Array, out=None, tmp=None) -> Array:
    # exp(z − max_j z) / Σ_j exp(z − max_j z), row by row: shifting each row by its maximum
    # changes nothing mathematically and keeps exp ≤ 1. ``tmp``: an (m, 1) buffer; ``out`` may not be Z.
    row = np.max(Z, axis=1, keepdims=True, out=tmp)
    E = np.subtract(Z, row, out=out)
    np.exp(E, out=E)
    np.sum(E, axis=1, keepdims=True, out=row)
    return np.divide(E, row, out=E)


# --- derivatives from the output A = g(z) ---------------------------------------------------


def sigmoid_derivative(A: Array, out=None) -> Array:
    d = np.subtract(constants(A).one, A, out=out)  # σ' = σ(1 − σ) = a(1 − a)
    return np.multiply(A, d, out=d)


def tanh_derivative(A: Array, out=None) -> Array:
    d = np.multiply(A, A, out=out)  # tanh' = 1 − tanh² = 1 − a²
    return np.subtract(constants(A).one, d, out=d)


def relu_derivative(A: Array, out=None) -> Array:
    # relu' = [z > 0] = [a > 0]
    return (A > 0).astype(A.dtype) if out is None else np.greater(A, constants(A).zero, out=out)


def leaky_relu_derivative(A: Array, out=None) -> Array:
    # a > 0 exactly when z > 0, so the output decides the slope
    d = np.where(A > 0, 1, LEAKY_RELU_SLOPE).astype(A.dtype)
    if out is None:
        return d
    np.copyto(out, d)
    return out


def identity_derivative(A: Array, out=None) -> Array:
    if out is None:
        return np.ones_like(A)
    out.fill(1)
    return out


HIDDEN: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("sigmoid", sigmoid, sigmoid_derivative),
        Activation("tanh", tanh, tanh_derivative),
        Activation("relu", relu, relu_derivative),
        Activation("leaky_relu", leaky_relu, leaky_relu_derivative),
        Activation("identity", identity, identity_derivative),
    )
}

OUTPUTS: dict[str, Output] = {
    o.name: o
    for o in (
        Output("sigmoid", sigmoid, lambda A, G: G * A * (1 - A)),
        # softmax: ∂a_j/∂z_i = a_j(δ_ij − a_i)  ⇒  Δ_i = a_i (G_i − Σ_j G_j a_j)
        Output("softmax", softmax, lambda A, G: A * (G - (G * A).sum(axis=1, keepdims=True))),
        Output("identity", identity, lambda A, G: G),
    )
}


def _clip_probability(A: Array) -> Array:
    # Keep log() finite: probabilities that rounded to exactly 0 or 1 are nudged inside.
    eps = np.finfo(A.dtype).eps
    return np.clip(A, eps, 1 - eps)


COSTS: dict[str, Cost] = {
    c.name: c
    for c in (
        # 3Blue1Brown's "Backpropagation calculus": c = Σ_j (y_j − a_j)², no ½, so ∂c/∂a = 2(a − y)
        Cost("quadratic", lambda A, Y: ((Y - A) ** 2).sum(axis=1), lambda A, Y: 2 * (A - Y)),
        # c = −Σ_j [y ln a + (1 − y) ln(1 − a)]
        Cost(
            "cross_entropy",
            lambda A, Y: -(
                Y * np.log(_clip_probability(A)) + (1 - Y) * np.log(1 - _clip_probability(A))
            ).sum(axis=1),
            lambda A, Y: (A - Y) / (_clip_probability(A) * (1 - _clip_probability(A))),
        ),
        # c = −ln a_y  (Y one-hot, so −Σ_j y_j ln a_j)
        Cost(
            "log_likelihood",
            lambda A, Y: -(Y * np.log(_clip_probability(A))).sum(axis=1),
            lambda A, Y: -Y / _clip_probability(A),
        ),
    )
}

# (output, cost) pairs that make sense; any other pair is a configuration error.
VALID_PAIRS: tuple[tuple[str, str], ...] = (
    ("sigmoid", "quadratic"),
    ("softmax", "quadratic"),
    ("identity", "quadratic"),
    ("sigmoid", "cross_entropy"),
    ("softmax", "log_likelihood"),
)

# Pairs whose output error simplifies to Δ[L] = (A − Y)/m: the σ'(z) or softmax Jacobian
# cancels against the cost's denominator (Nielsen ch. 3), which is also the stable form.
SIMPLIFIED_DELTA: frozenset[tuple[str, str]] = frozenset(
    {("sigmoid", "cross_entropy"), ("softmax", "log_likelihood")}
)


def _lookup(table: dict, name: str, what: str):
    try:
        return table[name]
    except (KeyError, TypeError):
        valid = ", ".join(table)
        raise ConfigError(f"unknown {what} {name!r}", f"choose one of: {valid}") from None


def hidden(name: str) -> Activation:
    return _lookup(HIDDEN, name, "activation")


def output(name: str) -> Output:
    return _lookup(OUTPUTS, name, "output layer")


def cost(name: str) -> Cost:
    return _lookup(COSTS, name, "cost")


def check_pair(output_name: str, cost_name: str) -> None:
    """Raise ConfigError unless (output, cost) is a valid pair; the message lists them all."""
    output(output_name)
    cost(cost_name)
    if (output_name, cost_name) not in VALID_PAIRS:
        valid = ", ".join(f"{o}+{c}" for o, c in VALID_PAIRS)
        raise ConfigError(
            f"output {output_name!r} cannot be trained with cost {cost_name!r}",
            f"valid (output+cost) pairs: {valid}",
        )


def output_delta(output_name: str, cost_name: str, A: Array, Y: Array, out: Array | None = None) -> Array:
    """Δ[L] = ∂J/∂Z[L] for J = (1/m) Σ_rows c(a, y)  (Bryant's and the
    Einstein-notation derivation's eq. (1), corrected; Nielsen's BP1), into ``out`` if given.

    The 1/m of the batch mean lives here, once; backprop never divides by m again.
    """
    m = np.asarray(A.shape[0], dtype=A.dtype)
    if (output_name, cost_name) in SIMPLIFIED_DELTA:
        D = np.subtract(A, Y, out=out)  # Δ = (A − Y)/m, in place
        return np.divide(D, m, out=D)
    G = COSTS[cost_name].gradient(A, Y) / m  # ∂J/∂A[L]
    D = OUTPUTS[output_name].vjp(A, G)
    if out is None:
        return D
    np.copyto(out, D)
    return out


def one_hot(labels: Array, n_classes: int = 10, dtype=np.float32) -> Array:
    """Targets Y (m, n_classes) with a single 1 per row."""
    Y = np.zeros((len(labels), n_classes), dtype=dtype)
    Y[np.arange(len(labels)), labels] = 1
    return Y
