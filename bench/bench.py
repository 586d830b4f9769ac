"""Benchmark: mlpcli's trainer against PyTorch on the CPU, and against the machine's GEMM peak.

For each network (A, B, C below) the script trains mlpcli through its library API
(``mlpcli.run.config`` → ``mlpcli.data.splits.read_splits`` → ``mlpcli.run.train.fit``) and, when PyTorch
is installed, the same network in PyTorch: same layers, activations, cost definition, initial
weights (copied from mlpcli's ``Network.create`` with the same seed), L2 on weights only,
batch size, learning rate, optimizer, epochs, float32, and the same number of threads.
Every training runs in its own subprocess, alternating mlpcli, PyTorch, mlpcli, PyTorch …,
because on a shared machine only numbers measured side by side in one invocation compare.

Reported per network: seconds per epoch (median over every epoch but each process's first),
the ratio mlpcli / PyTorch, achieved GFLOP/s and its share of a float32 GEMM peak measured
by this script in the same invocation (NumPy, 2048³, best of several), the maximum resident
set size of each process, and test accuracy.

FLOPs per example per epoch: forward 2·Σ n_{l−1}n_l, ∂W 2·Σ n_{l−1}n_l, ∂A 2·Σ_{l≥2} n_{l−1}n_l
(the input layer's ∂A is never computed).

    python bench/bench.py --data data/fashion-mnist            # all three, 3 epochs, 2 rounds
    python bench/bench.py --data DIR --networks C --epochs 4 --repeats 3
    pip install torch==2.13.0   # the CPU build here; without torch, mlpcli and the peak only

Not part of the test suite. ``--child …`` is internal (one training per process).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The three networks of the performance issue. Everything a trainer needs is here, so that
# mlpcli and PyTorch are set up from the same numbers.
NETWORKS = {
    "A": dict(layers=[784, 30, 10], activation="sigmoid", output="sigmoid", cost="quadratic",
              init="normal", l2=0.0, optimizer="sgd", momentum=0.0, lr=1.5, batch=10,
              label="[784,30,10] sigmoid, quadratic, SGD lr 1.5, batch 10"),
    "B": dict(layers=[784, 100, 10], activation="sigmoid", output="sigmoid", cost="cross_entropy",
              init="nielsen", l2=5.0, optimizer="sgd", momentum=0.0, lr=0.5, batch=10,
              label="[784,100,10] sigmoid, cross_entropy, λ 5, SGD lr 0.5, batch 10"),
    "C": dict(layers=[784, 800, 800, 10], activation="relu", output="softmax",
              cost="log_likelihood", init="he", l2=5.0, optimizer="momentum", momentum=0.9,
              lr=0.05, batch=128,
              label="[784,800,800,10] relu, softmax+log_likelihood, λ 5, momentum 0.9 lr 0.05, batch 128"),
}
SEED = 0
GEMM_N = 2048


def flops_per_epoch(layers, n_examples):
    pairs = [a * b for a, b in zip(layers[:-1], layers[1:])]
    per_example = 2 * sum(pairs) + 2 * sum(pairs) + 2 * sum(pairs[1:])
    return per_example * n_examples


def mib(maxrss_kib):
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    return maxrss_kib / 1024 / (1024 if sys.platform == "darwin" else 1)


def max_rss_mib():
    import resource

    return mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# --- children: one measurement per process ------------------------------------------------------


def child_gemm():
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    b = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    c = np.empty_like(a)
    times = []
    for _ in range(8):
        t = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t)
    best = min(times[1:])
    return {"gflops": 2 * GEMM_N**3 / best / 1e9, "median_gflops": 2 * GEMM_N**3 / statistics.median(times[1:]) / 1e9}


def mlpcli_config(net, data, epochs, out_dir):
    from mlpcli.run.config import load_config

    spec = NETWORKS[net]
    return load_config({
        "data": {"path": str(data), "validation": 0,
                 "augment": {"shift": 0, "flip": False, "rotate": 0, "scale": 0, "shear": 0, "elastic": None}},
        "model": {"layers": spec["layers"], "activation": spec["activation"], "output": spec["output"],
                  "init": spec["init"], "dropout": 0.0},
        "cost": spec["cost"],
        "regularization": {"l2": spec["l2"]},
        "training": {
            "epochs": epochs, "batch_size": spec["batch"], "learning_rate": spec["lr"],
            "optimizer": spec["optimizer"], "momentum": spec["momentum"] or 0.9,
            "ema": None,  # PyTorch's run averages nothing: the same work on both sides
            "schedule": {"name": "constant", "warmup_epochs": 0}, "early_stopping": None,
            "seed": SEED, "dtype": "float32",
        },
        "output": {"dir": str(out_dir)},
    })


class _EpochClock:
    """A fit() progress callback that only records when each epoch starts and ends."""

    def __init__(self):
        self.starts, self.ends = [], []

    def start_epoch(self, epoch, epochs, n_batches):
        self.starts.append(time.perf_counter())

    def batch(self, loss):
        pass

    def end_epoch(self, metrics):
        self.ends.append(time.perf_counter())

    def message(self, text):
        pass


def child_mlpcli(net, data, epochs):
    from mlpcli.data.splits import read_splits
    from mlpcli.nn.evaluate import evaluate
    from mlpcli.run.train import fit

    with tempfile.TemporaryDirectory(prefix="mlpcli-bench-") as tmp:
        config = mlpcli_config(net, data, epochs, Path(tmp) / "run")
        splits = read_splits(config.data)
        clock = _EpochClock()
        history = fit(config, splits, Path(tmp) / "run", progress=clock)
        test = evaluate(history.network, splits.X_test, splits.y_test)
    return {
        # start of an epoch to the end of its last checkpoint write: the whole epoch
        "epoch_seconds": [e - s for s, e in zip(clock.starts, clock.ends)],
        "train_loss": history.epochs[-1]["train_loss"],
        "test_accuracy": test.accuracy,
        "n_train": len(splits.y_train),
        "max_rss_mib": max_rss_mib(),
    }


def child_torch(net, data, epochs, threads):
    import numpy as np
    import torch

    from mlpcli.run.config import load_config
    from mlpcli.data.splits import read_splits
    from mlpcli.nn.network import Network

    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    spec = NETWORKS[net]
    data_cfg = load_config({"data": {"path": str(data), "validation": 0}}).data
    splits = read_splits(data_cfg)
    # The same initial weights as mlpcli's run (same init, same seed).
    init = Network.create(spec["layers"], spec["activation"], spec["output"], spec["cost"],
                          spec["init"], np.random.default_rng(SEED), np.float32)
    linears = []
    for l in range(1, init.L + 1):
        lin = torch.nn.Linear(spec["layers"][l - 1], spec["layers"][l])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(init.W[l]))
            lin.bias.copy_(torch.from_numpy(init.b[l]))
        linears.append(lin)
    hidden = torch.nn.Sigmoid if spec["activation"] == "sigmoid" else torch.nn.ReLU
    modules = []
    for lin in linears[:-1]:
        modules += [lin, hidden()]
    model = torch.nn.Sequential(*modules, linears[-1])  # returns Z[L]; the cost applies g_L

    n = len(splits.y_train)
    weights = [lin.weight for lin in linears]
    biases = [lin.bias for lin in linears]
    # L2 (λ/2n)·Σ‖W‖² on weights only: its gradient (λ/n)·W is SGD's weight_decay.
    optimizer = torch.optim.SGD(
        [{"params": weights, "weight_decay": spec["l2"] / n}, {"params": biases, "weight_decay": 0.0}],
        lr=spec["lr"], momentum=spec["momentum"],
    )
    F = torch.nn.functional

    def cost(Z, Y, labels):  # batch mean of the per-example cost, as mlpcli defines it
        if spec["cost"] == "quadratic":  # Σ_j (y_j − a_j)², no ½
            return ((torch.sigmoid(Z) - Y) ** 2).sum(dim=1).mean()
        if spec["cost"] == "cross_entropy":  # −Σ_j [y ln a + (1−y) ln(1−a)], a = σ(z)
            return F.binary_cross_entropy_with_logits(Z, Y, reduction="sum") / Z.shape[0]
        return F.cross_entropy(Z, labels)  # softmax + −ln a_y

    X = torch.from_numpy(splits.X_train).to(torch.float32).div_(255)  # data in memory, float32
    labels_all = torch.from_numpy(splits.y_train.astype(np.int64))
    Y_all = F.one_hot(labels_all, spec["layers"][-1]).to(torch.float32)
    batch = spec["batch"]
    epoch_seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        order = torch.randperm(n)
        total = 0.0
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            loss = cost(model(X[idx]), Y_all[idx], labels_all[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        epoch_seconds.append(time.perf_counter() - started)
    with torch.no_grad():
        Xt = torch.from_numpy(splits.X_test).to(torch.float32).div_(255)
        accuracy = (model(Xt).argmax(dim=1).numpy() == splits.y_test).mean()
    return {"epoch_seconds": epoch_seconds, "train_loss": total / n, "test_accuracy": float(accuracy),
            "n_train": n, "max_rss_mib": max_rss_mib()}


# --- parent: orchestration and the table ----------------------------------------------------------


def run_child(args_list, threads, timeout=None, checkout=None):
    """One measurement in a new process; ``checkout``: another mlpcli source tree whose own
    bench.py and package run it (a before/after comparison in the same invocation)."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    script = Path(__file__).resolve()
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout) + os.pathsep + env.get("PYTHONPATH", "")
        script = Path(checkout).resolve() / "bench" / "bench.py"
    cmd = [sys.executable, str(script), *args_list, "--threads", str(threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args_list)} failed:\n{proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def torch_available():
    proc = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
    return proc.returncode == 0


def median_after_first(runs):
    """Median s/epoch over every epoch of every run except each run's first epoch."""
    epochs = [t for r in runs for t in r["epoch_seconds"][1:]]
    return statistics.median(epochs) if epochs else float("nan")


def fmt(x, spec):
    return "—" if x is None or x != x else format(x, spec)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("data") / "fashion-mnist",
                   help="folder holding the four IDX files (default: data/fashion-mnist)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per training (≥ 2; the first is not timed)")
    p.add_argument("--networks", default="A,B,C", help="comma-separated subset of A,B,C")
    p.add_argument("--repeats", type=int, default=2, help="alternating mlpcli/PyTorch rounds per network")
    p.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads for every trainer")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    p.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    p.add_argument("--compare", type=Path, metavar="CHECKOUT",
                   help="also time the mlpcli of another source tree (e.g. a git worktree of an older "
                   "commit), alternating with this one: a before/after table from one run")
    p.add_argument("--child", choices=["gemm", "mlpcli", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--network", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        if args.child == "gemm":
            result = child_gemm()
        elif args.child == "mlpcli":
            result = child_mlpcli(args.network, args.data, args.epochs)
        else:
            result = child_torch(args.network, args.data, args.epochs, args.threads)
        print(json.dumps(result))
        return 0

    networks = [n.strip().upper() for n in args.networks.split(",") if n.strip()]
    unknown = [n for n in networks if n not in NETWORKS]
    if unknown:
        p.error(f"unknown network(s) {', '.join(unknown)}; choose from {', '.join(NETWORKS)}")
    if args.epochs < 2:
        p.error("--epochs must be at least 2 (the first epoch of each process is not timed)")
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    if not args.data.is_dir() or any(not any(args.data.glob(f"{n}*")) for n in names):
        p.error(f"{args.data} does not hold the four IDX files; "
                "fetch them (mlpcli fetch --dataset fashion-mnist) or pass --data DIR")
    use_torch = not args.no_torch and torch_available()

    load_start = _load()
    print(f"GEMM peak ({GEMM_N}³ float32, NumPy, {args.threads} threads) …", file=sys.stderr)
    peaks = [run_child(["--child", "gemm"], args.threads)]
    trainers = ["mlpcli"] + ["compare"] * (args.compare is not None) + ["torch"] * use_torch
    results = {n: {who: [] for who in trainers} for n in networks}
    common = ["--data", str(args.data), "--epochs", str(args.epochs)]
    for net in networks:
        for r in range(args.repeats):
            for who in trainers:
                print(f"{net} round {r + 1}/{args.repeats}: {who} …", file=sys.stderr)
                child = "mlpcli" if who == "compare" else who
                out = run_child(["--child", child, "--network", net, *common], args.threads,
                                checkout=args.compare if who == "compare" else None)
                results[net][who].append(out)
                print(f"    s/epoch {' '.join(f'{t:.3f}' for t in out['epoch_seconds'])}  "
                      f"test acc {out['test_accuracy']:.4f}  max RSS {out['max_rss_mib']:.0f} MiB",
                      file=sys.stderr)
    peaks.append(run_child(["--child", "gemm"], args.threads))
    peak = max(pk["gflops"] for pk in peaks)

    print(f"\nfloat32 GEMM peak (NumPy {GEMM_N}³, {args.threads} threads, best of the run): {peak:.0f} GFLOP/s"
          f"  (measured {', '.join(format(pk['gflops'], '.0f') for pk in peaks)})")
    print(f"data: {args.data}; {args.epochs} epochs per process, {args.repeats} process(es) per trainer; "
          f"s/epoch = median over all epochs but each process's first")
    print(f"load average (1 min) at start / end: {load_start} / {_load()}  ({os.cpu_count()} CPUs)\n")
    head = "| network | trainer | s/epoch | mlpcli ÷ PyTorch | GFLOP/s | % of peak | max RSS MiB | test acc |"
    print(head)
    print("|---|---|---|---|---|---|---|---|")
    table = print_table(results, networks, peak, args.compare)
    if args.no_torch:
        print("\n(PyTorch skipped: --no-torch)")
    elif not use_torch:
        print("\n(PyTorch not installed: pip install torch==2.13.0 for the reference column)")
    if args.json:
        args.json.write_text(json.dumps({"peak_gflops": peak, "peaks": peaks, "networks": table,
                                         "epochs": args.epochs, "repeats": args.repeats,
                                         "threads": args.threads}, indent=1))
    return 0


def summarize(runs, layers, peak):
    """s/epoch, GFLOP/s, share of peak, max RSS and test accuracy of one trainer's runs."""
    s = median_after_first(runs)
    flops = flops_per_epoch(layers, runs[0]["n_train"])
    return {"s_per_epoch": s, "gflops": flops / s / 1e9, "percent_of_peak": 100 * flops / s / 1e9 / peak,
            "max_rss_mib": max(r["max_rss_mib"] for r in runs),
            "test_accuracy": statistics.median(r["test_accuracy"] for r in runs), "runs": runs}


def print_table(results, networks, peak, compare=None):
    """The markdown table (one row per network and trainer) and the fastest epochs; returns
    every number by network."""
    labels = {"mlpcli": "mlpcli", "compare": f"mlpcli @ {compare}", "torch": "PyTorch " + _torch_version()}
    table = {}
    for net in networks:
        spec = NETWORKS[net]
        rows = {who: summarize(runs, spec["layers"], peak) for who, runs in results[net].items() if runs}
        for who, row in rows.items():
            ratio = row["s_per_epoch"] / rows["torch"]["s_per_epoch"] if "torch" in rows and who != "torch" else None
            row["ratio"] = ratio
            print(f"| {net}: {spec['label']} | {labels[who]} | {row['s_per_epoch']:.3f} | {fmt(ratio, '.2f')} | "
                  f"{row['gflops']:.1f} | {row['percent_of_peak']:.1f} | {row['max_rss_mib']:.0f} | "
                  f"{row['test_accuracy']:.4f} |")
        table[net] = {"ratio": rows["mlpcli"].get("ratio"), **rows}
    print()
    for net, rows in table.items():
        fastest = {who: min(t for r in rows[who]["runs"] for t in r["epoch_seconds"][1:]) for who in results[net]}
        parts = [f"{labels[who]} {t:.3f} s" + (f" ({t / fastest['torch']:.2f})" if "torch" in fastest and who != "torch" else "")
                 for who, t in fastest.items()]
        print(f"{net}: fastest epoch " + ", ".join(parts))
    return table


def _load():
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        return "?"


def _torch_version():
    try:
        import importlib.metadata as md

        return md.version("torch").split("+")[0]
    except Exception:
        return ""


if __name__ == "__main__":
    sys.exit(main())
