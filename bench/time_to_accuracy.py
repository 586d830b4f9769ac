"""Time to accuracy: how many seconds of training each trainer needs to reach 98 % and 99 %
test accuracy on MNIST, on the same machine, in one run.

The contenders (``--only`` picks some, by name):

    mlpcli-default        mlpcli, preset mnist (read at run time: whatever the preset says)
    mlpcli-record         mlpcli, preset mnist-record ("preset not found, skipped" if absent)
    mlpcli-default-torch  PyTorch, the mnist preset's recipe translated (see below)
    keras-torch           PyTorch, the Keras MNIST MLP example: 784-512-512-10 ReLU, dropout
                          0.2, RMSprop 1e-3 (ρ 0.9, ε 1e-7: Keras's defaults), Glorot-uniform
                          weights and zero biases (Keras's Dense defaults), batch 128, 20 epochs
    sklearn-default       scikit-learn MLPClassifier() with its defaults
    sklearn-800x800       MLPClassifier(hidden_layer_sizes=(800, 800), batch_size=128)

After every epoch the script measures test accuracy with the clock paused, and records the
cumulative training seconds without that evaluation. Per trainer it prints: epochs, the
training seconds (and epoch) at which test accuracy first reached 98.0 % and 99.0 % (or
"never"), the accuracy after the last epoch, the training seconds, and the wall seconds of
its whole process (start-up, data loading, training and the untimed test evaluations).

What the training seconds hold, trainer by trainer:

* mlpcli: ``mlpcli.fit`` on a run started with ``mlpcli.start_run``, timed from the call
  to its return, less the time spent in its end-of-epoch progress hook (which measures test
  accuracy on the network being trained). So they include what ``mlpcli train`` does every
  epoch besides the updates: the distortions, the validation pass (the presets hold out the
  last 10,000 training images unless data.validation is 0) and the checkpoint writes.
* mlpcli-default-torch: only the training engine differs from mlpcli-default. The preset
  is read with ``load_config("mnist")`` and each key translated; a key the script cannot
  translate stops it before anything is trained. The same split (the same examples held
  out), the same initial weights (``Network.from_config`` with the preset's seed), the same
  generator then drawing each epoch's permutation and distortions, chunk by chunk as
  ``fit`` does (mlpcli's own ``augment``, timed), the same learning rate per epoch (mlpcli's
  own schedule function, warm-up included), the same update: PyTorch's SGD (momentum,
  nesterov) or Adam, whose rules are mlpcli's (see ``mlpcli.nn.optim``), with
  ``weight_decay`` = λ/n on the weights only and none on the biases, which is mlpcli's L2
  term (λ/2n) Σ‖W‖² of the objective: its gradient (λ/n)W is added to the gradient before
  the rule, n = the examples trained on. Softmax + log-likelihood is ``cross_entropy`` on
  the logits, a batch mean as mlpcli's. With ``training.ema`` the same moving average of
  the weights after every step (``torch._foreach_lerp_``), and the averaged network is the
  one validated and tested, as mlpcli's. Its validation pass (accuracy) is timed too; it
  writes no checkpoints.
* keras-torch, sklearn: all 60,000 training images, no validation pass.
* sklearn: one ``partial_fit`` per epoch, which runs one epoch of what ``fit`` runs: the
  same initial weights, the same Adam state carried from epoch to epoch, the same loss
  bookkeeping (the random state is a ``RandomState`` object, whose stream carries on from
  call to call as inside one ``fit``; an int would replay one shuffle every epoch). After
  each, the script applies fit's own stopping rule (training loss not better by tol for
  n_iter_no_change epochs, read from the estimator) and its max_iter of 200. The one
  difference: ``fit`` reshuffles the last epoch's order, ``partial_fit`` shuffles 0..n−1
  afresh, so the batches differ though they are just as random (with ``shuffle=False`` the
  two give bit-identical weights). ``warm_start`` with ``max_iter=1`` would differ more:
  every ``fit`` call makes a new Adam optimizer, restarting its moments.

Inputs are float32 scaled to [0, 1] for every trainer (mlpcli scales uint8 batches itself).
All trainers run with ``--threads`` BLAS/OpenMP threads (default 2) — the environment
variables are set before NumPy or PyTorch load, plus ``torch.set_num_threads`` — each in its
own process, one after another.

    python bench/time_to_accuracy.py --data data/mnist                          # everything
    python bench/time_to_accuracy.py --data DIR --only keras-torch,sklearn-default
    python bench/time_to_accuracy.py --data DIR --epochs 1 --time-limit 20      # a smoke run
    python bench/time_to_accuracy.py --data DIR --time-limit mlpcli-record=3600 \\
        --out bench/results/tta.json --plot bench/results/tta.png
    python bench/time_to_accuracy.py --from bench/results/tta.json --plot tta.png   # re-report

``--epochs`` and ``--time-limit`` take one number for all, or ``name=N,name=N`` pairs. A
contender stopped by ``--time-limit`` ends after the epoch at which its training seconds
passed the limit; its final accuracy is marked "stopped at …". Needs: scikit-learn and
PyTorch for their contenders (``pip install scikit-learn torch==2.13.0``; a missing one is
skipped), matplotlib for ``--plot``. Not part of the test suite. ``--child`` is internal.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from contextlib import contextmanager
from pathlib import Path

TARGETS = (0.98, 0.99)
SEED = 0
KERAS = {"layers": (784, 512, 512, 10), "dropout": 0.2, "lr": 1e-3, "rho": 0.9, "eps": 1e-7, "batch": 128, "epochs": 20}

Contender = namedtuple("Contender", "label kind options needs")
CONTENDERS = {
    "mlpcli-default": Contender("mlpcli, preset mnist", "mlpcli", {"preset": "mnist"}, ()),
    "mlpcli-record": Contender("mlpcli, preset mnist-record", "mlpcli", {"preset": "mnist-record"}, ()),
    "mlpcli-default-torch": Contender("PyTorch, mlpcli's mnist recipe", "twin", {"preset": "mnist"}, ("torch",)),
    "keras-torch": Contender("PyTorch, Keras example's recipe", "keras", {}, ("torch",)),
    "sklearn-default": Contender("scikit-learn MLPClassifier()", "sklearn", {}, ("sklearn",)),
    "sklearn-800x800": Contender("scikit-learn MLPClassifier((800, 800), batch 128)", "sklearn",
                                 {"hidden_layer_sizes": (800, 800), "batch_size": 128}, ("sklearn",)),
}
INSTALL = {"torch": "pip install torch==2.13.0", "sklearn": "pip install scikit-learn"}
# The config keys the PyTorch twin translates (the sections' keys; a nested one such as
# data.augment or training.schedule is used whole, through mlpcli's own functions for it: augment,
# clean_epochs, learning_rate).
TWIN_KEYS = {
    "name": (), "cost": (), "output": ("dir",), "regularization": ("l2",),
    "data": ("dataset", "dir", "path", "format", "preprocess", "validation", "augment"),
    "model": ("layers", "activation", "output", "init", "dropout"),
    "training": ("epochs", "batch_size", "learning_rate", "optimizer", "momentum", "adam", "ema", "schedule",
                 "early_stopping", "seed", "dtype"),
}
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def percent(fraction: float) -> str:
    return f"{100 * fraction:.2f} %"


def thread_count(n: int) -> str:
    return f"{n} thread{'s' * (n != 1)}"


# --- the record of one contender ------------------------------------------------------------------


class Clock:
    """Training seconds: the time since ``start``, less the time spent inside ``paused()``."""

    def __init__(self):
        self.started, self.excluded = time.perf_counter(), 0.0

    def seconds(self) -> float:
        return time.perf_counter() - self.started - self.excluded

    @contextmanager
    def paused(self):
        begun = time.perf_counter()
        try:
            yield
        finally:
            self.excluded += time.perf_counter() - begun


class TimeUp(Exception):
    """Raised from mlpcli's end-of-epoch hook to end ``fit`` at the time limit."""


