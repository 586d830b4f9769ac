"""Training: a run is started, stepped epoch by epoch, and finished.

``fit(config, splits, out_dir)`` reads top to bottom like the algorithm:

    run  = start(config, out_dir)               fresh, --resume or --init-from: decided once
           rng = Generator(training.seed)       the ONE source of randomness of a run
           net = Network.from_config(config, rng)    (or a checkpoint's weights)
    for each epoch:
        η = schedule(epoch, epochs)             a pure function: resumes recompute it
        for each chunk of rng.permutation(n):   one permutation per epoch
            X = scale01(augment(X_uint8[chunk]))     data stays uint8 until here
            for each batch (a view) of the chunk:
                Z, A = net.forward(X, dropout masks)
                net.backward(Z, A, Y)           ∂C/∂θ of the data cost, into net.grad
                optimizer.step(η, λ/n)          θ ← rule(θ, ∂C/∂θ + (λ/n)W), in place
        validate; commit the epoch: metrics.jsonl row, best.npz (if better), last.npz
    finish: say where the best and last weights are

``start`` needs no data, so the CLI calls it before a long data load and every check of the
run folder and the checkpoints happens once, there. The batches reuse preallocated buffers
(``kernels.Workspace``). Every checkpoint stores the generator's state, the optimizer state
and the best-so-far and early-stopping counters, so a resumed run continues the same run bit
for bit. Progress goes to a callback object (``Progress``); the tqdm bars live in the CLI.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from mlpcli.run import checkpoint
from mlpcli.nn import kernels
from mlpcli.nn import functions as F
from mlpcli.data.augment import augment, clean_epochs
from mlpcli.data.splits import check_layers
from mlpcli.run.config import config_to_dict, dump_yaml
from mlpcli.errors import CheckpointError, ConfigError, DivergenceError, Interrupted
from mlpcli.nn.evaluate import evaluate
from mlpcli.nn.network import Network, dropout_masks, dropout_rates, scale01
from mlpcli.nn.optim import learning_rate, make_optimizer
from mlpcli.files import atomic_text, atomic_write_all, clean_temporaries, shown, text_writer
from mlpcli.run.runs import (BEST, CONFIG_FILE, LAST, METRICS_FILE, default_run_dir, metrics_text,
                             read_metrics, write_metrics)

# Keys that say where things live, not what is trained: they may differ on --resume.
LOCATION_KEYS = ("name", "data.dir", "data.path", "output.dir")
# Exit status of a run ended by SIGTERM (128 + 15), as shells report it.
SIGTERM_EXIT = 143


class Progress(Protocol):
    """What ``fit`` reports as it goes. Every method is optional to act on. ``end_epoch`` may
    return a reason to stop (a word, e.g. "pruned"): the run then ends after that epoch, cleanly,
    as ``stop_after`` ends it — how a hyperparameter search stops a hopeless trial."""

    def start_epoch(self, epoch: int, epochs: int, n_batches: int) -> None: ...
    def batch(self, loss: float) -> None: ...
    def end_epoch(self, metrics: dict) -> str | None: ...
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
    """What a call to ``fit`` did. ``epochs`` holds every metrics.jsonl row of the run;
    ``network`` is the trained network after the last epoch (with training.ema, the averaged
    weights: what last.npz holds); ``stopped`` says why the run
    ended (``completed``, ``early_stopping``, ``stop_after``, or what a ``Progress`` asked);
    ``best_epoch`` and ``best_val_accuracy`` are None without a validation split.
    ``last_checkpoint`` and ``best_checkpoint`` are the paths of ``last.npz`` and
    ``best.npz`` (None when no best epoch was kept)."""

    run_dir: Path
    network: Network
    epochs: list[dict] = field(default_factory=list)
    stopped: str = "completed"  # completed | early_stopping | stop_after | what a Progress asked
    best_epoch: int | None = None
    best_val_accuracy: float | None = None

    @property
    def last_checkpoint(self) -> Path:
        return self.run_dir / LAST

    @property
    def best_checkpoint(self) -> Path | None:
        return self.run_dir / BEST if self.best_epoch is not None else None


@dataclass
class State:
    """Everything besides weights and optimizer arrays that a resumed run needs."""

    epoch: int = 0  # completed epochs
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    es_best: float | None = None  # best early-stopping metric so far
    es_bad_epochs: int = 0  # epochs since it last improved


@dataclass
class Run:
    """A started run: where it writes, what it trains, and how far it got.

    ``replacing``: files of an earlier run in the folder (``--overwrite``), kept until this
    run's first epoch is committed. ``resumed``: the checkpoint a resumed run continues."""

    dir: Path
    config: object
    network: Network
    optimizer: object
    rng: np.random.Generator
    state: State
    meta: dict  # what every checkpoint's meta carries besides the epoch's own
    rows: list[dict] = field(default_factory=list)
    resumed: Path | None = None
    replacing: list[str] = field(default_factory=list)
    finite_start: bool = True  # were the weights finite when training began (see _diverged)

    @property
    def epochs(self) -> int:
        return self.config.training.epochs

    @property
    def model(self) -> Network:
        """The network that is validated and saved: ``network`` itself, or with
        training.ema the moving average of its weights (``optimizer.model``)."""
        return self.optimizer.model


