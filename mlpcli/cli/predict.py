"""Classify images with a checkpoint: ``mlpcli predict``."""

from __future__ import annotations

from pathlib import Path

import click

from mlpcli.cli.options import checkpoint_argument, json_option, preprocess_option


@click.command("predict")
@checkpoint_argument()
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--index", type=int, help="Classify test-set image N instead, drawn in the terminal (no extra needed).")
@preprocess_option("digits: crop, fit 20×20, center by mass (MNIST/KMNIST); none: resize to 28×28 "
                   "(Fashion-MNIST); auto: by the checkpoint's dataset.")
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