class Curve:
    """One contender's epochs: (epoch, training seconds, test accuracy, …), and why it ended."""

    def __init__(self, name: str, y_test, epochs: int, limit: float | None):
        self.name, self.y_test, self.epochs, self.limit = name, y_test, epochs, limit
        self.rows: list[dict] = []
        self.ended = "completed"
        self.clock = Clock()

    def start(self) -> None:
        self.clock = Clock()

    def record(self, epoch: int, test_labels, **extra) -> bool:
        """Record epoch ``epoch`` (test accuracy from ``test_labels()``, with the clock paused);
        True when the time limit ends the run here."""
        seconds = self.clock.seconds()
        with self.clock.paused():
            correct = int((test_labels() == self.y_test).sum())
            row = {"epoch": epoch, "seconds": round(seconds, 3), "test_correct": correct,
                   "test_n": len(self.y_test), **{k: v for k, v in extra.items() if v is not None}}
            self.rows.append(row)
            val = f"  val {percent(row['val_accuracy'])}" if "val_accuracy" in row else ""
            say(f"  {self.name}: epoch {epoch}/{self.epochs}  {seconds:7.1f} s  test "
                f"{percent(correct / len(self.y_test))}{val}")
        if self.limit is not None and seconds >= self.limit and epoch < self.epochs:
            self.ended = f"stopped at {seconds:.0f} s (epoch {epoch} of {self.epochs}, --time-limit {self.limit:g})"
            return True
        return False

    def result(self, **facts) -> dict:
        return {"curve": self.rows, "planned_epochs": self.epochs, "ended": self.ended, **facts}


