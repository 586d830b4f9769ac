"""A study: its plan (base config, space, folder, storage), and one worker's loop.

``tune(options)`` is what ``mlpcli tune`` calls. It checks everything it can before any trial
starts (the base config, the space, the storage), opens or creates the study, refuses a study
of the same name that was started with another base config or space (unless ``resume``), runs
trials until the study holds ``trials`` finished ones (complete or pruned) — its own and those
of every other worker on the study — and reports. ``--trials N`` is the study's total: the
same command run again runs only the trials still missing.

Several workers (processes, machines) share a study through its database. A worker starts a
trial only while finished + running trials are fewer than N; two workers that start at the same
instant can both get past that check, so a trial that finds N others finished or running before
it (by trial number, which the database hands out in order) gives its place back at once and is
left out of every count and table. When the only trials missing are running elsewhere, a worker
waits for them: if their worker died, their heartbeat stops and they are run again here.

Ctrl-C and SIGTERM end a worker cleanly: its running trial is marked failed (never finished),
queued to run again with the same parameters, and its run folder keeps the epochs it finished.
"""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from mlpcli.errors import ConfigError, Interrupted, require
from mlpcli.files import shown
from mlpcli.run.config import Config, config_to_dict, load_config
from mlpcli.run.train import LOCATION_KEYS, SIGTERM_EXIT, Terminated, flat_keys
from mlpcli.tune import HEARTBEAT
from mlpcli.tune.signals import Stopper
from mlpcli.tune.space import Space, read_space
from mlpcli.tune.storage import Storage, database_errors, open_storage

ATTRS = "mlpcli"  # the study's user attribute that records what it searches
POLL = 2.0  # seconds between looks at trials running elsewhere, while waiting for them


@dataclass(frozen=True)
class TuneOptions:
    """What ``mlpcli tune`` was asked (its options, by name)."""

    space: Path
    config_source: str | None = None
    overrides: tuple[str, ...] = ()
    trials: int | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    metric: str = "val_accuracy"
    seed: int | None = None
    storage: str | None = None
    study: str | None = None
    out: Path | None = None
    workers: int = 1
    threads: int | None = None
    heartbeat: int = HEARTBEAT
    resume: bool = False
    data_dir: Path | None = None
    worker: int | None = None  # set in the processes `--workers` starts: their number, 1..K


@dataclass
class Plan:
    """A study checked and ready: the base config, the space, where it lives, how many trials."""

    options: TuneOptions
    base: Config
    space: Space
    name: str
    folder: Path
    storage: Storage
    trials: int
    notes: list[str] = field(default_factory=list)

    @property
    def direction(self) -> str:
        return "maximize" if self.options.metric == "val_accuracy" else "minimize"

    def echo_prefix(self) -> str:
        return f"[worker {self.options.worker}] " if self.options.worker else ""


def plan(options: TuneOptions) -> Plan:
    """Check the base config, the space and the sampler's needs, and say where the study lives;
    nothing is written."""
    base = load_config(options.config_source, options.overrides, data_dir=options.data_dir)
    if base.data.validation == 0:
        raise ConfigError(f"mlpcli tune optimizes {options.metric} on the validation split, but "
                          "data.validation is 0", "hold some training examples out, e.g. --set data.validation=10000")
    space = read_space(options.space, base)
    notes, trials = [], options.trials
    if options.sampler == "grid":
        size = space.grid_size()
        if trials is None or trials > size:
            if trials is not None:
                notes.append(f"the grid has {size} points: --trials {trials} runs {size}")
            trials = size
    elif trials is None:
        raise ConfigError(f"--sampler {options.sampler} needs --trials N (the study's total number of trials)",
                          "e.g. --trials 20; only --sampler grid knows its number (every grid point)")
    name = options.study or (options.out.resolve().name if options.out else default_name(base, space))
    folder = Path(options.out) if options.out else Path("studies") / name
    storage = Storage(options.storage) if options.storage else Storage.in_folder(folder)
    return Plan(options, base, space, name, folder.resolve(), storage, trials, notes)


