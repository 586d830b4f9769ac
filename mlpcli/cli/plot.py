"""Pictures of a run: ``mlpcli plot``."""

from __future__ import annotations

from pathlib import Path

import click

from mlpcli.cli.options import SET_OPTION


@click.command("plot")
@click.argument("run_dirs", metavar="[RUN_DIR]...", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--out", "-o", type=click.Path(dir_okay=False, path_type=Path),
    help="PNG to write [default: RUN_DIR/curves.png (a study's too); several runs: compare.png; "
    "with --weights: weights.png beside CKPT]."
)
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), metavar="CKPT",
              help="Draw CKPT's first-layer weights instead: one 28×28 image per hidden unit (the first 64).")
@click.option("--augment", "augment_config", metavar="NAME|PATH",
              help="Draw what a config's data.augment does to a few of its training images instead "
              "(each image as stored, then five distortions; with --set).")
@SET_OPTION
def plot_command(run_dirs: tuple[Path, ...], out: Path | None, weights: Path | None, augment_config: str | None,
                 overrides: tuple[str, ...]) -> None:
    """Draw a run's learning curves: train and validation loss and accuracy per epoch.

    Reads RUN_DIR/metrics.jsonl (what `mlpcli train` writes) and marks the best epoch (highest
    validation accuracy, the one best.npz holds). Several RUN_DIRs, or a study folder of
    `mlpcli tune`, go on one figure: each run's training loss and validation accuracy, labeled
    by what differs between their configs (learning_rate=0.025, …). Needs the plot extra:
    pip install 'mlpcli[plot]'.

    \b
    Examples:
      mlpcli plot runs/fashion-mnist-20250101-120000
      mlpcli plot runs/mnist-20250101-120000 --out mnist-curves.png
      mlpcli plot runs/eta-0.025 runs/eta-0.25 runs/eta-2.5   # three runs compared
      mlpcli plot studies/nielsen-ch3-space                   # every trial of a study
      mlpcli plot --weights runs/mnist-20250101-120000/best.npz --out weights.png
      mlpcli plot --augment mnist --out augment.png     # what the network is trained on
      mlpcli plot --augment mnist --set data.augment.elastic=null
    """
    from mlpcli.inspection import plot

    if sum(bool(x) for x in (run_dirs, weights is not None, augment_config is not None)) != 1:
        raise click.UsageError("give a RUN_DIR for learning curves, --weights CKPT or --augment CONFIG (one of them)")
    if overrides and augment_config is None:
        raise click.UsageError("--set goes with --augment CONFIG")
    if augment_config is not None:
        from mlpcli.run.config import load_config

        click.echo(f"wrote {plot.plot_augment(load_config(augment_config, overrides), out)}")
        return
    if weights is not None:
        click.echo(f"wrote {plot.plot_weights(weights, out)}")
        return
    click.echo(f"wrote {plot.plot_runs(run_dirs, out)}")
