"""The ``mlpcli`` command line: a thin shell that parses, calls the library, and prints.

Every expected failure is an ``MlpcliError``; ``Group.invoke`` below turns it into one line,
``Error: <what> — <what to do>``, and the error's exit code. ``--debug`` shows the traceback.
No math lives here.
"""

from __future__ import annotations

from pathlib import Path

import click

from mlpcli import __version__
from mlpcli.errors import MlpcliError


class _CliError(click.ClickException):
    def __init__(self, error: MlpcliError):
        super().__init__(str(error))
        self.exit_code = error.exit_code


class Group(click.Group):
    """A click group that maps the package's errors to clean messages and exit codes."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MlpcliError as error:
            if ctx.params.get("debug"):
                raise
            raise _CliError(error) from error


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlpcli")
@click.option("--debug", is_flag=True, envvar="MLPCLI_DEBUG", help="Show tracebacks for errors.")
def cli(debug: bool) -> None:
    """Train multilayer perceptrons on MNIST, Fashion-MNIST and KMNIST.

    \b
    Examples:
      mlpcli fetch                          # download + verify MNIST into ./data
      mlpcli train --config mnist           # a preset name or a path to a YAML file
      mlpcli eval runs/mnist-…/best.npz     # accuracy, loss, confusion matrix
      mlpcli gradcheck --all                # backprop vs finite differences
    """


class _DatasetChoice(click.Choice):
    """The registered data sets, looked up when used (so a registered test data set counts)."""

    def __init__(self):
        super().__init__(())

    @property
    def choices(self):
        from mlpcli.fetch import REGISTRY

        return tuple(REGISTRY)

    @choices.setter
    def choices(self, value):  # click.Choice.__init__ assigns; the registry is the truth
        pass


@cli.command("fetch")
@click.option("--dataset", type=_DatasetChoice(), default="mnist", show_default=True,
              help="Which data set to download.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default="data",
              show_default=True, envvar="MLPCLI_DATA_DIR",
              help="Files land in DATA_DIR/DATASET/ [env: MLPCLI_DATA_DIR].")
@click.option("--mirror", "mirrors", multiple=True, metavar="URL", envvar="MLPCLI_MIRROR",
              help="A base URL serving the four files, tried before the built-in mirrors; "
              "repeatable [env: MLPCLI_MIRROR, space-separated].")
@click.option("--from", "source_dir", metavar="DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Import local copies (.gz or raw) from DIR instead of downloading; same checks.")
@click.option("--force", is_flag=True, help="Download (or import) again even if verified files are present.")
@click.option("--no-verify", is_flag=True,
              help="Accept files whose hashes do not match the pinned ones (NOT recommended).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or per-file lines; errors only.")
def fetch_command(dataset: str, data_dir: Path, mirrors: tuple[str, ...], source_dir: Path | None,
                  force: bool, no_verify: bool, quiet: bool) -> None:
    """Download a data set's four IDX files, verify them against pinned hashes, keep them.

    Mirrors are tried in order (yours first); a download that stops half way is resumed
    from the same mirror next time; a file that does not match its pinned hash is deleted.
    Verified files already present are not downloaded again. Exit status 0 means all four
    files are present and verified.

    \b
    Examples:
      mlpcli fetch                                  # MNIST into ./data/mnist/
      mlpcli fetch --dataset fashion-mnist --data-dir ~/datasets
      mlpcli fetch --mirror https://example.org/mnist/   # try your own mirror first
      mlpcli fetch --from ~/Downloads               # offline: import files you already have
    """
    from mlpcli import fetch

    def echo(message: str) -> None:
        click.secho(message, err=True, fg="yellow" if message.startswith("WARNING") else None)

    lines = fetch.fetch(dataset, data_dir, mirrors=mirrors, force=force, verify=not no_verify,
                        quiet=quiet, source_dir=source_dir, echo=echo)
    if not quiet:
        for line in lines:
            click.echo(line)
        click.echo(f"{dataset}: {len(lines)} files in {data_dir / dataset}")


@cli.command("plot")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="PNG to write [default: RUN_DIR/curves.png]."
)
def plot_command(run_dir: Path, out: Path | None) -> None:
    """Draw a run's learning curves: train and validation loss and accuracy per epoch.

    Reads RUN_DIR/metrics.jsonl (what `mlpcli train` writes) and marks the best epoch (highest
    validation accuracy, the one best.npz holds). Needs the plot extra:
    pip install 'mlpcli[plot]'.

    \b
    Examples:
      mlpcli plot runs/fashion-mnist-20250101-120000
      mlpcli plot runs/mnist-20250101-120000 --out mnist-curves.png
    """
    from mlpcli import plot

    click.echo(f"wrote {plot.plot_curves(run_dir, out)}")


@cli.command("predict")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--index", type=int, help="Classify test-set image N instead, drawn in the terminal (no extra needed).")
@click.option(
    "--preprocess",
    "mode",
    type=click.Choice(["auto", "digits", "none"]),
    default="auto",
    show_default=True,
    help="digits: crop, fit 20×20, center by mass (MNIST/KMNIST); none: resize to 28×28 "
    "(Fashion-MNIST); auto: by the checkpoint's dataset.",
)
@click.option("--top", "k", type=click.IntRange(1, 10), default=3, show_default=True, help="How many classes to list.")
@click.option("--show", is_flag=True, help="Also draw each image as the network sees it (28×28 block art).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def predict_command(
    checkpoint: Path, images: tuple[Path, ...], index: int | None, mode: str, k: int, show: bool, as_json: bool
) -> None:
    """Classify your own images (PNG, JPEG, …) or a test-set image with a checkpoint.

    Each image is made grayscale, inverted when its background is light, preprocessed
    (--preprocess) into 28×28 pixels and scaled like the training data; the top classes are
    printed with their probabilities. Reading image files needs the plot extra:
    pip install 'mlpcli[plot]'.

    \b
    Examples:
      mlpcli predict runs/mnist-…/best.npz my-seven.png my-two.jpg
      mlpcli predict runs/fashion-mnist-…/best.npz shoe.jpg --preprocess none --json
      mlpcli predict runs/kmnist-…/best.npz --index 42
    """
    import json

    from mlpcli import checkpoint as ckpt_io
    from mlpcli import predict

    if images and index is not None:
        raise click.UsageError("give IMAGE files or --index N, not both")
    if not images and index is None:
        raise click.UsageError("give one or more IMAGE files, or --index N for a test-set image")
    ckpt = ckpt_io.load(checkpoint)
    dataset = ckpt.config.data.dataset
    names = predict.class_names_for(dataset, ckpt.network.layers[-1])
    if index is not None:
        from mlpcli.data import load_splits

        splits = load_splits(ckpt.config.data, quiet=as_json)
        results = [predict.predict_index(ckpt.network, splits.X_test, splits.y_test, index, names, k)]
        used = "none"  # a test-set image is already 28×28
    else:
        used = predict.resolve_mode(mode, dataset)
        results = predict.predict_files(ckpt.network, images, names, used, k)
    if as_json:
        payload = {"checkpoint": str(checkpoint), "dataset": dataset, "preprocess": used}
        payload["predictions"] = [r.to_json() for r in results]
        click.echo(json.dumps(payload, indent=2))
        return
    width = max(len(n) for n in names)
    for r in results:
        if show or index is not None:
            click.echo(predict.block_art(r.pixels))
        header = f"{r.source}  (preprocess: {used})"
        if r.true_label is not None:
            verdict = "right" if r.top[0].label == r.true_label else "wrong"
            header = f"{r.source}: true class {r.true_name} — prediction {verdict}"
        click.echo(header)
        for g in r.top:
            click.echo(f"  {g.name:<{width}}  {g.probability:7.2%}")


def main() -> None:
    cli(prog_name="mlpcli")


if __name__ == "__main__":  # pragma: no cover
    main()
