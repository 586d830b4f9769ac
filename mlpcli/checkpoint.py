"""Checkpoints: one ``.npz`` file per snapshot — data, never code.

Layout:

* ``W1..WL``, ``b1..bL`` — the parameters, layer numbers as in the derivations (Bryant's l);
* ``opt_<name>`` — the optimizer's state arrays (``opt_v_W1``, ``opt_m_b2``, ``opt_t`` …);
* ``meta`` — a 0-d unicode array holding a JSON object: ``format_version``,
  ``mlpcli_version``, the resolved ``config``, ``preprocess`` and whatever the trainer adds
  (epoch, metrics, RNG state, best-so-far).

Writes go to a temporary file in the same folder, are flushed and fsynced, then
``os.replace``d over the target, so a crash leaves either the old file or the new one.
Reads use ``allow_pickle=False`` and check everything a network is built from; any problem
is a ``CheckpointError`` that says what is wrong.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlpcli import __version__
from mlpcli.errors import CheckpointError, MlpcliError
from mlpcli.network import PREPROCESS, Network
from mlpcli.runs import atomic_write

FORMAT_VERSION = 1
OPT_PREFIX = "opt_"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the network, its resolved config, meta and optimizer state."""

    path: Path
    network: Network
    config: object  # mlpcli.config.Config
    meta: dict
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def epoch(self) -> int:
        """Number of completed epochs (0 for a checkpoint written before any training)."""
        return int(self.meta.get("epoch", 0))


def save(
    path: str | os.PathLike,
    network: Network,
    config,
    meta: dict | None = None,
    optimizer_state: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a checkpoint atomically; returns its path."""
    return atomic_write(path, writer(network, config, meta, optimizer_state))


def writer(network: Network, config, meta: dict | None = None, optimizer_state: dict | None = None):
    """A ``write(file)`` that writes the checkpoint (for ``runs.atomic_write_all``, which
    commits several files as one unit)."""
    from mlpcli.config import config_to_dict

    full_meta = {
        "format_version": FORMAT_VERSION,
        "mlpcli_version": __version__,
        "config": config_to_dict(config),
        "preprocess": PREPROCESS,
        **(meta or {}),
    }
    arrays = dict(network.parameters())
    for name, value in (optimizer_state or {}).items():
        arrays[OPT_PREFIX + name] = np.asarray(value)
    arrays["meta"] = np.array(json.dumps(full_meta))
    return lambda f: np.savez(f, **arrays)


def load(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint; raise ``CheckpointError`` for anything not right."""
    path = Path(path)
    if not path.is_file():  # checked before any read: a FIFO would block it
        exists = path.exists() and not path.is_dir()
        what = "is not a regular file (a FIFO, device or socket)" if exists else "does not exist"
        raise CheckpointError(f"checkpoint {path} {what}", "give the path of a .npz file a run wrote")
    arrays = _read_arrays(path)
    meta = _read_meta(path, arrays.pop("meta", None))
    config = _read_config(path, meta)
    network = _build_network(path, arrays, config)
    optimizer_state = {
        name[len(OPT_PREFIX) :]: arrays.pop(name) for name in list(arrays) if name.startswith(OPT_PREFIX)
    }
    if arrays:
        raise CheckpointError(
            f"{path} holds unexpected arrays: {', '.join(sorted(arrays)[:5])}",
            "it was not written by mlpcli, or for a different network",
        )
    return Checkpoint(path, network, config, meta, optimizer_state)


def _bad(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path} is not a valid mlpcli checkpoint: {what}", "use a .npz a run wrote")


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(b"\x93NUMPY"):
        raise _bad(path, "a single .npy array, not an .npz archive")
    if head[:1] == b"\x80":
        raise CheckpointError(f"{path} is a Python pickle, not an .npz archive; refusing to load it",
                              "a checkpoint is data, never code — use a .npz a run wrote")
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise _bad(path, "not an .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except ValueError as error:
        if "pickle" in str(error).lower() or "object" in str(error).lower():
            raise CheckpointError(
                f"{path} contains object arrays (pickled Python objects); refusing to load it",
                "a checkpoint is data, never code — use a .npz a run wrote",
            ) from None
        raise _bad(path, f"unreadable ({error})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as error:
        reason = str(error) or type(error).__name__
        raise _bad(path, f"truncated or not an .npz archive ({reason})") from None


def _read_meta(path: Path, raw) -> dict:
    if raw is None:
        raise _bad(path, "no 'meta' array")
    if raw.shape != () or raw.dtype.kind != "U":
        raise _bad(path, "'meta' is not a JSON string")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as error:
        raise _bad(path, f"'meta' is not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise _bad(path, "'meta' is not a JSON object")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _bad(path, "'meta' has no integer format_version")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version}, newer than this mlpcli reads "
            f"({FORMAT_VERSION}; written by mlpcli {meta.get('mlpcli_version', '?')})",
            "upgrade mlpcli",
        )
    if meta.get("preprocess", PREPROCESS) != PREPROCESS:
        raise _bad(path, f"unknown preprocess {meta.get('preprocess')!r}")
    return meta


def _read_config(path: Path, meta: dict):
    from mlpcli.config import config_from_dict

    if not isinstance(meta.get("config"), dict):
        raise _bad(path, "'meta' holds no config")
    try:
        return config_from_dict(meta["config"], source=f"{path} (meta.config)")
    except MlpcliError as error:
        raise _bad(path, f"its config is invalid ({error.message})") from None


def _build_network(path: Path, arrays: dict, config) -> Network:
    layers = list(config.model.layers)
    W, b = [None], [None]
    dtype = None
    for l in range(1, len(layers)):
        for kind, shape, store in (("W", (layers[l], layers[l - 1]), W), ("b", (layers[l],), b)):
            name = f"{kind}{l}"
            if name not in arrays:
                raise _bad(path, f"array {name} is missing")
            value = arrays.pop(name)
            if value.dtype.kind != "f":
                raise _bad(path, f"array {name} has dtype {value.dtype}, not floating point")
            if value.shape != shape:
                raise _bad(
                    path, f"array {name} has shape {value.shape}, its config says {shape}"
                )
            if dtype is not None and value.dtype != dtype:
                raise _bad(path, f"array {name} has dtype {value.dtype}, the others {dtype}")
            dtype = value.dtype
            store.append(value)
    extra = [name for name in arrays if name[:1] in "Wb" and name[1:].isdigit()]
    if extra:
        raise _bad(path, f"it has {', '.join(sorted(extra))} beyond the {len(layers) - 1} layers of its config")
    try:
        return Network(W, b, config.model.activation, config.model.output, config.cost)
    except MlpcliError as error:
        raise _bad(path, error.message) from None
