"""A checkpoint as one HTML page: ``mlpcli page``."""

from __future__ import annotations

from pathlib import Path

import click

from mlpcli.cli.options import checkpoint_argument, preprocess_option


@click.command("page")
@checkpoint_argument()
@click.option("--out", "-o", type=click.Path(path_type=Path), metavar="FILE.html",
              help="The page to write [default: CHECKPOINT with .html, e.g. best.html].")
@click.option("--examples", type=int, metavar="N",
              help="Test images to embed, the most confident mistakes first [default: 50, or all if "
              "the test set is smaller]; 0 for none.")
@preprocess_option("How drawings are preprocessed, as in `mlpcli predict`.")
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
