"""``--workers K``: K ordinary ``mlpcli tune`` processes on this machine, sharing one study.

Each worker is the same command a second machine would run, with ``--threads`` set so that the
K workers share the cores instead of fighting over them (cores / K BLAS threads each, unless
``--threads`` says otherwise) and its own sampler seed (``--seed S`` gives worker i the seed
S + i − 1). The storage URL goes to them through the environment, never on a command line that
``ps`` would show. The command that started them forwards Ctrl-C and SIGTERM to each (they run
in their own sessions, so a terminal's Ctrl-C reaches them once, through it), waits for all,
and reports the study.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from mlpcli.errors import Interrupted, MlpcliError
from mlpcli.run.train import SIGTERM_EXIT
from mlpcli.tune import STORAGE_ENV


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_argv(plan, number: int, threads: int) -> list[str]:
    """The command line of worker ``number``: this study, fully named, with no storage URL."""
    o = plan.options
    argv = [sys.executable, "-m", "mlpcli", "tune", "--space", str(o.space.resolve()), "--trials", str(plan.trials),
            "--sampler", o.sampler, "--pruner", o.pruner, "--metric", o.metric, "--study", plan.name,
            "--out", str(plan.folder), "--heartbeat", str(o.heartbeat), "--threads", str(threads),
            "--worker", str(number)]
    if o.config_source is not None:
        argv += ["--config", o.config_source]
    for item in o.overrides:
        argv += ["--set", item]
    if o.seed is not None:
        argv += ["--seed", str(o.seed)]
    if o.data_dir is not None:
        argv += ["--data-dir", str(o.data_dir)]
    return argv


def run_workers(plan, say) -> Interrupted | None:
    """Start ``--workers`` processes and wait for them; the ``Interrupted`` to raise after the
    report when they were stopped, a ``MlpcliError`` when one failed."""
    k = plan.options.workers
    threads = plan.options.threads or max(1, cores() // k)
    env = dict(os.environ)
    if plan.options.storage:
        env[STORAGE_ENV] = plan.options.storage
    say(f"starting {k} workers, {threads} BLAS thread(s) each")
    procs = [subprocess.Popen(worker_argv(plan, i, threads), env=env, start_new_session=True) for i in range(1, k + 1)]
    received: list[int] = []

    def forward(signum, frame):
        received.append(signum)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [proc.wait() for proc in procs]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    failed = [(i, c) for i, c in enumerate(codes, 1) if c not in (0, 130, SIGTERM_EXIT, -signal.SIGINT, -signal.SIGTERM)]
    if failed:
        i, code = failed[0]
        raise MlpcliError(f"worker {i} stopped with exit status {code} (its message is above)",
                          "fix what it says and run the same command again: finished trials are kept")
    if received or any(codes):
        terminated = signal.SIGTERM in received or SIGTERM_EXIT in codes
        error = Interrupted(f"{'terminated (SIGTERM)' if terminated else 'interrupted'}: the workers stopped; "
                            "their running trials are marked failed, not finished",
                            "run the same command again to run the missing trials")
        if terminated:
            error.exit_code = SIGTERM_EXIT
        return error
    return None
