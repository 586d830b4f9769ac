"""Backpropagation against finite differences: ``mlpcli gradcheck``."""

from __future__ import annotations

from dataclasses import dataclass

import click

from mlpcli.cli.options import CONFIG_OPTION, SET_OPTION, ConfigChoice, PositiveFinite, gather


@dataclass(frozen=True)
class CheckSettings:
    """--params, --eps, --tol, --batch and --seed: how the gradients are compared."""

    params: int
    eps: float
    tol: float
    batch: int
    seed: int


@click.command("gradcheck")
@click.option("--all", "check_every", is_flag=True,
              help="Check every hidden activation × every valid (output, cost) pair on a small net, "
              "with λ = 0 and λ > 0, plus a net mixing all hidden activations.")
@CONFIG_OPTION
@SET_OPTION
@click.option("--params", type=click.IntRange(min=1), default=50, show_default=True, metavar="N",
              help="Entries checked per parameter array (all of them when the array is smaller).")
@click.option("--eps", type=PositiveFinite(), default=1e-6, show_default=True,
              help="Step ε of the central difference (J(θ+ε) − J(θ−ε)) / 2ε.")
@click.option("--tol", type=PositiveFinite(), default=1e-6, show_default=True,
              help="Largest relative difference ‖a − n‖ / (‖a‖ + ‖n‖) per parameter array that passes.")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="Examples in the batch the cost is averaged over.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seeds the weights, the batch and the sampled entries.")
@click.pass_context
@gather(config=ConfigChoice, check=CheckSettings)
def gradcheck_command(ctx: click.Context, check_every: bool, config: ConfigChoice, check: CheckSettings) -> None:
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

    how = {"eps": check.eps, "params": check.params, "batch": check.batch, "seed": check.seed}
    if check_every:
        if config != ConfigChoice():
            raise click.UsageError("--all checks built-in networks: leave out --config and --set")
        rows = gradcheck.check_all(**how)
        click.echo(gradcheck.describe_all(check.eps, check.batch, check.seed))
        table = gradcheck.format_table(gradcheck.worst_per_label(rows), "combination", check.tol)
    else:
        from mlpcli.data.splits import gradcheck_batch

        cfg = config.load()
        rows, notes = gradcheck.check_config(cfg, gradcheck_batch, **how)
        for line in [f"config {cfg.name}", *notes]:
            click.echo(line)
        table = gradcheck.format_table(rows, "layer", check.tol)
    click.echo(table)
    passed, verdict = gradcheck.verdict(rows, check.tol)
    click.echo(verdict)
    if not passed:
        ctx.exit(1)
