"""Run folders and the one way mlpcli writes a file.

A run folder holds what ``mlpcli train`` wrote:

* ``config.yaml``   — the resolved config (what ``--print-config`` prints);
* ``metrics.jsonl`` — one JSON object per completed epoch (``METRIC_KEYS``);
* ``last.npz``      — the latest epoch (``--resume`` continues from it);
* ``best.npz``      — the epoch with the best validation accuracy so far.

Every file is written by ``atomic_write``: into a temporary file beside the target, flushed
and fsynced, then renamed over it, so a crash or a full disk leaves the old file or the new
one, never half of either. The temporaries are named ``.<name>.<pid>.<random>.tmp``, so
``clean_temporaries`` can find the ones a killed process left behind.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from datetime import datetime
from pathlib import Path
from typing import Callable

from mlpcli.errors import CheckpointError

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
_TEMPORARY = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")


def shown(path) -> str:
    """``path`` relative to the current directory when it lies inside it (shorter messages)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


# --- writing files ---------------------------------------------------------------------------


def atomic_write(path, write: Callable) -> Path:
    """Call ``write(file)`` on a temp file beside ``path``, fsync it, then rename it into place."""
    return atomic_write_all([(path, write)])[0]


def atomic_write_all(files) -> list[Path]:
    """Write several files as one unit: every ``(path, write)`` into its temp file first (the
    step that can fail: a full disk, a lost permission), and only when all are written rename
    them into place, in order. A failure before the renames leaves every old file as it was
    and no temp file behind."""
    written: list[tuple[Path, Path]] = []
    try:
        for path, write in files:
            path = Path(path)
            # Not mkstemp: its files are private (0600); a run's files get the umask's permissions.
            tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            written.append((path, tmp))
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        for path, tmp in written:
            os.replace(tmp, path)
    except BaseException:
        for _, tmp in written:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise
    for folder in dict.fromkeys(path.parent for path, _ in written):
        _fsync_dir(folder)
    return [path for path, _ in written]


def atomic_text(path, text: str) -> Path:
    """``atomic_write`` of a UTF-8 text."""
    return atomic_write(path, text_writer(text))


def _fsync_dir(folder: Path) -> None:
    # Make the rename itself durable where the OS allows opening a directory.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def clean_temporaries(folder) -> list[Path]:
    """Remove the temp files ``atomic_write`` left in ``folder`` when a process was killed
    mid-write; returns what was removed. Only names of that exact form are touched."""
    removed = []
    try:
        candidates = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in candidates:
        if _TEMPORARY.match(p.name) and p.is_file():
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


# --- metrics.jsonl ---------------------------------------------------------------------------


def metrics_text(rows) -> str:
    """The text of a metrics.jsonl holding ``rows``."""
    return "".join(json.dumps(row) + "\n" for row in rows)


def text_writer(text: str) -> Callable:
    """A ``write(file)`` for ``atomic_write``/``atomic_write_all`` that writes UTF-8 ``text``."""
    return lambda f: f.write(text.encode("utf-8"))


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
