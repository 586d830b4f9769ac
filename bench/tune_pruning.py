"""Benchmark: does pruning pay? The same study with the median pruner and with none.

Two 24-trial studies over the learning rate and λ of the ``nielsen-ch3`` network (TPE, the
same sampler seed), one with ``--pruner median`` and one with ``--pruner none``, each run by
``mlpcli tune`` itself. Prints, from the studies' databases, the epochs each spent (every
epoch any trial trained) and the best validation accuracy each found. The targets: the pruned
study spends at most 60 % of the epochs of the unpruned one, and its best trial is within
0.3 percentage points of the unpruned study's best.

    python bench/tune_pruning.py --data ~/datasets/mnist              # the full MNIST (IDX folder)
    python bench/tune_pruning.py --data DIR --trials 24 --epochs 10 --out bench/results/pruning

A study that is already there is continued, not restarted (the same command resumes), so an
interrupted benchmark picks up where it stopped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

SPACE = """\
# nielsen-ch3: the learning rate and the L2 strength λ, both over two decades and more
training.learning_rate: {low: 0.01, high: 10.0, log: true}
regularization.l2: {low: 0.05, high: 50.0, log: true}
"""


def run_study(args, pruner: str) -> tuple[Path, float]:
    out = args.out / pruner
    command = [sys.executable, "-m", "mlpcli", "tune", "--config", "nielsen-ch3", "--space", str(args.space),
               "--trials", str(args.trials), "--seed", str(args.seed), "--pruner", pruner, "--out", str(out),
               "--threads", str(args.threads), "--set", f"training.epochs={args.epochs}"]
    if args.data:
        command += ["--set", f"data.path={args.data}"]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return out, time.perf_counter() - started


def summary(out: Path) -> dict:
    import optuna

    study = optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    return {"epochs": sum(len(t.intermediate_values) for t in finished),
            "best": max(max(t.intermediate_values.values()) for t in finished if t.intermediate_values),
            "pruned": sum(t.state.name == "PRUNED" for t in finished), "trials": len(finished)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="an IDX folder (sets data.path) [default: the mnist data set, fetched]")
    p.add_argument("--trials", type=int, default=24)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed, the same for both studies")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads")
    p.add_argument("--out", type=Path, default=Path("bench/results/tune-pruning"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.space = args.out / "space.yaml"
    args.space.write_text(SPACE)
    results = {}
    for pruner in ("median", "none"):
        out, seconds = run_study(args, pruner)
        results[pruner] = {**summary(out), "seconds": seconds}
    median, none = results["median"], results["none"]
    print(f"\n{'pruner':<8} {'trials':>6} {'pruned':>6} {'epochs':>6} {'best val_accuracy':>18} {'wall time':>10}")
    for name, r in results.items():
        print(f"{name:<8} {r['trials']:>6} {r['pruned']:>6} {r['epochs']:>6} {r['best']:>18.4f} {r['seconds']:>9.0f}s")
    ratio, gap = median["epochs"] / none["epochs"], (none["best"] - median["best"]) * 100
    print(f"epochs: median / none = {ratio:.2f} (target ≤ 0.60); best: none − median = {gap:+.2f} points "
          f"(target ≤ 0.30)")


if __name__ == "__main__":
    main()