# --- start ----------------------------------------------------------------------------------------


def start(config, out_dir=None, *, resume=None, init_from=None, overwrite: bool = False) -> Run:
    """Decide what a run is — fresh, resumed or initialized from a checkpoint — and check its
    folder, before any data is loaded. Nothing is written yet. Pass the result to ``fit``.

    config: the run's Config (see ``load_config``).
    out_dir: the run folder (default ``output.dir``, else ``runs/<name>-<timestamp>``).
    resume: a checkpoint (path or loaded ``Checkpoint``) of an unfinished run, continued in
        its own folder. ``config`` may be None (the checkpoint's) or must equal the
        checkpoint's config except for ``training.epochs`` (which may grow) and where data
        and output live.
    init_from: a checkpoint (path) whose weights start a new run (fine-tuning).
    overwrite: train into a folder that holds another run; its files are replaced when this
        run's first epoch is committed, not before.
    """
    if resume is not None and init_from is not None:
        raise ConfigError("--resume and --init-from cannot be combined",
                          "--resume continues a run; --init-from starts a new one from its weights")
    if resume is not None:
        return _resumed(resume, config, out_dir)
    run_dir = _new_run_dir(out_dir, config)
    replacing = check_run_dir(run_dir, overwrite)
    dtype = np.dtype(config.training.dtype)
    rng = np.random.default_rng(config.training.seed)
    if init_from is not None:
        source = checkpoint.load(init_from)
        try:
            network = Network.from_config(config, weights=source.network, dtype=dtype)
        except ConfigError as error:
            raise ConfigError(f"--init-from {init_from}: {error.message}", error.hint) from None
    else:
        network = Network.from_config(config, rng, dtype=dtype)
    meta = {"init_from": str(init_from) if init_from is not None else None}
    return Run(run_dir, config, network, make_optimizer(network, config.training), rng, State(), meta,
               replacing=replacing)


def _resumed(resume, config, out_dir) -> Run:
    saved = resume if isinstance(resume, checkpoint.Checkpoint) else checkpoint.load(resume)
    config = resume_config(saved, config)
    run_dir = saved.path.parent.resolve()
    if out_dir is not None and Path(out_dir).resolve() != run_dir:
        raise ConfigError(f"--resume writes into the checkpoint's own folder {run_dir}, not {out_dir}", "drop --out")
    if saved.epoch >= config.training.epochs:
        raise ConfigError(f"{saved.path} already finished all {config.training.epochs} epochs of its run",
                          f"extend it with --set training.epochs=N (N > {config.training.epochs}), "
                          "or start a new run with --init-from")
    _check_not_rewinding(saved, run_dir)
    state = State(**{k: v for k, v in saved.meta.get("state", {}).items() if k in State.__dataclass_fields__})
    state.epoch = saved.epoch
    network = saved.network.astype(config.training.dtype, copy=False)
    # With training.ema the file's weights are θ̄: the optimizer starts its average from them,
    # then load_state_dict puts θ (its state's theta_W1 …) back into the network
    optimizer = make_optimizer(network, config.training)
    optimizer.load_state_dict(saved.optimizer_state)
    meta = {"init_from": saved.meta.get("init_from"), "n_train": saved.meta.get("n_train")}
    rows = read_metrics(run_dir, through=state.epoch, strict=False)
    return Run(run_dir, config, network, optimizer, _restore_rng(saved.meta.get("rng_state"), saved.path),
               state, meta, rows, resumed=saved.path)


