"""Hyperparameter search: ``mlpcli tune`` (the tune extra: Optuna)."""

from __future__ import annotations

from pathlib import Path

import click

from mlpcli.cli.options import CONFIG_OPTION, SET_OPTION, _use_threads, data_dir_option
from mlpcli.tune import HEARTBEAT, METRICS, PRUNERS, SAMPLERS, STORAGE_ENV


@click.command("tune")
@CONFIG_OPTION
@click.option("--space", type=click.Path(dir_okay=False, path_type=Path), required=True, metavar="SPACE.yaml",
              help="The config keys to search and their ranges or choices, e.g. "
              "training.learning_rate: {low: 0.001, high: 1.0, log: true}.")
@click.option("--trials", type=click.IntRange(min=1), metavar="N",
              help="Finished trials the study should hold, all workers together [grid: every grid point].")
@SET_OPTION
@click.option("--sampler", type=click.Choice(SAMPLERS), default="tpe", show_default=True,
              help="How trials choose their values: tpe (learns from earlier trials), random, grid.")
@click.option("--pruner", type=click.Choice(PRUNERS), default="median", show_default=True,
              help="Stop hopeless trials early: median (below the median at the same epoch), hyperband, none.")
@click.option("--metric", type=click.Choice(METRICS), default="val_accuracy", show_default=True,
              help="The validation metric to optimize (its best epoch counts).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the sampler [default: fresh randomness].")
@click.option("--storage", metavar="URL", envvar=STORAGE_ENV, show_envvar=True,
              help="The study's database, e.g. postgresql://USER:PASSWORD@HOST/DB, shared by workers on many "
              "machines [default: SQLite in the study folder]. Prefer the environment variable: it keeps the "
              "password out of the process list.")
@click.option("--study", metavar="NAME", help="The study's name in the storage [default: the study folder's name].")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), metavar="STUDY_DIR",
              help="Study folder: one run folder per trial, the table, best.yaml, study.png "
              "[default: studies/<config name>-<space file name>].")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, metavar="K",
              help="Worker processes on this machine, sharing the study and the cores.")
@click.option("--threads", type=click.IntRange(min=1), metavar="N", is_eager=True,
              callback=lambda ctx, param, value: _use_threads(value) or value,
              help="BLAS threads of each worker [default: the cores, shared out among --workers].")
@click.option("--heartbeat", type=click.IntRange(min=1), default=HEARTBEAT, show_default=True, metavar="SECONDS",
              help="A running trial's heartbeat; one silent for twice this long lost its worker and runs again.")
@click.option("--resume", is_flag=True,
              help="Continue a study that was started with another base config or space (the same command "
              "continues its own study without this).")
@data_dir_option("Where data sets live (sets data.dir; [env: MLPCLI_DATA_DIR]).")
@click.option("--worker", type=click.IntRange(min=1), hidden=True)  # set by --workers in the processes it starts
def tune_command(**options) -> None:
    """Search hyperparameters: train a trial per sampled config, stop hopeless ones early.

    Each trial is an ordinary run folder under STUDY_DIR (eval, plot, page and train --resume
    work on it); the study lives in a database, so the same command run again continues it and
    runs only the missing trials, and the same command on several machines (--storage URL)
    shares the work. At the end, and on Ctrl-C: a table of the trials, the best trial's config
    as STUDY_DIR/best.yaml, and with the plot extra STUDY_DIR/study.png. Needs the tune extra:
    pip install 'mlpcli[tune]'.

    \b
    Examples:
      mlpcli tune --config nielsen-ch3 --space space.yaml --trials 24
      mlpcli tune --config nielsen-ch3 --space lr.yaml --sampler grid --set training.epochs=10
      mlpcli tune --config my.yaml --space space.yaml --trials 50 --workers 2
      MLPCLI_TUNE_STORAGE=postgresql://me:secret@db-host/studies \\
        mlpcli tune --config my.yaml --space space.yaml --trials 200 --study lr-l2   # on each machine
    """
    from mlpcli.tune.study import TuneOptions, tune

    tune(TuneOptions(**options), echo=click.echo)
