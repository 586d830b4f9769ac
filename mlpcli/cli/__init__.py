"""The ``mlpcli`` command line: a thin shell that parses, calls the library, and prints.

Every expected failure is an ``MlpcliError``; ``Group.invoke`` below turns it into one line,
``Error: <what> — <what to do>``, and the error's exit code. ``--debug`` shows the traceback.
No math lives here.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from mlpcli import __version__
from mlpcli.errors import Interrupted, MlpcliError


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
        except KeyboardInterrupt:
            # Commands that save work (train, fetch) turn Ctrl-C into their own Interrupted,
            # saying what was kept; any other command ends the same way: one line, exit 130.
            if ctx.params.get("debug"):
                raise
            raise _CliError(Interrupted("interrupted (Ctrl-C)", "run the command again")) from None
        except OSError as error:
            # click.echo flushes stdout: a full disk (ENOSPC) or a closed pipe (EPIPE) under
            # `> file` or `| head` ends here. Any other OSError is a bug and shows its traceback.
            if ctx.params.get("debug") or not Group.stdout_failed(error):
                raise
            raise click.exceptions.Exit(Group.output_failed(error)) from None

    @staticmethod
    def stdout_failed(error: OSError) -> bool:
        """True when ``error`` came from writing the output, not from a file the command wrote:
        it was raised inside click.echo writing to stdout, or stdout cannot be flushed (what
        could not be written stays buffered, so flushing fails again)."""
        import sys
        import traceback

        def fd(stream):
            try:
                return stream.fileno()
            except (AttributeError, OSError, ValueError):
                return None

        for frame, _ in traceback.walk_tb(error.__traceback__):
            if frame.f_code is click.utils.echo.__code__:
                stream = frame.f_locals.get("file")
                return stream is sys.stdout or fd(stream) not in (None, 2) and fd(stream) == fd(sys.stdout)
        try:
            sys.stdout.flush()
        except OSError:
            return True
        except ValueError:  # closed
            return False
        return False

    @staticmethod
    def output_failed(error: OSError, report: bool = True) -> int:
        """Stdout is broken: point it at /dev/null (so the interpreter's last flush is quiet),
        say so in one line on stderr — nothing for a closed pipe, whose reader wanted no more —
        and return the exit status, 1."""
        import errno
        import os
        import sys

        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # no file descriptor (tests, embedded use)
            pass
        if report and error.errno != errno.EPIPE:
            try:
                click.echo(f"Error: cannot write the output: {error.strerror or error}", err=True)
            except OSError:
                pass
        return 1


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
      mlpcli page runs/mnist-…/best.npz     # a page to draw on, in a browser
    """


class _PositiveFinite(click.ParamType):
    """A float that is finite and > 0 (click's FloatRange lets nan and inf through)."""

    name = "float"

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number) or number <= 0:
            self.fail(f"{value!r} is not a finite number > 0", param, ctx)
        return number


class _DatasetChoice(click.Choice):
    """The registered data sets, looked up when used (so a registered test data set counts)."""

    def __init__(self):
        super().__init__(())

    @property
    def choices(self):
        from mlpcli.data.fetch import REGISTRY

        return tuple(REGISTRY)

    @choices.setter
    def choices(self, value):  # click.Choice.__init__ assigns; the registry is the truth
        pass


# --- options shared by several commands, defined once ---------------------------------------------

CONFIG_OPTION = click.option(
    "--config", "-c", "config_source", metavar="NAME|PATH",
    help="A preset name (mnist, fashion-mnist, nielsen-ch3, seed-quadratic) or a YAML file [default: mnist].")
SET_OPTION = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Override one config key, value parsed as YAML; repeatable "
    "(--set training.epochs=5 --set model.layers=[784,100,10]).")
def json_option(help: str = "Print JSON instead of text."):
    return click.option("--json", "as_json", is_flag=True, help=help)

QUIET_OPTION = click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-step lines; results and errors only.")
THREADS_OPTION = click.option(
    "--threads", type=click.IntRange(min=1), metavar="N", expose_value=False, is_eager=True,
    callback=lambda ctx, param, value: _use_threads(value),
    help="BLAS threads for the matrix products [default: all cores]. On a machine other jobs "
    "also use, --threads 1 is often faster: two threads competing for busy cores slow each other.")


