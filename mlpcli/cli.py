"""The ``mlpcli`` command line: a thin shell that parses, calls the library, and prints.

Every expected failure is an ``MlpcliError``; ``Group.invoke`` below turns it into one line,
``Error: <what> — <what to do>``, and the error's exit code. ``--debug`` shows the traceback.
No math lives here.
"""

from __future__ import annotations

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


def main() -> None:
    cli(prog_name="mlpcli")


if __name__ == "__main__":  # pragma: no cover
    main()
