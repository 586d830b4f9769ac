"""The ``mlpcli`` command line: a thin shell that parses, calls the library, and prints.

Every expected failure is an ``MlpcliError``; ``Group.invoke`` below turns it into one line,
``Error: <what> — <what to do>``, and the error's exit code. ``--debug`` shows the traceback.
No math lives here.

This module holds the group, ``main`` and that error mapping; each command lives in its own
module (fetch, train, evaluate for ``eval``, gradcheck, predict, plot, page), and the options
several commands share are declared once, in ``options``.
"""

from __future__ import annotations

import click

from mlpcli import __version__
from mlpcli.cli.evaluate import eval_command
from mlpcli.cli.fetch import fetch_command
from mlpcli.cli.gradcheck import gradcheck_command
from mlpcli.cli.page import page_command
from mlpcli.cli.plot import plot_command
from mlpcli.cli.predict import predict_command
from mlpcli.cli.train import train_command
from mlpcli.cli.tune import tune_command
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


# One module per command; help lists them alphabetically.
for _command in (fetch_command, train_command, eval_command, gradcheck_command, predict_command, plot_command,
                 page_command, tune_command):
    cli.add_command(_command)


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