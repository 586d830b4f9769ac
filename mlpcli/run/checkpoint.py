"""Checkpoints: one ``.npz`` file per snapshot — data, never code.

Layout:

* ``W1..WL``, ``b1..bL`` — the parameters, layer numbers as in the derivations (Bryant's l);
* ``opt_<name>`` — the optimizer's state arrays (``opt_v_W1``, ``opt_m_b2``, ``opt_t`` …);
* ``meta`` — a 0-d unicode array holding a JSON object: ``format_version``,
  ``mlpcli_version``, the resolved ``config``, ``preprocess`` and whatever the trainer adds
  (epoch, metrics, RNG state, best-so-far).

Writes go to a temporary file in the same folder, are flushed and fsynced, then
``os.replace``d over the target, so a crash leaves either the old file or the new one.
Reads use ``allow_pickle=False`` and check everything a network is built from — every meta
field's type, and every member's npy header (shape, dtype, size) against the config before
any array is allocated; any problem is a ``CheckpointError`` that says what is wrong.
"""

from __future__ import annotations

import copy
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlpcli import __version__
from mlpcli.errors import CheckpointError, MlpcliError
from mlpcli.nn.network import PREPROCESS, Network
from mlpcli.files import atomic_write

FORMAT_VERSION = 1
OPT_PREFIX = "opt_"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the network, its resolved config, meta and optimizer state.

    ``network`` is ready to use (``predict_labels``, ``score``); ``config`` is the resolved
    Config it was trained under; ``meta`` the JSON fields (``epoch``, ``metrics``,
    ``mlpcli_version``, ``preprocess``, …); ``epoch`` the number of completed epochs."""

    path: Path
    network: Network
    config: object  # mlpcli.run.config.Config
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
    """Write a checkpoint atomically; returns its path.

    ``network``'s parameters go in as ``W1..WL``, ``b1..bL``; ``config`` (the resolved
    Config) and ``meta`` (extra JSON-able fields, e.g. ``epoch`` and ``metrics``) go into the
    JSON ``meta`` member; ``optimizer_state``: arrays stored as ``opt_<name>``. The file is
    written beside ``path`` under a temporary name, flushed and renamed into place, so a
    crash leaves the old file or the new one."""
    return atomic_write(path, writer(network, config, meta, optimizer_state))


def writer(network: Network, config, meta: dict | None = None, optimizer_state: dict | None = None):
    """A ``write(file)`` that writes the checkpoint (for ``files.atomic_write_all``, which
    commits several files as one unit)."""
    from mlpcli.run.config import config_to_dict

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
    """Read and validate the checkpoint at ``path``; raise ``CheckpointError`` for anything not right.

    Nothing is allocated from what the file claims before it is checked: ``meta`` is read
    first (bounded to ``MAX_META_BYTES``) and every field of it validated, then every other
    member's npy header — shape and dtype — is compared with what the config says and with
    the member's size in the archive; only then are the arrays read."""
    path = Path(path)
    meta, config, arrays = _reading(path, _read_archive)
    network = _build_network(path, arrays, config)
    optimizer_state = {
        name[len(OPT_PREFIX) :]: arrays.pop(name) for name in list(arrays) if name.startswith(OPT_PREFIX)
    }
    return Checkpoint(path, network, config, meta, optimizer_state)


def read_meta(path: str | os.PathLike) -> dict:
    """A checkpoint's validated ``meta`` alone (its epoch, say), without reading its arrays."""
    path = Path(path)
    return _reading(path, lambda p, archive: _read_meta_member(p, archive, _members(p, archive)))[0]


def _reading(path: Path, read):
    """``read(path, archive)`` on the checkpoint's open zip archive, every way a file can fail
    to be one turned into a ``CheckpointError``."""
    if not path.is_file():  # checked before any read: a FIFO would block it
        exists = path.exists() and not path.is_dir()
        what = "is not a regular file (a FIFO, device or socket)" if exists else "does not exist"
        raise CheckpointError(f"checkpoint {path} {what}", "give the path of a .npz file a run wrote")
    try:
        _check_head(path)
        with zipfile.ZipFile(path) as archive:
            return read(path, archive)
    except OSError as error:
        if error.filename is not None:  # opening the file itself failed
            raise CheckpointError(f"cannot read checkpoint {path} ({error.strerror or error})",
                                  "check the file's permissions") from None
        raise _bad(path, f"truncated or not an .npz archive ({error})") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, KeyError, zlib.error,
            NotImplementedError, RuntimeError) as error:  # RuntimeError: an encrypted member
        reason = str(error) or type(error).__name__
        raise _bad(path, f"truncated or not an .npz archive ({reason})") from None
    except ValueError as error:  # numpy: data that does not fit its header
        raise _bad(path, f"unreadable ({error})") from None