def data_dir_option(help: str):
    return click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help=help)


def _use_threads(n: int | None) -> None:
    """Limit BLAS (OpenBLAS, MKL, OpenMP) to ``n`` threads. Set before NumPy is first imported
    (the commands import it lazily), so the libraries read it when they start."""
    if n is None:
        return
    import os
    import sys

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    if "numpy" in sys.modules:  # only when mlpcli runs inside another Python program
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            click.secho(f"warning: --threads {n} has no effect: NumPy was loaded before mlpcli "
                        "(set OPENBLAS_NUM_THREADS before starting Python)", err=True, fg="yellow")
            return
        _use_threads.limits = threadpool_limits(n)  # kept: the limit lasts while it lives


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
@QUIET_OPTION
def fetch_command(dataset: str, data_dir: Path, mirrors: tuple[str, ...], source_dir: Path | None,
                  force: bool, no_verify: bool, quiet: bool) -> None:
    """Download a data set's four IDX files, verify them against pinned hashes, keep them.

    Mirrors are tried in order (yours first); a download that stops half way is resumed
    from the same mirror next time; a download that does not match its pinned hash is
    deleted, and a file you placed in the folder is never touched (--force replaces it only
    once a verified download has arrived).
    Verified files already present are not downloaded again. Exit status 0 means all four
    files are present and verified.

    \b
    Examples:
      mlpcli fetch                                  # MNIST into ./data/mnist/
      mlpcli fetch --dataset fashion-mnist --data-dir ~/datasets
      mlpcli fetch --mirror https://example.org/mnist/   # try your own mirror first
      mlpcli fetch --from ~/Downloads               # offline: import files you already have
    """
    from mlpcli.data import fetch

    def echo(message: str) -> None:
        click.secho(message, err=True, fg="yellow" if message.startswith("WARNING") else None)

    lines = fetch.fetch(dataset, data_dir, fetch.FetchOptions(
        mirrors=mirrors, force=force, verify=not no_verify, quiet=quiet, source_dir=source_dir),
        echo=echo)
    if not quiet:
        for line in lines:
            click.echo(line)
        click.echo(f"{dataset}: {len(lines)} files in {data_dir / dataset}")


@cli.command("plot")
@click.argument("run_dir", type=click.Path(path_type=Path), required=False)
@click.option(
    "--out", "-o", type=click.Path(dir_okay=False, path_type=Path),
    help="PNG to write [default: RUN_DIR/curves.png; with --weights: weights.png beside CKPT]."
)
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), metavar="CKPT",
              help="Draw CKPT's first-layer weights instead: one 28×28 image per hidden unit (the first 64).")
@click.option("--augment", "augment_config", metavar="NAME|PATH",
              help="Draw what a config's data.augment does to a few of its training images instead "
              "(each image as stored, then five distortions; with --set).")
@SET_OPTION
def plot_command(run_dir: Path | None, out: Path | None, weights: Path | None, augment_config: str | None,
                 overrides: tuple[str, ...]) -> None:
    """Draw a run's learning curves: train and validation loss and accuracy per epoch.

    Reads RUN_DIR/metrics.jsonl (what `mlpcli train` writes) and marks the best epoch (highest
    validation accuracy, the one best.npz holds). Needs the plot extra:
    pip install 'mlpcli[plot]'.

    \b
    Examples:
      mlpcli plot runs/fashion-mnist-20250101-120000
      mlpcli plot runs/mnist-20250101-120000 --out mnist-curves.png
      mlpcli plot --weights runs/mnist-20250101-120000/best.npz --out weights.png
      mlpcli plot --augment mnist --out augment.png     # what the network is trained on
      mlpcli plot --augment mnist --set data.augment.elastic=null
    """
    from mlpcli.inspection import plot

    if sum(x is not None for x in (run_dir, weights, augment_config)) != 1:
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
@json_option()
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
    from mlpcli.run import checkpoint as ckpt_io
    from mlpcli.data.images import resolve_mode
    from mlpcli.inspection import predict

    if images and index is not None:
        raise click.UsageError("give IMAGE files or --index N, not both")
    if not images and index is None:
        raise click.UsageError("give one or more IMAGE files, or --index N for a test-set image")
    ckpt = ckpt_io.load(checkpoint)
    dataset = ckpt.config.data.dataset
    names = predict.class_names_for(dataset, ckpt.network.layers[-1], ckpt.meta.get("class_names"))
    if index is not None:
        from mlpcli.data.fetch import load_splits

        splits = load_splits(ckpt.config.data, quiet=as_json)
        results = [predict.predict_index(ckpt.network, splits.X_test, splits.y_test, index, names, k)]
        used = "none"  # a test-set image is already 28×28
    else:
        used = resolve_mode(mode, dataset)
        results = predict.predict_files(ckpt.network, images, names, used, k)
    if as_json:
        click.echo(predict.format_predictions_json(results, checkpoint, dataset, used))
    else:
        click.echo(predict.format_predictions(results, names, used, show=show or index is not None))


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


