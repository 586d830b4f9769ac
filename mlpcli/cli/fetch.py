"""Download and verify a data set: ``mlpcli fetch``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from mlpcli.cli.options import QUIET_OPTION, DatasetChoice, PositiveFinite, data_dir_option, gather


@dataclass(frozen=True)
class FetchChoice:
    """Where the files come from (--mirror, --from), whether again (--force), how strictly
    (--no-verify) and when a mirror counts as stalled (--read-timeout, --speed-limit,
    --speed-time)."""

    mirrors: tuple[str, ...]
    source_dir: Path | None
    force: bool
    no_verify: bool
    read_timeout: float
    speed_limit: float
    speed_time: float

    def options(self, quiet: bool):
        """The library's ``FetchOptions`` for these choices."""
        from mlpcli.data import fetch

        http = fetch.HttpOptions(read_timeout=self.read_timeout, speed_limit=self.speed_limit,
                                 speed_time=self.speed_time)
        return fetch.FetchOptions(mirrors=self.mirrors, force=self.force, verify=not self.no_verify,
                                  quiet=quiet, source_dir=self.source_dir, http=http)


@click.command("fetch")
@click.option("--dataset", type=DatasetChoice(), default="mnist", show_default=True,
              help="Which data set to download.")
@data_dir_option("Files land in DATA_DIR/DATASET/ [env: MLPCLI_DATA_DIR].", default="data", show_default=True,
                 envvar="MLPCLI_DATA_DIR")
@click.option("--mirror", "mirrors", multiple=True, metavar="URL", envvar="MLPCLI_MIRROR",
              help="A base URL serving the four files, tried before the built-in mirrors; "
              "repeatable [env: MLPCLI_MIRROR, space-separated].")
@click.option("--from", "source_dir", metavar="DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Import local copies (.gz or raw) from DIR instead of downloading; same checks.")
@click.option("--force", is_flag=True, help="Download (or import) again even if verified files are present.")
@click.option("--no-verify", is_flag=True,
              help="Accept files whose hashes do not match the pinned ones (NOT recommended).")
@click.option("--read-timeout", type=PositiveFinite(), default=15.0, show_default=True, metavar="SECONDS",
              help="Give up on a mirror that sends nothing for this long; the next one is tried.")
@click.option("--speed-limit", type=float, default=1000.0, show_default=True, metavar="BYTES/S",
              help="Give up on a mirror slower than this over --speed-time seconds (0: no limit).")
@click.option("--speed-time", type=PositiveFinite(), default=30.0, show_default=True, metavar="SECONDS",
              help="The window --speed-limit is measured over.")
@QUIET_OPTION
@gather(choice=FetchChoice)
def fetch_command(dataset: str, data_dir: Path, choice: FetchChoice, quiet: bool) -> None:
    """Download a data set's four IDX files, verify them against pinned hashes, keep them.

    Mirrors are tried in order (yours first); a download that stops half way is resumed
    from the same mirror next time; a download that does not match its pinned hash is
    deleted, and a file you placed in the folder is never touched (--force replaces it only
    once a verified download has arrived). A mirror that stalls (nothing for --read-timeout
    seconds, or under --speed-limit bytes/s over --speed-time seconds) is given up on in one
    line and the next one tried.
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

    lines = fetch.fetch(dataset, data_dir, choice.options(quiet), echo=echo)
    if not quiet:
        for line in lines:
            click.echo(line)
        click.echo(f"{dataset}: {len(lines)} files in {data_dir / dataset}")
