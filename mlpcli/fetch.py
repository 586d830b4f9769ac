"""The data set registry, and verified, resumable downloads and imports.

Every file lands the same way, whether downloaded or imported with ``--from``:

1. bytes go to ``<name>.part`` — a download streams there, and ``<name>.part.json`` (the
   sidecar) records the URL and the server's validator (ETag / Last-Modified);
2. the ``.part`` is verified: its archive hash (SHA-256, or MD5 where that is all that is
   pinned) OR the SHA-256 of its decompressed IDX payload must match the registry — mirrors
   re-compress files, so either is accepted; decompression is bounded by the pinned payload size;
3. only then is it renamed (``os.replace``, atomic) to its final name. Nothing unverified ever
   holds a final name (except with ``verify=False``, which says so loudly).

A ``.part`` is resumed (``Range`` + ``If-Range``) only from the URL its sidecar names; from any
other URL it is restarted, so two mirrors' bytes are never stitched together. A server that
answers a ``Range`` request with 200 has sent the whole file again, and the ``.part`` restarts.

Files already present are re-verified (hashing takes well under a second) and never
downloaded again unless ``force``; a file that fails verification is deleted and fetched anew.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import shutil
import sys
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.util.retry import Retry

from mlpcli import __version__
from mlpcli import data
from mlpcli.data import find_file, is_gzip, looks_like_html, open_payload, read_idx
from mlpcli.errors import ConfigError, DataError, FetchError, Interrupted
from mlpcli.runs import atomic_text

# ---------------------------------------------------------------------------------------------
# Registry (data, not code). Hashes and sizes are the official ones.


@dataclass(frozen=True)
class FileSpec:
    """One file of a data set and what it must hash to."""

    name: str  # the final name, e.g. "train-images-idx3-ubyte.gz"
    payload_size: int | None = None  # bytes of the decompressed IDX file
    payload_sha256: str | None = None
    archive_sha256: str | None = None
    archive_md5: str | None = None
    archive_size: int | None = None

    @property
    def pinned(self) -> bool:
        return bool(self.archive_sha256 or self.archive_md5 or self.payload_sha256)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    files: tuple[FileSpec, ...]
    mirrors: tuple[str, ...]
    note: str = ""  # said when every mirror fails


_IMAGES_60K, _LABELS_60K = 16 + 60000 * 784, 8 + 60000
_IMAGES_10K, _LABELS_10K = 16 + 10000 * 784, 8 + 10000

REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> None:
    """Add (or replace) a data set; ``fetch``, ``ensure_dataset`` and the CLI then know it."""
    REGISTRY[spec.name] = spec


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


register(DatasetSpec("mnist", mirrors=(
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
), files=(
    FileSpec("train-images-idx3-ubyte.gz", _IMAGES_60K, None,
             "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
             "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
    FileSpec("train-labels-idx1-ubyte.gz", _LABELS_60K,
             "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
             "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
             "d53e105ee54ea40749a09fcbcd1e9432", 28881),
    FileSpec("t10k-images-idx3-ubyte.gz", _IMAGES_10K,
             "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
             "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
             "9fb629c4189551a2d022fa330f9573f3", 1648877),
    FileSpec("t10k-labels-idx1-ubyte.gz", _LABELS_10K,
             "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
             "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
             "ec29112dd5afa0611ce80d1b7f02629c", 4542),
)))

register(DatasetSpec("fashion-mnist", mirrors=(
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
), files=(
    FileSpec("train-images-idx3-ubyte.gz", _IMAGES_60K,
             "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
             "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
             "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880),
    FileSpec("train-labels-idx1-ubyte.gz", _LABELS_60K,
             "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
             "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
             "25c81989df183df01b3e8a0aad5dffbe", 29515),
    FileSpec("t10k-images-idx3-ubyte.gz", _IMAGES_10K,
             "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
             "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
             "bef4ecab320f06d8554ea6380940ec79", 4422102),
    FileSpec("t10k-labels-idx1-ubyte.gz", _LABELS_10K,
             "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
             "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
             "bb300cfdad3c16e7a12a480ee83cd310", 5148),
)))

register(DatasetSpec("kmnist", mirrors=(
    "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
), note="the KMNIST host is known to time out at times: try again later", files=(
    FileSpec("train-images-idx3-ubyte.gz", _IMAGES_60K,
             archive_md5="bdb82020997e1d708af4cf47b453dcf7"),
    FileSpec("train-labels-idx1-ubyte.gz", _LABELS_60K,
             archive_md5="e144d726b3acfaa3e44228e80efcd344"),
    FileSpec("t10k-images-idx3-ubyte.gz", _IMAGES_10K,
             archive_md5="5c965bf0a639b31b8f53240b1b52f4d7"),
    FileSpec("t10k-labels-idx1-ubyte.gz", _LABELS_10K,
             archive_md5="7320c461ea6c1c855c0b718fb2a4b134"),
)))


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown data set {name!r}",
                          f"choose one of: {', '.join(REGISTRY)}") from None


# ---------------------------------------------------------------------------------------------
# Verification


@dataclass(frozen=True)
class Check:
    ok: bool
    how: str  # "archive SHA-256" / "payload SHA-256" / ... when ok, else why not


_HASH_CHUNK = 1 << 20


def verify_file(path: Path, spec: FileSpec) -> Check:
    """Does ``path`` (gzip or raw IDX) hold the pinned bytes of ``spec``?"""
    try:
        return _verify(path, spec)
    except OSError as error:
        return Check(False, f"cannot read it ({error.strerror or error})")


def _verify(path: Path, spec: FileSpec) -> Check:
    with open(path, "rb") as f:
        head = f.read(512)
    if looks_like_html(head):
        return Check(False, "got a web page (HTML), not the gzip file — a proxy, captive "
                            "portal or error page answered")
    if head[:3] == b"\x00\x00\x08" and spec.pinned and not spec.payload_sha256:
        return Check(False, "an uncompressed IDX file can only be verified by its payload "
                            "SHA-256, and none is pinned for this file: use the .gz")
    reasons = []
    if spec.archive_sha256 or spec.archive_md5:
        size = path.stat().st_size
        if spec.archive_size is not None and size != spec.archive_size:
            reasons.append(f"archive is {size} bytes, not {spec.archive_size}")
        else:
            kind, want = (("SHA-256", spec.archive_sha256) if spec.archive_sha256
                          else ("MD5", spec.archive_md5))
            digest = hashlib.sha256() if spec.archive_sha256 else hashlib.md5()
            with open(path, "rb") as f:
                while chunk := f.read(_HASH_CHUNK):
                    digest.update(chunk)
            if digest.hexdigest() == want:
                return Check(True, f"archive {kind}")
            reasons.append(f"archive {kind} {digest.hexdigest()[:12]}… ≠ pinned {want[:12]}…")
    if spec.payload_sha256:
        check = _check_payload(path, spec)
        if check.ok:
            return check
        reasons.append(check.how)
    if not spec.pinned:
        return Check(False, "no hash is pinned for this file")
    return Check(False, "checksum mismatch: " + "; ".join(reasons))


def _check_payload(path: Path, spec: FileSpec) -> Check:
    limit = (spec.payload_size + 1) if spec.payload_size is not None else None
    digest, n = hashlib.sha256(), 0
    try:
        with open_payload(path) as stream:
            while limit is None or n < limit:
                chunk = stream.read(_HASH_CHUNK if limit is None else min(_HASH_CHUNK, limit - n))
                if not chunk:
                    break
                digest.update(chunk)
                n += len(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        return Check(False, f"not a valid gzip file ({error})")
    if spec.payload_size is not None and n != spec.payload_size:
        more = "more than " if n > spec.payload_size else ""
        return Check(False, f"payload is {more}{n} bytes, not {spec.payload_size}")
    if digest.hexdigest() == spec.payload_sha256:
        return Check(True, "payload SHA-256")
    return Check(False, f"payload SHA-256 {digest.hexdigest()[:12]}… ≠ pinned "
                        f"{spec.payload_sha256[:12]}…")


# ---------------------------------------------------------------------------------------------
# HTTP


@dataclass(frozen=True)
class HttpOptions:
    """Timeouts (seconds) and retry policy; tests shrink them."""

    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    retries: int = 3  # per request: connection errors, 429 and 5xx, with exponential backoff
    backoff: float = 0.5  # urllib3's backoff_factor: waits grow 2× per retry
    resumes: int = 3  # per mirror: a connection dropped mid-body is resumed this many times
    max_retry_after: float = 60.0  # never wait longer than this for a server's Retry-After


class _Retry(Retry):
    """urllib3's Retry, but a server's Retry-After is capped (``new()`` keeps the subclass)."""

    cap: float = 60.0

    def get_retry_after(self, response):
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self.cap)


def make_session(http: HttpOptions) -> requests.Session:
    retry = _Retry(total=http.retries, backoff_factor=http.backoff, raise_on_status=False,
                   status_forcelist=(429, 500, 502, 503, 504), allowed_methods={"GET"})
    retry.cap = http.max_retry_after
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = f"mlpcli/{__version__}"
    return session


class _MirrorFailed(Exception):
    """This mirror cannot deliver this file now; the next one is tried."""


class _Dropped(Exception):
    """The body stopped short; the same URL may be asked to resume."""


def _describe(error: Exception, http: HttpOptions) -> str:
    text = str(error)
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return f"no connection within {http.connect_timeout:g} s (connect timeout)"
    if isinstance(error, requests.exceptions.ReadTimeout) or "Read timed out" in text:
        return f"no data for {http.read_timeout:g} s (read timeout)"
    if isinstance(error, requests.exceptions.SSLError):
        return "TLS/SSL error (a proxy intercepting HTTPS?)"
    if any(s in text for s in ("NameResolution", "Failed to resolve", "getaddrinfo",
                               "Name or service not known", "nodename nor servname")):
        return "host not found (no network, or DNS failure)"
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text:
        return "timed out"
    if isinstance(error, requests.exceptions.ConnectionError):
        return "connection failed (no network?)"
    return f"{type(error).__name__}: {text[:160]}"


def _load_sidecar(path: Path) -> dict:
    try:
        state = json.loads(path.read_text())
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def _clear_part(part: Path) -> None:
    for p in (part, _sidecar(part)):
        p.unlink(missing_ok=True)


def _sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _download(session: requests.Session, url: str, part: Path, http: HttpOptions,
              progress: bool) -> None:
    """Bring ``url`` into ``part``, resuming after mid-body drops; raise ``_MirrorFailed``."""
    for attempt in range(http.resumes + 1):
        try:
            _get(session, url, part, http, progress)
            return
        except _Dropped as dropped:
            if attempt == http.resumes:
                raise _MirrorFailed(f"{dropped} (the .part is kept to resume from this mirror)")


def _get(session: requests.Session, url: str, part: Path, http: HttpOptions,
         progress: bool) -> None:
    state = _load_sidecar(_sidecar(part))
    validator = state.get("etag") or state.get("last_modified")
    offset = part.stat().st_size if part.exists() else 0
    headers = {}
    if offset and state.get("url") == url and validator:
        headers = {"Range": f"bytes={offset}-", "If-Range": validator}
    else:
        offset = 0  # a .part from another URL, or without a validator: never stitch; restart

    try:
        response = session.get(url, headers=headers, stream=True,
                               timeout=(http.connect_timeout, http.read_timeout))
    except requests.RequestException as error:
        raise _MirrorFailed(_describe(error, http)) from None
    with response:
        status = response.status_code
        if status == 416 and offset:  # the .part is no prefix of what is there now
            _clear_part(part)
            raise _Dropped("the server refused to resume")
        if status == 206:
            if not (offset and response.headers.get("Content-Range", "").startswith(
                    f"bytes {offset}-")):
                _clear_part(part)
                raise _Dropped("the server sent a part that does not continue the .part")
            mode = "ab"
        elif status == 200:
            offset, mode = 0, "wb"  # a full answer, even to a Range request: restart
        else:
            retries = getattr(response.raw, "retries", None)
            retried = len(retries.history) if retries else 0
            after = f" (after {retried} retries)" if retried else ""
            raise _MirrorFailed(f"HTTP {status} {response.reason or ''}".rstrip() + after)
        if "html" in response.headers.get("Content-Type", "").lower():
            raise _MirrorFailed("served a web page (text/html) instead of the gzip file — "
                                "a proxy, captive portal or error page answered")
        # Record where these bytes come from BEFORE any of them land in the .part.
        atomic_text(_sidecar(part), json.dumps({
            "url": url, "etag": response.headers.get("ETag"),
            "last_modified": response.headers.get("Last-Modified")}))
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        received = offset
        with open(part, mode) as out, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=part.name.removesuffix(".part"), leave=False, disable=not progress) as bar:
            # As sent (no Content-Encoding decoding): the bytes the hashes are pinned for.
            # Small reads: urllib3 waits for a whole chunk, and a Ctrl-C keeps what arrived.
            chunks = response.raw.stream(_HASH_CHUNK // 64, decode_content=False)
            while True:
                try:
                    chunk = next(chunks, None)
                except (requests.RequestException, urllib3.exceptions.HTTPError,
                        OSError) as error:  # network errors only: writes happen below
                    why = _describe(error, http) if "timed out" in str(error) \
                        else "connection dropped"
                    raise _Dropped(f"{why} after {received} bytes") from None
                if chunk is None:
                    break
                out.write(chunk)
                out.flush()
                received += len(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if total is not None and received != total:
            raise _Dropped(f"connection dropped after {received} of {total} bytes")


# ---------------------------------------------------------------------------------------------
# Fetching a data set


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@contextmanager
def _writing(path: Path):
    """Turn a local write failure (read-only, full, not a folder) into one clear FetchError."""
    try:
        yield
    except requests.RequestException:
        raise
    except OSError as error:
        hint = "choose another --data-dir (or set MLPCLI_DATA_DIR)"
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise FetchError(f"no space left on the device writing {path}",
                             "free some space, or " + hint) from None
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise FetchError(f"cannot write to {path}: {error.strerror} (read-only?)", hint) \
                from None
        raise FetchError(f"cannot write {path}: {error.strerror or error}", hint) from None


def _mb(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"


@dataclass
class _Job:
    """What one ``fetch`` call needs for each of its files."""

    folder: Path
    mirrors: Sequence[str]
    verify: bool
    progress: bool
    info: Callable[[str], None]
    source_dir: Path | None
    http: HttpOptions
    session: requests.Session | None = None
    note: str = ""
    current: list = field(default_factory=list)  # the .part being written (for Ctrl-C)


def fetch(name: str, data_dir: str | os.PathLike, mirrors: Iterable[str] = (), force: bool = False,
          verify: bool = True, quiet: bool = False, source_dir: str | os.PathLike | None = None,
          *, files: Iterable[str] | None = None, http: HttpOptions | None = None,
          echo: Callable[[str], None] | None = None) -> list[str]:
    """Download (or import from ``source_dir``) and verify data set ``name`` into
    ``<data_dir>/<name>/``; return one summary line per file.

    ``mirrors`` are tried before the registry's own; ``files`` limits the work to some of the
    data set's file names. Progress and per-mirror failures go to ``echo`` (stderr by default;
    silent when ``quiet``, except warnings). Raises ``FetchError`` when a file cannot be
    obtained and verified, ``Interrupted`` on Ctrl-C (a ``.part`` is kept for resuming).
    """
    spec = dataset_spec(name)
    say = echo or _stderr
    wanted = set(files) if files is not None else None
    if not verify:
        say("WARNING: --no-verify: files that do not match their pinned hashes are ACCEPTED "
            "as they are; they may be corrupt, truncated or not the data you asked for.")
    order = list(dict.fromkeys([*mirrors, *spec.mirrors]))
    job = _Job(folder=Path(data_dir) / spec.name, mirrors=order, verify=verify,
               progress=not quiet and sys.stderr.isatty(),
               info=(lambda message: None) if quiet else say,
               source_dir=Path(source_dir) if source_dir is not None else None,
               http=http or HttpOptions(), note=spec.note)
    with _writing(job.folder):
        job.folder.mkdir(parents=True, exist_ok=True)
    summary = []
    try:
        with make_session(job.http) as job.session:
            for file_spec in spec.files:
                if wanted is None or file_spec.name in wanted:
                    summary.append(_fetch_file(job, file_spec, force))
    except KeyboardInterrupt:
        kept = ""
        if job.current and job.current[-1].exists():
            kept = f"; {job.current[-1].name} ({_mb(job.current[-1])}) is kept"
        raise Interrupted(f"interrupted{kept}", "run the same command again to resume") \
            from None
    return summary


def _fetch_file(job: _Job, spec: FileSpec, force: bool) -> str:
    final = job.folder / spec.name
    if final.exists() and not force:
        check = verify_file(final, spec)
        if check.ok:
            return f"{spec.name}: already present, verified by {check.how} (skipped)"
        if not job.verify:
            return f"{spec.name}: already present, NOT VERIFIED ({check.how}) (skipped)"
        job.info(f"{spec.name}: the file present fails verification ({check.how}); deleted")
        with _writing(final):
            final.unlink()
    part = job.folder / (spec.name + ".part")
    job.current.append(part)
    if job.source_dir is not None:
        return _import(job, spec, part, final)

    failures = []
    for mirror in job.mirrors:
        url = mirror.rstrip("/") + "/" + spec.name
        try:
            with _writing(part):
                _download(job.session, url, part, job.http, job.progress)
            check = verify_file(part, spec)
            if not check.ok:
                _accept_unverified(job, spec, part, check)
        except (_MirrorFailed, DataError) as error:
            why = error.message if isinstance(error, DataError) else str(error)
            failures.append(f"{mirror}: {why}")
            job.info(f"{spec.name}: {mirror} failed: {why}")
            continue
        with _writing(final):
            os.replace(part, final)
            _sidecar(part).unlink(missing_ok=True)
        verified = f"verified by {check.how}" if check.ok else f"NOT VERIFIED ({check.how})"
        return f"{spec.name}: downloaded from {mirror} ({_mb(final)}), {verified}"
    note = f"; {job.note}" if job.note else ""
    raise FetchError(
        f"{spec.name}: every mirror failed: " + "; ".join(failures) + note,
        "give a working mirror with --mirror URL (or MLPCLI_MIRROR), "
        "or import local copies with --from DIR")


def _accept_unverified(job: _Job, spec: FileSpec, part: Path, check: Check) -> None:
    """With --no-verify a structurally valid IDX file is kept; otherwise the bytes go."""
    if job.verify:
        _clear_part(part)
        raise _MirrorFailed(check.how + " (the bad download was deleted)")
    try:
        read_idx(part)  # not even --no-verify accepts a web page or a truncated file
    except DataError as error:
        _clear_part(part)
        raise _MirrorFailed(error.message.replace(str(part), "the download")) from None


def _import(job: _Job, spec: FileSpec, part: Path, final: Path) -> str:
    source = find_file(job.source_dir, spec.name)
    if source is None:
        raise FetchError(f"{spec.name}: not in {job.source_dir} (looked for {spec.name} and "
                         f"{spec.name.removesuffix('.gz')})", "--from needs all four files")
    check = verify_file(source, spec)
    if not check.ok:
        if job.verify:
            raise FetchError(f"{source}: {check.how}", "this is not the pinned file; "
                             "--no-verify would accept it anyway (not recommended)")
        read_idx(source)  # structurally valid, at least
    with _writing(part):
        if is_gzip(source):
            shutil.copyfile(source, part)
        else:  # a raw IDX file (verified above by its payload hash) is stored compressed
            with open(source, "rb") as src, gzip.GzipFile(part, "wb", mtime=0) as dst:
                shutil.copyfileobj(src, dst, _HASH_CHUNK)
        os.replace(part, final)
    verified = f"verified by {check.how}" if check.ok else f"NOT VERIFIED ({check.how})"
    return f"{spec.name}: imported from {source} ({_mb(final)}), {verified}"


def ensure_dataset(name: str, data_dir: str | os.PathLike, quiet: bool = False,
                   echo: Callable[[str], None] | None = None) -> Path:
    """``<data_dir>/<name>/``, fetching (and verifying) only the files that are missing there.

    Files already present (``.gz`` or raw) are not re-hashed: the IDX reader validates their
    structure when they are loaded, and ``mlpcli fetch`` verifies them on demand. Mirrors in
    the environment variable MLPCLI_MIRROR (space-separated) are tried first.
    """
    spec = dataset_spec(name)
    folder = Path(data_dir) / spec.name
    missing = [f.name for f in spec.files if find_file(folder, f.name) is None]
    if missing:
        say = echo or _stderr
        if not quiet:
            say(f"{spec.name}: fetching {len(missing)} missing file(s) into {folder}")
        mirrors = os.environ.get("MLPCLI_MIRROR", "").split()
        for line in fetch(name, data_dir, mirrors=mirrors, quiet=quiet, files=missing,
                          echo=echo):
            if not quiet:
                say(line)
    return folder


def load_splits(data_cfg, quiet: bool = False) -> data.Splits:
    """``data.load_splits``, after fetching a registered data set whose files are missing.

    This is what ``train``, ``eval`` and the public API use: a fresh machine needs no separate
    ``mlpcli fetch``. A config with ``data.path`` set is read as it is, never fetched.
    """
    if data_cfg.path is None and data_cfg.dataset in REGISTRY:
        ensure_dataset(data_cfg.dataset, data_cfg.dir, quiet=quiet)
    return data.load_splits(data_cfg)
