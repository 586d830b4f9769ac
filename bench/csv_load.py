"""How long ``mlpcli.data.splits.read_splits`` takes to load an MNIST-sized CSV (60,000 × 785).

    python bench/csv_load.py [--rows 60000] [--repeat 3] [--keep FILE]

Writes a CSV in the layout of the common "mnist_train.csv" (Kaggle-style header ``label,
pixel0, …``, then one row per image: the label, then 784 pixels 0–255) whose pixels look like
MNIST's (about 81% zeros, the rest spread over 1–255, so the file is ~110 MB like the real
one), then times loading it with ``read_splits`` as ``mlpcli train --set data.path=FILE``
does (best and median of --repeat runs, and the peak memory that the process reached).
Nothing is downloaded; the file is written to a temporary folder and deleted afterwards
unless --keep names where to write it (a file already there is reused).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlpcli.run.config import load_config  # noqa: E402
from mlpcli.data.splits import read_splits  # noqa: E402


def write_csv(path: Path, rows: int, seed: int = 0) -> int:
    """An MNIST-like CSV of ``rows`` rows at ``path``; its size in bytes."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="\n") as f:
        f.write(",".join(["label"] + [f"pixel{i}" for i in range(784)]) + "\n")
        for first in range(0, rows, 5000):
            n = min(5000, rows - first)
            pixels = np.where(rng.random((n, 784)) < 0.81, 0, rng.integers(1, 256, (n, 784)))
            table = np.column_stack([rng.integers(0, 10, n), pixels])
            np.savetxt(f, table, fmt="%d", delimiter=",")
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the CSV here and keep it (reused if it exists)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "mnist_train.csv"
        started = time.perf_counter()
        if args.keep is not None and args.keep.is_file():
            size = path.stat().st_size
            print(f"reusing {path}: {size / 1e6:.0f} MB")
        else:
            size = write_csv(path, args.rows)
            print(f"wrote {path}: {args.rows:,} rows × 785 columns, {size / 1e6:.0f} MB "
                  f"({time.perf_counter() - started:.1f} s)")
        config = load_config(None, [f"data.path={path}", "data.validation=0"]).data
        seconds = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            splits = read_splits(config)
            seconds.append(time.perf_counter() - started)
        assert splits.X_train.shape == (args.rows, 784) and splits.n_classes == 10
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"read_splits: best {min(seconds):.2f} s, median {statistics.median(seconds):.2f} s "
              f"over {args.repeat} runs ({size / 1e6 / min(seconds):.0f} MB/s); peak memory {peak:.0f} MB; "
              f"{os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
