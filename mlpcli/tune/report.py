"""What a study found: the table of its trials, the best trial's config, a picture.

Everything comes from the study's database, so any worker — on any machine — reports the
whole study: a trial's best metric and the epochs it ran are its reported per-epoch values
(the same numbers as its run folder's metrics.jsonl). Three files go to the study folder:
``trials.txt`` (the table), ``best.yaml`` (the best complete trial's resolved config, ready for
``mlpcli train --config``) and, with the plot extra, ``study.png``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from mlpcli.errors import MissingExtraError
from mlpcli.files import atomic_text, shown
from mlpcli.run.config import dump_yaml
from mlpcli.inspection.plot import short_names
from mlpcli.tune.space import Param, shown_value
from mlpcli.tune.trial import best_of, trial_config

TABLE_FILE, BEST_FILE, PICTURE_FILE = "trials.txt", "best.yaml", "study.png"


@dataclass(frozen=True)
class TrialRow:
    number: int
    params: dict  # config key → config value
    best: float | None  # the best per-epoch value of the study's metric
    epochs: int  # epochs the trial finished
    state: str  # complete | pruned | diverged | interrupted | failed | lost | running | waiting
    retry_of: int | None = None


@dataclass
class Report:
    rows: list[TrialRow]
    table: str
    best: TrialRow | None
    files: list[Path]


def trial_rows(study, params: tuple[Param, ...], metric: str) -> list[TrialRow]:
    """The study's trials in number order, those that gave their place back left out."""
    by_key = {p.key: p for p in params}
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("surplus"):
            continue
        drawn = t.params or t.system_attrs.get("fixed_params", {})  # a queued trial's are fixed, not drawn yet
        values = {k: (by_key[k].value(v) if k in by_key else v) for k, v in drawn.items()}
        steps = t.intermediate_values
        retry = t.user_attrs.get("retry_of", t.system_attrs.get("failed_trial"))
        rows.append(TrialRow(t.number, values, best_of(steps.values(), metric), max(steps, default=0),
                             _state(t), retry))
    return sorted(rows, key=lambda r: r.number)


def _state(trial) -> str:
    state, stopped = trial.state.name.lower(), trial.user_attrs.get("stopped")
    if state == "pruned" and stopped == "diverged":
        return "diverged"
    if state == "fail":
        # a failed trial that never said why lost its worker (killed, machine gone): no heartbeat
        return {"interrupted": "interrupted", "error": "failed"}.get(stopped, "lost")
    return state


def best_row(rows: list[TrialRow], metric: str) -> TrialRow | None:
    done = [r for r in rows if r.state == "complete" and r.best is not None]
    if not done:
        return None
    pick = max if metric == "val_accuracy" else min
    return pick(done, key=lambda r: r.best)


def format_table(rows: list[TrialRow], keys: list[str], metric: str) -> str:
    """One line per trial: number, parameters, best metric, epochs run, state."""
    names = short_names(keys)
    header = ["trial", *(names[k] for k in keys), metric, "epochs", "state"]
    lines = [header]
    for r in rows:
        state = r.state + (f" (retry of {r.retry_of})" if r.retry_of is not None else "")
        lines.append([str(r.number), *(shown_value(r.params[k]) if k in r.params else "-" for k in keys),
                      "-" if r.best is None else f"{r.best:.4f}", str(r.epochs), state])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) if i < len(header) - 1 else cell
                               for i, (cell, w) in enumerate(zip(line, widths))).rstrip() for line in lines)


