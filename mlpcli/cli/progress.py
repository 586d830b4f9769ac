"""What ``mlpcli train`` shows while it runs: ``fit``'s progress callback, at the edge."""

from __future__ import annotations

import time
from datetime import datetime

import click

from mlpcli.run.eta import RunTimer


class TrainProgress:
    """A tqdm bar per epoch on stderr (batches; running loss and the whole run's elapsed time
    and ETA), one line per epoch on stdout (its metrics, elapsed time and ETA), once after the
    first epoch the time the run should take and end, and, from ``finish``, the total wall
    time. ``quiet``: the total alone, on stderr (stdout stays the run folder, for scripts).

    ``stop_after``: the run ends after that epoch (--stop-after), so the ETA counts to it.
    ``clock`` (seconds, monotonic) and ``wall`` (the date and time now) are what tests replace.
    The time counts from this object's creation: loading the data is part of the wait."""

    def __init__(self, stop_after: int | None = None, *, quiet: bool = False, clock=time.monotonic,
                 wall=datetime.now):
        self.stop_after, self.quiet, self.clock, self.wall = stop_after, quiet, clock, wall
        self.started = clock()
        self.timer: RunTimer | None = None
        self.bar = None
        self.epochs, self.n_batches = 0, 0
        self.loss_sum, self.count = 0.0, 0

    def start_epoch(self, epoch: int, epochs: int, n_batches: int) -> None:
        import sys

        from tqdm import tqdm

        if self.timer is None:  # the first epoch of this invocation: a resumed run starts later
            last = epochs if self.stop_after is None else min(epochs, self.stop_after)
            self.timer = RunTimer(self.started, epoch, last, epochs)
        self.timer.start_epoch(self.clock())
        self.close()
        self.epochs, self.n_batches, self.loss_sum, self.count = epochs, n_batches, 0.0, 0
        if not self.quiet:
            self.bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False,
                            dynamic_ncols=True, file=sys.stderr, disable=None)

    def batch(self, loss: float) -> None:
        self.loss_sum += loss
        self.count += 1
        if self.bar is not None:
            self.bar.update(1)
            if self.count % 25 == 1:
                self.bar.set_postfix_str(self.postfix(), refresh=False)

    def postfix(self) -> str:
        """The bar's text after the counts: "loss 0.2345 · run 0:49 elapsed · ETA 19:40"."""
        fraction = self.count / self.n_batches if self.n_batches else None
        return f"loss {self.loss_sum / max(self.count, 1):.4f} · run {self.timer.status(self.clock(), fraction)}"

    def end_epoch(self, m: dict) -> None:
        from mlpcli.run.train import format_epoch

        now = self.clock()
        self.timer.end_epoch(now)
        if self.quiet:
            return
        self.close()
        click.echo(f"{format_epoch(m, self.epochs)} · {self.timer.status(now)}")
        if self.timer.done == 1 and self.timer.planned > 1:
            click.echo(self.timer.estimate(now, self.wall()))

    def message(self, text: str) -> None:
        if not self.quiet:
            self.close()
            click.echo(text)

    def finish(self) -> None:
        """The last line: how long the whole invocation took."""
        self.close()
        if self.timer is not None:
            click.echo(self.timer.total(self.clock()), err=self.quiet)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