@cli.command("train")
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


@cli.command("eval")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
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
    from mlpcli.run import checkpoint as ckpt_io
    from mlpcli.run.config import load_config
    from mlpcli.data.splits import names_for_network
    from mlpcli.errors import ConfigError
    from mlpcli.nn.evaluate import dumps, evaluate, format_report
    from mlpcli.data.fetch import load_splits

    if plot_dir is not None:
        from mlpcli.inspection import plot

        plot.pyplot()  # a missing plot extra fails now, not after the evaluation
        plot.check_picture_folder(plot_dir)  # and so does a folder that cannot be written
    ckpt = ckpt_io.load(checkpoint)
    flags = [("--data-dir", {"data": {"dir": data_dir, "path": None, "format": None}})] if data_dir is not None else []
    flags += [("--data-path", {"data": {"path": data_path, "format": None}})] if data_path is not None else []
    data_cfg = load_config(ckpt.config, flags=flags).data if flags else ckpt.config.data
    if split == "validation" and data_cfg.validation == 0:
        raise ConfigError(f"{checkpoint} was trained with data.validation: 0, so there is no validation split",
                          "use --split test or --split train")
    splits = load_splits(data_cfg, quiet=as_json, need=("test",) if split == "test" else ("train",))
    X, y = {"test": (splits.X_test, splits.y_test), "validation": (splits.X_val, splits.y_val),
            "train": (splits.X_train, splits.y_train)}[split]
    names = names_for_network(splits, ckpt.network.layers, ckpt.meta.get("class_names"))
    result = evaluate(ckpt.network, X, y, batch_size=batch_size, class_names=names,
                      keep_probabilities=plot_dir is not None)
    if as_json:
        click.echo(dumps({"checkpoint": str(checkpoint), "split": split, **result.to_json()}))
    else:
        click.echo(format_report(result, f"{checkpoint} on the {split} split of {splits.dataset} "
                                 f"({result.n} examples)"))
    if plot_dir is not None:
        for path in plot.eval_pictures(plot_dir, X, y, result, output=ckpt.network.output, split=split):
            click.echo(f"wrote {path}", err=as_json)


@cli.command("gradcheck")
@click.option("--all", "check_every", is_flag=True,
              help="Check every hidden activation × every valid (output, cost) pair on a small net, "
              "with λ = 0 and λ > 0, plus a net mixing all hidden activations.")
@CONFIG_OPTION
@SET_OPTION
@click.option("--params", type=click.IntRange(min=1), default=50, show_default=True, metavar="N",
              help="Entries checked per parameter array (all of them when the array is smaller).")
@click.option("--eps", type=_PositiveFinite(), default=1e-6, show_default=True,
              help="Step ε of the central difference (J(θ+ε) − J(θ−ε)) / 2ε.")
@click.option("--tol", type=_PositiveFinite(), default=1e-6, show_default=True,
              help="Largest relative difference ‖a − n‖ / (‖a‖ + ‖n‖) per parameter array that passes.")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="Examples in the batch the cost is averaged over.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seeds the weights, the batch and the sampled entries.")