def report(study, plan, echo) -> Report:
    """Print the table and the best trial, write the three files; return what was reported."""
    metric, keys = plan.options.metric, [p.key for p in plan.space.params]
    rows = trial_rows(study, plan.space.params, metric)
    table = format_table(rows, keys, metric)
    files = [atomic_text(plan.folder / TABLE_FILE, table + "\n")]
    echo(table)
    best = best_row(rows, metric)
    if best is None:
        echo("no trial has completed yet: no best config")
    else:
        config = trial_config(plan.base, best.params, f"trial {best.number}'s values")
        config = trial_config(config, {"name": f"{plan.name}-best", "output.dir": None})
        header = (f"# The best trial of study {plan.name}: trial {best.number}, {metric} {best.best:.4f}\n"
                  f"# Train it: mlpcli train --config {BEST_FILE}\n")
        files.append(atomic_text(plan.folder / BEST_FILE, header + dump_yaml(config)))
        echo(f"best: trial {best.number}, {metric} {best.best:.4f}; its config: {shown(files[-1])} "
             f"(mlpcli train --config {shown(files[-1])})")
    try:
        files.append(save_picture(rows, plan.space.params, metric, plan.folder / PICTURE_FILE, plan.name))
        echo(f"wrote {shown(files[-1])}")
    except MissingExtraError:
        echo(f"(a picture of the study needs the plot extra: pip install 'mlpcli[plot]')")
    return Report(rows, table, best, files)


# --- the picture ---------------------------------------------------------------------------------

MARKERS = {"complete": ("o", "tab:blue"), "pruned": ("x", "0.55"), "diverged": ("x", "tab:red")}


def save_picture(rows: list[TrialRow], params: tuple[Param, ...], metric: str, out: Path, name: str) -> Path:
    from mlpcli.inspection.plot import save_figure

    return save_figure(study_figure(rows, params, metric, f"Study {name}"), out)


def study_figure(rows: list[TrialRow], params: tuple[Param, ...], metric: str, title: str = "Study"):
    """The optimization history (each trial's best metric by trial number, the best so far as a
    line) and, for each parameter, the metric against its value; pruned trials as grey crosses
    at the best value they reached."""
    from mlpcli.inspection.plot import pyplot

    plt = pyplot()
    drawn = [r for r in rows if r.state in MARKERS and r.best is not None]
    panels = 1 + len(params)
    cols = min(panels, 3)
    fig, axes = plt.subplots(math.ceil(panels / cols), cols, figsize=(4.6 * cols, 3.6 * math.ceil(panels / cols)),
                             dpi=100, squeeze=False, layout="constrained")
    for ax in axes.flat[panels:]:
        ax.axis("off")
    scale = 100.0 if metric == "val_accuracy" else 1.0
    label = "validation accuracy (%)" if metric == "val_accuracy" else "validation loss"
    history = axes.flat[0]
    _scatter(history, drawn, lambda r: r.number, scale)
    done = sorted((r for r in drawn if r.state == "complete"), key=lambda r: r.number)
    if done:
        pick = max if metric == "val_accuracy" else min
        best = [pick(r.best for r in done[: i + 1]) * scale for i in range(len(done))]
        history.step([r.number for r in done], best, where="post", color="tab:orange", label="best so far")
    history.set(xlabel="trial", ylabel=label, title="Optimization history")
    if history.get_legend_handles_labels()[0]:
        history.legend(loc="best", fontsize=8)
    for ax, p in zip(axes.flat[1:], params):
        _param_panel(ax, p, drawn, scale)
        ax.set_ylabel(label)
    for ax in axes.flat[:panels]:
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    return fig


def _scatter(ax, rows, x_of, scale: float) -> None:
    for state, (marker, color) in MARKERS.items():
        chosen = [r for r in rows if r.state == state]
        if chosen:
            ax.scatter([x_of(r) for r in chosen], [r.best * scale for r in chosen], marker=marker, color=color,
                       label=f"{state} ({len(chosen)})", s=28)


def _param_panel(ax, p: Param, rows, scale: float) -> None:
    rows = [r for r in rows if p.key in r.params]
    if p.choices:
        labels = list(p.labels)
        position = {label: i for i, label in enumerate(labels)}
        _scatter(ax, rows, lambda r: position.get(_choice_label(p, r.params[p.key]), -1), scale)
        ax.set_xticks(range(len(labels)), [shown_value(c) for c in p.choices], rotation=20, fontsize=8)
    else:
        _scatter(ax, rows, lambda r: r.params[p.key], scale)
        if p.log:
            ax.set_xscale("log")
    ax.set_xlabel(p.key)


def _choice_label(p: Param, value):
    return p.labels[p.choices.index(value)] if value in p.choices else None
