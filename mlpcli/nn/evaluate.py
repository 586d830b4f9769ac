"""Accuracy, loss, confusion matrix and per-class scores of a network on a labelled set.

The network's outputs come from ``mlpcli.nn.infer`` — the one inference path eval, predict and
plot use: batches, so memory stays flat for any number of examples, with ``scale01`` applied
to the stored uint8 pixels batch by batch — the same preprocessing as training.
The loss is the data cost alone (mean over examples, no L2 term), as ``metrics.jsonl``
reports it. Dropout is never applied here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mlpcli.nn import infer
from mlpcli.nn.functions import one_hot
from mlpcli.nn.network import Network


@dataclass
class EvalResult:
    """What ``evaluate`` (``mlpcli.score``) measured: ``accuracy``, ``loss`` (the mean data
    cost, without the L2 term), ``n`` examples, and ``confusion_matrix[i, j]``, which counts
    true class i predicted j. ``per_class`` gives precision, recall, f1 and support; with
    ``keep_probabilities``, ``probabilities`` holds every example's outputs."""

    accuracy: float
    loss: float
    n: int
    confusion_matrix: np.ndarray
    class_names: tuple[str, ...] = ()
    probabilities: np.ndarray | None = field(default=None, repr=False)

    @property
    def per_class(self) -> list[dict]:
        """precision, recall, f1 and support per class (a score with a zero denominator is 0)."""
        cm = self.confusion_matrix
        true_positive = np.diag(cm).astype(np.float64)
        predicted = cm.sum(axis=0)
        actual = cm.sum(axis=1)
        rows = []
        for k in range(cm.shape[0]):
            precision = true_positive[k] / predicted[k] if predicted[k] else 0.0
            recall = true_positive[k] / actual[k] if actual[k] else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            rows.append(
                {
                    "class": k,
                    "name": self.class_names[k] if k < len(self.class_names) else str(k),
                    "precision": float(precision),
                    "recall": float(recall),
                    "f1": float(f1),
                    "support": int(actual[k]),
                }
            )
        return rows

    def to_json(self) -> dict:
        """A JSON-able dict: accuracy, loss, n, confusion_matrix (lists), per_class."""
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "n": self.n,
            "confusion_matrix": self.confusion_matrix.tolist(),
            "per_class": self.per_class,
        }


def evaluate(
    network: Network,
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int = 1000,
    class_names: Sequence[str] = (),
    keep_probabilities: bool = False,
) -> EvalResult:
    """Evaluate ``network`` on uint8 pixels X (N, n_0) with integer labels y (N,), in batches
    of ``batch_size`` rows (memory stays flat for any N); ``class_names`` label the classes
    in ``per_class``.

    ``keep_probabilities``: also keep every example's outputs A[L] (N, n_L), in the network's
    dtype, as ``probabilities`` (``infer.as_probabilities`` turns non-softmax ones into scores).
    """
    n_classes = network.layers[-1]
    n = len(y)
    if len(X) < n:
        raise ValueError(f"{len(X)} rows of pixels for {n} labels")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    probabilities = np.empty((n, n_classes), dtype=network.dtype) if keep_probabilities else None
    total_cost = 0.0
    for rows, AL in infer.batches(network, X[:n], batch_size):
        labels = np.asarray(y[rows], dtype=np.intp)
        with infer.quiet_float_errors():  # inf/NaN outputs make a NaN loss (JSON null), no warning
            total_cost += network.data_cost(AL, one_hot(labels, n_classes, network.dtype)) * len(labels)
        cells = labels * n_classes + AL.argmax(axis=1)
        cm += np.bincount(cells, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
        if probabilities is not None:
            probabilities[rows] = AL
    correct = int(np.trace(cm))
    return EvalResult(
        accuracy=correct / n if n else float("nan"),
        loss=total_cost / n if n else float("nan"),
        n=n,
        confusion_matrix=cm,
        class_names=tuple(class_names),
        probabilities=probabilities,
    )


def finite_json(value):
    """``value`` with every NaN or ±inf float (Python or NumPy) replaced by None (JSON null)."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


def dumps(data: dict) -> str:
    """JSON with two-space indents, but each list of numbers (a confusion-matrix row) on one line.

    Every ``--json`` printer uses this: non-finite floats become null, so the output is
    always valid JSON (never NaN or Infinity)."""
    text = json.dumps(finite_json(data), indent=2, allow_nan=False)
    return re.sub(r"\[\s*(-?[\d.eE+-]+(?:,\s*-?[\d.eE+-]+)*)\s*\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)


def format_report(result: EvalResult, title: str = "") -> str:
    """Human-readable report: accuracy, loss, confusion matrix, per-class table."""
    names = [row["name"] for row in result.per_class]
    if names == [str(k) for k in range(len(names))]:
        names = [""] * len(names)  # digits: the class number is the name
    width = max(5, *(len(name) for name in names)) if names else 5
    lines = []
    if title:
        lines.append(title)
    lines.append(f"accuracy  {result.accuracy:.4f}  ({int(np.trace(result.confusion_matrix))}/{result.n})")
    lines.append(f"loss      {result.loss:.4f}")
    lines.append("")
    cm = result.confusion_matrix
    cell = max(5, len(str(int(cm.max()))) + 1 if cm.size else 5)
    lines.append("confusion matrix (rows: true class, columns: predicted class)")
    lines.append(" " * (width + 4) + "".join(f"{k:>{cell}}" for k in range(cm.shape[0])))
    for k, row in enumerate(cm):
        lines.append(f"{k:>2} {names[k]:<{width}} " + "".join(f"{v:>{cell}}" for v in row))
    lines.append("")
    lines.append(f"{'':>2} {'class':<{width}}  precision  recall      f1  support")
    for row in result.per_class:
        lines.append(
            f"{row['class']:>2} {names[row['class']]:<{width}}  {row['precision']:>9.4f}  "
            f"{row['recall']:>6.4f}  {row['f1']:>6.4f}  {row['support']:>7}"
        )
    return "\n".join(lines)
