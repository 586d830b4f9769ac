"""The epoch loop: shuffled mini-batches, validation, early stopping, metrics, checkpoints.

``train(config, splits, out_dir)`` reads top to bottom like the algorithm:

    rng  = Generator(training.seed)            the ONE source of randomness of a run
    net  = Network.create(..., rng)            (or weights from --init-from / --resume)
    for each epoch:
        η = schedule(epoch, epochs)            a pure function: resumes recompute it
        for each chunk of rng.permutation(n):  one permutation per epoch
            X = scale01(augment(X_uint8[chunk]))    data stays uint8 until here
            for each batch (a view) of the chunk:
                Z, A = net.forward(X, dropout masks)
                dW, db = net.backward(Z, A, Y)
                optimizer.step(net, dW, db, η, λ/n)    adds the L2 term (λ/n)W to dW
        validate; append metrics.jsonl; write best.npz (if better) and last.npz

The batches reuse preallocated buffers and the update is one fused kernel over all the
parameters (kernels.py): same numbers as the plain per-array NumPy, far fewer calls.

Every checkpoint stores the generator's state, the optimizer state and the best-so-far and
early-stopping counters, so ``resume`` continues the same run bit for bit. Progress goes to a
callback object (``Progress``); the tqdm bars live in the CLI.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from mlpcli import checkpoint, kernels
from mlpcli.runs import BEST, CONFIG_FILE, LAST, METRICS_FILE, atomic_text, default_run_dir as _default_run_dir, read_metrics, shown, write_metrics
from mlpcli import functions as F
from mlpcli.augment import augment
from mlpcli.config import config_to_dict, dump_yaml, load_config
from mlpcli.errors import CheckpointError, ConfigError, DivergenceError, Interrupted
from mlpcli.evaluate import evaluate
from mlpcli.network import Network, dropout_masks, dropout_rates, scale01
from mlpcli.optim import learning_rate, make_optimizer

LOCATION_KEYS = ("name", "data.dir", "data.path", "output.dir")


class Progress(Protocol):
    """What ``train`` reports as it goes. Every method is optional to act on."""

    def start_epoch(self, epoch: int, epochs: int, n_batches: int) -> None: ...
    def batch(self, loss: float) -> None: ...
    def end_epoch(self, metrics: dict) -> None: ...
    def message(self, text: str) -> None: ...


class Silent:
    """A ``Progress`` that reports nothing."""

    def start_epoch(self, epoch, epochs, n_batches):
        pass

    def batch(self, loss):
        pass

    def end_epoch(self, metrics):
        pass

    def message(self, text):
        pass


@dataclass
class History:
    """What a call to ``train`` did. ``epochs`` holds every metrics.jsonl row of the run."""

    run_dir: Path
    network: Network
    epochs: list[dict] = field(default_factory=list)
    stopped: str = "completed"  # completed | early_stopping | stop_after
    best_epoch: int | None = None
    best_val_accuracy: float | None = None

    @property
    def last_checkpoint(self) -> Path:
        return self.run_dir / LAST

    @property
    def best_checkpoint(self) -> Path | None:
        return self.run_dir / BEST if self.best_epoch is not None else None


@dataclass
class _State:
    """Everything besides weights and optimizer arrays that a resumed run needs."""

    epoch: int = 0  # completed epochs
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    es_best: float | None = None  # best early-stopping metric so far
    es_bad_epochs: int = 0  # epochs since it last improved


def train(
    config,
    splits,
    out_dir=None,
    *,
    resume=None,
    init_from=None,
    stop_after: int | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> History:
    """Train ``config``'s network on ``splits`` into a run folder and return its ``History``.

    out_dir: the run folder (default ``config.output.dir``, else runs/<name>-<timestamp>).
    resume: a checkpoint (path or loaded ``Checkpoint``) of an unfinished run — continue it
        in its own folder. ``config``
        may be None (use the checkpoint's) or must equal the checkpoint's config except for
        ``training.epochs`` (which may grow) and where data and output live.
    init_from: a checkpoint whose weights start a new run (fine-tuning).
    stop_after: end cleanly after this epoch (counted from 1), as an interruption would.
    overwrite: replace the checkpoints of an existing run folder.
    """
    progress = progress or Silent()
    if resume is not None and init_from is not None:
        raise ConfigError("--resume and --init-from cannot be combined",
                          "--resume continues a run; --init-from starts a new one from its weights")
    if stop_after is not None and stop_after < 1:
        raise ConfigError(f"--stop-after must be >= 1, got {stop_after}")

    if resume is not None:
        saved = resume if isinstance(resume, checkpoint.Checkpoint) else checkpoint.load(resume)
        config = _resume_config(saved, config)
        run_dir = saved.path.parent.resolve()
        if out_dir is not None and Path(out_dir).resolve() != run_dir:
            raise ConfigError(f"--resume writes into the checkpoint's own folder {run_dir}, not {out_dir}",
                              "drop --out")
        network = saved.network
        state = _State(**{k: v for k, v in saved.meta.get("state", {}).items() if k in _State.__dataclass_fields__})
        state.epoch = saved.epoch
    else:
        saved = None
        run_dir = _new_run_dir(out_dir, config, overwrite)
        state = _State()

    _check_data(config, splits, saved)
    dtype = np.dtype(config.training.dtype)
    rng = np.random.default_rng(config.training.seed)
    if saved is not None:
        rng = _restore_rng(saved.meta.get("rng_state"), saved.path)
        network = _cast(network, dtype)
    elif init_from is not None:
        network = _init_from(init_from, config, dtype)
    else:
        m = config.model
        network = Network.create(m.layers, m.activation, m.output, config.cost, m.init, rng, dtype)
    optimizer = make_optimizer(network, config.training)
    if saved is not None:
        optimizer.load_state_dict(saved.optimizer_state)

    epochs = config.training.epochs
    if state.epoch >= epochs:
        raise ConfigError(f"{saved.path} already finished all {epochs} epochs of its run",
                          f"extend it with --set training.epochs=N (N > {epochs}), or start a new run with --init-from")
    if stop_after is not None and stop_after <= state.epoch:
        raise ConfigError(f"--stop-after {stop_after}, but the checkpoint already holds epoch {state.epoch}",
                          "give a later epoch")

    rows = read_metrics(run_dir, through=state.epoch, strict=False) if saved is not None else []
    atomic_text(run_dir / CONFIG_FILE, dump_yaml(config))
    write_metrics(run_dir, rows)
    progress.message(f"run folder: {shown(run_dir)}")
    if saved is not None:
        progress.message(f"resuming from {saved.path} at epoch {state.epoch} of {epochs}")
    n_val = len(splits.y_val)
    if n_val == 0:
        progress.message("validation: 0 — no validation split, so no best.npz will be written (use last.npz)")

    history = History(run_dir, network, rows, "completed", state.best_epoch, state.best_val_accuracy)
    X, y = splits.X_train, splits.y_train
    n = len(y)
    lam = config.regularization.l2
    rates = dropout_rates(config.model.dropout, network.L - 1)
    # Parameters, gradients and optimizer state become views of one vector each, so a step's
    # update is one fused kernel; buffers for the batches are allocated once (kernels.py).
    flat = kernels.Flat(network, optimizer)
    buffers = _Buffers(network, config.training.batch_size, n, flat)
    meta_extra = {"dataset": getattr(splits, "dataset", config.data.dataset), "n_train": n,
                  "init_from": str(init_from) if init_from is not None else
                  (saved.meta.get("init_from") if saved is not None else None)}
    try:
        for epoch in range(state.epoch, epochs):
            started = time.perf_counter()
            lr = learning_rate(config.training.learning_rate, config.training.schedule, epoch, epochs)
            n_batches = -(-n // config.training.batch_size)
            progress.start_epoch(epoch + 1, epochs, n_batches)
            # Overflow shows up as inf/NaN in the loss, which is checked: no warnings needed.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                train_loss, train_accuracy = _train_epoch(
                    network, optimizer, X, y, rng, config, lr, lam, rates, progress, epoch + 1, buffers
                )
                val = evaluate(network, splits.X_val, splits.y_val) if n_val else None
            if val is not None and not math.isfinite(val.loss):
                raise _diverged(config, epoch + 1, "the validation loss", val.loss, run_dir, state.epoch)
            metrics = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "train_accuracy": train_accuracy,
                "val_loss": val.loss if val else None,
                "val_accuracy": val.accuracy if val else None,
                "l2_penalty": network.l2_penalty(lam, n),
                "learning_rate": lr,
                "seconds": round(time.perf_counter() - started, 3),
            }
            improved = _update_state(state, metrics, config)
            rows.append(metrics)
            with _sigint_deferred():
                write_metrics(run_dir, rows)
                meta = {"epoch": epoch + 1, "metrics": metrics, "rng_state": rng.bit_generator.state,
                        "state": dataclasses.asdict(state), **meta_extra}
                opt_state = optimizer.state_dict()
                if improved:
                    checkpoint.save(run_dir / BEST, network, config, meta, opt_state)
                checkpoint.save(run_dir / LAST, network, config, meta, opt_state)
                state.epoch = epoch + 1
            history.best_epoch, history.best_val_accuracy = state.best_epoch, state.best_val_accuracy
            progress.end_epoch(metrics)

            es = config.training.early_stopping
            if es is not None and state.es_bad_epochs >= es.patience:
                history.stopped = "early_stopping"
                progress.message(f"early stopping: {es.metric} has not improved for {es.patience} epochs "
                                 f"(best at epoch {_es_best_epoch(rows, es.metric)})")
                break
            if stop_after is not None and epoch + 1 >= stop_after and epoch + 1 < epochs:
                history.stopped = "stop_after"
                progress.message(f"stopped after epoch {epoch + 1} of {epochs} (--stop-after); "
                                 f"resume with: mlpcli train --resume {shown(run_dir / LAST)}")
                break
    except KeyboardInterrupt:
        raise _interrupted(run_dir, state.epoch, epochs) from None
    except _Diverged as d:
        raise _diverged(config, d.epoch, "the training loss", d.value, run_dir, state.epoch) from None

    if n_val == 0:
        progress.message(f"validation: 0 — no best.npz; the final weights are in {shown(run_dir / LAST)}")
    elif state.best_epoch is not None:
        progress.message(f"best val_accuracy {state.best_val_accuracy:.4f} at epoch {state.best_epoch}: "
                         f"{shown(run_dir / BEST)}")
    progress.message(f"run folder: {shown(run_dir)}")
    return history


# --- one epoch ----------------------------------------------------------------------------------


class _Diverged(Exception):
    def __init__(self, epoch: int, value: float):
        self.epoch, self.value = epoch, value


# Training examples prepared at a time (rounded to whole batches): 4096 float32 images are
# 12.8 MB. See _train_epoch.
CHUNK = 4096


class _Buffers:
    """Arrays every batch of a run reuses: one chunk of inputs X, targets Y and outputs A[L],
    and a ``kernels.Workspace`` per batch size (an epoch's last batch may be shorter)."""

    def __init__(self, network, batch_size: int, n: int, flat):
        per_chunk = max(1, CHUNK // batch_size) * batch_size
        self.chunk = min(per_chunk, -(-n // batch_size) * batch_size)
        self.X = np.empty((self.chunk, network.layers[0]), dtype=network.dtype)
        self.Y = np.empty((self.chunk, network.layers[-1]), dtype=network.dtype)
        self.AL = np.empty_like(self.Y)
        self.network, self.flat, self._ws = network, flat, {}

    def workspace(self, m: int):
        if m not in self._ws:
            self._ws[m] = kernels.Workspace(self.network, m, self.flat)
        return self._ws[m]

    def one_hot(self, labels: np.ndarray) -> np.ndarray:
        Y = self.Y[: len(labels)]
        Y.fill(0)
        Y[np.arange(len(labels)), labels] = 1
        return Y


def _train_epoch(network, optimizer, X, y, rng, config, lr, lam, rates, progress, epoch, buffers):
    """One pass over the training set in shuffled mini-batches; (mean loss, accuracy).

    What does not have to happen per batch happens once per chunk of ``buffers.chunk``
    examples of the epoch's one permutation: gather their uint8 rows, augment, ``scale01`` to
    the network's dtype, one-hot encode. A batch is then a view of the chunk, and forward,
    backward and the update reuse preallocated buffers (kernels.py). Each batch's output A[L]
    is written into the chunk's output array, from which every batch's loss (its exact data
    cost) and the accuracy are computed once per chunk, vectorized; ``progress.batch`` hears
    each batch's loss then, and a non-finite loss stops training at the end of that chunk.
    The L2 term (λ/n) W is added inside the optimizer's fused update (``decay``) instead of by
    ``backward``: the same operations on the same numbers.
    """
    n, m, L, dtype = len(y), config.training.batch_size, network.L, network.dtype
    shift, flip = config.data.augment.shift, config.data.augment.flip
    decay, dropout = lam / n, any(rates)
    cost = F.COSTS[network.cost].fn
    order = rng.permutation(n)  # one permutation per epoch
    total_loss, correct = 0.0, 0
    full = buffers.workspace(m)
    for first in range(0, n, buffers.chunk):
        rows = order[first : first + buffers.chunk]
        k, labels = len(rows), y[rows]
        Xc = scale01(augment(X[rows], rng, shift, flip), dtype, out=buffers.X[:k])
        Yc, AL = buffers.one_hot(labels), buffers.AL[:k]
        for start in range(0, k, m):
            ws = full if start + m <= k else buffers.workspace(k - start)
            ws.A[L] = AL[start : start + m]  # this batch's outputs go straight into the chunk's
            masks = dropout_masks(network.layers, rates, ws.m, rng, dtype) if dropout else None
            Z, A = network.forward(Xc[start : start + m], masks, ws)
            dW, db = network.backward(Z, A, Yc[start : start + m], 0.0, n, masks, ws)
            optimizer.step(network, dW, db, lr, decay)
        # (1/m) Σ c(a, y) of every batch of the chunk, as network.data_cost computes it
        costs = cost(AL, Yc)
        whole = k // m * m
        losses = list(costs[:whole].reshape(-1, m).mean(axis=1, dtype=np.float64))
        if whole < k:
            losses.append(costs[whole:].mean(dtype=np.float64))
        for i, loss in enumerate(map(float, losses)):
            if not math.isfinite(loss):
                raise _Diverged(epoch, loss)
            total_loss += loss * min(m, k - i * m)
            progress.batch(loss)
        correct += int(np.count_nonzero(AL.argmax(axis=1) == labels))
    if not all(np.isfinite(w).all() for w in network.W[1:]):
        raise _Diverged(epoch, float("nan"))
    return total_loss / n, correct / n


def _update_state(state: _State, metrics: dict, config) -> bool:
    """Update best-so-far and early-stopping counters; True when val_accuracy improved."""
    acc = metrics["val_accuracy"]
    improved = acc is not None and (state.best_val_accuracy is None or acc > state.best_val_accuracy)
    if improved:
        state.best_epoch, state.best_val_accuracy = metrics["epoch"], acc
    es = config.training.early_stopping
    if es is not None and metrics[es.metric] is not None:
        value = metrics[es.metric]
        better = state.es_best is None or (value > state.es_best if es.metric == "val_accuracy" else value < state.es_best)
        if better:
            state.es_best, state.es_bad_epochs = value, 0
        else:
            state.es_bad_epochs += 1
    return improved


def _es_best_epoch(rows: list[dict], metric: str) -> int:
    pick = max if metric == "val_accuracy" else min
    return pick(rows, key=lambda r: r[metric])["epoch"]


# --- run folders, resume, init ------------------------------------------------------------------


def _new_run_dir(out_dir, config, overwrite: bool) -> Path:
    if out_dir is None and config.output.dir:
        out_dir = config.output.dir
    if out_dir is None:
        run_dir = _default_run_dir(config.name)
        base, k = run_dir, 2
        while run_dir.exists():  # two runs started in the same second
            run_dir, k = base.with_name(f"{base.name}-{k}"), k + 1
    else:
        run_dir = Path(out_dir)
    check_run_dir(run_dir, overwrite)
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (LAST, BEST, METRICS_FILE):
        (run_dir / name).unlink(missing_ok=True)
    return run_dir.resolve()


def check_run_dir(run_dir, overwrite: bool = False) -> None:
    """Raise CheckpointError if ``run_dir`` holds checkpoints (unless ``overwrite``) or is a file."""
    if run_dir is None:
        return
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} exists and is not a folder", "choose another --out")
    existing = sorted(p.name for p in run_dir.glob("*.npz")) if run_dir.is_dir() else []
    if existing and not overwrite:
        raise CheckpointError(
            f"run folder {run_dir} already holds checkpoints ({', '.join(existing)})",
            f"continue it with --resume {run_dir / LAST}, choose another --out, or pass --overwrite",
        )


def _resume_config(saved, config):
    """The config a resumed run continues with: the checkpoint's, with at most more epochs."""
    if config is None:
        return saved.config
    old, new = _flatten(config_to_dict(saved.config)), _flatten(config_to_dict(config))
    differ = [k for k in sorted(set(old) | set(new))
              if k not in LOCATION_KEYS and k != "training.epochs" and old.get(k) != new.get(k)]
    if differ:
        shown = ", ".join(f"{k} ({old.get(k)!r} → {new.get(k)!r})" for k in differ[:4])
        raise ConfigError(
            f"--resume continues the checkpoint's run, but the given config differs in {shown}",
            "drop --config (the checkpoint's config is used; only --set training.epochs=N may change), "
            "or start a new run from its weights with --init-from",
        )
    if config.training.epochs < saved.epoch:
        raise ConfigError(f"training.epochs={config.training.epochs} is less than the "
                          f"{saved.epoch} epochs {saved.path} already holds")
    return dataclasses.replace(config, name=saved.config.name)


def resume_config(saved, config=None, overrides=()):
    """The config a resumed run continues with: ``config`` (checked against the checkpoint's)
    or else the checkpoint's own with ``overrides`` (e.g. training.epochs=N) applied."""
    if config is None:
        config = config_for_resume(saved.config, overrides)
    return _resume_config(saved, config)


def config_for_resume(saved_config, overrides=()):
    """A checkpoint's config with ``--set`` overrides applied (e.g. training.epochs=N)."""
    if not overrides:
        return saved_config
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoint.yaml"
        path.write_text(dump_yaml(saved_config), encoding="utf-8")
        return dataclasses.replace(load_config(path, overrides), name=saved_config.name)


def _flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in d.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _restore_rng(state, path) -> np.random.Generator:
    try:
        bit_generator = getattr(np.random, state["bit_generator"])()
        bit_generator.state = state
    except (TypeError, KeyError, AttributeError, ValueError):
        raise CheckpointError(f"{path} holds no usable random-generator state",
                              "it cannot be resumed exactly; use --init-from to start a new run") from None
    return np.random.Generator(bit_generator)


def _cast(network: Network, dtype) -> Network:
    if network.dtype == dtype:
        return network
    return Network([None] + [w.astype(dtype) for w in network.W[1:]],
                   [None] + [b.astype(dtype) for b in network.b[1:]],
                   network.activations, network.output, network.cost)


def _init_from(path, config, dtype) -> Network:
    source = checkpoint.load(path)
    if list(source.network.layers) != list(config.model.layers):
        raise ConfigError(
            f"--init-from {path} has layers {list(source.network.layers)}, "
            f"but model.layers is {list(config.model.layers)}",
            f"use --set model.layers={list(source.network.layers)}".replace(" ", ""),
        )
    net = source.network
    return _cast(Network(net.W, net.b, config.model.activation, config.model.output, config.cost), dtype)


def _check_data(config, splits, saved) -> None:
    width = splits.X_train.shape[1]
    if width != config.model.layers[0]:
        raise ConfigError(f"model.layers starts at {config.model.layers[0]}, but the data has {width} inputs")
    if len(splits.y_train) == 0:
        raise ConfigError("the training split is empty", "lower data.validation")
    if saved is not None and saved.meta.get("n_train") not in (None, len(splits.y_train)):
        raise ConfigError(
            f"the checkpoint was trained on {saved.meta['n_train']} examples, this data has "
            f"{len(splits.y_train)}", "resume with the same data and data.validation",
        )


# --- files ----------------------------------------------------------------------------------


@contextmanager
def _sigint_deferred():
    """Hold Ctrl-C until the block is done, so an epoch's files are written together."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


# --- errors -----------------------------------------------------------------------------------


def _interrupted(run_dir: Path, saved_epoch: int, epochs: int) -> Interrupted:
    if saved_epoch == 0:
        return Interrupted(f"interrupted during epoch 1 of {epochs}; no epoch completed, nothing was saved",
                           f"start again with mlpcli train (the folder {shown(run_dir)} may be reused with --out)")
    return Interrupted(
        f"interrupted during epoch {saved_epoch + 1} of {epochs}; {shown(run_dir / LAST)} holds epoch {saved_epoch}",
        f"resume with: mlpcli train --resume {shown(run_dir / LAST)}",
    )


def _diverged(config, epoch, what, value, run_dir: Path, saved_epoch: int) -> DivergenceError:
    lr = config.training.learning_rate
    kept = (f"{shown(run_dir / LAST)} keeps epoch {saved_epoch}" if saved_epoch
            else "no checkpoint was written")
    return DivergenceError(
        f"training diverged in epoch {epoch}: {what} is {value} ({kept})",
        f"lower the learning rate, e.g. --set training.learning_rate={lr / 10:g}",
    )
