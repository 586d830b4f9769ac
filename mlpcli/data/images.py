"""Image files → MNIST-format pixels: decoding and digit preprocessing, one module for all.

The data sources (image folders), ``mlpcli predict`` and the page all turn a picture into
28×28 uint8 pixels here:

1. ``load_image`` decodes with Pillow (the optional ``plot`` extra) — a large photo reduced,
   with memory bounded, up to ``MAX_PIXELS`` (camera sizes) — applies the EXIF rotation,
   flattens any transparency and converts to grayscale;
2. ``to_ink``: MNIST-format data is light ink on a black background, so an image whose
   background (the median of its border) is light is inverted;
3. ``preprocess``:
   * ``digits`` — how MNIST and KMNIST were made: crop to the ink's bounding box, scale so the
     longer side is 20 pixels (aspect ratio kept, anti-aliased), and paste into a 28×28 frame
     so that the ink's center of mass sits at the center;
   * ``none`` — just resize to 28×28 (Fashion-MNIST items fill the frame);
   * ``auto`` — ``none`` for Fashion-MNIST, ``digits`` otherwise.

Everything after decoding is plain NumPy, so it works on arrays without Pillow.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from mlpcli.errors import ConfigError, DataError, require

PREPROCESS_MODES = ("auto", "digits", "none")
SIDE = 28  # MNIST-format images are 28×28
BOX = 20  # digits are scaled to fit a 20×20 box inside the 28×28 frame
MAX_SIDE = 1024  # larger images are shrunk first: 28 output pixels need no more
# The largest photos cameras take (phones with 200-megapixel sensors: 16320×12240) fit; more is
# refused before anything is decoded, as a decompression bomb would be (Pillow's own limit,
# about 89 megapixels, refuses photos of today's cameras).
MAX_PIXELS = 250_000_000
STRIP_PIXELS = 4_000_000  # a large image is shrunk a strip of about this many pixels at a time
_ORIENTATION = 0x0112  # the EXIF tag that says how the camera was held


# --- decoding (Pillow) ------------------------------------------------------------------------


def check_regular_file(path: str | Path, what: str) -> None:
    """Refuse, without opening it, a path that exists but is not a regular file (a FIFO would
    block the read; a device never ends). A missing path is left to the reader to report."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise DataError(f"{path} is not a regular file (a FIFO, device or socket), not {what}",
                        f"give the path of {what} file")


def load_image(path: str | Path) -> np.ndarray:
    """A 2-D uint8 grayscale array from an image file (PNG, JPEG, BMP, GIF, TIFF, …), at most
    ``MAX_SIDE`` pixels on its longer side.

    Large photos are decoded with memory bounded: a JPEG at 1/2, 1/4 or 1/8 of its size (the
    decoder's own scaling), any other format in full (Pillow cannot decode part of a PNG) and
    then shrunk a strip at a time, so the decoded pixels are the only full-size copy — 1 byte
    per pixel for grayscale, 4 for color. Transparent pixels are flattened onto a background
    that contrasts with the ink, so a drawing exported with a transparent background still has
    one. The EXIF orientation is applied.
    """
    Image = require("PIL.Image", "reading images")
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder, not an image", "give the path of an image file")
    check_regular_file(path, "an image")
    try:
        with _open_image(Image, path) as img:
            gray = _decode(Image, img, path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file", "check the path") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied", "check the file's permissions") from None
    except Image.UnidentifiedImageError:
        raise DataError(
            f"{path} is not an image Pillow can read", "give a PNG, JPEG, BMP, GIF or TIFF file"
        ) from None
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{path}: not enough memory to decode it", TOO_LARGE_HINT) from None
    except Exception as error:  # noqa: BLE001 — Pillow's decoders raise many kinds on a broken file
        raise DataError(
            f"{path}: cannot decode the image ({error or type(error).__name__})",
            "check that the file is a complete image",
        ) from None
    return gray


TOO_LARGE_HINT = f"shrink it first: 28×28 pixels are predicted, {MAX_SIDE}×{MAX_SIDE} is plenty"


