"""Train a network: ``mlpcli train``, with its progress display."""

from __future__ import annotations

from pathlib import Path

import click

from mlpcli.cli.options import CONFIG_OPTION, SET_OPTION, QUIET_OPTION, THREADS_OPTION, data_dir_option


class _TrainProgress:
    """fit's progress callback: a tqdm bar per epoch (batches, running loss) on stderr and
    one summary line per epoch on stdout."""

    def __init__(self):
        self.bar = None
        self.epochs = 0
        self.loss_sum, self.count = 0.0, 0

    def start_epoch(self, epoch: int, epochs: int, n_batches: int) -> None:
        import sys

        from tqdm import tqdm

        self.close()
        self.epochs, self.loss_sum, self.count = epochs, 0.0, 0
        self.bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False,
                        dynamic_ncols=True, file=sys.stderr, disable=None)

    def batch(self, loss: float) -> None:
        self.loss_sum += loss
        self.count += 1
        if self.bar is not None:
            self.bar.update(1)
            if self.count % 25 == 1:
                self.bar.set_postfix_str(f"loss {self.loss_sum / self.count:.4f}", refresh=False)

    def end_epoch(self, m: dict) -> None:
        from mlpcli.run.train import format_epoch

        self.close()
        click.echo(format_epoch(m, self.epochs))

    def message(self, text: str) -> None:
        self.close()
        click.echo(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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
def train_command(config_source: str | None, overrides: tuple[str, ...], print_config: bool, out: Path | None,
                  overwrite: bool, resume: Path | None, init_from: Path | None, stop_after: int | None,
                  data_dir: Path | None, quiet: bool) -> None:
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
    from mlpcli.run import train as training
    from mlpcli.run.config import dump_yaml, load_config
    from mlpcli.data.fetch import load_splits

    if resume is not None and init_from is not None:
        raise click.UsageError("--resume continues a run; --init-from starts a new one: give one of them")
    saved = None
    if resume is not None:
        from mlpcli.run import checkpoint as ckpt_io

        saved = ckpt_io.load(resume)
    base = config_source if config_source is not None or saved is None else saved.config
    cfg = load_config(base, overrides, data_dir=data_dir)
    if print_config:
        click.echo(dump_yaml(training.resume_config(saved, cfg) if saved else cfg), nl=False)
        return
    run = training.start(cfg, out, resume=saved, init_from=init_from, overwrite=overwrite)
    splits = load_splits(run.config.data, quiet=quiet)
    progress = training.Silent() if quiet else _TrainProgress()
    try:
        history = training.fit(run, splits, stop_after=stop_after, progress=progress)
    finally:
        if not quiet:
            progress.close()
    if quiet:
        click.echo(history.run_dir)