def default_name(base: Config, space: Space) -> str:
    """<config name>-<space file name>, made a plain folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{base.name}-{space.path.stem}").strip("-.") or "study"


def tune(options: TuneOptions, echo=print):
    """Run (or continue) the study ``options`` describe; return the report (``report.Report``)
    — or, after Ctrl-C or SIGTERM, report and raise ``Interrupted``."""
    from mlpcli.tune import report

    require("optuna", "mlpcli tune", extra="tune")
    the_plan = plan(options)
    say = (lambda text: echo(the_plan.echo_prefix() + text))
    for note in the_plan.notes:
        say(f"note: {note}")
    study = open_study(the_plan, say)
    stopper, result = Stopper(), None
    with stopper.installed():
        if options.workers > 1:
            from mlpcli.tune.workers import run_workers

            stop = run_workers(the_plan, say)
        else:
            stop = work(study, the_plan, say, stopper)
        if options.worker is None:
            with database_errors(the_plan.storage):
                result = report.report(study, the_plan, echo)
    if stop is not None:
        raise stop
    return result


# --- opening the study --------------------------------------------------------------------------


def open_study(plan: Plan, say):
    """Create the study or load it, checking that it searches what this command searches."""
    optuna = require("optuna", "mlpcli tune", extra="tune")
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # mlpcli says what happens, once
    if plan.storage.is_sqlite:
        plan.folder.mkdir(parents=True, exist_ok=True)  # where the database file goes
    storage = open_storage(plan.storage, plan.options.heartbeat)
    with database_errors(plan.storage):
        study = optuna.create_study(storage=storage, study_name=plan.name, direction=plan.direction,
                                    pruner=pruner(plan), load_if_exists=True)
        _check_same_search(study, plan, say)
        study.sampler = sampler(plan, len(study.get_trials(deepcopy=False)))
    plan.folder.mkdir(parents=True, exist_ok=True)
    return study


def identity(plan: Plan) -> dict:
    """What a study searches: its base config (without where files live), space and metric."""
    flat = flat_keys(config_to_dict(plan.base))
    return {"base": {k: v for k, v in flat.items() if k not in LOCATION_KEYS},
            "space": plan.space.describe(), "metric": plan.options.metric}


def _check_same_search(study, plan: Plan, say) -> None:
    mine, theirs = identity(plan), study.user_attrs.get(ATTRS)
    trials = study.get_trials(deepcopy=False)
    if theirs is None and not trials:
        stray = sorted(p.name for p in plan.folder.glob("trial-*"))
        if stray and not plan.options.resume:
            raise ConfigError(f"{shown(plan.folder)} holds trial folders ({stray[0]}, …) of another study, but study "
                              f"{plan.name!r} in {plan.storage.shown} has no trials",
                              "give this study another --out (or move those folders away)")
        study.set_user_attr(ATTRS, mine)
        return
    if theirs == mine:
        return
    what = _difference(theirs, mine)
    if not plan.options.resume:
        raise ConfigError(f"study {plan.name!r} in {plan.storage.shown} holds {len(trials)} trials of another "
                          f"search: {what}", "run it with its own config and space, give another --study, or "
                          "pass --resume to continue it with this command's")
    say(f"--resume: study {plan.name!r} continues with this command's search ({what})")
    study.set_user_attr(ATTRS, mine)


def _difference(theirs: dict | None, mine: dict) -> str:
    if not isinstance(theirs, dict):
        return "it was not started by mlpcli tune"
    if theirs.get("metric") != mine["metric"]:
        return f"it optimizes {theirs.get('metric')}, not {mine['metric']}"
    old, new = theirs.get("base", {}), mine["base"]
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if keys:
        return "base config " + ", ".join(f"{k} {old.get(k)!r} → {new.get(k)!r}" for k in keys[:3])
    old, new = theirs.get("space", {}), mine["space"]
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return "space " + ", ".join(f"{k}: {old.get(k, 'absent')} → {new.get(k, 'absent')}" for k in keys[:3])


def sampler(plan: Plan, existing: int = 0):
    """The sampler ``--sampler`` names. ``--seed`` makes a study repeatable; each worker of
    ``--workers``, and each run of the command on a study that already holds ``existing``
    trials, draws from its own seed (the same seed again would draw the same values again)."""
    import numpy as np
    import optuna

    seed = plan.options.seed
    if seed is not None and (plan.options.worker or existing):
        seed = int(np.random.SeedSequence([seed, plan.options.worker or 0, existing]).generate_state(1)[0])
    if plan.options.sampler == "grid":
        return optuna.samplers.GridSampler(plan.space.grid(), seed=seed)
    if plan.options.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def pruner(plan: Plan):
    """median: stop a trial whose best so far is below the median of the finished trials at
    the same epoch, once 5 trials have finished and from its second epoch on; hyperband:
    successive halving over epochs (from 1 to all); none: never."""
    import optuna

    epochs = plan.base.training.epochs
    if plan.options.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if plan.options.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    return optuna.pruners.NopPruner()


# --- one worker's loop --------------------------------------------------------------------------


def counts(study) -> tuple[int, int]:
    """(finished trials — complete or pruned —, running trials) of the study."""
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    done = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
    return done, states.count(TrialState.RUNNING)


def work(study, plan: Plan, say, stopper: Stopper) -> Interrupted | None:
    """Run trials until the study holds ``plan.trials`` finished ones; after Ctrl-C or
    SIGTERM, the ``Interrupted`` to raise once the report is out (None when done).
    ``stopper`` is the installed signal handler: signals stop training and sleep at once,
    and wait for any database call to finish."""
    from mlpcli.tune.trial import Objective, Surplus

    objective, waiting = Objective(plan, say, stopper), False
    with database_errors(plan.storage):
        try:
            done, running = counts(study)
            say(f"study {plan.name!r} in {plan.storage.shown}: {done} of {plan.trials} trials finished"
                + (f", {running} running elsewhere" if running else "") + f"; trial folders in {shown(plan.folder)}")
            if done < plan.trials:
                with stopper.interruptible():
                    objective.data_of(plan.base)  # the data, read (or fetched) before any trial starts
            while True:
                stopper.check()
                done, running = counts(study)
                if done >= plan.trials:
                    return None
                if done + running >= plan.trials:
                    if not waiting:
                        say(f"waiting for {running} trial(s) running elsewhere (a trial whose worker died is run "
                            f"again here after {2 * plan.options.heartbeat} s without its heartbeat)")
                    waiting = True
                    with stopper.interruptible():
                        time.sleep(min(POLL, plan.options.heartbeat))
                    _fail_stale_trials(study)
                    continue
                waiting = False
                try:
                    study.optimize(objective, n_trials=1)
                except Surplus:
                    continue
        except (Interrupted, KeyboardInterrupt) as stop:
            return _interrupted(stop, objective.stopped_trial, study, plan)


def _fail_stale_trials(study) -> None:
    """Mark failed (and queue again) the trials whose heartbeat stopped."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _interrupted(stop: BaseException, current: int | None, study, plan: Plan) -> Interrupted:
    terminated = isinstance(stop, Terminated) or getattr(stop, "exit_code", None) == SIGTERM_EXIT
    done, _ = counts(study)
    how = "terminated (SIGTERM)" if terminated else "interrupted"
    trial = f"; trial {current} is marked failed, not finished" if current is not None else ""
    error = Interrupted(f"{how}: {done} of {plan.trials} trials finished{trial}",
                        f"run the same command again to run the {plan.trials - done} missing")
    if terminated:
        error.exit_code = SIGTERM_EXIT
    return error