def _check_not_rewinding(saved, run_dir: Path) -> None:
    """Resuming from an earlier checkpoint (best.npz) would overwrite later epochs of last.npz."""
    last = run_dir / LAST
    if saved.path.resolve() == last.resolve() or not last.is_file():
        return
    try:
        later = int(checkpoint.read_meta(last).get("epoch", 0))
    except CheckpointError:
        return
    if later > saved.epoch:
        raise ConfigError(
            f"{saved.path} holds epoch {saved.epoch}, but {shown(last)} in the same run folder holds epoch "
            f"{later}; resuming from it would overwrite the later epochs",
            f"resume from {shown(last)}, or start a new run from these weights with --init-from {saved.path}",
        )


def _new_run_dir(out_dir, config) -> Path:
    if out_dir is None and config.output.dir:
        out_dir = config.output.dir
    if out_dir is not None:
        return Path(out_dir).resolve()
    run_dir = default_run_dir(config.name)
    base, k = run_dir, 2
    while run_dir.exists():  # two runs started in the same second
        run_dir, k = base.with_name(f"{base.name}-{k}"), k + 1
    return run_dir.resolve()


def check_run_dir(run_dir, overwrite: bool = False) -> list[str]:
    """The files of an earlier run in ``run_dir`` (checkpoints, metrics.jsonl) that
    ``--overwrite`` will replace; a CheckpointError if there are any and not ``overwrite``,
    or if ``run_dir`` is not a folder."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} exists and is not a folder", "choose another --out")
    if not run_dir.is_dir():
        return []
    checkpoints = sorted(p.name for p in run_dir.glob("*.npz"))
    existing = checkpoints + [METRICS_FILE] * (run_dir / METRICS_FILE).exists()
    if existing and not overwrite:
        what = f"checkpoints ({', '.join(checkpoints)})" if checkpoints else f"the {METRICS_FILE} of an earlier run"
        resume = f"continue it with --resume {run_dir / LAST}, " if (run_dir / LAST).is_file() else ""
        raise CheckpointError(f"run folder {run_dir} already holds {what}",
                              f"{resume}choose another --out, or pass --overwrite")
    return existing


def resume_config(saved, config):
    """The config a resumed run continues with: the checkpoint's, with at most more epochs."""
    if config is None:
        return saved.config
    old, new = flat_keys(config_to_dict(saved.config)), flat_keys(config_to_dict(config))
    differ = [k for k in sorted(set(old) | set(new))
              if k not in LOCATION_KEYS and k != "training.epochs" and old.get(k) != new.get(k)]
    if differ:
        listed = ", ".join(f"{k} ({old.get(k)!r} → {new.get(k)!r})" for k in differ[:4])
        raise ConfigError(
            f"--resume continues the checkpoint's run, but the given config differs in {listed}",
            "drop --config (the checkpoint's config is used; only --set training.epochs=N may change), "
            "or start a new run from its weights with --init-from",
        )
    if config.training.epochs < saved.epoch:
        raise ConfigError(f"training.epochs={config.training.epochs} is less than the "
                          f"{saved.epoch} epochs {saved.path} already holds")
    return dataclasses.replace(config, name=saved.config.name)


