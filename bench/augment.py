"""Benchmark: what augmentation costs per epoch, against the 784-800-800-10 epoch it feeds.

Times ``mlpcli.data.augment.augment`` on 60,000 images (chunks of 4,096, as training runs it) for
shifts only, affine distortions, and affine + elastic distortions, alternating with the
time of one training epoch's forward, backward and update for 784-800-800-10 at batch 128
(the mnist and fashion-mnist presets' network), measured in the same process. Prints the
median of each and the ratio.

    python bench/augment.py                 # 3 rounds
    python bench/augment.py --rounds 5 --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="BLAS threads")
    args = p.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np

    from mlpcli.nn import functions as F
    from mlpcli.nn import kernels
    from mlpcli.data.augment import augment
    from mlpcli.run.config import AugmentConfig, ElasticConfig
    from mlpcli.nn.network import Network
    from mlpcli.nn.optim import Nesterov

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (60000, 784), dtype=np.uint8)
    specs = {
        "shift ±1": AugmentConfig(shift=1, rotate=0, scale=0, elastic=None),
        "affine (±15°, ×0.85–1.15, ±2 px)": AugmentConfig(shift=2, rotate=15, scale=0.15, elastic=None),
        "affine + elastic (α 34, σ 4)": AugmentConfig(shift=2, rotate=15, scale=0.15,
                                                       elastic=ElasticConfig(alpha=34, sigma=4)),
    }
    net = Network.create([784, 800, 800, 10], "relu", "softmax", "log_likelihood", "he", rng)
    opt, ws = Nesterov(net, 0.9), kernels.Workspace(net, 128)
    Xb = rng.random((128, 784), dtype=np.float32)
    Yb = F.one_hot(rng.integers(0, 10, 128), 10, np.float32)

    def epoch():  # 469 steps of 128: forward, backward, update
        for _ in range(60000 // 128):
            net.backward(*net.forward(Xb, None, ws), Yb, None, ws)
            opt.step(0.01, 5 / 60000)

    def augment_epoch(spec):
        for first in range(0, 60000, 4096):
            augment(X[first : first + 4096], rng, spec)

    times = {name: [] for name in ["training epoch", *specs]}
    for r in range(args.rounds):
        for name in times:
            start = time.perf_counter()
            epoch() if name == "training epoch" else augment_epoch(specs[name])
            times[name].append(time.perf_counter() - start)
            print(f"round {r + 1}: {name} {times[name][-1]:.2f} s", file=sys.stderr)
    train = statistics.median(times["training epoch"])
    print(f"\n60,000 images, {args.threads} BLAS threads, median of {args.rounds} rounds\n")
    print("| per epoch | seconds | ÷ 784-800-800-10 training epoch |")
    print("|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} | {statistics.median(ts) / train:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