# --- children: one contender per process ----------------------------------------------------------


def preset_config(preset: str, data: Path, epochs: int | None):
    import mlpcli

    overrides = [f"training.epochs={epochs}"] if epochs else []
    return mlpcli.load_config(preset, overrides, flags=[("--data", {"data": {"path": str(data)}})])


def all_training_data(data: Path):
    """Every training image (no validation split), for the trainers that hold none out."""
    import mlpcli

    return mlpcli.load_splits(mlpcli.load_config(None, flags=[("--data", {"data": {"path": str(data), "validation": 0}})]).data,
                              quiet=True)


def child_mlpcli(name, options, data, epochs, limit):
    import mlpcli
    from mlpcli.run.train import Silent

    config = preset_config(options["preset"], data, epochs)
    splits = mlpcli.load_splits(config.data, quiet=True)
    curve = Curve(name, splits.y_test, config.training.epochs, limit)

    class TestEachEpoch(Silent):
        def end_epoch(self, metrics):
            if curve.record(metrics["epoch"], lambda: mlpcli.predict_labels(run.model, splits.X_test),
                            val_accuracy=metrics["val_accuracy"], train_loss=metrics["train_loss"]):
                raise TimeUp

    with tempfile.TemporaryDirectory(prefix="time-to-accuracy-") as tmp:
        run = mlpcli.start_run(config, Path(tmp) / "run")
        curve.start()
        try:
            history = mlpcli.fit(run, splits, progress=TestEachEpoch())
            if history.stopped != "completed":
                curve.ended = history.stopped.replace("_", " ")
        except TimeUp:
            pass
    return curve.result(n_train=len(splits.y_train), n_val=len(splits.y_val))