def flat_keys(d: dict, prefix: str = "") -> dict:
    """A nested mapping as dotted keys: ``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    flat = {}
    for key, value in d.items():
        if isinstance(value, dict):
            flat.update(flat_keys(value, f"{prefix}{key}."))
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


# --- the run: open, epochs, commit, finish -----------------------------------------------------------


def fit(run, splits, out_dir=None, *, stop_after: int | None = None, progress: Progress | None = None) -> History:
    """Train a run on ``splits`` and return its ``History``. ``run`` is what ``start``
    returned, or a config (then ``start(config, out_dir)``: a fresh run).

    ``splits``: the data, e.g. from ``load_splits(config.data)``. ``out_dir``: the run
    folder of a fresh run (default ``output.dir``, else ``runs/<name>-<timestamp>``); ignored
    when ``run`` is already started. Every epoch writes ``last.npz`` (and ``best.npz`` on a
    new best validation accuracy) and appends its row to ``metrics.jsonl``.
    ``stop_after``: end cleanly after this epoch (counted from 1), as an interruption would.
    ``progress``: an object with any of ``start_epoch``, ``batch``, ``end_epoch`` and
    ``message`` (see ``Progress``); the CLI passes its progress bar here. Default: silent.
    """
    if not isinstance(run, Run):
        run = start(run, out_dir)
    if stop_after is not None and stop_after <= run.state.epoch:
        raise ConfigError(f"--stop-after {stop_after}, but the checkpoint already holds epoch {run.state.epoch}",
                          "give a later epoch")
    progress = progress or Silent()
    _open(run, splits, progress)
    history = History(run.dir, run.model, run.rows, "completed", run.state.best_epoch, run.state.best_val_accuracy)
    trainer = _Epochs(run, splits, progress)
    with terminate_as_interrupt():
        try:
            for epoch in range(run.state.epoch, run.epochs):
                metrics = trainer.epoch(epoch)
                _commit(run, metrics)
                history.best_epoch, history.best_val_accuracy = run.state.best_epoch, run.state.best_val_accuracy
                asked = progress.end_epoch(metrics)
                history.stopped = asked or _stop_reason(run, stop_after, progress)
                if history.stopped != "completed":
                    break
        except KeyboardInterrupt as stop:
            raise _interrupted(run, isinstance(stop, Terminated)) from None
        except _Diverged as d:
            raise _diverged(run, d.epoch, d.what, d.value) from None
    _finish(run, splits, progress)
    return history


def _open(run: Run, splits, progress) -> None:
    """Check the data against the run, create the folder, clean what a killed run left."""
    _check_data(run, splits)
    run.finite_start = bool(np.isfinite(run.network.theta).all())
    run.meta.update(dataset=getattr(splits, "dataset", run.config.data.dataset), n_train=len(splits.y_train))
    if getattr(splits, "class_names", None):
        run.meta.update(class_names=list(splits.class_names))
    with _writing(run, run.dir):
        run.dir.mkdir(parents=True, exist_ok=True)
        clean_temporaries(run.dir)
        if not run.replacing:
            atomic_text(run.dir / CONFIG_FILE, dump_yaml(run.config))
            if run.resumed is not None:
                write_metrics(run.dir, run.rows)
    progress.message(f"run folder: {shown(run.dir)}")
    progress.message(model_summary(run, splits))
    if run.resumed is not None:
        progress.message(f"resuming from {run.resumed} at epoch {run.state.epoch} of {run.epochs}")
    if len(splits.y_val) == 0:
        progress.message("validation: 0 — no validation split, so no best.npz will be written (use last.npz)")


def format_epoch(m: dict, epochs: int) -> str:
    """The line printed after each epoch: losses, accuracies, learning rate, seconds."""
    val = f"  val loss {m['val_loss']:.4f} acc {m['val_accuracy']:.4f}" if m["val_accuracy"] is not None else ""
    return (f"epoch {m['epoch']:>{len(str(epochs))}}/{epochs}  train loss {m['train_loss']:.4f} "
            f"acc {m['train_accuracy']:.4f}{val}  lr {m['learning_rate']:.4g}  {m['seconds']:.1f}s")


def model_summary(run: Run, splits) -> str:
    """One line: layers, parameters, activations, optimizer, data sizes."""
    net, t = run.network, run.config.training
    acts = "/".join(dict.fromkeys(net.activations)) or "none"
    return (f"model: {'-'.join(map(str, net.layers))} ({net.theta.size:,} parameters), {acts} → "
            f"{net.output} + {net.cost}; {t.optimizer} lr {t.learning_rate:g}"
            f"{f', ema {t.ema:g}' if t.ema is not None else ''}, batch {t.batch_size}, "
            f"{t.epochs} epochs, {net.dtype}; data: {len(splits.y_train):,} train, "
            f"{len(splits.y_val):,} validation")


def _check_data(run: Run, splits) -> None:
    _check_data_shape(run.config, splits)
    if len(splits.y_train) == 0:
        raise ConfigError("the training split is empty", "lower data.validation")
    if run.resumed is not None and run.meta.get("n_train") not in (None, len(splits.y_train)):
        raise ConfigError(
            f"the checkpoint was trained on {run.meta['n_train']} examples, this data has "
            f"{len(splits.y_train)}", "resume with the same data and data.validation",
        )


def _check_data_shape(config, splits) -> None:
    """The input layer must be the images' h·w pixels and the output layer their K classes
    (``check_layers``); augmentation works on 28×28 images only."""
    check_layers(splits, config.model.layers)
    h, w = splits.image_shape
    aug = config.data.augment
    active = [key for key in ("shift", "flip", "rotate", "scale", "shear", "elastic") if getattr(aug, key, None)]
    if (h, w) != (28, 28) and active:
        off = " ".join(f"--set data.augment.{key}={ {'elastic': 'null', 'flip': 'false'}.get(key, 0)}"
                       for key in active)
        raise ConfigError(f"data.augment ({', '.join(active)}) works on 28×28 images, but the data's are "
                          f"{h}×{w}", f"turn it off: {off}")


def _commit(run: Run, metrics: dict) -> None:
    """Write one epoch as a unit — its metrics row, best.npz when it improved, last.npz — with
    Ctrl-C and SIGTERM held until all are written. The first commit of an ``--overwrite`` run
    replaces the earlier run's files."""
    improved = _update_state(run.state, metrics, run.config)
    state = dataclasses.replace(run.state, epoch=metrics["epoch"])
    meta = {"epoch": metrics["epoch"], "metrics": metrics, "rng_state": run.rng.bit_generator.state,
            "state": dataclasses.asdict(state), **run.meta}
    opt_state = run.optimizer.state_dict()
    files = [(run.dir / METRICS_FILE, text_writer(metrics_text(run.rows + [metrics])))]
    if run.replacing:
        files.append((run.dir / CONFIG_FILE, text_writer(dump_yaml(run.config))))
    write = checkpoint.writer(run.model, run.config, meta, opt_state)
    files += [(run.dir / BEST, write)] * improved + [(run.dir / LAST, write)]
    with signals_deferred():
        # metrics first, last.npz last: a crash between the renames leaves metrics.jsonl at
        # most one row ahead, which a resume from last.npz drops
        with _writing(run, run.dir / LAST):
            atomic_write_all(files)
        if run.replacing and not improved:
            (run.dir / BEST).unlink(missing_ok=True)  # the earlier run's; this one has none yet
        run.replacing = []
        run.rows.append(metrics)
        run.state = state


