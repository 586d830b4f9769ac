"""A multilayer perceptron and its backpropagation, written as the derivations' equations.

Notation (C. M. Bryant, "Backpropagation in Deep Neural Nets – A Derivation" (2017),
transposed to row-major batches as IDX stores them):

* Layers are numbered 0..L. Layer 0 is the input; layers 1..L have parameters.
  ``W[l]`` has shape (n_l, n_{l-1}) — W[l][j, k] is the weight TO neuron j of layer l FROM
  neuron k of layer l−1 (3Blue1Brown's w_kj is the transpose). ``b[l]`` has shape (n_l,).
  Index 0 of ``W`` and ``b`` is ``None`` so that the code's l is the derivations' l.
* A batch X is a matrix of shape (m, n_0), one example per row; targets Y are (m, n_L).
* Forward (Bryant's forward equations, row form):
      Z[l] = A[l-1] @ W[l].T + b[l]          shape (m, n_l)
      A[l] = g_l(Z[l])                       g_l: hidden activation for l < L, output for l = L
* Cost:  J = (1/m) Σ_i c(a_i, y_i)  +  (λ / 2n) Σ_l ‖W[l]‖²
  with n the number of training examples (not the batch size m); biases are not regularized.
* Backward (Bryant's boxed equations / the Einstein-notation derivation after Nielsen,
  eqs. (1)–(3), typos corrected; Nielsen's BP1–BP4):
      Δ[L]   = ∂J/∂Z[L] = vjp_output(A[L], ∂J/∂A[L])              (eq. 1, BP1; carries the 1/m)
      ∂J/∂W[l] = Δ[l].T @ A[l-1] + (λ/n) W[l]                      (eq. 3, BP4, + L2 term)
      ∂J/∂b[l] = Σ_rows Δ[l]                                       (eq. 3, BP3)
      Δ[l-1] = (Δ[l] @ W[l]) ⊙ g'_{l-1}(Z[l-1])                     (eq. 2, BP2, l > 1)
  Because J is the batch MEAN, Δ already contains 1/m; it is never divided by m again.
* Dropout (training only; inverted dropout, Srivastava et al. 2014): a hidden layer's output
  is multiplied by a mask M[l] whose entries are 1/p (kept, probability p = 1 − rate) or 0,
  so the expected activation is unchanged and evaluation needs no rescaling:
      A[l] = g_l(Z[l]) ⊙ M[l]
      Δ[l-1] = (Δ[l] @ W[l]) ⊙ M[l-1] ⊙ g'_{l-1}(Z[l-1])
  g' is written in terms of the layer output, so it is taken from the UNMASKED g(Z[l-1]):
  σ'(z) = σ(1 − σ) is not (σ m)(1 − σ m).

Inputs are scaled to [0, 1] by ``scale01`` — the one preprocessing function every command
uses — and checkpoints record it as ``PREPROCESS``.

Each line of ``forward``/``backward`` is one equation; the in-place NumPy that computes it
fast lives in ``kernels.py``. Called with a ``kernels.Workspace`` (training), they write into
its preallocated buffers and the gradients into the network's own ``grad`` vector; called
without one (the public API, gradcheck), the same kernels allocate. Either way the numbers
are the same. ``backward`` differentiates the data cost; ``gradients`` adds the L2 term
(λ/n)W with ``kernels.add_weight_decay``; the optimizer applies the same term inside its
update (sgd as Nielsen's regularized rule w → (1 − ηλ/n) w − η ∂C/∂w).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mlpcli.nn import functions as F
from mlpcli.nn import kernels as K
from mlpcli.errors import ConfigError

PREPROCESS = "scale01"
INITS = ("normal", "nielsen", "xavier", "he")


def scale01(X: np.ndarray, dtype=np.float32, out: np.ndarray | None = None) -> np.ndarray:
    """Pixels ``X`` (uint8, 0..255) → floats in [0, 1] of ``dtype``, into ``out`` if given.
    The only input preprocessing there is: training, eval, predict and gradcheck all use it."""
    return np.multiply(X, np.asarray(1 / 255, dtype=dtype), out=out, dtype=dtype)


def per_hidden_layer(value, n_hidden: int) -> tuple:
    """One value for all hidden layers, or one per hidden layer: a scalar (or a name) is
    repeated ``n_hidden`` times, a sequence is returned as a tuple (its length unchecked)."""
    if isinstance(value, (str, int, float)):
        return (value,) * n_hidden
    return tuple(value)


def _per_layer(value, n_hidden: int, key: str, what: str) -> tuple:
    values = per_hidden_layer(value, n_hidden)
    if len(values) != n_hidden:
        raise ConfigError(
            f"model.{key} lists {len(values)} {what} for {n_hidden} hidden layers",
            f"give one {what[:-1]} for all hidden layers, or exactly one per hidden layer",
        )
    return values


def hidden_activations(activation: str | Sequence[str], n_hidden: int) -> list[str]:
    """One name for all hidden layers, or one per hidden layer (Bryant's g^[l])."""
    names = list(_per_layer(activation, n_hidden, "activation", "activations"))
    for name in names:
        F.hidden(name)
    return names


def dropout_rates(dropout: float | Sequence[float], n_hidden: int) -> list[float]:
    """One dropout rate for all hidden layers, or one per hidden layer; each in [0, 1)."""
    rates = _per_layer(dropout, n_hidden, "dropout", "rates")
    for rate in rates:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ConfigError(
                f"model.dropout rate {rate!r} is not a number in [0, 1)",
                "use 0 for no dropout, e.g. 0.2 to drop a fifth of each hidden layer's units",
            )
    return [float(rate) for rate in rates]


def views(flat: np.ndarray, shapes) -> list[np.ndarray]:
    """Consecutive views of ``flat`` with the given shapes."""
    out, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(flat[start : start + size].reshape(shape))
        start += size
    return out


def dropout_masks(
    layers: Sequence[int], rates: Sequence[float], m: int, rng: np.random.Generator, dtype
) -> list | None:
    """Inverted-dropout masks for one batch of m examples: ``masks[l]`` (m, n_l) for each hidden
    layer l with a rate > 0 holds 1/p where a unit is kept (probability p = 1 − rate) and 0
    where it is dropped, so E[a ⊙ m] = a. Index 0, the output layer and rate-0 layers are None.
    Returns None when no layer drops anything (and then draws nothing from ``rng``)."""
    if not any(rates):
        return None
    masks = [None] * len(layers)
    for l, rate in enumerate(rates, start=1):
        if rate:
            keep = 1.0 - rate
            kept = rng.random((m, layers[l]), dtype=dtype) < keep
            masks[l] = kept.astype(dtype) * np.asarray(1 / keep, dtype=dtype)
    return masks


class Network:
    """Parameters W[1..L], b[1..L] and the functions of each layer.

    All parameters live in ONE vector ``theta`` (weights W1..WL first, then biases b1..bL),
    and ``W[l]``, ``b[l]`` are views of it; ``grad`` is the same layout for the gradients,
    with views ``dW[l]``, ``db[l]``. An optimizer updates ``theta`` from ``grad`` in a few
    calls over the whole vector, and whatever reads ``W[l]`` (forward, checkpoints) sees the
    update. The weights are the prefix ``theta[:n_weights]``.

    ``activations`` holds the hidden layers' names (index l−1 for layer l < L);
    ``output`` and ``cost`` name the output layer and the per-example cost.
    Constructed from per-layer arrays ``W``, ``b`` (index 0 None), which are copied into θ.
    """

    def __init__(self, W, b, activations, output, cost):
        self.layers = [W[1].shape[1]] + [w.shape[0] for w in W[1:]]
        self.L = L = len(self.layers) - 1
        arrays = list(W[1:]) + list(b[1:])
        self.shapes = [a.shape for a in arrays]
        self.n_weights = sum(w.size for w in W[1:])
        self.theta = np.empty(sum(a.size for a in arrays), dtype=W[1].dtype)
        self.grad = np.zeros_like(self.theta)
        params, grads = views(self.theta, self.shapes), views(self.grad, self.shapes)
        for view, array in zip(params, arrays):
            view[...] = array
        self.W, self.b = [None] + params[:L], [None] + params[L:]
        self.dW, self.db = [None] + grads[:L], [None] + grads[L:]
        self.activations = hidden_activations(activations, L - 1)
        F.check_pair(output, cost)
        self.output, self.cost = output, cost
        self.g = [None] + [F.hidden(a) for a in self.activations]  # g[l] for 1 ≤ l < L
        self.out = F.output(output)  # g_L

    @property
    def dtype(self):
        return self.theta.dtype

    @classmethod
    def create(
        cls,
        layers: Sequence[int],
        activation: str | Sequence[str] = "relu",
        output: str = "softmax",
        cost: str = "log_likelihood",
        init: str = "he",
        rng: np.random.Generator | None = None,
        dtype=np.float32,
    ) -> "Network":
        """A freshly initialized network. Weights are drawn in float64, then cast, so a float32
        and a float64 network made from the same seed hold the same numbers.

        init: normal — W, b ~ N(0, 1) (3Blue1Brown's "Backpropagation calculus" / Nielsen ch. 1);
              nielsen — W ~ N(0, 1/n_{l-1}), b ~ N(0, 1) (Nielsen ch. 3);
              xavier — W ~ N(0, 2/(n_{l-1} + n_l)), b = 0;  he — W ~ N(0, 2/n_{l-1}), b = 0.
        """
        if init not in INITS:
            raise ConfigError(f"unknown init {init!r}", f"choose one of: {', '.join(INITS)}")
        if len(layers) < 2:
            raise ConfigError("model.layers needs at least an input and an output size")
        rng = rng if rng is not None else np.random.default_rng(0)
        W, b = [None], [None]
        for n_in, n_out in zip(layers[:-1], layers[1:]):
            std = {
                "normal": 1.0,
                "nielsen": 1 / np.sqrt(n_in),
                "xavier": np.sqrt(2 / (n_in + n_out)),
                "he": np.sqrt(2 / n_in),
            }[init]
            W.append((rng.standard_normal((n_out, n_in)) * std).astype(dtype))
            if init in ("normal", "nielsen"):
                b.append(rng.standard_normal(n_out).astype(dtype))
            else:
                b.append(np.zeros(n_out, dtype=dtype))
        return cls(W, b, activation, output, cost)

    @classmethod
    def from_config(cls, config, rng: np.random.Generator | None = None, *, weights=None, dtype=None):
        """The network ``config.model`` and ``config.cost`` describe, in ``dtype`` (default
        ``config.training.dtype``): freshly initialized from ``rng``, or holding a copy of the
        parameters of ``weights`` (another Network, e.g. a checkpoint's)."""
        m = config.model
        dtype = np.dtype(dtype or config.training.dtype)
        if weights is None:
            return cls.create(m.layers, m.activation, m.output, config.cost, m.init, rng, dtype)
        if list(weights.layers) != list(m.layers):
            raise ConfigError(f"the weights have layers {list(weights.layers)}, but model.layers is {list(m.layers)}",
                              f"use --set model.layers={list(weights.layers)}".replace(" ", ""))
        return cls(weights.W, weights.b, m.activation, m.output, config.cost).astype(dtype, copy=False)

    def astype(self, dtype, copy: bool = True) -> "Network":
        """This network with its parameters in ``dtype``: a new network, or itself when it
        already is in ``dtype`` and ``copy`` is False (as ``numpy.ndarray.astype``)."""
        if np.dtype(dtype) == self.dtype and not copy:
            return self
        return Network([None] + [w.astype(dtype) for w in self.W[1:]], [None] + [b.astype(dtype) for b in self.b[1:]],
                       self.activations, self.output, self.cost)

    # --- forward --------------------------------------------------------------------------

    def forward(self, X: np.ndarray, masks: list | None = None, ws=None) -> tuple[list, list]:
        """Z[l], A[l] for every layer (A[0] = X; Z[0] is None), X of shape (m, n_0).

        ``masks`` (training with dropout only; see ``dropout_masks``): A[l] = g_l(Z[l]) ⊙ M[l]
        for each hidden layer whose ``masks[l]`` is not None.
        ``ws`` (training): a ``kernels.Workspace`` for m rows; Z and A are its buffers, which
        the next call overwrites.
        """
        L = self.L
        buf = ws or K.Fresh(L)
        Z, A = [None] * (L + 1), [X] + [None] * L
        for l in range(1, L + 1):
            Z[l] = K.affine(A[l - 1], self.W[l], self.b[l], out=buf.Z[l])  # z[l] = W[l] a[l-1] + b[l]
            g = self.out if l == L else self.g[l]
            A[l] = g.fn(Z[l], out=buf.A[l], tmp=buf.row)  # a[l] = g_l(z[l])
            if masks is not None and masks[l] is not None:
                # a[l] ⊙ m[l]   (inverted dropout; without a workspace a new array, as g may return Z)
                A[l] = np.multiply(A[l], masks[l], out=buf.A[l])
        return Z, A

    # --- cost -----------------------------------------------------------------------------

    def data_cost(self, AL: np.ndarray, Y: np.ndarray) -> float:
        """(1/m) Σ_i c(a_i, y_i): the batch-mean cost without the L2 term."""
        return float(F.COSTS[self.cost].fn(AL, Y).mean(dtype=np.float64))

    def l2_penalty(self, lam: float, n: int) -> float:
        """(λ / 2n) Σ_l ‖W[l]‖², n = number of training examples."""
        if lam == 0:
            return 0.0
        return lam / (2 * n) * sum(float(np.sum(w.astype(np.float64) ** 2)) for w in self.W[1:])

    def objective(
        self, X: np.ndarray, Y: np.ndarray, lam: float = 0.0, n: int = 1, masks: list | None = None
    ) -> float:
        """J = data cost + L2 term, the function ``backward`` differentiates (for fixed masks)."""
        return self.data_cost(self.forward(X, masks)[1][-1], Y) + self.l2_penalty(lam, n)

    # --- backward -------------------------------------------------------------------------

    def backward(self, Z: list, A: list, Y: np.ndarray, masks=None, ws=None):
        """∂C/∂W[l] and ∂C/∂b[l] of the data cost C = (1/m) Σ c(a, y), l = 1..L (index 0 is
        None), from ``forward``'s Z and A (and the same dropout ``masks`` that forward was
        given). With a ``kernels.Workspace`` ``ws`` the gradients are the network's own
        ``dW``/``db`` — views of ``grad``, which the optimizer reads; without one they are new
        arrays. The L2 term is not here: see ``gradients``."""
        L, W = self.L, self.W
        buf = ws or K.Fresh(L)
        dW, db = [None] * (L + 1), [None] * (L + 1)
        # Δ[L] = ∂C/∂Z[L]   (eq. 1, BP1)
        delta = F.output_delta(self.output, self.cost, A[L], Y, out=K.buffer(buf.delta[L], A[L]))
        for l in range(L, 0, -1):
            dW[l] = np.matmul(delta.T, A[l - 1], out=buf.dW[l])  # ∂C/∂W[l] = Δ[l]ᵀ A[l-1]   (eq. 3, BP4)
            db[l] = K.column_sums(delta, buf.ones, out=buf.db[l])  # ∂C/∂b[l] = Σ_rows Δ[l]   (eq. 3, BP3)
            if l > 1:
                # Δ[l-1] = (Δ[l] W[l]) ⊙ g'_{l-1}(z[l-1])   (eq. 2, BP2: W^{l+1}, σ' — not σ)
                delta = K.matmul(delta, W[l], out=buf.delta[l - 1])
                g, M = self.g[l - 1], masks[l - 1] if masks is not None else None
                if M is None:
                    g.times_derivative(delta, A[l - 1], tmp=buf.tmp[l - 1])
                else:
                    # dropout: A[l-1] = g(z) ⊙ M, so Δ passes through M and g' needs g(z) itself
                    np.multiply(delta, M, out=delta)
                    g.times_derivative(delta, g.fn(Z[l - 1]), tmp=buf.tmp[l - 1])
        return dW, db

    def gradients(
        self, X: np.ndarray, Y: np.ndarray, lam: float = 0.0, n: int = 1, masks: list | None = None
    ):
        """∂J/∂W[l], ∂J/∂b[l] of the whole cost J = C + (λ/2n) Σ‖W‖² (what ``objective``
        computes and gradcheck checks), for fixed dropout ``masks``:

            ∂J/∂W[l] = ∂C/∂W[l] + (λ/n) W[l]        ∂J/∂b[l] = ∂C/∂b[l]

        Training adds the same term, with the same kernel, inside the optimizer's fused
        update (``Optimizer.step(η, decay=λ/n)``), where it costs no extra pass over memory.
        """
        dW, db = self.backward(*self.forward(X, masks), Y, masks)
        if lam:
            for l in range(1, self.L + 1):
                K.add_weight_decay(dW[l], self.W[l], self.dtype.type(lam / n))  # + (λ/n) W[l]   (L2; n = training-set size)
        return dW, db

    # --- parameters as named arrays (checkpoints) -------------------------------------------

    def parameters(self) -> dict[str, np.ndarray]:
        """{'W1': …, 'b1': …, …, 'WL': …, 'bL': …} — the names checkpoints use."""
        params = {}
        for l in range(1, self.L + 1):
            params[f"W{l}"], params[f"b{l}"] = self.W[l], self.b[l]
        return params
