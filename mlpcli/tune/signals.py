"""Ctrl-C and SIGTERM during a study: at once while a trial trains, held while the database is
written.

A signal that raises in the middle of a database call can leave the session half way through a
commit; so a worker holds Ctrl-C and SIGTERM while it talks to the database and raises them at
the next safe point — and at once while a trial trains or the worker sleeps, where stopping
immediately is what ``mlpcli train`` does too. Inside a trial, ``mlpcli.run.train.fit`` takes
over SIGTERM for its epochs and holds both signals while it commits an epoch's files;
``Pruning`` holds them while it reports the epoch to the study.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from mlpcli.run.train import Terminated


class Stopper:
    """The SIGINT and SIGTERM handler of a worker (``installed``): raises while ``live``,
    otherwise keeps the signal ``pending`` until ``check``."""

    def __init__(self):
        self.pending: int | None = None
        self.live = False

    def _handle(self, signum, frame):
        if self.live:
            raise _exception(signum)
        self.pending = signum

    @contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    @contextmanager
    def interruptible(self):
        """A block that a signal stops at once (training, sleeping): no database call in it."""
        self.check()
        self.live = True
        try:
            self.check()  # one that came between the first check and going live
            yield
        finally:
            self.live = False

    def check(self) -> None:
        """Raise a signal that came while it was held: KeyboardInterrupt, or Terminated for SIGTERM."""
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise _exception(signum)


def _exception(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