def twin_recipe(config) -> dict:
    """What the PyTorch twin needs from an mlpcli config; a ConfigError for any key it cannot
    translate (a new key included: it is translated here or refused)."""
    from mlpcli.errors import ConfigError
    from mlpcli.run.config import config_to_dict

    def refuse(key, value, why=""):
        raise ConfigError(f"the PyTorch twin of preset {config.name!r} cannot translate {key} = {value!r}{why}",
                          "translate it in bench/time_to_accuracy.py (twin_recipe), or leave out "
                          "mlpcli-default-torch with --only")

    for section, value in config_to_dict(config).items():
        if section not in TWIN_KEYS:
            refuse(section, value)
        for key in value if isinstance(value, dict) else ():
            if key not in TWIN_KEYS[section]:
                refuse(f"{section}.{key}", value[key])
    m, t = config.model, config.training
    activations = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh", "identity": "Identity"}
    for g in m.hidden_activations():
        if g not in activations:
            refuse("model.activation", m.activation)
    if (m.output, config.cost) != ("softmax", "log_likelihood"):
        refuse("model.output, cost", (m.output, config.cost), " (only softmax + log_likelihood)")
    if t.early_stopping is not None:
        refuse("training.early_stopping", config_to_dict(config)["training"]["early_stopping"])
    if t.dtype not in ("float32", "float64"):
        refuse("training.dtype", t.dtype)
    return {"activations": [activations[g] for g in m.hidden_activations()], "dropout": m.dropout_rates()}


def start_torch(threads: int):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    return torch


