"""Training-time input augmentation: random translations and horizontal flips.

Each training batch (uint8 pixels, one 28×28 image per row, before ``scale01``) is
transformed image by image with its own random draw — but without a Python loop over
images: every output pixel is one gather from a zero-padded copy of the batch,

    out[i, r, c] = padded[i, r − dy_i + k, c' − dx_i + k],   c' = 27 − c if image i is flipped
                                                             else c,

so translating by (dy_i, dx_i) ∈ [−k, k]² fills the uncovered border with zeros (the
background of all three data sets) and ink pushed past the edge is lost. The draws come from
the run's seeded generator, so an augmented run is reproducible and resumes exactly.
Augmentation is for training batches only; validation, test, eval and predict never see it.

A horizontal flip keeps the label of a shirt or a shoe, not of a digit or a character, so
the config refuses ``flip`` for mnist and kmnist.
"""

from __future__ import annotations

import functools

import numpy as np

SIDE = 28  # MNIST-format images are 28×28, stored row-major as 784 columns


def augment(X: np.ndarray, rng: np.random.Generator, shift: int = 0, flip: bool = False):
    """A randomly translated (by up to ±``shift`` pixels each way) and, with ``flip``,
    randomly mirrored (probability ½) copy of the batch X (m, 784). Labels are unchanged.

    With ``shift=0`` and no ``flip`` it returns X itself and draws nothing from ``rng``.
    Draw order (fixed, for reproducibility): dy and dx for every image, then the flips.
    """
    if not shift and not flip:
        return X
    m = X.shape[0]
    dy, dx = rng.integers(-shift, shift + 1, size=(2, m)) if shift else np.zeros((2, m), int)
    flipped = rng.random(m) < 0.5 if flip else np.zeros(m, dtype=bool)
    return translate(X, dy, dx, flipped)


def translate(X: np.ndarray, dy: np.ndarray, dx: np.ndarray, flipped: np.ndarray) -> np.ndarray:
    """Image i of X (m, 784) moved down by ``dy[i]`` and right by ``dx[i]`` pixels (negative:
    up / left) with zero fill, then mirrored left–right if ``flipped[i]``."""
    m = X.shape[0]
    k = int(max(np.abs(dy).max(initial=0), np.abs(dx).max(initial=0)))
    P = SIDE + 2 * k
    padded = np.zeros((m, P, P), dtype=X.dtype)
    padded[:, k : k + SIDE, k : k + SIDE] = X.reshape(m, SIDE, SIDE)
    # Flat index into ``padded`` of each output pixel: one of two pixel templates (plain or
    # mirrored) plus a per-image offset, so the whole batch is one np.take.
    index = _templates(P).take(flipped.astype(np.intp), axis=0)
    index += (np.arange(m) * (P * P) + (k - dy) * P + (k - dx))[:, None]
    return np.take(padded.reshape(-1), index)


@functools.cache
def _templates(P: int) -> np.ndarray:
    """Row 0: flat index of pixel (r, c) in a P×P padded image; row 1: of (r, 27 − c)."""
    r, c = np.divmod(np.arange(SIDE * SIDE), SIDE)
    templates = np.stack([r * P + c, r * P + (SIDE - 1 - c)]).astype(np.intp)
    templates.flags.writeable = False
    return templates
