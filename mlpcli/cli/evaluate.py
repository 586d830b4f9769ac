"""Evaluate a checkpoint: ``mlpcli eval``."""

from __future__ import annotations

from pathlib import Path

import click

from mlpcli.cli.options import THREADS_OPTION, checkpoint_argument, data_dir_option, json_option


@click.command("eval")
@checkpoint_argument(dir_okay=False)
@click.option("--split", type=click.Choice(["test", "validation", "train"]), default="test", show_default=True,
              help="Which split of the data to evaluate on.")
@data_dir_option("Where data sets live, if not where the run found them (DATA_DIR/<dataset>/).")
@click.option("--data-path", type=click.Path(path_type=Path),
              help="Other data with the same classes: an IDX folder, a CSV file or folder, a .npz or an "
              "image folder (as data.path).")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Examples per forward pass (memory stays flat for any N).")
@json_option("Print JSON: accuracy, loss, n, confusion_matrix, per_class (precision, recall, f1).")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Also draw DIR/confusion.png and DIR/mistakes.png (needs: pip install 'mlpcli[plot]').")
@THREADS_OPTION
def eval_command(checkpoint: Path, split: str, data_dir: Path | None, data_path: Path | None,
                 batch_size: int, as_json: bool, plot_dir: Path | None) -> None:
    """Evaluate a checkpoint: accuracy, loss, confusion matrix and per-class scores.

    The data are the checkpoint's own (its config's data set and validation hold-out) unless
    --data-dir or --data-path say where else to read them; a registered data set that is
    missing is downloaded first. The loss is the data cost without the L2 term.

    \b
    Examples:
      mlpcli eval runs/mnist-20250101-120000/best.npz
      mlpcli eval runs/mnist-20250101-120000/last.npz --split validation --json
      mlpcli eval best.npz --data-path ~/datasets/fashion-mnist
      mlpcli eval best.npz --plot pictures    # + confusion.png, mistakes.png
    """
    from mlpcli.inspection.evaluate import evaluate_checkpoint

    if plot_dir is not None:
        from mlpcli.inspection import plot

        plot.pyplot()  # a missing plot extra fails now, not after the evaluation
        plot.check_picture_folder(plot_dir)  # and so does a folder that cannot be written
    done = evaluate_checkpoint(checkpoint, split, data_dir=data_dir, data_path=data_path, batch_size=batch_size,
                               keep_probabilities=plot_dir is not None, quiet=as_json)
    click.echo(done.to_json() if as_json else done.report())
    if plot_dir is not None:
        for path in plot.eval_pictures(plot_dir, done.X, done.y, done.result, output=done.network.output, split=split):
            click.echo(f"wrote {path}", err=as_json)