@click.pass_context
def gradcheck_command(ctx: click.Context, check_every: bool, config_source: str | None,
                      overrides: tuple[str, ...], params: int, eps: float, tol: float, batch: int,
                      seed: int) -> None:
    """Check backpropagation against central finite differences, in float64.

    For each parameter array, the analytic gradient a (from backward) and the numerical one n
    must satisfy ‖a − n‖ / (‖a‖ + ‖n‖) ≤ tol over the checked entries. Hidden biases are
    nudged so that no pre-activation sits within 1e-4 of a ReLU kink. With --config, the
    batch is real training rows when the data set is on disk (nothing is downloaded), else
    seeded random pixels; training.dtype is ignored (always float64). Exits 1 when any
    array fails.

    \b
    Examples:
      mlpcli gradcheck --all
      mlpcli gradcheck --config nielsen-ch3
      mlpcli gradcheck --config mnist --set model.layers=[784,100,10] --params 200
      mlpcli gradcheck --all --eps 1e-5 --tol 1e-7 --seed 3
    """
    from mlpcli.nn import gradcheck

    if check_every:
        if config_source is not None or overrides:
            raise click.UsageError("--all checks built-in networks: leave out --config and --set")
        rows = gradcheck.check_all(eps=eps, params=params, batch=batch, seed=seed)
        click.echo(gradcheck.describe_all(eps, batch, seed))
        table = gradcheck.format_table(gradcheck.worst_per_label(rows), "combination", tol)
    else:
        from mlpcli.data.splits import gradcheck_batch
        from mlpcli.run.config import load_config

        cfg = load_config(config_source, overrides)
        rows, notes = gradcheck.check_config(cfg, gradcheck_batch, eps=eps, params=params, batch=batch, seed=seed)
        click.echo(f"config {cfg.name}")
        for note in notes:
            click.echo(note)
        table = gradcheck.format_table(rows, "layer", tol)
    click.echo(table)
    passed, verdict = gradcheck.verdict(rows, tol)
    click.echo(verdict)
    if not passed:
        ctx.exit(1)


@cli.command("page")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), metavar="FILE.html",
              help="The page to write [default: CHECKPOINT with .html, e.g. best.html].")
@click.option("--examples", type=int, metavar="N",
              help="Test images to embed, the most confident mistakes first [default: 50, or all if "
              "the test set is smaller]; 0 for none.")
@click.option("--preprocess", "mode", type=click.Choice(["auto", "digits", "none"]), default="auto",
              show_default=True, help="How drawings are preprocessed, as in `mlpcli predict`.")
def page_command(checkpoint: Path, out: Path | None, examples: int | None, mode: str) -> None:
    """Write ONE self-contained HTML page to draw on and look inside CHECKPOINT's network.

    Open the file in a browser (no server, no network; the weights are inside it): draw a
    digit, or click a test image, and watch the probabilities, the hidden layers' activations
    and the incoming weights of the most active units. The test accuracy in its header is
    computed now. A data set that is not on disk gives a page without test images (nothing is
    downloaded).

    \b
    Examples:
      mlpcli page runs/mnist-20250101-120000/best.npz --out mnist.html
      mlpcli page best.npz --examples 100
    """
    from mlpcli.inspection import page

    result = page.write_page(checkpoint, out if out is not None else checkpoint.with_suffix(".html"),
                             examples, mode)
    if result.note:
        click.secho(f"warning: {result.note}: the page has no test images and no test accuracy",
                    err=True, fg="yellow")
    accuracy = "" if result.accuracy is None else f", test accuracy {result.accuracy:.2%}"
    click.echo(f"wrote {result.path} ({result.size / 1e6:.1f} MB, {result.examples} test images{accuracy})")


def main() -> None:
    """The ``mlpcli`` entry point: run the command, then flush stdout inside a try, so output
    that cannot be written (a full disk, a closed pipe) ends in one line and exit status 1,
    never a traceback or Python's "Exception ignored" (a closed pipe: exit 1, no message)."""
    import sys

    try:
        cli(prog_name="mlpcli")
        status = 0
    except SystemExit as done:  # click's standalone mode always ends here
        status = done.code
    except OSError as error:  # writing --help or --version, before any command runs
        if not Group.stdout_failed(error):
            raise
        status = Group.output_failed(error)
    try:
        sys.stdout.flush()
    except OSError as error:
        failed = Group.output_failed(error, report=not status)  # one message at most
        status = status or failed
    sys.exit(status)


if __name__ == "__main__":  # pragma: no cover
    main()
