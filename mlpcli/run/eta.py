"""How long a run will take: the wall time of each epoch in, estimates and the lines that say
them out. No clock of its own (every time is given, in seconds of one monotonic clock), and no
printing: the CLI's progress display reads the clock and prints, and tests drive the arithmetic
with made-up times.

An epoch's time is the wall time from the end of the one before it (or, for the first epoch of
an invocation, from its start) to its end: training, validation and writing the checkpoints
and the metrics row, everything the run waits for. The estimate per epoch is the median of the
last few (``RECENT``), so one slow epoch (a busy machine for a moment, a page-cache miss) does
not swing it, and a machine that becomes slower or faster for good is followed within a few
epochs. A resumed run counts only the epochs it still has to run.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta

RECENT = 5  # epochs the per-epoch estimate looks back over


@dataclass
class RunTimer:
    """The timing of one invocation of a run of ``epochs`` epochs, which trains epochs ``first``
    to ``last`` (counted from 1, as the epoch lines count them): a resumed run starts after 1,
    --stop-after ends before ``epochs``. ``started``: when the invocation began (loading the
    data counts in the elapsed time)."""

    started: float
    first: int
    last: int
    epochs: int
    epoch_started: float | None = None  # the start of the epoch in progress
    durations: list[float] = field(default_factory=list)  # of the epochs done, in order
    _last_end: float | None = None

    def start_epoch(self, now: float) -> None:
        self.epoch_started = now if self._last_end is None else self._last_end

    def end_epoch(self, now: float) -> None:
        began = self.epoch_started if self.epoch_started is not None else self.started
        self.durations.append(now - began)
        self._last_end, self.epoch_started = now, None

    @property
    def done(self) -> int:
        """Epochs this invocation has finished."""
        return len(self.durations)

    @property
    def planned(self) -> int:
        """Epochs this invocation trains, from ``first`` to ``last``."""
        return self.last - self.first + 1

    @property
    def per_epoch(self) -> float | None:
        """Seconds an epoch: the median of the recent epochs' wall times (None before one ended)."""
        return statistics.median(self.durations[-RECENT:]) if self.durations else None

    def eta(self, now: float, fraction: float | None = None) -> float | None:
        """Seconds until epoch ``last`` ends. Between epochs: the epochs left × ``per_epoch``.
        During one (``fraction`` of its batches done): the rest of this epoch as well — from
        ``per_epoch``, or before any epoch has ended, from the pace of this one's batches.
        None when nothing is known yet."""
        left = self.planned - self.done
        if self.epoch_started is None or fraction is None:
            return None if self.per_epoch is None else max(left, 0) * self.per_epoch
        spent = now - self.epoch_started
        epoch = self.per_epoch
        if epoch is None:
            if fraction <= 0:
                return None
            epoch = spent / fraction
        return (left - 1) * epoch + max(epoch - spent, 0.0)

    # --- the lines ----------------------------------------------------------------------------

    def epochs_named(self) -> str:
        """"300 epochs", or "epochs 3–4 of 300" when this invocation is not the whole run."""
        whole = self.first == 1 and self.last == self.epochs
        return f"{self.planned} epochs" if whole else _span(self.first, self.last, self.epochs)

    def estimate(self, now: float, wall: datetime) -> str:
        """The line said once, after the first epoch: how long this invocation takes, at what
        pace, and the wall-clock time it should end (``wall``: the date and time at ``now``)."""
        eta = self.eta(now) or 0.0
        end = wall + timedelta(seconds=eta)
        when = end.strftime("%H:%M") if end.date() == wall.date() else end.strftime("%a %d %b %H:%M")
        return (f"{self.epochs_named()}: about {about(now - self.started + eta)} "
                f"({self.per_epoch:.1f} s an epoch), done around {when}")

    def status(self, now: float, fraction: float | None = None) -> str:
        """"0:49 elapsed · ETA 19:40" (the ETA left out while unknown)."""
        eta = self.eta(now, fraction)
        return f"{clock(now - self.started)} elapsed" + ("" if eta is None else f" · ETA {clock(eta)}")

    def total(self, now: float) -> str:
        """The last line: the invocation's wall time, and what it did (at the mean pace of its
        epochs: the estimates use the recent median, the summary the whole)."""
        pace = f", {statistics.fmean(self.durations):.1f} s an epoch" if self.durations else ""
        what = f"{self.done} epoch{'s' * (self.done != 1)}" if self.first == 1 or not self.done else (
            _span(self.first, self.first + self.done - 1, self.epochs))
        return f"total wall time {clock(now - self.started)} ({what}{pace})"


def _span(first: int, last: int, epochs: int) -> str:
    """"epochs 3–4 of 10", or "epoch 4 of 10"."""
    return f"epoch {first} of {epochs}" if first == last else f"epochs {first}–{last} of {epochs}"


def clock(seconds: float) -> str:
    """A duration as a stopwatch shows it: 0:07, 12:34, 1:02:03."""
    s = max(0, round(seconds))
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def about(seconds: float) -> str:
    """A duration as said aloud: 40 s, 21 min, 3 h 05 min (about ``seconds``)."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    h, m = divmod(round(seconds / 60), 60)
    return f"{h} h {m:02d} min"
