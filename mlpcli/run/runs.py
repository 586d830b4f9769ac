"""Run folders: their files, names and metrics.

A run folder holds what ``mlpcli train`` wrote:

* ``config.yaml``   — the resolved config (what ``--print-config`` prints);
* ``metrics.jsonl`` — one JSON object per completed epoch (``METRIC_KEYS``);
* ``last.npz``      — the latest epoch (``--resume`` continues from it);
* ``best.npz``      — the epoch with the best validation accuracy so far.

Every file is written by ``mlpcli.files.atomic_write`` (never half a file, whatever happens).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

from mlpcli.errors import CheckpointError
from mlpcli.files import atomic_text

LAST, BEST, METRICS_FILE, CONFIG_FILE = "last.npz", "best.npz", "metrics.jsonl", "config.yaml"
# The columns of metrics.jsonl, in order.
METRIC_KEYS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "l2_penalty",
    "learning_rate",
    "seconds",
)


# --- metrics.jsonl ---------------------------------------------------------------------------


def metrics_text(rows) -> str:
    """The text of a metrics.jsonl holding ``rows``."""
    return "".join(json.dumps(row) + "\n" for row in rows)


def write_metrics(run_dir, rows) -> Path:
    return atomic_text(Path(run_dir) / METRICS_FILE, metrics_text(rows))


def read_metrics(run_dir, through: int | None = None, strict: bool = True) -> list[dict]:
    """The per-epoch rows of a run folder's ``metrics.jsonl`` (or of that file itself), in
    epoch order; if an epoch appears twice, the later row wins. ``through``: only epochs up
    to it (later rows belong to epochs a resumed run repeats).

    strict (``plot``): a line that is not a metrics row, a missing file or no rows at all is
    a ``CheckpointError`` naming the line. Not strict (``train --resume``): such lines are
    skipped and a missing file is no rows — the checkpoint, not this file, is the truth.
    """
    path = Path(run_dir)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        if not strict:
            return []
        where = path.parent if path.name == METRICS_FILE else path
        raise CheckpointError(
            f"{where} is not a run folder: {path.name} not found", "give a folder that `mlpcli train` wrote"
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        if not strict:
            return []
        raise CheckpointError(f"cannot read {path}: {error}") from None
    rows: dict[int, dict] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            epoch = row["epoch"]
            if isinstance(epoch, bool) or not isinstance(epoch, int):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            if not strict:
                continue
            raise CheckpointError(
                f"{path}, line {number}: not a metrics record", "each line must be a JSON object with an integer 'epoch'"
            ) from None
        if through is None or epoch <= through:
            rows[epoch] = row
    if strict and not rows:
        raise CheckpointError(f"{path} holds no epochs yet", "plot after at least one epoch has finished")
    return [rows[e] for e in sorted(rows)]


# --- run folder names ------------------------------------------------------------------------


def default_run_dir(config_name: str, now: datetime | None = None) -> Path:
    """runs/<config name>-<YYYYmmdd-HHMMSS> (under the current directory)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", config_name).strip("-.") or "run"
    return Path("runs") / f"{name}-{stamp}"
