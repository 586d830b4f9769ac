"""In-place kernels for the training hot loop — the one place where speed beats brevity.

``network.py`` says WHAT is computed, as the derivations' equations; the functions here say
HOW it is computed fast:

* into preallocated buffers (``out=``), so a training step allocates nothing;
* in the network's dtype, with scalars of that dtype, so float32 training stays float32;
* in as few NumPy calls and passes over memory as the math allows (each call costs about half
  a microsecond of overhead, which at batch size 10 is most of a step);
* with the same floating-point operations, in the same order, as the readable definitions in
  ``functions.py`` — so the fast path gives the same numbers bit for bit
  (``tests/test_kernels.py`` checks every kernel against its definition).

Every kernel takes ``out=None`` (and temporaries ``tmp=None``) and then allocates, which is
what ``Network.forward``/``backward`` do when they are called without a ``Workspace`` (the
public API, ``gradcheck``); training passes a ``Workspace`` and the same code reuses buffers.

Activations, their derivatives and Δ[L] are not here: each is defined once, already in place,
in ``functions.py`` (``HIDDEN``/``OUTPUTS``, ``output_delta``), and ``network.py`` calls them
directly. The update rules are in ``optim.py``, over the network's flat parameter vector.
"""

from __future__ import annotations

import numpy as np

from mlpcli.nn import functions as F

# Elements per block of a blocked elementwise pass (the L2 term here, the update rules in
# optim.py): a few float32 operand blocks of 32 Ki elements stay inside a 1 MiB L2 cache, so
# each block is read from main memory once for all the passes over it instead of once per
# pass. Vectors of up to SPLIT_ABOVE elements fit in the cache whole and are not split.
BLOCK = 32768
SPLIT_ABOVE = 262144


def blocks(size: int, start: int = 0) -> list[slice]:
    """Slices covering range(start, size): BLOCK entries each where the range is longer than
    SPLIT_ABOVE, else one."""
    step = BLOCK if size - start > SPLIT_ABOVE else max(size - start, 1)
    return [slice(a, min(a + step, size)) for a in range(start, size, step)]


# The numbers the kernels use, as read-only 0-d arrays of one dtype (functions.Constants).
_k = F.constants


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


def buffer(out: np.ndarray | None, like: np.ndarray) -> np.ndarray:
    """``out``, or a new array shaped and laid out as a Workspace's buffer for ``like``."""
    return _new(*like.shape, like) if out is None else out


def affine(A_prev: np.ndarray, W: np.ndarray, b: np.ndarray, out=None) -> np.ndarray:
    """Z = A_prev @ Wᵀ + b   (z[l] = W[l] a[l-1] + b[l], row form): one GEMM, one add."""
    Z = np.matmul(A_prev, W.T, out=_new(A_prev.shape[0], W.shape[0], W) if out is None else out)
    return np.add(Z, b, out=Z)


def matmul(A: np.ndarray, B: np.ndarray, out=None) -> np.ndarray:
    """A @ B into ``out``, or into a new array laid out as a Workspace's would be."""
    return np.matmul(A, B, out=_new(A.shape[0], B.shape[1], A) if out is None else out)


# --- backward ---------------------------------------------------------------------------------


def column_sums(D: np.ndarray, ones: np.ndarray | None = None, out=None) -> np.ndarray:
    """Σ_rows D as one matrix-vector product 1ᵀD (faster than D.sum(axis=0) for short batches)."""
    if ones is None:
        ones = np.ones(D.shape[0], dtype=D.dtype)
    return np.matmul(ones, D, out=out)


def add_weight_decay(dW: np.ndarray, W: np.ndarray, decay, tmp=None) -> np.ndarray:
    """dW += decay · W   (the L2 term (λ/n) W of ∂J/∂W), through ``tmp`` in pieces of its size.
    ``decay`` is a scalar of W's dtype."""
    if tmp is None or tmp.size >= W.size:  # one piece (the optimizer's blocks always are)
        t = None if tmp is None else tmp[: W.size].reshape(W.shape)
        return np.add(dW, np.multiply(W, decay, out=t), out=dW)
    g, w = dW.reshape(-1), W.reshape(-1)
    for a in range(0, w.size, tmp.size):
        b = slice(a, min(a + tmp.size, w.size))
        np.add(g[b], np.multiply(w[b], decay, out=tmp[: b.stop - b.start]), out=g[b])
    return dW


# --- buffers for one batch size ------------------------------------------------------------------


class Workspace:
    """Preallocated per-layer arrays for batches of ``m`` rows of ``network``: Z[l], A[l],
    Δ[l] and a temporary for layers 1..L (index 0 unused), a row vector for softmax and a
    vector of ones for bias gradients. ``dW``/``db`` are where
    ``backward`` writes gradients: the network's own views of its ``grad`` vector.

    ``forward``/``backward`` called with a workspace return lists of these same arrays, which
    the next call overwrites."""

    def __init__(self, network, m: int):
        dtype, sizes, L = network.dtype, network.layers, network.L
        self.m, self.L = m, L

        def per_layer():  # laid out as _new lays out results
            return [None] + [np.empty((m, n), dtype=dtype, order=_order(m)) for n in sizes[1:]]

        self.Z, self.A, self.delta, self.tmp = per_layer(), per_layer(), per_layer(), per_layer()
        self.row = np.empty((m, 1), dtype=dtype)
        self.ones = np.ones(m, dtype=dtype)
        self.dW, self.db = network.dW, network.db


class Fresh:
    """The workspace of a call without one: every buffer is None, so every kernel allocates."""

    row = ones = None

    def __init__(self, L: int):
        self.Z = self.A = self.delta = self.tmp = self.dW = self.db = [None] * (L + 1)
