"""One exception family for every expected failure.

The CLI turns any ``MlpcliError`` into ``Error: <what> — <what to do>`` on stderr and the
error's ``exit_code`` (2 for usage/config mistakes, 1 otherwise, 130 for Ctrl-C), with no
traceback unless ``--debug`` is given.
"""

from __future__ import annotations


class MlpcliError(Exception):
    """Base class: a message saying what is wrong and, optionally, a hint saying what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class ConfigError(MlpcliError):
    """A bad configuration value, key, file or combination (exit 2, like a usage error)."""

    exit_code = 2


class DataError(MlpcliError):
    """A data file that is missing, truncated, corrupt or inconsistent."""


class FetchError(MlpcliError):
    """A download or import that could not produce verified files."""


class CheckpointError(MlpcliError):
    """A file that is not a valid mlpcli checkpoint, or a run folder in an unusable state."""


class DivergenceError(MlpcliError):
    """Training produced NaN or inf."""


class Interrupted(MlpcliError):
    """The user pressed Ctrl-C; the message says what was saved."""

    exit_code = 130


class MissingExtraError(MlpcliError):
    """An optional dependency (matplotlib, Pillow, Optuna, …) is not installed."""


EXTRAS = {"matplotlib": "plot", "PIL": "plot"}  # module → the extra that installs it


def require(module: str, purpose: str, extra: str | None = None):
    """Import an optional module, or fail with one line saying what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        name = {"PIL": "Pillow"}.get(top, top)
        extra = extra or EXTRAS.get(top, "plot")
        raise MissingExtraError(f"{purpose} needs {name}, which is not installed",
                                f"install it with: pip install 'mlpcli[{extra}]'") from None
