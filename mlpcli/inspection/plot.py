"""Pictures of a run: learning curves, confusion matrix, most confident mistakes.

matplotlib is an optional extra (``pip install 'mlpcli[plot]'``). It is imported inside the
functions that draw, with the headless Agg backend, so the core install never needs it and a
missing install is one clear error. Each ``*_figure`` function returns the matplotlib Figure
(tests inspect it); ``save_figure`` writes a PNG atomically.

``eval_pictures`` draws what ``evaluate`` measured: the confusion matrix is the EvalResult's
own, and the mistakes' probabilities are its outputs through ``infer.as_probabilities`` —
the one inference path eval, predict and plot share.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from mlpcli.errors import CheckpointError, MlpcliError
from mlpcli.nn.infer import as_probabilities
from mlpcli.data.images import SIDE
from mlpcli.errors import require
from mlpcli.files import atomic_write
from mlpcli.run.runs import CONFIG_FILE, METRICS_FILE, read_metrics
from mlpcli.run.train import LOCATION_KEYS, flat_keys  # LOCATION_KEYS: never what tells runs apart

if TYPE_CHECKING:
    from mlpcli.nn.evaluate import EvalResult

DPI = 100
CURVES_SIZE = (11.0, 4.2)  # inches: 1100×420 pixels at DPI
CONFUSION_SIZE = (7.5, 6.5)
MISTAKES_COLUMNS = 6
MISTAKES_CELL = (1.7, 1.95)  # inches per image, title included
N_MISTAKES = 24  # the most confident mistakes eval_pictures draws


class PictureFolderError(MlpcliError):
    """The folder the pictures should go to is not a folder, or cannot be created or written."""


def pyplot():
    """matplotlib.pyplot on the Agg backend, or a one-line error saying what to install."""
    matplotlib = require("matplotlib", "plotting")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "plotting")


def save_figure(fig, path: str | Path) -> Path:
    """Write ``fig`` as PNG to ``path`` via a temp file + ``os.replace``: never half a file.
    A folder that cannot be made or written (a file in the way, /proc, read-only, a full disk)
    is one ``PictureFolderError`` naming the path."""
    plt = pyplot()
    path = Path(path)
    try:
        check_picture_folder(path.parent)
        if path.is_dir():
            raise PictureFolderError(f"{path} is a folder, not a file name", "give --out a PNG file name")
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI))
    except OSError as error:
        raise PictureFolderError(f"cannot write {path}: {error.strerror or error}",
                                 "choose another --out: a folder you can write, on a disk with free space") from None
    finally:
        plt.close(fig)
    return path


def check_picture_folder(folder: str | Path) -> None:
    """Fail now, creating nothing, if ``folder`` is not a folder or cannot be created and
    written: it exists as a file, a path above it is a file, or it is not writable."""
    folder = Path(folder)
    what_to_do = "choose a folder you can write to (or a new one inside such a folder) for the pictures"
    existing = folder
    while not existing.is_dir():
        if existing.exists() or existing.is_symlink():
            where = "exists and is not a folder" if existing == folder else f"cannot be created: {existing} is a file"
            raise PictureFolderError(f"{folder} {where}", what_to_do)
        if existing.parent == existing:
            break
        existing = existing.parent
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".mlpcli-probe-"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        where = "is not writable" if existing == folder else f"cannot be created in {existing}"
        raise PictureFolderError(f"{folder} {where} ({reason})", what_to_do) from None


# --- learning curves ---------------------------------------------------------------------------


def _series(records: list[dict], key: str) -> np.ndarray:
    """One metric per epoch as floats: null, NaN and ±inf become NaN (no point drawn); a value
    that is not a number is a ``CheckpointError`` naming the epoch, the key and the value."""
    values = []
    for r in records:
        v = r.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise CheckpointError(f"metrics.jsonl, epoch {r.get('epoch')}: {key} is {v!r}, not a number",
                                  "each metric must be a number or null")
        values.append(np.nan if v is None or not math.isfinite(v) else float(v))
    return np.array(values, dtype=np.float64)


def best_epoch(records: list[dict]) -> int | None:
    """The epoch with the highest validation accuracy (the first, on ties) — best.npz's epoch."""
    acc = _series(records, "val_accuracy")
    if np.all(np.isnan(acc)):
        return None
    return int(records[int(np.nanargmax(acc))]["epoch"])


