"""Training-time input augmentation: shifts and flips, affine and elastic distortions.

Each training chunk (uint8 pixels, one 28×28 image per row, before ``scale01``) is
transformed image by image with its own random draw — but without a Python loop over images.

**Shifts and flips only** (``shift``, ``flip``): every output pixel is one gather from a
zero-padded copy of the batch,

    out[i, r, c] = padded[i, r − dy_i + k, c' − dx_i + k],   c' = 27 − c if image i is flipped
                                                             else c,

so translating by integers (dy_i, dx_i) ∈ [−k, k]² fills the uncovered border with zeros (the
background of all three data sets) and ink pushed past the edge is lost.

**Distortions** (any of ``rotate``, ``scale``, ``shear``, ``elastic``; Simard, Steinkraus &
Platt, "Best Practices for Convolutional Neural Networks Applied to Visual Document Analysis",
2003): each output pixel p (row, column, measured from the image centre) is read from the
source position

    s = A_i p + t_i + α · (G * U_i)(p)

by bilinear interpolation (zero outside the image), where

* A_i = R(θ_i) · H(φ_i) / σ_i — rotation by θ_i ~ U(−rotate, rotate) degrees, shear by
  φ_i ~ U(−shear, shear) degrees, scaling by σ_i ~ U(1 − scale, 1 + scale) (the inverse map,
  so the ink grows by σ_i); a flipped image mirrors p first;
* t_i ~ U(−shift, shift)² pixels, continuous;
* U_i: two fields of independent U(−1, 1) numbers, one per pixel and axis (drawn as random
  bytes, to within 1/256), smoothed by a Gaussian G of σ = ``elastic.sigma`` pixels (one
  matrix product per side: G U Gᵀ) and scaled by α = ``elastic.alpha`` — Simard's elastic
  distortion.

The result is rounded back to uint8. All draws come from the run's seeded generator, in a
fixed order, so an augmented run is reproducible and resumes exactly. Augmentation is for
training batches only; validation, test, eval and predict never see it.

A horizontal flip keeps the label of a shirt or a shoe, not of a digit or a character, so
the config refuses ``flip`` for mnist and kmnist.
"""

from __future__ import annotations

import functools

import numpy as np

SIDE = 28  # MNIST-format images are 28×28, stored row-major as 784 columns
CENTRE = (SIDE - 1) / 2
BLOCK = 32  # images distorted at a time: each working array (32 × 784 float32) is 100 kB


def clean_epochs(spec, epochs: int) -> int:
    """How many of a run's last ``epochs`` train on the images as they are: ``spec``'s
    clean_fraction of them, rounded half up (0.1 of 65 epochs: the last 7)."""
    return int(getattr(spec, "clean_fraction", 0.0) * epochs + 0.5)


def augment(X: np.ndarray, rng: np.random.Generator, spec) -> np.ndarray:
    """A randomly transformed copy of the batch X (m, 784) uint8, as ``spec`` (a
    ``config.AugmentConfig``: shift, flip, rotate, scale, shear, elastic) says. Labels are
    unchanged. With nothing to do it returns X itself and draws nothing from ``rng``.

    Draw order (fixed, for reproducibility). Shifts and flips only: dy and dx for every image,
    then the flips. Distortions: rotation, shear, scale, ty, tx for every image (each
    (m,) array drawn only when its range is not 0), then the flips, then the elastic fields
    (BLOCK images at a time).
    """
    shift, flip = spec.shift, spec.flip
    elastic = getattr(spec, "elastic", None)
    distorted = any(getattr(spec, name, 0) for name in ("rotate", "scale", "shear")) or bool(elastic)
    if not distorted:
        if not shift and not flip:
            return X
        m = X.shape[0]
        dy, dx = rng.integers(-shift, shift + 1, size=(2, m)) if shift else np.zeros((2, m), int)
        flipped = rng.random(m) < 0.5 if flip else np.zeros(m, dtype=bool)
        return translate(X, dy, dx, flipped)
    m = X.shape[0]
    A, t = random_affine(m, rng, spec)
    flipped = rng.random(m) < 0.5 if flip else np.zeros(m, dtype=bool)
    out = np.empty_like(X)
    # Block by block (BLOCK images): a block's positions, weights and neighbours stay in the
    # CPU's cache, 2.3× faster than whole 4,096-image chunks (bench/augment.py). Each block
    # draws its own elastic fields, in order, after the chunk's affine maps and flips.
    for s in range(0, m, BLOCK):
        e = min(m, s + BLOCK)
        field = elastic_field(e - s, rng, elastic.alpha, elastic.sigma) if elastic else None
        warp(X[s:e], A[s:e], t[s:e], flipped[s:e], field, out[s:e])
    return out