def torch_epoch(torch, model, optimizer, batches, after_step=None) -> None:
    """One pass of (inputs, labels) batches: softmax + cross-entropy (batch mean), one step
    each, then ``after_step()`` if given."""
    model.train()
    for X, y in batches:
        loss = torch.nn.functional.cross_entropy(model(X), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step()


def torch_average(torch, model, ema: float):
    """(the averaged copy of ``model``, the function that updates it after a step): mlpcli's
    training.ema, θ̄ ← d θ̄ + (1 − d) θ with d = min(ema, (1 + t)/(10 + t)) at step t, as one
    ``_foreach_lerp_`` over the parameters (θ̄ + (1 − d)(θ − θ̄))."""
    import copy

    averaged = copy.deepcopy(model)
    mine, theirs, steps = list(averaged.parameters()), list(model.parameters()), [0]

    def update():
        steps[0] += 1
        t = steps[0]
        with torch.no_grad():
            torch._foreach_lerp_(mine, theirs, 1 - min(ema, (1 + t) / (10 + t)))

    return averaged, update


def torch_labels(torch, model, X):
    model.eval()
    with torch.no_grad():
        return model(X).argmax(dim=1).numpy()


def child_twin(name, options, data, epochs, limit, threads):
    import numpy as np

    import mlpcli
    from mlpcli.data.augment import augment, clean_epochs
    from mlpcli.nn.optim import learning_rate
    from mlpcli.run.train import CHUNK

    config = preset_config(options["preset"], data, epochs)
    recipe = twin_recipe(config)
    torch = start_torch(threads)
    splits = mlpcli.load_splits(config.data, quiet=True)
    t, n, dtype = config.training, len(splits.y_train), getattr(torch, config.training.dtype)
    rng = np.random.default_rng(t.seed)  # as fit: the initial weights, then every epoch's draws
    init = mlpcli.Network.from_config(config, rng)
    layers = []
    for l in range(1, init.L + 1):
        linear = torch.nn.Linear(init.layers[l - 1], init.layers[l], dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(init.W[l]))
            linear.bias.copy_(torch.from_numpy(init.b[l]))
        layers.append(linear)
        if l < init.L:
            layers.append(getattr(torch.nn, recipe["activations"][l - 1])())
            if recipe["dropout"][l - 1]:
                layers.append(torch.nn.Dropout(recipe["dropout"][l - 1]))  # inverted, after g, as mlpcli's
    model = torch.nn.Sequential(*layers)
    weights = [p for p in model.parameters() if p.ndim == 2]
    biases = [p for p in model.parameters() if p.ndim == 1]
    groups = [{"params": weights, "weight_decay": config.regularization.l2 / n},  # (λ/n) W, weights only
              {"params": biases, "weight_decay": 0.0}]
    if t.optimizer == "adam":
        optimizer = torch.optim.Adam(groups, lr=t.learning_rate, betas=(t.adam.beta1, t.adam.beta2), eps=t.adam.eps)
    else:
        momentum = 0.0 if t.optimizer == "sgd" else t.momentum
        optimizer = torch.optim.SGD(groups, lr=t.learning_rate, momentum=momentum, nesterov=t.optimizer == "nesterov")

    def floats(X):
        return torch.from_numpy(mlpcli.scale01(X, np.dtype(t.dtype)))

    m = t.batch_size
    chunk = min(max(1, CHUNK // m) * m, -(-n // m) * m)  # as fit's chunks, so the draws match

    clean_from = t.epochs - clean_epochs(config.data.augment, t.epochs)  # the last epochs: as they are

    def batches(epoch):
        order = rng.permutation(n)
        for first in range(0, n, chunk):
            rows = order[first : first + chunk]
            raw = splits.X_train[rows]
            X = floats(raw if epoch >= clean_from else augment(raw, rng, config.data.augment))
            y = torch.from_numpy(splits.y_train[rows].astype(np.int64))
            for s in range(0, len(rows), m):
                yield X[s : s + m], y[s : s + m]

    # with training.ema, θ̄ is the network validated and tested, as mlpcli's
    scored, after_step = torch_average(torch, model, t.ema) if t.ema is not None else (model, None)
    X_val, X_test = floats(splits.X_val), floats(splits.X_test)
    curve = Curve(name, splits.y_test, t.epochs, limit)
    curve.start()
    for epoch in range(t.epochs):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(t.learning_rate, t.schedule, epoch, t.epochs)
        torch_epoch(torch, model, optimizer, batches(epoch), after_step)
        val = float((torch_labels(torch, scored, X_val) == splits.y_val).mean()) if len(splits.y_val) else None
        if curve.record(epoch + 1, lambda: torch_labels(torch, scored, X_test), val_accuracy=val):
            break
    return curve.result(n_train=n, n_val=len(splits.y_val), torch_threads=torch.get_num_threads())


def child_keras(name, options, data, epochs, limit, threads):
    import numpy as np

    from mlpcli import scale01

    torch = start_torch(threads)
    splits = all_training_data(data)
    k, epochs = KERAS, epochs or KERAS["epochs"]
    sizes = k["layers"]
    layers = []
    for l in range(1, len(sizes)):
        linear = torch.nn.Linear(sizes[l - 1], sizes[l])
        torch.nn.init.xavier_uniform_(linear.weight)  # Keras's Dense: glorot_uniform, zeros
        torch.nn.init.zeros_(linear.bias)
        layers.append(linear)
        if l < len(sizes) - 1:
            layers += [torch.nn.ReLU(), torch.nn.Dropout(k["dropout"])]
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=k["lr"], alpha=k["rho"], eps=k["eps"])
    X, X_test = (torch.from_numpy(scale01(part)) for part in (splits.X_train, splits.X_test))
    y = torch.from_numpy(splits.y_train.astype(np.int64))
    shuffle = torch.Generator().manual_seed(SEED)

    def batches():
        order = torch.randperm(len(y), generator=shuffle)
        for s in range(0, len(y), k["batch"]):
            rows = order[s : s + k["batch"]]
            yield X[rows], y[rows]

    curve = Curve(name, splits.y_test, epochs, limit)
    curve.start()
    for epoch in range(1, epochs + 1):
        torch_epoch(torch, model, optimizer, batches())
        if curve.record(epoch, lambda: torch_labels(torch, model, X_test)):
            break
    return curve.result(n_train=len(y), n_val=0, torch_threads=torch.get_num_threads())


def child_sklearn(name, options, data, epochs, limit):
    import numpy as np
    from sklearn.neural_network import MLPClassifier

    from mlpcli import scale01

    splits = all_training_data(data)
    X, y, X_test = scale01(splits.X_train), splits.y_train, scale01(splits.X_test)
    # A RandomState object, not a seed: fit re-reads random_state on every call, and an int
    # would replay the same shuffle every epoch.
    clf = MLPClassifier(**options, random_state=np.random.RandomState(SEED))
    epochs = epochs or clf.max_iter
    classes = np.arange(splits.n_classes)
    curve = Curve(name, splits.y_test, epochs, limit)
    curve.start()
    for epoch in range(1, epochs + 1):
        clf.partial_fit(X, y, classes=classes)
        if curve.record(epoch, lambda: clf.predict(X_test), train_loss=float(clf.loss_)):
            break
        if clf._no_improvement_count > clf.n_iter_no_change:  # fit's own stopping rule
            curve.ended = (f"its stopping rule (training loss not better by tol={clf.tol:g} "
                           f"for {clf.n_iter_no_change} epochs)")
            break
    return curve.result(n_train=len(y), n_val=0)


def run_child(name: str, data: Path, epochs, limit, threads: int) -> dict:
    c = CONTENDERS[name]
    if c.kind == "mlpcli":
        return child_mlpcli(name, c.options, data, epochs, limit)
    if c.kind == "twin":
        return child_twin(name, c.options, data, epochs, limit, threads)
    if c.kind == "keras":
        return child_keras(name, c.options, data, epochs, limit, threads)
    return child_sklearn(name, c.options, data, epochs, limit)


# --- parent: one process per contender, then the table and the plot ------------------------------


def per_contender(text: str | None, convert, option: str) -> dict:
    """"N" for every contender, or "name=N,name=N"; {name: value > 0}."""
    if text is None:
        return {}
    pairs = [item.partition("=")[::2] for item in text.split(",")] if "=" in text else [(n, text) for n in CONTENDERS]
    values = {}
    for name, value in pairs:
        if name.strip() not in CONTENDERS:
            raise ValueError(f"{option}: unknown contender {name.strip()!r}; choose from {', '.join(CONTENDERS)}")
        try:
            values[name.strip()] = convert(value)
        except ValueError:
            values[name.strip()] = 0
        if not values[name.strip()] > 0:
            raise ValueError(f"{option}: {value.strip()!r} is not a {'whole ' * (convert is int)}number > 0")
    return values


def missing_need(c: Contender) -> str | None:
    for module in c.needs:
        if importlib.util.find_spec(module) is None:
            return f"{module} not installed ({INSTALL[module]}), skipped"
    return None


def machine(threads: int) -> dict:
    import numpy

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{p['internal_api']} {p['version']} ({thread_count(p['num_threads'])})"
                         for p in threadpool_info() if p["user_api"] == "blas")
    except ImportError:
        blas = "?"
    versions = {}
    for package in ("torch", "scikit-learn"):
        try:
            versions[package] = importlib.metadata.version(package).split("+")[0]
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"cpus": os.cpu_count(), "cpu": cpu, "threads": threads, "numpy": numpy.__version__, "blas": blas,
            "python": platform.python_version(), **versions}