def curves_figure(records: list[dict], title: str | None = None):
    """Loss and accuracy per epoch, train and validation, with the best epoch marked."""
    plt = pyplot()
    epochs = np.array([int(r["epoch"]) for r in records])
    best = best_epoch(records)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=CURVES_SIZE, dpi=DPI, layout="constrained")
    for ax, key, label, scale in (
        (ax_loss, "loss", "loss (data cost, no L2 term)", 1.0),
        (ax_acc, "accuracy", "accuracy (%)", 100.0),
    ):
        for split, name in (("train", "train"), ("val", "validation")):
            values = _series(records, f"{split}_{key}") * scale
            if not np.all(np.isnan(values)):
                ax.plot(epochs, values, marker="o", markersize=3, label=name)
        if best is not None:
            at_best = _series(records, f"val_{key}")[int(np.flatnonzero(epochs == best)[0])]
            _mark_best(ax, best, at_best * scale, key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(f"{key.capitalize()} per epoch")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a legend of nothing is a matplotlib UserWarning
            ax.legend(loc="best")
        if len(epochs) <= 20:
            ax.set_xticks(epochs)
    if title:
        fig.suptitle(title)
    return fig


def _mark_best(ax, best: int, val: float, key: str) -> None:
    """A dashed line at the best epoch and, when its value is a number, a star labeled with it."""
    ax.axvline(best, color="0.5", linestyle="--", linewidth=1)
    if np.isfinite(val):
        text = f"best epoch {best}: {val:.2f}%" if key == "accuracy" else f"best epoch {best}: {val:.4f}"
        ax.plot([best], [val], linestyle="none", marker="*", markersize=14, color="tab:red", label=text)


def plot_curves(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw ``run_dir/metrics.jsonl`` to ``out`` (default ``run_dir/curves.png``)."""
    records = drawable_metrics(run_dir)
    run_dir = Path(run_dir)
    folder = run_dir if run_dir.is_dir() else run_dir.parent
    out = Path(out) if out is not None else folder / "curves.png"
    return save_figure(curves_figure(records, title=f"Learning curves — {folder.resolve().name}"), out)


CURVE_KEYS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")


def drawable_metrics(run_dir) -> list[dict]:
    """``read_metrics(run_dir)``, or a ``CheckpointError`` when no epoch holds a loss or an
    accuracy to draw (a picture of empty axes is not an answer)."""
    records = read_metrics(run_dir)
    if all(np.all(np.isnan(_series(records, key))) for key in CURVE_KEYS):
        raise CheckpointError(f"{run_dir} has nothing to draw: none of the {len(records)} epochs in its "
                              f"{METRICS_FILE} holds a loss or an accuracy",
                              f"give a run folder whose metrics.jsonl has {', '.join(CURVE_KEYS)}")
    return records


# --- several runs on one figure (Nielsen's comparisons) --------------------------------------------

def run_folders(paths) -> list[Path]:
    """The run folders to compare: each path that is a run folder, and the trial folders (the
    subfolders holding a metrics.jsonl, by name) of each that is a study folder."""
    folders = []
    for path in map(Path, paths):
        trials = sorted(p.parent for p in path.glob(f"*/{METRICS_FILE}")) if path.is_dir() else []
        if trials and not (path / METRICS_FILE).exists():
            folders += trials
        else:
            folders.append(path)
    return folders


def short_names(keys) -> dict[str, str]:
    """Each dotted key by its last part (``learning_rate``), unless two keys share it."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: part if last.count(part) == 1 else k for k, part in zip(keys, last)}


def differing_labels(folders: Sequence[Path]) -> tuple[list[str], list[str]]:
    """(one label per run, the config keys they differ in): each run labeled by its values of
    the keys whose values differ between the runs' config.yaml files (``learning_rate=0.25``),
    or by its folder's name when that tells nothing apart."""
    configs = [_config_of(folder) for folder in folders]
    keys = sorted({k for c in configs for k in c if k not in LOCATION_KEYS})
    differ = [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]
    names = short_names(differ)
    labels = [", ".join(f"{names[k]}={_shown(c.get(k))}" for k in differ) for c in configs]
    if not differ or len(set(labels)) < len(labels):
        labels = [f"{folder.name}: {label}" if label else folder.name for folder, label in zip(folders, labels)]
    return labels, differ


def _config_of(folder: Path) -> dict:
    from mlpcli.run.schema import load_yaml

    path = folder / CONFIG_FILE
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, MlpcliError):
        return {}
    return flat_keys(raw) if isinstance(raw, dict) else {}


def _shown(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ",".join(map(_shown, value)) + "]"
    return str(value)


def compare_figure(runs: Sequence[tuple[str, list[dict]]], title: str = "Learning curves"):
    """Several runs' training loss and validation accuracy per epoch, one color per run —
    Nielsen's comparison plots (chapter 3: the cost for η = 0.025, 0.25 and 2.5)."""
    plt = pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=CURVES_SIZE, dpi=DPI, layout="constrained")
    colors = plt.get_cmap("tab10" if len(runs) <= 10 else "viridis")
    for i, (label, records) in enumerate(runs):
        color = colors(i if len(runs) <= 10 else i / max(1, len(runs) - 1))
        epochs = np.array([int(r["epoch"]) for r in records])
        for ax, key, scale in ((ax_loss, "train_loss", 1.0), (ax_acc, "val_accuracy", 100.0)):
            values = _series(records, key) * scale
            if not np.all(np.isnan(values)):
                ax.plot(epochs, values, marker="o", markersize=2.5, color=color, label=label)
    for ax, what, ylabel in ((ax_loss, "Training loss", "loss (data cost, no L2 term)"),
                             (ax_acc, "Validation accuracy", "accuracy (%)")):
        ax.set(xlabel="epoch", ylabel=ylabel, title=f"{what} per epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(True, alpha=0.3)
    with_lines = ax_acc if ax_acc.get_lines() else ax_loss
    if with_lines.get_lines() and len(runs) <= 4:
        with_lines.legend(loc="best", fontsize=8)
    elif with_lines.get_lines():  # many runs: the legend beside the axes, not over the curves
        fig.legend(*with_lines.get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    fig.suptitle(title)
    return fig


def plot_runs(paths, out: str | Path | None = None) -> Path:
    """Draw several runs' curves on one figure (``paths``: run folders, or study folders for all
    their trials) to ``out`` — default: a study's own curves.png, else compare.png here. One
    run folder alone is ``plot_curves``."""
    pyplot()  # a missing extra fails before any work
    folders = run_folders(paths)
    if len(paths) == 1 and folders == [Path(paths[0])]:
        return plot_curves(paths[0], out)
    runs = [drawable_metrics(folder) for folder in folders]
    labels, differ = differing_labels(folders)
    if out is None:
        study = len(paths) == 1 and len(folders) > 1
        out = Path(paths[0]) / "curves.png" if study else Path("compare.png")
    title = f"{len(folders)} runs" + (f" — {', '.join(short_names(differ).values())}" if differ else "")
    return save_figure(compare_figure(list(zip(labels, runs)), title), out)


# --- confusion matrix and mistakes ------------------------------------------------------------


def confusion_figure(counts: np.ndarray, class_names: Sequence[str], title: str = "Confusion matrix"):
    """A heatmap colored by the fraction of each true class, every cell labeled with its count."""
    plt = pyplot()
    counts = np.asarray(counts)
    n = counts.shape[0]
    totals = counts.sum(axis=1, keepdims=True)
    fraction = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    fig, ax = plt.subplots(figsize=CONFUSION_SIZE, dpi=DPI, layout="constrained")
    image = ax.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            color = "white" if fraction[i, j] > 0.5 else "black"
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="fraction of the true class", shrink=0.85)
    return fig


def most_confident_mistakes(y_true: np.ndarray, probs: np.ndarray, n: int) -> np.ndarray:
    """Indices of up to n wrong predictions, the most confident first."""
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != np.asarray(y_true))
    confidence = probs[wrong, pred[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:n]]


def mistakes_figure(
    X_uint8: np.ndarray,
    y_true: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    n: int = 24,
    title: str = "Most confident mistakes",
):
    """A grid of the n most confident wrong predictions, each titled "true → predicted (p)"."""
    plt = pyplot()
    probs = np.asarray(probs)
    chosen = most_confident_mistakes(y_true, probs, n)
    cols = MISTAKES_COLUMNS
    rows = max(1, math.ceil(len(chosen) / cols))
    size = (cols * MISTAKES_CELL[0], rows * MISTAKES_CELL[1] + 0.5)
    fig, axes = plt.subplots(rows, cols, figsize=size, dpi=DPI, layout="constrained", squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, chosen):
        pred = int(probs[i].argmax())
        ax.imshow(np.asarray(X_uint8[i]).reshape(SIDE, SIDE), cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(f"{class_names[int(y_true[i])]} → {class_names[pred]} ({probs[i, pred]:.2f})", fontsize=8)
    if len(chosen) == 0:
        axes.flat[0].text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=14)
    fig.suptitle(f"{title} (true → predicted (p))")
    return fig


def eval_pictures(
    out_dir: str | Path,
    X_uint8: np.ndarray,
    y_true: np.ndarray,
    result: "EvalResult",
    *,
    output: str = "softmax",
    split: str = "test",
) -> list[Path]:
    """Write ``out_dir/confusion.png`` and ``out_dir/mistakes.png`` for one evaluated split.

    ``result`` is ``evaluate(network, X_uint8, y_true, keep_probabilities=True)``: its
    confusion matrix is drawn as it is, and its outputs A[L] become the mistakes' probabilities
    (``output`` names the network's output layer: non-softmax outputs are normalized into
    scores that sum to 1). The class names are the result's.
    """
    pyplot()  # fail on a missing extra before any work
    if result.probabilities is None:
        raise ValueError("eval_pictures needs evaluate(..., keep_probabilities=True)")
    counts = result.confusion_matrix
    names = result.class_names or tuple(str(k) for k in range(counts.shape[0]))
    probs = as_probabilities(result.probabilities, output)
    out_dir = Path(out_dir)
    accuracy = np.trace(counts) / max(1, counts.sum())
    confusion = confusion_figure(
        counts, names, f"Confusion matrix — {split} set, accuracy {accuracy:.2%} (n={counts.sum()})"
    )
    mistakes = mistakes_figure(
        X_uint8, np.asarray(y_true), probs, names, N_MISTAKES, title=f"Most confident mistakes — {split} set"
    )
    return [save_figure(confusion, out_dir / "confusion.png"), save_figure(mistakes, out_dir / "mistakes.png")]


# --- first-layer weights (plot --weights) -----------------------------------------------------------

WEIGHTS_COLUMNS = 8
WEIGHTS_CELL = 1.15  # inches per 28×28 image, caption included
N_WEIGHT_UNITS = 64  # the first units plot --weights draws


def weights_figure(W1: np.ndarray, units: int = N_WEIGHT_UNITS, title: str = "First-layer weights"):
    """The incoming weights W[1][j, :] of the first ``units`` hidden units, each as a 28×28
    image (scikit-learn's "Visualization of MLP weights on MNIST"): red positive, blue
    negative, each image on its own symmetric scale ±max|w| so that every unit's pattern shows.
    Inputs that are not 28×28 are drawn as ``sources.image_shape`` says (square, else one row)."""
    from mlpcli.data.sources import image_shape

    plt = pyplot()
    W1 = np.asarray(W1, dtype=np.float64)
    if W1.ndim != 2:
        raise ValueError(f"first-layer weights must be (units, inputs), got shape {W1.shape}")
    shape = image_shape(W1.shape[1])
    n = max(1, min(units, W1.shape[0]))
    cols = min(WEIGHTS_COLUMNS, n)
    rows = math.ceil(n / cols)
    size = (cols * WEIGHTS_CELL, rows * WEIGHTS_CELL + 0.5)
    fig, axes = plt.subplots(rows, cols, figsize=size, dpi=DPI, layout="constrained", squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for j, ax in zip(range(n), axes.flat):
        scale = float(np.abs(W1[j]).max()) or 1.0
        ax.imshow(W1[j].reshape(shape), cmap="RdBu_r", vmin=-scale, vmax=scale, aspect="auto" if shape[0] == 1 else None)
        ax.set_title(f"unit {j}", fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_weights(checkpoint: str | Path, out: str | Path | None = None, units: int = N_WEIGHT_UNITS) -> Path:
    """Draw ``checkpoint``'s first-layer weights to ``out`` (default: weights.png beside it)."""
    from mlpcli.run import checkpoint as ckpt_io

    pyplot()  # a missing extra fails before any work
    ckpt = ckpt_io.load(checkpoint)
    out = Path(out) if out is not None else Path(checkpoint).parent / "weights.png"
    W1 = ckpt.network.W[1]
    n = min(units, W1.shape[0])
    layers = "-".join(str(k) for k in ckpt.network.layers)
    title = f"First-layer weights — {ckpt.config.data.dataset} {layers}, units 0–{n - 1} of {W1.shape[0]}"
    return save_figure(weights_figure(W1, units, title), out)


# --- what augmentation does to the training images ----------------------------------------------

AUGMENT_IMAGES, AUGMENT_DRAWS = 6, 5  # rows (training images) and distorted copies of each


def augment_figure(X: np.ndarray, spec, rng: np.random.Generator, title: str = "Training images as augmented"):
    """A grid of training images (rows): the image as stored, then AUGMENT_DRAWS distortions of
    it drawn by ``mlpcli.data.augment.augment`` with ``spec`` (a ``config.AugmentConfig``)."""
    from mlpcli.data.augment import SIDE, augment

    plt = pyplot()
    rows, cols = len(X), AUGMENT_DRAWS + 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.3 * rows + 0.5), squeeze=False)
    draws = [augment(X, rng, spec) for _ in range(AUGMENT_DRAWS)]
    for i in range(rows):
        for j, images in enumerate([X, *draws]):
            ax = axes[i, j]
            ax.imshow(images[i].reshape(SIDE, SIDE), cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title("as stored" if j == 0 else f"draw {j}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_augment(config, out: str | Path | None = None) -> Path:
    """Draw what ``config``'s ``data.augment`` does to AUGMENT_IMAGES of its training images
    (default: augment.png in the current folder); the draws are seeded by training.seed."""
    from mlpcli.data.fetch import load_splits

    pyplot()  # a missing extra fails before any work
    out = Path(out) if out is not None else Path("augment.png")
    check_picture_folder(out.parent)
    splits = load_splits(config.data, quiet=True, need=("train",))
    picks = np.linspace(0, len(splits.y_train) - 1, AUGMENT_IMAGES).astype(int)
    a = config.data.augment
    elastic = f"α {a.elastic.alpha:g} σ {a.elastic.sigma:g}" if a.elastic else None
    settings = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in (("shift", a.shift), ("flip", a.flip), ("rotate", a.rotate), ("scale", a.scale),
                                      ("shear", a.shear), ("elastic", elastic)) if v)
    title = f"{config.name}: data.augment = {settings or 'nothing (off)'}"
    fig = augment_figure(splits.X_train[picks], a, np.random.default_rng(config.training.seed), title)
    return save_figure(fig, out)