@contextmanager
def _open_image(Image, path: Path):
    """``Image.open`` (lazy: the header only) that refuses, before decoding, an image of more
    than ``MAX_PIXELS`` pixels — one line, instead of Pillow's DecompressionBombWarning or
    error, whose limit (about 89 megapixels) is below today's cameras; Pillow's own check is
    off while mlpcli's holds."""
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise DataError(f"{path} is {width}×{height} pixels ({width * height / 1e6:.0f} "
                                f"megapixels), more than mlpcli decodes ({MAX_PIXELS / 1e6:.0f} "
                                "megapixels: more than any camera takes)", TOO_LARGE_HINT)
            yield img
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _decode(Image, img, path: Path) -> np.ndarray:
    """The opened image, decoded small (``load_image``), upright, as grayscale."""
    if max(img.size) > MAX_SIDE:  # a JPEG decodes straight to grayscale at 1/2 … 1/8 of its size
        scale = MAX_SIDE / max(img.size)
        img.draft("L" if img.mode in ("L", "RGB") else None,
                  (math.ceil(img.size[0] * scale), math.ceil(img.size[1] * scale)))
    _check_memory(img, path)
    orientation = img.getexif().get(_ORIENTATION, 1)
    img.load()
    small = _shrunk(Image, img)
    method = _TRANSPOSE.get(orientation)
    if method is not None:
        small = small.transpose(getattr(Image.Transpose, method))
    if max(small.size) > MAX_SIDE:
        small.thumbnail((MAX_SIDE, MAX_SIDE))
    return _flatten_to_gray(small, Image)


# EXIF orientation → the transpose that makes the picture upright (as ImageOps.exif_transpose).
_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
              6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}


def _check_memory(img, path: Path) -> None:
    """Refuse an image whose decoded pixels would take more than half this machine's memory
    (Pillow keeps 1 byte per pixel for grayscale and palettes, 2 for 16-bit, else 4)."""
    width, height = img.size
    needed = width * height * (1 if img.mode in ("1", "L", "P") else 2 if img.mode.startswith("I;16") else 4)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return
    if memory > 0 and needed > memory // 2:
        raise DataError(f"{path}: decoding its {width}×{height} pixels needs {needed / 1e9:.1f} GB, "
                        f"more than half this machine's memory ({memory / 1e9:.1f} GB)", TOO_LARGE_HINT)