def measure(args, names: list[str], epochs: dict, limits: dict) -> dict:
    from mlpcli.files import atomic_text
    from mlpcli.run.config import list_presets, load_config

    report = {"machine": machine(args.threads), "data": args.data.name, "load_start": _load(), "contenders": []}
    if report["load_start"] != "?" and float(report["load_start"]) >= 0.5:
        say(f"warning: load average {report['load_start']}: other jobs are using the CPUs, so these times are "
            "not a quiet machine's (PyTorch's OpenMP threads slow down most when a core is taken)")
    presets = list_presets()
    if "mlpcli-default-torch" in names and not missing_need(CONTENDERS["mlpcli-default-torch"]):
        twin_recipe(load_config(CONTENDERS["mlpcli-default-torch"].options["preset"]))  # refuse before training
    for name in names:
        c = CONTENDERS[name]
        entry = {"name": name, "label": c.label, "epochs_override": epochs.get(name), "time_limit": limits.get(name)}
        skipped = missing_need(c)
        if "preset" in c.options and c.options["preset"] not in presets:
            skipped = "preset not found, skipped"
        if skipped:
            say(f"{name}: {skipped}")
            entry["skipped"] = skipped
        else:
            say(f"{name}: {c.label} …")
            entry.update(child(name, args, epochs.get(name), limits.get(name)))
        report["contenders"].append(entry)
        if args.out:
            atomic_text(args.out, json.dumps(report, indent=1))
    report["load_end"] = _load()
    if args.out:
        atomic_text(args.out, json.dumps(report, indent=1))
    return report


