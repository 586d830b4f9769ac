"""Benchmark: do workers scale? The same 12-trial grid study, 2 workers × 1 BLAS thread
against 1 worker × 2 BLAS threads.

A grid of 4 learning rates × 3 values of λ for the ``nielsen-ch3`` network (no pruning, so both
ways train exactly the same 12 trials), each trial ``--epochs`` epochs, run by ``mlpcli tune``
from a fresh study folder each time, the two ways alternating for ``--rounds`` rounds. Prints
each wall time (the whole command: start-up, the trials, the report), each round's ratio and
their median (alternating rounds cancel a slow drift of the machine's speed). The target on a
2-core machine: 2 workers finish in at most 0.6× the time of 1.
Run it on an otherwise idle machine: another busy process makes the numbers meaningless.

    python bench/tune_scaling.py --data ~/datasets/mnist          # the full MNIST (IDX folder)
    python bench/tune_scaling.py --data DIR --epochs 6 --rounds 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

SPACE = """\
# a 4 × 3 grid: Nielsen's chapter-3 learning rates and three strengths of L2
training.learning_rate: {choices: [0.025, 0.1, 0.25, 1.0]}
regularization.l2: {choices: [1.0, 5.0, 10.0]}
"""


def run(args, workers: int, threads: int) -> float:
    out = args.out / f"{workers}x{threads}"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "mlpcli", "tune", "--config", "nielsen-ch3", "--space", str(args.space),
               "--sampler", "grid", "--pruner", "none", "--workers", str(workers), "--threads", str(threads),
               "--out", str(out), "--set", f"training.epochs={args.epochs}"]
    if args.data:
        command += ["--set", f"data.path={args.data}"]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="an IDX folder (sets data.path) [default: the mnist data set, fetched]")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("bench/results/tune-scaling"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.space = args.out / "space.yaml"
    args.space.write_text(SPACE)
    ratios = []
    for r in range(args.rounds):
        one, two = run(args, 1, 2), run(args, 2, 1)
        ratios.append(two / one)
        print(f"round {r + 1}: 1 worker × 2 threads {one:.1f} s, 2 workers × 1 thread {two:.1f} s, "
              f"ratio {ratios[-1]:.2f}", flush=True)
    print(f"median ratio {statistics.median(ratios):.2f} over {args.rounds} rounds (target ≤ 0.60)")


if __name__ == "__main__":
    main()
