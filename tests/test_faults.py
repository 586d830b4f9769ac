"""User-facing faults from issue 12: each runs the CLI and checks the exit code, that no
traceback is shown, and that the message names the offending value or path."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mlpcli.cli import cli


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args))


# --- gradcheck: bad numbers are usage errors ------------------------------------------------

@pytest.mark.parametrize("option, value", [
    ("--seed", "-1"), ("--eps", "nan"), ("--eps", "inf"), ("--eps", "0"), ("--eps", "-inf"),
    ("--tol", "nan"), ("--tol", "inf"),
])
def test_gradcheck_rejects_bad_numbers(option, value):
    result = run_cli("gradcheck", "--all", option, value)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert option in result.output and value in result.output