def _stop_reason(run: Run, stop_after: int | None, progress) -> str:
    """completed (go on), early_stopping or stop_after, saying why when it stops."""
    es, done = run.config.training.early_stopping, run.state.epoch
    if es is not None and run.state.es_bad_epochs >= es.patience:
        pick = max if es.metric == "val_accuracy" else min
        best = pick(run.rows, key=lambda r: r[es.metric])["epoch"]
        progress.message(f"early stopping: {es.metric} has not improved for {es.patience} epochs (best at epoch {best})")
        return "early_stopping"
    if stop_after is not None and done >= stop_after and done < run.epochs:
        progress.message(f"stopped after epoch {done} of {run.epochs} (--stop-after); "
                         f"resume with: mlpcli train --resume {shown(run.dir / LAST)}")
        return "stop_after"
    return "completed"


def _update_state(state: State, metrics: dict, config) -> bool:
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


def _finish(run: Run, splits, progress) -> None:
    if len(splits.y_val) == 0:
        progress.message(f"validation: 0 — no best.npz; the final weights are in {shown(run.dir / LAST)}")
    elif run.state.best_epoch is not None:
        progress.message(f"best val_accuracy {run.state.best_val_accuracy:.4f} at epoch {run.state.best_epoch}: "
                         f"{shown(run.dir / BEST)}")
    progress.message(f"run folder: {shown(run.dir)}")


# --- one epoch ----------------------------------------------------------------------------------


class _Diverged(Exception):
    def __init__(self, epoch: int, value: float, what: str = "the training loss"):
        self.epoch, self.value, self.what = epoch, value, what


# Training examples prepared at a time (rounded to whole batches): 4096 float32 images are
# 12.8 MB. See _Epochs.train.
CHUNK = 4096


