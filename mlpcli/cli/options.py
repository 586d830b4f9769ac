"""The options and argument types that several commands share, each declared once, and
``gather``, which hands a command related options as one object."""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import click


class PositiveFinite(click.ParamType):
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


class DatasetChoice(click.Choice):
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
    help="A preset name (mnist, mnist-record, fashion-mnist, nielsen-ch3, seed-quadratic) or a YAML file [default: mnist].")
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


def data_dir_option(help: str, **settings):
    return click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help=help, **settings)


def checkpoint_argument(**path_settings):
    """The CHECKPOINT argument (a .npz file a run wrote)."""
    return click.argument("checkpoint", type=click.Path(path_type=Path, **path_settings))


def preprocess_option(help: str):
    """--preprocess: how an image becomes the network's input (predict, page)."""
    return click.option("--preprocess", "mode", type=click.Choice(["auto", "digits", "none"]), default="auto",
                        show_default=True, help=help)


# --- options handed over as one object -------------------------------------------------------------


def gather(**groups):
    """Hand a command some of its options as one object each, instead of one parameter per
    option: ``@gather(config=ConfigChoice)`` calls the command with ``config=ConfigChoice(...)``
    built from the options named like the dataclass's fields (a field with a default may have
    no option). The options are declared as usual, so --help keeps its order; ``gather`` goes
    below them, just above the ``def``."""

    def decorate(command):
        @functools.wraps(command)
        def call(*args, **options):
            for name, cls in groups.items():
                fields = [f.name for f in dataclasses.fields(cls) if f.name in options]
                options[name] = cls(**{key: options.pop(key) for key in fields})
            return command(*args, **options)

        return call

    return decorate


@dataclasses.dataclass(frozen=True)
class ConfigChoice:
    """--config, --set and (train's) --data-dir: which config, changed how."""

    config_source: str | None = None
    overrides: tuple[str, ...] = ()
    data_dir: Path | None = None

    def load(self, base=None):
        """The resolved config: --config's, else ``base`` (None: the defaults), with the changes."""
        from mlpcli.run.config import load_config

        source = self.config_source if self.config_source is not None else base
        return load_config(source, self.overrides, data_dir=self.data_dir)


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