# --- integer shifts and flips -------------------------------------------------------------------


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


# --- distortions ------------------------------------------------------------------------------


def random_affine(m: int, rng: np.random.Generator, spec) -> tuple[np.ndarray, np.ndarray]:
    """A (m, 2, 2) and t (m, 2) of ``warp`` for m images: rotation, shear and scale drawn in
    the ranges of ``spec`` (degrees; scale as a fraction), translation U(−shift, shift)²."""

    def uniform(half):  # drawn only when the range is not 0, so the draws stay in order
        return rng.uniform(-half, half, m) if half else np.zeros(m)

    theta, phi = np.radians(uniform(spec.rotate)), np.radians(uniform(spec.shear))
    sigma = 1 + uniform(spec.scale)
    ty, tx = uniform(spec.shift), uniform(spec.shift)
    cos, sin, tan = np.cos(theta), np.sin(theta), np.tan(phi)
    # R(θ) H(φ) / σ, in (row, column) coordinates; H shears columns along rows
    A = np.stack([np.stack([cos, cos * tan - sin]), np.stack([sin, sin * tan + cos])]).transpose(2, 0, 1)
    return A / sigma[:, None, None], np.stack([ty, tx], axis=1)


@functools.cache
def gaussian_matrix(sigma: float) -> np.ndarray:
    """G (28, 28), symmetric: f @ G smooths each row of f by a Gaussian of ``sigma`` pixels,
    zero beyond the image (row j of G holds the kernel's weights at the image's pixels, the
    whole kernel summing to 1)."""
    offsets = np.arange(SIDE)[:, None] - np.arange(SIDE)[None, :]
    G = np.exp(-(offsets**2) / (2 * sigma**2))
    G /= np.exp(-(np.arange(-4 * SIDE, 4 * SIDE + 1) ** 2) / (2 * sigma**2)).sum()  # the full kernel's sum
    G = G.astype(np.float32)
    G.flags.writeable = False
    return G


