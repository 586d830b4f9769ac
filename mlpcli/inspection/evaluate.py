"""A checkpoint evaluated on one split of its data (or of other data with the same classes):
what ``mlpcli eval`` prints, as text or JSON. The numbers come from ``mlpcli.nn.evaluate``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlpcli.data.fetch import load_splits
from mlpcli.data.splits import names_for_network
from mlpcli.errors import ConfigError
from mlpcli.nn import evaluate as scoring
from mlpcli.nn.evaluate import EvalResult, dumps, format_report
from mlpcli.nn.network import Network
from mlpcli.run import checkpoint as ckpt_io
from mlpcli.run.config import load_config

SPLITS = ("test", "validation", "train")


@dataclass(frozen=True)
class CheckpointEvaluation:
    """A checkpoint's network, the split it was evaluated on (X, y) and the result."""

    checkpoint: Path
    split: str
    dataset: str
    network: Network
    X: np.ndarray
    y: np.ndarray
    result: EvalResult

    def to_json(self) -> str:
        return dumps({"checkpoint": str(self.checkpoint), "split": self.split, **self.result.to_json()})

    def report(self) -> str:
        return format_report(self.result, f"{self.checkpoint} on the {self.split} split of {self.dataset} "
                             f"({self.result.n} examples)")


def evaluate_checkpoint(checkpoint: Path, split: str = "test", *, data_dir: Path | None = None,
                        data_path: Path | None = None, batch_size: int = 1000, keep_probabilities: bool = False,
                        quiet: bool = False) -> CheckpointEvaluation:
    """Load ``checkpoint`` and evaluate it on ``split`` (test, validation or train) of its data,
    or of the data in ``data_dir`` (as --data-dir: DATA_DIR/<dataset>/) or at ``data_path`` (as
    data.path: any source). A registered data set that is missing is downloaded first
    (``quiet``: without a bar). ``keep_probabilities``: keep every example's outputs (for the
    pictures of mistakes)."""
    ckpt = ckpt_io.load(checkpoint)
    data_cfg = _data_config(ckpt, data_dir, data_path)
    if split == "validation" and data_cfg.validation == 0:
        raise ConfigError(f"{checkpoint} was trained with data.validation: 0, so there is no validation split",
                          "use --split test or --split train")
    splits = load_splits(data_cfg, quiet=quiet, need=("test",) if split == "test" else ("train",))
    X, y = {"test": (splits.X_test, splits.y_test), "validation": (splits.X_val, splits.y_val),
            "train": (splits.X_train, splits.y_train)}[split]
    names = names_for_network(splits, ckpt.network.layers, ckpt.meta.get("class_names"))
    result = scoring.evaluate(ckpt.network, X, y, batch_size=batch_size, class_names=names,
                              keep_probabilities=keep_probabilities)
    return CheckpointEvaluation(Path(checkpoint), split, splits.dataset, ckpt.network, X, y, result)


def _data_config(ckpt, data_dir: Path | None, data_path: Path | None):
    """The checkpoint's data config, with --data-dir or --data-path (errors name the flag)."""
    flags = []
    if data_dir is not None:
        flags.append(("--data-dir", {"data": {"dir": data_dir, "path": None, "format": None}}))
    if data_path is not None:
        flags.append(("--data-path", {"data": {"path": data_path, "format": None}}))
    return load_config(ckpt.config, flags=flags).data if flags else ckpt.config.data
