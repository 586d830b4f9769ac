"""The one inference path: uint8 pixels → the network's outputs, probabilities, labels.

``eval`` (``evaluate.evaluate``), ``predict`` (``predict.predict_files`` / ``predict_index``),
``eval --plot`` (``plot.eval_pictures``) and the public API (``mlpcli.predict_labels``,
``mlpcli.predict_probabilities``) all go through this module, so every command sees the same
numbers for the same pixels.

Pixels are scaled with ``network.scale01`` — the same preprocessing as training — to the
network's dtype batch by batch, so memory stays flat for any number of examples; each batch is
one plain ``network.forward`` (no dropout), with floating-point errors ignored (an overflow
shows as inf/NaN in the results, never as a NumPy warning). A batch's output rows do not depend on the batch
size beyond floating-point rounding in the matrix products.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from mlpcli.errors import DataError
from mlpcli.nn.network import Network, scale01

BATCH_SIZE = 1000


def _rows(network: Network, X_uint8: np.ndarray) -> np.ndarray:
    """X as (N, n_0) rows: one flat image (n_0,) or images (N, 28, 28) are reshaped."""
    X = np.asarray(X_uint8)
    n_in = network.layers[0]
    if X.ndim == 2 and X.shape[1] == n_in:
        return X
    if not any(int(np.prod(X.shape[k:])) == n_in for k in range(X.ndim)):
        raise DataError(f"pixels of shape {X.shape} do not fit the network's {n_in} inputs",
                        f"give rows of {n_in} uint8 pixels")
    return X.reshape(-1, n_in)


def batches(
    network: Network, X_uint8: np.ndarray, batch_size: int = BATCH_SIZE
) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows, A[L]) for consecutive batches of at most ``batch_size`` rows of uint8 pixels:
    ``rows`` is the slice of X the batch covers, A[L] its (len, n_L) outputs (a fresh array)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    X = _rows(network, X_uint8)
    for start in range(0, X.shape[0], batch_size):
        rows = slice(start, min(start + batch_size, X.shape[0]))
        with quiet_float_errors():  # not around the yield: the caller's code keeps its own state
            AL = network.forward(scale01(X[rows], network.dtype))[1][-1]
        yield rows, AL


def quiet_float_errors():
    """``np.errstate`` with every floating-point error ignored: a network with huge weights
    overflows to inf or NaN, which the results show (JSON null); NumPy's RuntimeWarnings would
    only be noise on the user's terminal."""
    return np.errstate(all="ignore")


def outputs(network: Network, X_uint8: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """The output layer's activations A[L], shape (N, n_L), in the network's dtype, for uint8
    pixels ``X_uint8`` (N, n_0), computed ``batch_size`` rows at a time. With a softmax
    output these are the class probabilities."""
    X = _rows(network, X_uint8)
    out = np.empty((X.shape[0], network.layers[-1]), dtype=network.dtype)
    for rows, AL in batches(network, X, batch_size):
        out[rows] = AL
    return out


def as_probabilities(outputs: np.ndarray, output: str) -> np.ndarray:
    """Softmax outputs are probabilities already; other outputs (sigmoid, identity) are
    clipped at 0 and normalized to sum to 1 — a ranking score, not a calibrated probability.
    Always float64."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if output == "softmax":
        return outputs
    scores = np.clip(outputs, 0, None)
    total = scores.sum(axis=-1, keepdims=True)
    uniform = np.full_like(scores, 1.0 / scores.shape[-1])
    return np.divide(scores, total, out=uniform, where=total > 0)


def probabilities(network: Network, X_uint8: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Class probabilities (N, n_L), float64: ``as_probabilities(outputs(...), network.output)``."""
    return as_probabilities(outputs(network, X_uint8, batch_size), network.output)


def labels(network: Network, X_uint8: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """The class ``network`` predicts per row of uint8 pixels ``X_uint8`` (N, n_0): argmax_j A[L]_j (the
    class ``evaluate`` counts), computed ``batch_size`` rows at a time."""
    return outputs(network, X_uint8, batch_size).argmax(axis=1)
