"""Train a network: ``mlpcli train`` (what it shows while it runs: ``progress``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from mlpcli.cli.options import (CONFIG_OPTION, QUIET_OPTION, SET_OPTION, THREADS_OPTION, ConfigChoice, data_dir_option,
                                gather)


@dataclass(frozen=True)
class RunChoice:
    """--out, --overwrite, --resume and --init-from: what the run starts from, where it writes."""

    out: Path | None
    overwrite: bool
    resume: Path | None
    init_from: Path | None


@click.command("train")
@CONFIG_OPTION
@SET_OPTION
@click.option("--print-config", is_flag=True, help="Print the resolved config as YAML and exit.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path),
              help="Run folder [default: output.dir, else runs/<config name>-<YYYYmmdd-HHMMSS>].")
@click.option("--overwrite", is_flag=True,
              help="Train into a folder that holds another run; its files are replaced when the "
              "first new epoch is saved, not before.")
@click.option("--resume", type=click.Path(dir_okay=False, path_type=Path), metavar="CHECKPOINT",
              help="Continue the run that wrote CHECKPOINT (RUN/last.npz) in its own folder "
              "(its config, unless --config is given; --set training.epochs=N trains longer).")
@click.option("--init-from", type=click.Path(dir_okay=False, path_type=Path), metavar="CHECKPOINT",
              help="Start a new run from CHECKPOINT's weights (fine-tuning).")
@click.option("--stop-after", type=click.IntRange(min=1), metavar="K",
              help="End cleanly after epoch K (resume later with --resume).")
@data_dir_option("Where data sets live (sets data.dir; [env: MLPCLI_DATA_DIR]).")
@QUIET_OPTION
@THREADS_OPTION
@gather(config=ConfigChoice, run=RunChoice)
def train_command(config: ConfigChoice, run: RunChoice, print_config: bool, stop_after: int | None,
                  quiet: bool) -> None:
    """Train a network from a YAML config; write a run folder with metrics and checkpoints.

    The run folder holds config.yaml (the resolved config), metrics.jsonl (one JSON object
    per epoch), last.npz (every epoch) and best.npz (best validation accuracy). A registered
    data set that is missing is downloaded first. Ctrl-C (or SIGTERM) keeps last.npz at the
    last completed epoch and prints how to resume.

    \b
    Examples:
      mlpcli train                                   # the mnist preset
      mlpcli train --config fashion-mnist --set training.epochs=5
      mlpcli train --config my.yaml --out runs/exp1 --stop-after 10
      mlpcli train --resume runs/exp1/last.npz       # continue where it stopped
      mlpcli train --resume runs/exp1/last.npz --set training.epochs=40   # train longer
      mlpcli train --config nielsen-ch3 --init-from runs/exp1/best.npz   # fine-tune
      mlpcli train --config fashion-mnist --print-config > my.yaml
      mlpcli train --threads 1                       # one BLAS thread (busy machines)
    """
    from mlpcli.cli.progress import TrainProgress
    from mlpcli.data.fetch import load_splits
    from mlpcli.run import checkpoint as ckpt_io
    from mlpcli.run import train as training
    from mlpcli.run.config import dump_yaml

    if run.resume is not None and run.init_from is not None:
        raise click.UsageError("--resume continues a run; --init-from starts a new one: give one of them")
    saved = ckpt_io.load(run.resume) if run.resume is not None else None
    cfg = config.load(saved.config if saved is not None else None)
    if print_config:
        click.echo(dump_yaml(training.resume_config(saved, cfg) if saved else cfg), nl=False)
        return
    progress = TrainProgress(stop_after, quiet=quiet)  # the clock starts: loading the data counts
    started = training.start(cfg, run.out, resume=saved, init_from=run.init_from, overwrite=run.overwrite)
    splits = load_splits(started.config.data, quiet=quiet)
    try:
        history = training.fit(started, splits, stop_after=stop_after, progress=progress)
    finally:
        progress.close()
    if quiet:
        click.echo(history.run_dir)  # stdout holds the run folder alone: RUN=$(mlpcli train -q ...)
    progress.finish()
