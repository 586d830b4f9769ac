"""Classify your own images: decode and preprocess (``mlpcli.data.images``), then predict.

``mlpcli.nn.infer.probabilities`` is the one inference path eval, predict and plot use, with
``network.scale01``, the one input scaling every command uses. ``block_art`` draws a 28×28
image in the terminal with no extra at all. ``format_predictions`` and
``format_predictions_json`` are the text and JSON that ``mlpcli predict`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mlpcli.data.images import SIDE, load_image, preprocess
from mlpcli.errors import ConfigError, DataError
from mlpcli.nn.infer import probabilities
from mlpcli.nn.network import Network


# --- prediction -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guess:
    label: int
    name: str
    probability: float

    def to_json(self) -> dict:
        return {"label": self.label, "name": self.name, "probability": self.probability}


def top_k(probs: np.ndarray, class_names: Sequence[str], k: int = 3) -> list[Guess]:
    """The k most likely classes, most likely first (ties: lower label first)."""
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-probs, kind="stable")[:k]
    return [Guess(int(i), class_names[i], float(probs[i])) for i in order]


def class_names_for(dataset: str | None, n: int = 10, saved=None) -> tuple[str, ...]:
    """The class names a checkpoint saved (``saved``: its meta's "class_names", e.g. an image
    folder's) when they are n strings, else the dataset's (KMNIST's romanized), else "0".."n-1"."""
    if isinstance(saved, (list, tuple)) and len(saved) == n and all(isinstance(x, str) for x in saved):
        return tuple(saved)
    try:
        from mlpcli.data.splits import CLASS_NAMES
    except ImportError:  # pragma: no cover - the data module is part of the package
        CLASS_NAMES = {}
    names = tuple(CLASS_NAMES.get(dataset or "", ()))
    return names if len(names) == n else tuple(str(i) for i in range(n))


@dataclass(frozen=True)
class Prediction:
    source: str  # the image path, or "test[N]"
    pixels: np.ndarray  # the uint8 (784,) image the network saw
    top: list[Guess]
    true_label: int | None = None
    true_name: str | None = None

    def to_json(self) -> dict:
        out = {"source": self.source, "top": [g.to_json() for g in self.top]}
        if self.true_label is not None:
            out["true"] = {"label": self.true_label, "name": self.true_name}
        return out


def predict_files(
    network: Network,
    paths: Sequence[str | Path],
    class_names: Sequence[str],
    mode: str = "digits",
    k: int = 3,
) -> list[Prediction]:
    """Load, preprocess and classify each image file (``mode`` already resolved from auto)."""
    pixels = []
    for path in paths:
        gray = load_image(path)
        try:
            pixels.append(preprocess(gray, mode))
        except DataError as error:
            raise DataError(f"{path}: {error.message}", error.hint) from None
    if not pixels:
        return []
    probs = probabilities(network, np.stack(pixels))  # mlpcli.nn.infer: the one inference path
    return [
        Prediction(str(path), px, top_k(p, class_names, k)) for path, px, p in zip(paths, pixels, probs)
    ]


def predict_index(
    network: Network, X: np.ndarray, y: np.ndarray, index: int, class_names: Sequence[str], k: int = 3
) -> Prediction:
    """Classify test-set example ``index`` (negative counts from the end, as in Python)."""
    n = len(X)
    if not -n <= index < n:
        raise ConfigError(f"--index {index} is out of range: the test set has {n} images", f"use 0..{n - 1}")
    index %= n
    probs = probabilities(network, X[index : index + 1])[0]
    label = int(y[index])
    return Prediction(f"test[{index}]", np.asarray(X[index]), top_k(probs, class_names, k), label, class_names[label])


# --- terminal pictures ------------------------------------------------------------------------------

SHADES = " ░▒▓█"


def block_art(pixels: np.ndarray) -> str:
    """A 28×28 uint8 image as 28 lines of shade blocks, two characters per pixel (square-ish).

    Ink is drawn (█ for full ink), the background is blank — on any terminal, no extra needed.
    """
    img = np.asarray(pixels).reshape(SIDE, SIDE).astype(np.int64)
    levels = np.minimum(img * len(SHADES) // 256, len(SHADES) - 1)
    return "\n".join("".join(SHADES[v] * 2 for v in row) for row in levels)


# --- what ``mlpcli predict`` prints --------------------------------------------------------------


def format_predictions(results: Sequence[Prediction], class_names: Sequence[str], used: str, show: bool) -> str:
    """The text report: per prediction its source (or the true class and whether the top guess
    is right), then one line per guess; ``show`` draws each image above its lines."""
    width = max(len(name) for name in class_names)
    lines = []
    for r in results:
        if show:
            lines.append(block_art(r.pixels))
        header = f"{r.source}  (preprocess: {used})"
        if r.true_label is not None:
            verdict = "right" if r.top[0].label == r.true_label else "wrong"
            header = f"{r.source}: true class {r.true_name} — prediction {verdict}"
        lines.append(header)
        lines.extend(f"  {g.name:<{width}}  {g.probability:7.2%}" for g in r.top)
    return "\n".join(lines)


def format_predictions_json(
    results: Sequence[Prediction], checkpoint: str | Path, dataset: str | None, used: str
) -> str:
    """``{"checkpoint", "dataset", "preprocess", "predictions": [...]}`` as ``evaluate.dumps`` writes it."""
    from mlpcli.nn.evaluate import dumps

    payload = {"checkpoint": str(checkpoint), "dataset": dataset, "preprocess": used}
    payload["predictions"] = [r.to_json() for r in results]
    return dumps(payload)
