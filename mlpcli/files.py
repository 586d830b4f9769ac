"""The one way mlpcli writes a file, and how it names one in a message.

Every file is written by ``atomic_write``: into a temporary file beside the target, flushed
and fsynced, then renamed over it, so a crash or a full disk leaves the old file or the new
one, never half of either. The temporaries are named ``.<name>.<pid>.<random>.tmp``, so
``clean_temporaries`` can find the ones a killed process left behind.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Callable

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


def text_writer(text: str) -> Callable:
    """A ``write(file)`` for ``atomic_write``/``atomic_write_all`` that writes UTF-8 ``text``."""
    return lambda f: f.write(text.encode("utf-8"))