def elastic_field(m: int, rng: np.random.Generator, alpha: float, sigma: float) -> np.ndarray:
    """Displacements (m, 2, 28, 28) in pixels: α · G U Gᵀ with U ~ U(−1, 1) per pixel and axis.

    Each number of U is one random byte b ∈ {−128, …, 127} read as (b + ½)/128: the centre of
    one of 256 equal bins of [−1, 1], so U(−1, 1) to within 1/256 (mean 0, variance 1/3 − 2·10⁻⁵),
    and cheap to draw: the bit generator's raw 64-bit outputs read as eight bytes each (in
    NumPy 2.4 the bytes ``rng.bytes`` returns, unless a float32 draw left half a word unused)
    cost a third of ``rng.bytes`` and a seventh of float draws (measured: 24 against 76 and
    186 µs per 32 images' fields). The whole chunk's fields are two matrix products: U is laid
    out as (row, image, axis, column), so G U smooths along rows for every image at once and
    (G U)(α G / 128) along columns; the result is a view in (image, axis, row, column) order."""
    U = rng.bit_generator.random_raw(SIDE * m * 2 * SIDE // 8).view(np.int8).astype(np.float32)
    U += 0.5
    G = gaussian_matrix(float(sigma))
    V = G @ U.reshape(SIDE, m * 2 * SIDE)  # along rows
    V = V.reshape(-1, SIDE) @ (G * np.float32(alpha / 128))  # along columns, scaled
    return V.reshape(SIDE, m, 2, SIDE).transpose(1, 2, 0, 3)


@functools.cache
def _grid() -> np.ndarray:
    """(row, column, 1) of every output pixel, measured from the image centre: (3, 784) float32."""
    r, c = np.divmod(np.arange(SIDE * SIDE, dtype=np.float32), SIDE)
    grid = np.stack([r - np.float32(CENTRE), c - np.float32(CENTRE), np.ones_like(r)])
    grid.flags.writeable = False
    return grid


def warp(X: np.ndarray, A: np.ndarray, t: np.ndarray, flipped=None, field=None, out=None) -> np.ndarray:
    """Image i of X (m, 784) uint8 resampled at s = A_i p + t_i (+ field_i(p)) for every output
    pixel p (from the centre; column mirrored first where ``flipped``), bilinear, zero outside;
    written into ``out`` (m, 784) uint8 when given. The source positions of the whole chunk
    are one matrix product: [A_i | t_i + centre] (2m × 3: every image's row map, then every
    image's column map) times the pixel grid [r; c; 1] (3 × 784), in the coordinates of the
    zero-padded images (+PAD) that ``_resample`` reads."""
    m = X.shape[0]
    M = np.empty((2, m, 3), dtype=np.float32 if m * P * P < 2**24 else np.float64)  # exact flat indices
    M[:, :, :2], M[:, :, 2] = A.transpose(1, 0, 2), (t + (CENTRE + PAD)).T
    if flipped is not None:
        M[:, flipped, 1] *= -1  # p's column mirrored: c → −c
    S = (M.reshape(2 * m, 3) @ _grid().astype(M.dtype, copy=False)).reshape(2, m, SIDE * SIDE)
    if field is not None:
        S.reshape(2, m, SIDE, SIDE)[...] += field.transpose(1, 0, 2, 3)
    return _resample(X, S, out)


PAD = 2  # zeros around each image: a corner clipped to −2 or 28 reads only zeros
P = SIDE + 2 * PAD  # side of a padded image


def bilinear(X: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """Images X (m, 784) uint8 read at (sy, sx) (m, k) (row, column of the image) with bilinear
    weights, zero outside the image, rounded to uint8: (m, k)."""
    S = np.stack([sy, sx]).astype(np.float64) + PAD
    return _resample(X, S.reshape(2, X.shape[0], -1))


def _resample(X: np.ndarray, S: np.ndarray, out=None) -> np.ndarray:
    """X (m, 784) uint8 read at S (2, m, k): rows and columns + PAD, which it overwrites.

    One pass per step over a block of images small enough to stay in the cache: clip (far
    positions read the zero border), split into whole and fractional parts, the top-left
    neighbour's flat index, four gathers (the other three neighbours are the same index into
    the padded pixels shifted by 1, P and P + 1), then the two-step linear interpolation.
    Rows and columns lie in two contiguous halves of S: arithmetic on a strided half was
    three times slower."""
    m = X.shape[0]
    padded = np.zeros((m * P * P + P + 1), dtype=np.float32)  # + P + 1: the shifted views' tail
    padded[: m * P * P].reshape(m, P, P)[:, PAD:-PAD, PAD:-PAD] = X.reshape(m, SIDE, SIDE)
    np.clip(S, 0, SIDE + PAD, out=S)
    whole = np.floor(S)
    w = np.subtract(S, whole, out=S)
    y0, x0, wy, wx = whole[0], whole[1], w[0], w[1]
    y0 *= P  # the top-left neighbour's flat index: row · P + column + the image's offset
    y0 += x0
    y0 += (np.arange(m, dtype=S.dtype) * (P * P))[:, None]
    i00 = y0.astype(np.intp)
    v00, v01 = padded.take(i00), padded[1:].take(i00)
    v10, v11 = padded[P:].take(i00), padded[P + 1 :].take(i00)
    v01 -= v00  # top = v00 + wx (v01 − v00)
    v01 *= wx
    v00 += v01
    v11 -= v10  # bottom = v10 + wx (v11 − v10)
    v11 *= wx
    v10 += v11
    v10 -= v00  # out = top + wy (bottom − top)
    v10 *= wy
    v00 += v10
    v00 += 0.5  # round to nearest (the values lie in [0, 255])
    if out is None:
        return v00.astype(np.uint8)
    np.copyto(out, v00, casting="unsafe")
    return out
