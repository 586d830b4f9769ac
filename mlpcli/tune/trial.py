"""One trial: an ordinary run of the base config with the sampled values layered on top.

The trial's config goes through ``load_config`` like any ``--set``; it trains with
``mlpcli.run.train.fit`` into ``STUDY_DIR/trial-NNNN`` (config.yaml, metrics.jsonl, best.npz,
last.npz: ``eval``, ``plot``, ``page`` and ``train --resume`` work on it). The trainer knows
nothing of Optuna: ``Pruning``, the progress object fit reports to, hands the validation metric
of each epoch to the trial and, when the pruner says the trial is hopeless, asks fit to stop —
a stop reason, like ``--stop-after``; the run folder holds every finished epoch.

The trial's value is the best validation metric of its epochs. A run that diverges is pruned
(its learning curve says enough); Ctrl-C or SIGTERM marks it failed and queues its parameters
to run again.
"""

from __future__ import annotations

import dataclasses
import os
import socket

from mlpcli.data.fetch import load_splits
from mlpcli.errors import DivergenceError, Interrupted
from mlpcli.run.config import Config, config_to_dict, load_config
from mlpcli.run.train import Silent, fit, signals_deferred, start
from mlpcli.inspection.plot import short_names
from mlpcli.tune.space import Param, nested, shown_value


class Surplus(Exception):
    """The trial found the study's trials all finished or running before it: it gives its
    place back (marked failed and ``surplus``, left out of every count and table)."""


def run_name(number: int) -> str:
    return f"trial-{number:04d}"


def best_of(values, metric: str) -> float | None:
    """The best of a trial's per-epoch values of ``metric`` (None: no epoch)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return max(values) if metric == "val_accuracy" else min(values)


def trial_config(base: Config, values: dict, label: str = "the trial's values") -> Config:
    """``base`` with every ``key: value`` of ``values`` layered on top, checked as ``--set`` is."""
    layer: dict = {}
    for key, value in values.items():
        _merge(layer, nested(key, value))
    return load_config(config_to_dict(base), flags=[(label, layer)])


def _merge(into: dict, layer: dict) -> None:
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def suggest(trial, param: Param):
    """Draw ``param`` for ``trial`` (the sampler's form of it; ``param.value`` makes it a config value)."""
    if param.choices:
        return trial.suggest_categorical(param.key, list(param.labels))
    if param.integer:
        return trial.suggest_int(param.key, int(param.low), int(param.high), step=int(param.step or 1), log=param.log)
    return trial.suggest_float(param.key, param.low, param.high, step=param.step, log=param.log)


class Pruning(Silent):
    """fit's progress: reports the metric after each epoch; asks fit to stop when the pruner
    says so (never after the last epoch: there is nothing left to save)."""

    def __init__(self, trial, metric: str, epochs: int):
        self.trial, self.metric, self.epochs = trial, metric, epochs

    def end_epoch(self, metrics: dict) -> str | None:
        with signals_deferred():  # never half a database write: Ctrl-C stops the run right after
            self.trial.report(float(metrics[self.metric]), metrics["epoch"])
            prune = metrics["epoch"] < self.epochs and self.trial.should_prune()
        return "pruned" if prune else None


class Objective:
    """The function a study optimizes: one call trains one trial."""

    def __init__(self, plan, say, stopper):
        self.plan, self.say, self.stopper = plan, say, stopper
        self.names = short_names([p.key for p in plan.space.params])
        self.data: dict = {}
        self.stopped_trial: int | None = None  # the trial Ctrl-C or SIGTERM stopped

    def __call__(self, trial) -> float:
        import optuna

        self._claim(trial)
        values = {p.key: p.value(suggest(trial, p)) for p in self.plan.space.params}
        said = f"trial {trial.number}: " + ", ".join(f"{self.names[k]}={shown_value(v)}" for k, v in values.items())
        trial.set_user_attr("run_dir", run_name(trial.number))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        try:
            with self.stopper.interruptible():
                config = trial_config(self.plan.base, values, f"trial {trial.number}'s values")
                run = start(config, self.plan.folder / run_name(trial.number))
                history = fit(run, self.data_of(config), progress=Pruning(trial, self.plan.options.metric,
                                                                          run.epochs))
        except DivergenceError as error:
            trial.set_user_attr("stopped", "diverged")
            self.say(f"{said} — diverged: {error.message}")
            raise optuna.TrialPruned(error.message) from None
        except (Interrupted, KeyboardInterrupt):
            self.stopped_trial = trial.number
            trial.set_user_attr("stopped", "interrupted")
            trial.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            raise
        except BaseException:
            trial.set_user_attr("stopped", "error")
            raise
        metric = self.plan.options.metric
        value = best_of((row[metric] for row in history.epochs), metric)
        ran = f"{len(history.epochs)} of {run.epochs} epochs"
        self.say(f"{said} — {metric} {value:.4f} ({ran}), {'pruned' if history.stopped == 'pruned' else 'complete'}")
        if history.stopped == "pruned":
            raise optuna.TrialPruned(f"pruned after {ran}")
        return value

    def _claim(self, trial) -> None:
        """Give the trial's place back (``Surplus``) when the study's N trials are already all
        finished or running among the trials numbered before it."""
        from optuna.trial import TrialState

        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        before = [t for t in trial.study.get_trials(deepcopy=False, states=states) if t.number < trial.number]
        if len(before) >= self.plan.trials:
            trial.set_user_attr("surplus", True)
            raise Surplus

    def data_of(self, config: Config):
        """The data of ``config``, loaded once for all trials that read the same data."""
        key = dataclasses.replace(config.data, augment=None)
        if key not in self.data:
            self.data = {key: load_splits(config.data)}
        return self.data[key]