def child(name: str, args, epochs, limit) -> dict:
    """Run one contender in a new process; its result, with the process's wall seconds."""
    with tempfile.TemporaryDirectory(prefix="time-to-accuracy-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--child-out", str(out),
               "--data", str(args.data), "--threads", str(args.threads)]
        cmd += ["--epochs", str(epochs)] * (epochs is not None) + ["--time-limit", str(limit)] * (limit is not None)
        started = time.perf_counter()
        proc = subprocess.run(cmd, env=os.environ, check=False)
        wall = time.perf_counter() - started
        if out.is_file():
            return {**json.loads(out.read_text()), "wall_seconds": round(wall, 1)}
        return {"error": f"failed (exit {proc.returncode}; its messages are above)", "wall_seconds": round(wall, 1)}


def time_to(curve: list[dict], target: float):
    """The first epoch whose test accuracy reached ``target``: (seconds, epoch), or None."""
    for row in curve:
        if row["test_correct"] >= round(target * row["test_n"]):
            return row["seconds"], row["epoch"]
    return None


def table(report: dict) -> str:
    head = ["trainer", "epochs", *(f"time to {100 * t:.1f} %" for t in TARGETS), "final test acc",
            "training s", "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in report["contenders"]:
        label = f"{e['label']} (`{e['name']}`)"
        if "skipped" in e or "error" in e:
            lines.append(f"| {label} | {e.get('skipped') or e['error']} |" + " |" * (len(head) - 2))
            continue
        curve, last = e["curve"], e["curve"][-1] if e["curve"] else None
        reached = [time_to(curve, t) for t in TARGETS]
        final = percent(last["test_correct"] / last["test_n"]) if last else "—"
        if e["ended"] != "completed":
            final += f", {e['ended']}"
        lines.append("| " + " | ".join([
            label, f"{len(curve)}" + (f" of {e['planned_epochs']}" if len(curve) != e["planned_epochs"] else ""),
            *("never" if r is None else f"{r[0]:.1f} s (epoch {r[1]})" for r in reached),
            final, f"{last['seconds']:.1f}" if last else "—", f"{e['wall_seconds']:.0f}",
        ]) + " |")
    return "\n".join(lines)


def header(report: dict) -> str:
    m = report["machine"]
    torch = f"PyTorch {m['torch']} ({thread_count(m['threads'])})" if m.get("torch") else "PyTorch not installed"
    sklearn = f"scikit-learn {m['scikit-learn']}" if m.get("scikit-learn") else "scikit-learn not installed"
    lines = [(f"machine: {m['cpus']} CPUs ({m['cpu']}); NumPy {m['numpy']} with {m['blas'] or '?'}; {torch}; "
              f"{sklearn}; Python {m['python']}; load average (1 min) at start / end: "
              f"{report.get('load_start', '?')} / {report.get('load_end', '?')}")]
    ran = [e for e in report["contenders"] if e.get("curve")]
    if ran:
        test_n = ran[0]["curve"][0]["test_n"]
        full = {e["n_train"] + e["n_val"] for e in ran}
        what = "full MNIST" if full == {60000} and test_n == 10000 else f"data {report['data']}"
        lines.append(f"data: {what}: {'/'.join(f'{n:,}' for n in sorted(full))} train / {test_n:,} test")
        for e in ran:
            if e["n_val"]:
                lines.append(f"  {e['name']} trained on {e['n_train']:,}, with {e['n_val']:,} held out for "
                             "validation (data.validation)")
    lines.append("training s: cumulative training time, test accuracy measured after every epoch with the clock "
                 "paused; mlpcli's include its per-epoch validation pass and checkpoint writes (what "
                 "`mlpcli train` does), the PyTorch twin's the same validation pass; wall s: each trainer's "
                 "whole process")
    return "\n".join(lines)


def plot(report: dict, path: Path, linear: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(8, 5))
    for e in report["contenders"]:
        if e.get("curve"):
            ax.plot([r["seconds"] for r in e["curve"]], [100 * r["test_correct"] / r["test_n"] for r in e["curve"]],
                    marker=".", markersize=4, linewidth=1.2, label=e["label"])
    for target in TARGETS:
        ax.axhline(100 * target, color="grey", linestyle=":", linewidth=0.8)
    if not linear:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylim(97, 100)
    ax.set_xlabel("training seconds" + ("" if linear else " (log scale)"))
    ax.set_ylabel("test accuracy (%)")
    m = report["machine"]
    ax.set_title(f"MNIST test accuracy against training time ({thread_count(m['threads'])}, {m['cpus']} CPUs)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)  # short times at high accuracy: empty
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        return "?"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("data") / "mnist",
                   help="folder holding MNIST's four IDX files (default: data/mnist)")
    p.add_argument("--only", help=f"comma-separated contenders (default: all): {', '.join(CONTENDERS)}")
    p.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP/PyTorch threads for every trainer (default 2)")
    p.add_argument("--epochs", help="epochs instead of each recipe's: N for all, or name=N,name=N")
    p.add_argument("--time-limit", help="stop a contender once its training seconds pass this: S for all, "
                   "or name=S,name=S")
    p.add_argument("--out", type=Path, help="write every contender's per-epoch curve to this JSON file "
                   "(rewritten after each contender)")
    p.add_argument("--plot", type=Path, help="draw test accuracy against training seconds into this image")
    p.add_argument("--linear-x", action="store_true", help="linear seconds axis in the plot (default: log)")
    p.add_argument("--from", dest="source", type=Path, metavar="JSON",
                   help="train nothing: report (and --plot) the results an earlier --out wrote")
    p.add_argument("--child", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    p.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for var in THREAD_VARS:  # before NumPy or PyTorch load, here and in every child
        os.environ[var] = str(args.threads)

    if args.child:
        return child_main(args)
    if args.source:
        if not args.source.is_file():
            p.error(f"--from {args.source}: no such file (write one with --out)")
        report = json.loads(args.source.read_text())
    else:
        try:
            names = [n.strip() for n in (args.only or ",".join(CONTENDERS)).split(",") if n.strip()]
            unknown = [n for n in names if n not in CONTENDERS]
            if unknown:
                raise ValueError(f"--only: unknown contender(s) {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
            epochs = per_contender(args.epochs, int, "--epochs")
            limits = per_contender(args.time_limit, float, "--time-limit")
        except ValueError as error:
            p.error(str(error))
        if not all(any(args.data.glob(f"{stem}*")) for stem in ("train-images", "train-labels", "t10k-images", "t10k-labels")):
            p.error(f"{args.data} does not hold MNIST's four IDX files; fetch them (mlpcli fetch --dataset mnist) "
                    "or pass --data DIR")
        from mlpcli.errors import MlpcliError

        try:
            report = measure(args, names, epochs, limits)
        except MlpcliError as error:
            print(f"Error: {error}", file=sys.stderr)
            return error.exit_code
    print()
    print(header(report))
    print()
    print(table(report))
    if args.plot:
        plot(report, args.plot, args.linear_x)
        print(f"\nplot: {args.plot}")
    return 1 if any("error" in e for e in report["contenders"]) else 0


def child_main(args) -> int:
    from mlpcli.errors import MlpcliError

    try:
        result = run_child(args.child, args.data, int(args.epochs) if args.epochs else None,
                           float(args.time_limit) if args.time_limit else None, args.threads)
    except MlpcliError as error:
        print(f"Error: {error}", file=sys.stderr)
        result = {"error": str(error)}
    args.child_out.write_text(json.dumps(result))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