class _Epochs:
    """The epochs of one run over one data set, with the arrays every batch reuses: one chunk
    of inputs X, targets Y and outputs A[L], and a ``kernels.Workspace`` per batch size (an
    epoch's last batch may be shorter)."""

    def __init__(self, run: Run, splits, progress):
        net, m, n = run.network, run.config.training.batch_size, len(splits.y_train)
        self.run, self.splits, self.progress = run, splits, progress
        self.rates = dropout_rates(run.config.model.dropout, net.L - 1)
        self.chunk = min(max(1, CHUNK // m) * m, -(-n // m) * m)
        self.X = np.empty((self.chunk, net.layers[0]), dtype=net.dtype)
        self.Y = np.empty((self.chunk, net.layers[-1]), dtype=net.dtype)
        self.AL = np.empty_like(self.Y)
        self._ws: dict[int, kernels.Workspace] = {}

    def workspace(self, m: int) -> kernels.Workspace:
        if m not in self._ws:
            self._ws[m] = kernels.Workspace(self.run.network, m)
        return self._ws[m]

    def one_hot(self, labels: np.ndarray) -> np.ndarray:
        Y = self.Y[: len(labels)]
        Y.fill(0)
        Y[np.arange(len(labels)), labels] = 1
        return Y

    def epoch(self, epoch: int) -> dict:
        """Train epoch ``epoch`` (0-based) and validate: its metrics row."""
        run, splits, t = self.run, self.splits, self.run.config.training
        started = time.perf_counter()
        lr = learning_rate(t.learning_rate, t.schedule, epoch, run.epochs)
        self.progress.start_epoch(epoch + 1, run.epochs, -(-len(splits.y_train) // t.batch_size))
        # Overflow shows up as inf/NaN in the loss, which is checked: no warnings needed.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            train_loss, train_accuracy = self.train(lr, epoch + 1)
            val = evaluate(run.model, splits.X_val, splits.y_val) if len(splits.y_val) else None
        if val is not None and not math.isfinite(val.loss):
            raise _Diverged(epoch + 1, val.loss, "the validation loss")
        return {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "val_loss": val.loss if val else None,
            "val_accuracy": val.accuracy if val else None,
            "l2_penalty": run.network.l2_penalty(run.config.regularization.l2, len(splits.y_train)),
            "learning_rate": lr,
            "seconds": round(time.perf_counter() - started, 3),
        }

    def train(self, lr: float, epoch: int) -> tuple[float, float]:
        """One pass over the training set in shuffled mini-batches; (mean loss, accuracy).

        What does not have to happen per batch happens once per chunk of ``self.chunk``
        examples of the epoch's one permutation: gather their uint8 rows, augment, ``scale01``
        to the network's dtype, one-hot encode. A batch is then a view of the chunk, and
        forward, backward and the update reuse preallocated buffers. Each batch's output A[L]
        is written into the chunk's output array, from which every batch's loss and the
        accuracy are computed once per chunk (``_score_chunk``)."""
        run, (X, y) = self.run, (self.splits.X_train, self.splits.y_train)
        net, rng, c = run.network, run.rng, run.config
        n, m, L = len(y), c.training.batch_size, net.L
        decay = c.regularization.l2 / n  # λ/n
        dropout = any(self.rates)
        order = rng.permutation(n)  # one permutation per epoch
        clean = epoch > run.epochs - clean_epochs(c.data.augment, run.epochs)  # epoch is 1-based
        total_loss, correct = 0.0, 0
        for first in range(0, n, self.chunk):
            rows = order[first : first + self.chunk]
            k, labels = len(rows), y[rows]
            Xc = scale01(X[rows] if clean else augment(X[rows], rng, c.data.augment), net.dtype,
                         out=self.X[:k])
            Yc, AL = self.one_hot(labels), self.AL[:k]
            for s in range(0, k, m):
                ws = self.workspace(min(m, k - s))
                ws.A[L] = AL[s : s + m]  # this batch's outputs go straight into the chunk's
                masks = dropout_masks(net.layers, self.rates, ws.m, rng, net.dtype) if dropout else None
                Z, A = net.forward(Xc[s : s + m], masks, ws)
                net.backward(Z, A, Yc[s : s + m], masks, ws)  # ∂C/∂θ into net.grad
                run.optimizer.step(lr, decay)  # with the L2 term (λ/n)W
            loss, right = self._score_chunk(AL, Yc, labels, epoch)
            total_loss, correct = total_loss + loss, correct + right
        if not np.isfinite(net.theta).all():
            raise _Diverged(epoch, float("nan"))
        return total_loss / n, correct / n

    def _score_chunk(self, AL, Yc, labels, epoch: int) -> tuple[float, int]:
        """(Σ over the chunk's batches of batch loss × batch size, correct predictions); each
        batch's loss (1/m) Σ c(a, y) — as network.data_cost computes it — goes to progress,
        and a non-finite one stops training."""
        m, k = self.run.config.training.batch_size, len(labels)
        costs = F.COSTS[self.run.network.cost].fn(AL, Yc)
        whole = k // m * m
        losses = list(costs[:whole].reshape(-1, m).mean(axis=1, dtype=np.float64))
        if whole < k:
            losses.append(costs[whole:].mean(dtype=np.float64))
        total = 0.0
        for i, loss in enumerate(map(float, losses)):
            if not math.isfinite(loss):
                raise _Diverged(epoch, loss)
            total += loss * min(m, k - i * m)
            self.progress.batch(loss)
        return total, int(np.count_nonzero(AL.argmax(axis=1) == labels))


@contextmanager
def _writing(run: Run, path: Path):
    """An OSError while writing the run (full disk, read-only, no permission, a file where a
    folder should be) becomes one line that names the path and says what was kept."""
    try:
        yield
    except OSError as error:
        kept = (f"{shown(run.dir / LAST)} keeps epoch {run.state.epoch}" if run.state.epoch and (run.dir / LAST).is_file()
                else "nothing of this run was saved")
        if run.replacing:
            kept += "; the earlier run's files are untouched"
        why = "no space left on the device" if error.errno in (errno.ENOSPC, errno.EDQUOT) else error.strerror or error
        hint = (f"free some space or fix the folder, then resume with: mlpcli train --resume {shown(run.dir / LAST)}"
                if run.state.epoch else "choose another --out: a folder you can write, on a disk with free space")
        raise CheckpointError(f"cannot write {shown(path)}: {why} ({kept})", hint) from None


# --- signals --------------------------------------------------------------------------------


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interruption so that it ends a run as Ctrl-C does."""


def _raise_terminated(signum, frame):
    raise Terminated


@contextmanager
def terminate_as_interrupt():
    """While training, SIGTERM (kill, systemd, Slurm, containers) interrupts like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def signals_deferred():
    """Hold Ctrl-C and SIGTERM until the block is done, so an epoch's files are written together
    (and a hyperparameter search's database write is never cut in half)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if signal.SIGTERM in received:
        raise Terminated
    if received:
        raise KeyboardInterrupt


# --- errors -----------------------------------------------------------------------------------


def _interrupted(run: Run, terminated: bool) -> Interrupted:
    how = "terminated (SIGTERM)" if terminated else "interrupted"
    saved, epochs = run.state.epoch, run.epochs
    if saved == 0 or not (run.dir / LAST).is_file():
        kept = "; the earlier run's files are untouched" if run.replacing else ""
        error = Interrupted(f"{how} during epoch 1 of {epochs}; no epoch completed, nothing was saved{kept}",
                            f"start again with mlpcli train (--out {shown(run.dir)} --overwrite reuses the folder)"
                            if run.replacing else "start again with mlpcli train")
    else:
        error = Interrupted(f"{how} during epoch {saved + 1} of {epochs}; {shown(run.dir / LAST)} holds epoch {saved}",
                            f"resume with: mlpcli train --resume {shown(run.dir / LAST)}")
    if terminated:
        error.exit_code = SIGTERM_EXIT
    return error


def _diverged(run: Run, epoch: int, what: str, value: float) -> DivergenceError:
    """The error for a NaN or infinite loss, blaming what actually caused it: weights that were
    not finite to begin with, an L2 term so strong that it alone swamps the data (λ/n ≥ 1:
    each step's decay η λ/n W overshoots at any learning rate that could fit the data), or
    else the learning rate."""
    t, lam = run.config.training, run.config.regularization.l2
    kept = (f"{shown(run.dir / LAST)} keeps epoch {run.state.epoch}" if run.state.epoch
            else "no checkpoint was written")
    message = f"training diverged in epoch {epoch}: {what} is {value} ({kept})"
    if not run.finite_start:
        source = run.resumed or run.meta.get("init_from") or "the initial weights"
        return DivergenceError(f"{message}; the starting weights from {source} already hold NaN or infinity",
                               "start from a checkpoint with finite weights (or a fresh run)")
    n = run.meta.get("n_train") or 1
    if not math.isfinite(lam) or lam / n >= 1:
        return DivergenceError(
            f"{message}; the L2 term swamps everything: λ/n = {lam:g}/{n} ≥ 1",
            f"lower regularization.l2 well below n = {n} (the presets use 1–5), e.g. --set regularization.l2=5",
        )
    return DivergenceError(message, f"lower the learning rate, e.g. --set training.learning_rate={t.learning_rate / 10:g}")