def _shrunk(Image, img):
    """The decoded ``img`` shrunk by a whole factor (box filter; alpha premultiplied) to
    between ``MAX_SIDE`` and twice that on its longer side, a strip of rows at a time, so that
    no second full-size copy (a converted mode, premultiplied alpha) is ever made."""
    factor = max(img.size) // MAX_SIDE
    if factor < 2:
        return img
    width, height = img.size
    rows = factor * max(1, STRIP_PIXELS // (width * factor))
    out = None
    for top in range(0, height, rows):
        strip = img.crop((0, top, width, min(height, top + rows)))
        if strip.mode in ("P", "PA", "1") or strip.mode.startswith("I;16"):  # reduce cannot
            alpha = "A" in strip.mode or "transparency" in strip.info
            strip = strip.convert("RGBA" if alpha else "L")
        small = strip.reduce(factor)
        if out is None:
            out = Image.new(small.mode, (-(-width // factor), -(-height // factor)))
        out.paste(small, (0, top // factor))
    return out


def _flatten_to_gray(img, Image) -> np.ndarray:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float64)
        alpha = rgba[..., 3:] / 255.0
        gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])  # ITU-R 601-2 luma, as Pillow's "L"
        opaque = alpha[..., 0] > 0.5
        # Dark ink on a transparent background goes onto white; light ink onto black.
        background = 255.0 if not opaque.any() or gray[opaque].mean() < 128 else 0.0
        return np.clip(gray * alpha[..., 0] + background * (1 - alpha[..., 0]), 0, 255).round().astype(np.uint8)
    return np.asarray(img.convert("L"), dtype=np.uint8)


# --- preprocessing (NumPy only) -----------------------------------------------------------------


def to_ink(gray: np.ndarray) -> np.ndarray:
    """Light ink on a dark background, as floats 0..255: invert when the border is light."""
    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim != 2 or min(gray.shape) < 1:
        raise DataError(f"expected a 2-D grayscale image, got shape {gray.shape}")
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return 255.0 - gray if np.median(border) > 127.5 else gray


def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of a triangle (bilinear) filter, widened when shrinking so that
    every input pixel counts (anti-aliasing, as Pillow's BILINEAR resize does)."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centers = (np.arange(n_out) + 0.5) * scale
    x = np.arange(n_in) + 0.5
    w = np.clip(1.0 - np.abs(x[None, :] - centers[:, None]) / support, 0.0, None)
    return w / w.sum(axis=1, keepdims=True)


def resize(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D float image to ``shape`` (rows, cols), anti-aliased."""
    rows = _resample_matrix(img.shape[0], shape[0])
    cols = _resample_matrix(img.shape[1], shape[1])
    return rows @ img @ cols.T


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0, 255).round().astype(np.uint8)


def preprocess_none(ink: np.ndarray) -> np.ndarray:
    """Resize the whole image to 28×28 (Fashion-MNIST style: the item fills the frame)."""
    return _to_uint8(resize(np.asarray(ink, dtype=np.float64), (SIDE, SIDE)))


def _round_half_up(x: float) -> int:
    # A symmetric glyph's center of mass sits exactly on a half pixel; round() would pick a
    # side by float noise and banker's rounding. Round halves up, robust to that noise.
    return int(np.floor(x + 0.5 + 1e-6))


def preprocess_digits(ink: np.ndarray, threshold: float = 0.25) -> np.ndarray:
    """MNIST's recipe: crop to the ink, fit into 20×20 keeping the aspect ratio, then place
    in 28×28 with the center of mass at the center.

    The background level (the border's median) is subtracted and the contrast stretched so
    that the strongest ink is 255, as in the scanned originals. The bounding box holds the
    pixels with at least ``threshold`` of that strongest ink.
    """
    ink = np.asarray(ink, dtype=np.float64)
    border = np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]])
    ink = np.clip(ink - np.median(border), 0, None)
    peak = ink.max()
    if peak < 16:  # under 16 grey levels of contrast: nothing there worth scaling up
        raise DataError("the image is blank: no ink found", "give a picture of one dark-on-light or light-on-dark item")
    ink *= 255.0 / peak
    rows = np.flatnonzero((ink >= threshold * 255).any(axis=1))
    cols = np.flatnonzero((ink >= threshold * 255).any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    h2, w2 = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.clip(resize(crop, (h2, w2)), 0, 255)
    # Integer shift that puts the center of mass at the frame's center (14, 14), kept inside.
    mass = small.sum()
    cy = (small.sum(axis=1) @ (np.arange(h2) + 0.5)) / mass
    cx = (small.sum(axis=0) @ (np.arange(w2) + 0.5)) / mass
    top = int(np.clip(_round_half_up(SIDE / 2 - cy), 0, SIDE - h2))
    left = int(np.clip(_round_half_up(SIDE / 2 - cx), 0, SIDE - w2))
    frame = np.zeros((SIDE, SIDE))
    frame[top : top + h2, left : left + w2] = small
    return _to_uint8(frame)


def resolve_mode(mode: str, dataset: str | None) -> str:
    """``auto`` → ``none`` for Fashion-MNIST (items fill the frame), ``digits`` otherwise."""
    if mode not in PREPROCESS_MODES:
        raise ConfigError(f"unknown preprocessing {mode!r}", f"choose one of: {', '.join(PREPROCESS_MODES)}")
    if mode == "auto":
        return "none" if dataset == "fashion-mnist" else "digits"
    return mode


def preprocess(gray: np.ndarray, mode: str = "digits") -> np.ndarray:
    """A grayscale image (any size, either polarity) → MNIST-format uint8 pixels, shape (784,)."""
    ink = to_ink(gray)
    image = preprocess_digits(ink) if resolve_mode(mode, None) == "digits" else preprocess_none(ink)
    return image.reshape(SIDE * SIDE)