def _bad(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path} is not a valid mlpcli checkpoint: {what}", "use a .npz a run wrote")


def _object_arrays(path: Path) -> CheckpointError:
    return CheckpointError(f"{path} contains object arrays (pickled Python objects); refusing to load it",
                           "a checkpoint is data, never code — use a .npz a run wrote")


def _check_head(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(b"\x93NUMPY"):
        raise _bad(path, "a single .npy array, not an .npz archive")
    if head[:1] == b"\x80":
        raise CheckpointError(f"{path} is a Python pickle, not an .npz archive; refusing to load it",
                              "a checkpoint is data, never code — use a .npz a run wrote")
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise _bad(path, "not an .npz (zip) archive")


# --- the archive: member names, npy headers, sizes -----------------------------------------------

MAX_META_BYTES = 4 << 20  # a run's meta is a few kB; more is not a checkpoint mlpcli wrote
_MAX_DEFLATE_RATIO = 1032  # deflate cannot expand more than this


@dataclass(frozen=True)
class _Header:
    """What a member's npy header declares, before anything is allocated."""

    name: str  # the array's name (member name without .npy)
    info: zipfile.ZipInfo
    shape: tuple
    dtype: np.dtype
    offset: int  # bytes of the npy header

    @property
    def nbytes(self) -> int:
        count = 1
        for n in self.shape:
            count *= int(n)
        return count * self.dtype.itemsize

    def declared(self) -> str:
        return f"shape {self.shape} of {self.dtype} ({_size(self.nbytes)} of memory)"


def _size(n: int) -> str:
    """A byte count for people: 40.8 kB, 400 GB."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _read_archive(path: Path, archive: zipfile.ZipFile) -> tuple[dict, object, dict]:
    """(meta, config, arrays) of an open archive: meta first, then every header, then the data."""
    members = _members(path, archive)
    meta, config = _read_meta_member(path, archive, members)
    expected = _expected_arrays(path, config, members)
    headers = [_header(path, archive, info) for info in members.values()]
    for header in headers:
        _check_declared(path, header, *expected[header.name])
        _check_member_size(path, header)
    return meta, config, {h.name: _read_data(archive, h) for h in headers}


def _read_meta_member(path: Path, archive: zipfile.ZipFile, members: dict) -> tuple[dict, object]:
    """(meta, config) from the archive's meta member (removed from ``members``), bounded and
    with every field validated."""
    if "meta" not in members:
        raise _bad(path, "no 'meta' array")
    meta_header = _header(path, archive, members.pop("meta"))
    if meta_header.shape != () or meta_header.dtype.kind != "U":
        raise _bad(path, "'meta' is not a JSON string")
    if meta_header.nbytes > MAX_META_BYTES:
        raise _bad(path, f"member meta.npy declares {meta_header.declared()}, more than a checkpoint's "
                   f"meta ever holds ({_size(MAX_META_BYTES)} at most)")
    _check_member_size(path, meta_header)
    meta = _read_meta(path, _read_data(archive, meta_header))
    config = _read_config(path, meta)
    check_meta(path, meta, config)
    return meta, config


def _members(path: Path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Array name -> member, refusing names that are not ``<name>.npy`` and duplicates."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename
        if not name.endswith(".npy") or "/" in name:
            raise _bad(path, f"member {name!r} is not an array (.npy) of a checkpoint")
        if name[:-4] in members:
            raise _bad(path, f"member {name} appears twice")
        members[name[:-4]] = info
    return members


def _header(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Header:
    """Read only the npy header of a member: its shape and dtype."""
    fmt = np.lib.format
    with archive.open(info) as stream:
        try:
            version = fmt.read_magic(stream)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(stream)
            else:
                raise ValueError(f"npy format version {version[0]}.{version[1]}, not 1.0 or 2.0")
        except ValueError as error:
            raise _bad(path, f"member {info.filename} has no readable array header ({error})") from None
        offset = stream.tell()
    if dtype.hasobject:
        raise _object_arrays(path)
    return _Header(info.filename[:-4], info, tuple(shape), dtype, offset)


def _check_member_size(path: Path, header: _Header) -> None:
    """The header's shape × itemsize must be what the member holds, and the member's sizes in
    the archive's directory must be possible for the file on disk — before any allocation."""
    info = header.info
    holds = info.file_size - header.offset
    if info.compress_type == zipfile.ZIP_STORED:
        possible = info.compress_size
    else:
        possible = info.compress_size * _MAX_DEFLATE_RATIO + 1024
    if header.nbytes != holds or info.file_size > possible or info.compress_size > path.stat().st_size:
        raise _bad(path, f"member {info.filename} declares {header.declared()}, but it holds "
                   f"{_size(max(0, min(holds, possible)))} of data")


def _read_data(archive: zipfile.ZipFile, header: _Header) -> np.ndarray:
    with archive.open(header.info) as stream:
        return np.lib.format.read_array(stream, allow_pickle=False)


def _expected_arrays(path: Path, config, members: dict) -> dict[str, tuple]:
    """Array name -> (shape, dtype kinds) its config implies, for every member; refuses names
    a checkpoint of this config does not hold."""
    layers = list(config.model.layers)
    params = {}
    for l in range(1, len(layers)):
        params[f"W{l}"], params[f"b{l}"] = (layers[l], layers[l - 1]), (layers[l],)
    expected, unexpected = {}, []
    for name in members:
        slot_param = name[len(OPT_PREFIX) :].partition("_")[2] if name.startswith(OPT_PREFIX) else None
        if name in params:
            expected[name] = (params[name], "f")
        elif name == OPT_PREFIX + "t":
            expected[name] = ((), "iuf")
        elif slot_param in params:
            expected[name] = (params[slot_param], "f")
        else:
            unexpected.append(name)
    extra = [name for name in unexpected if name[:1] in "Wb" and name[1:].isdigit()]
    if extra:
        raise _bad(path, f"it has {', '.join(sorted(extra))} beyond the {len(layers) - 1} layers of its config")
    if unexpected:
        raise CheckpointError(
            f"{path} holds unexpected arrays: {', '.join(sorted(unexpected)[:5])}",
            "it was not written by mlpcli, or for a different network",
        )
    return expected


def _check_declared(path: Path, header: _Header, shape: tuple, kinds: str) -> None:
    if header.dtype.kind not in kinds:
        what = "floating point" if kinds == "f" else "a number"
        raise _bad(path, f"array {header.name} has dtype {header.dtype}, not {what}")
    if header.shape != shape:
        raise _bad(path, f"array {header.name} has shape {header.shape}, its config says {shape} "
                   f"(member {header.info.filename} declares {header.declared()})")


# --- meta -----------------------------------------------------------------------------------------


def _read_meta(path: Path, raw: np.ndarray) -> dict:
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
    if version < 1:
        raise _bad(path, f"meta.format_version is {version}, not a format mlpcli wrote (1..{FORMAT_VERSION})")
    if meta.get("preprocess", PREPROCESS) != PREPROCESS:
        raise _bad(path, f"unknown preprocess {meta.get('preprocess')!r}")
    return meta


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _or_null(check):
    return lambda v: v is None or check(v)


_COUNT = (_is_count, "a whole number ≥ 0")
_COUNT_OR_NULL = (_or_null(_is_count), "a whole number ≥ 0 or null")
_FRACTION_OR_NULL = (_or_null(lambda v: _is_number(v) and 0 <= v <= 1), "a number from 0 to 1 or null")
_OBJECT = (lambda v: isinstance(v, dict), "a JSON object")
_STRING = (lambda v: isinstance(v, str), "a string")

# Each field a checkpoint's meta may hold (besides format_version, config, preprocess), checked
# when present. class_names (a list of the output layer's length) is checked in check_meta.
META_FIELDS = {
    "mlpcli_version": _STRING,
    "epoch": _COUNT,
    "n_train": _COUNT_OR_NULL,
    "dataset": _STRING,
    "init_from": (_or_null(lambda v: isinstance(v, str)), "a path (string) or null"),
    "best_val_accuracy": _FRACTION_OR_NULL,
    "metrics": _OBJECT,
    "rng_state": _OBJECT,
    "state": _OBJECT,
}
STATE_FIELDS = {  # meta.state: what a resumed run continues from (train.State)
    "epoch": _COUNT,
    "best_epoch": _COUNT_OR_NULL,
    "best_val_accuracy": _FRACTION_OR_NULL,
    "es_best": (_or_null(_is_number), "a number or null"),
    "es_bad_epochs": _COUNT,
}
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def _shown(value) -> str:
    """A meta value as a message shows it: strings quoted, JSON's null/true/false, long values cut."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_fields(path: Path, where: str, values: dict, fields: dict) -> None:
    for key, (ok, what) in fields.items():
        if key in values and not ok(values[key]):
            raise _bad(path, f"{where}{key} is {_shown(values[key])}, not {what}")


def check_meta(path: Path, meta: dict, config) -> None:
    """Every field of a checkpoint's meta has the type the code that reads it expects
    (``CheckpointError`` naming the field and its value otherwise) — checked on load, so a
    bad value stops ``eval``/``predict``/``train --resume`` before any work."""
    _check_fields(path, "meta.", meta, META_FIELDS)
    _check_fields(path, "meta.state.", meta.get("state", {}), STATE_FIELDS)
    for key, value in meta.get("metrics", {}).items():
        if not (value is None or _is_number(value)):
            raise _bad(path, f"meta.metrics.{key} is {_shown(value)}, not a number or null")
    rng = meta.get("rng_state")
    if rng is not None and rng.get("bit_generator") not in _BIT_GENERATORS:
        raise _bad(path, f"meta.rng_state.bit_generator is {_shown(rng.get('bit_generator'))}, "
                   f"not one of {', '.join(_BIT_GENERATORS)}")
    n_out = config.model.layers[-1]
    names = meta.get("class_names", [""] * n_out)
    if not (isinstance(names, list) and len(names) == n_out and all(isinstance(n, str) for n in names)):
        raise _bad(path, f"meta.class_names is {_shown(names)}, not a list of {n_out} strings "
                   f"(one per output of model.layers)")


# Config keys added after checkpoints began, with the value that trains as mlpcli did before
# them: a checkpoint whose config lacks one was written before it existed, and resumes (and
# reports) as it was trained, not with the key's newer default.
ADDED_KEYS = {("data", "augment", "clean_fraction"): 0.0, ("training", "ema"): None}


def _with_added_keys(config: dict) -> dict:
    config = copy.deepcopy(config)
    for (*sections, key), value in ADDED_KEYS.items():
        where = config
        for section in sections:
            where = where.get(section) if isinstance(where, dict) else None
        if isinstance(where, dict):
            where.setdefault(key, value)
    return config


def _read_config(path: Path, meta: dict):
    from mlpcli.run.config import config_from_dict

    if not isinstance(meta.get("config"), dict):
        raise _bad(path, "'meta' holds no config")
    try:
        return config_from_dict(_with_added_keys(meta["config"]), source=f"{path} (meta.config)")
    except MlpcliError as error:
        raise _bad(path, f"its config is invalid ({error.message})") from None


def _build_network(path: Path, arrays: dict, config) -> Network:
    """The network from W1..WL, b1..bL (their shapes and dtypes already checked against the
    config in their headers); pops them from ``arrays``."""
    layers = list(config.model.layers)
    W, b = [None], [None]
    dtype = None
    for l in range(1, len(layers)):
        for name, store in ((f"W{l}", W), (f"b{l}", b)):
            if name not in arrays:
                raise _bad(path, f"array {name} is missing")
            value = arrays.pop(name)
            if dtype is not None and value.dtype != dtype:
                raise _bad(path, f"array {name} has dtype {value.dtype}, the others {dtype}")
            dtype = value.dtype
            store.append(value)
    try:
        return Network(W, b, config.model.activation, config.model.output, config.cost)
    except MlpcliError as error:
        raise _bad(path, error.message) from None
