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
downloaded again unless ``force``. mlpcli deletes or overwrites only what it wrote itself (a
``.part`` and its sidecar): a file present that fails verification may be the user's own, so it
is left alone and the fetch fails naming it; with ``force`` it is replaced, but only by the
``os.replace`` of a verified download, so a failed download leaves it as it was.

A mirror that stalls — sends nothing for ``HttpOptions.read_timeout`` seconds (no answer, or
headers and then nothing), or less than ``speed_limit`` bytes/s over ``speed_time`` seconds
(curl's --speed-limit/--speed-time) — is said in one line and the next mirror tried at once;
so is a host that does not resolve. Neither is asked again in the same fetch, not even for the
next file. Each file also gets ``HttpOptions.deadline`` seconds per mirror (retries, waits and
resumes included). Refused or reset connections, 429 and 5xx are retried after a backoff or
the server's Retry-After, capped at ``HttpOptions.max_retry_after``, and each wait is said.
"""

from __future__ import annotations

import collections
import errno
import gzip
import hashlib
import json
import math
import os
import shutil
import sys
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import requests
import urllib3
from tqdm import tqdm
from urllib3.util.retry import Retry

from mlpcli import __version__
from mlpcli.data import splits as data
from mlpcli.data.splits import find_file, is_gzip, looks_like_html, open_payload, read_idx
from mlpcli.errors import ConfigError, DataError, FetchError, Interrupted
from mlpcli.files import atomic_text

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
    FileSpec("train-images-idx3-ubyte.gz", _IMAGES_60K,
             "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
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
    """Timeouts (seconds), the stall limits, the retry policy and the per-file deadline.

    A mirror has stalled when it sends nothing for ``read_timeout`` seconds (no answer, or a
    body that stops: wget's --read-timeout), or, once its body flows, fewer than
    ``speed_limit`` bytes per second over the last ``speed_time`` seconds (curl's
    --speed-limit and --speed-time; ``speed_limit`` 0 turns that check off). A stall, a host
    name that does not resolve and a TLS failure are said in one line and the next mirror is
    tried at once: retrying them costs minutes and rarely helps. Refused or reset connections,
    429 and 5xx are retried. Tests shrink every number.
    """

    connect_timeout: float = 15.0
    read_timeout: float = 15.0  # nothing for this long: the mirror has stalled
    speed_limit: float = 1000.0  # bytes/s: slower than this over speed_time, it has stalled
    speed_time: float = 30.0
    retries: int = 3  # per request: refused or reset connections, 429 and 5xx
    backoff: float = 0.5  # the first retry waits this long, each later one twice as long
    resumes: int = 3  # per mirror: a connection dropped mid-body is resumed this many times
    max_retry_after: float = 30.0  # never wait longer than this for a server's Retry-After
    deadline: float = 300.0  # per file per mirror, every retry, wait and resume included

    def __post_init__(self):
        for name in ("connect_timeout", "read_timeout", "speed_time", "deadline"):
            _check_number(name, getattr(self, name), "> 0 seconds", lambda x: x > 0)
        _check_number("speed_limit", self.speed_limit, ">= 0 bytes/s (0: no limit)",
                      lambda x: x >= 0)


def _check_number(name: str, value, what: str, ok: Callable[[float], bool]) -> None:
    """A ConfigError naming the command-line option (``--speed-limit`` for speed_limit)."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise ConfigError(f"--{name.replace('_', '-')} must be a number {what}, got {value!r}")


_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def make_session() -> requests.Session:
    """A session without urllib3 retries: ``_request`` retries, so it can say so and keep to
    the deadline."""
    session = requests.Session()
    session.headers["User-Agent"] = f"mlpcli/{__version__}"
    return session


class _MirrorFailed(Exception):
    """This mirror cannot deliver this file now; the next one is tried."""


class _GiveUp(_MirrorFailed):
    """A mirror not worth asking again in this fetch, not even for the next file: it stalled,
    missed the deadline, or its host does not resolve."""


class _Dropped(Exception):
    """The body stopped short; the same URL may be asked to resume."""


@dataclass
class _Transfer:
    """One file from one mirror: where its bytes go, and the clock its deadline runs on."""

    session: requests.Session
    url: str
    part: Path
    http: HttpOptions
    progress: bool = False
    info: Callable[[str], None] = lambda message: None
    start: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        return self.http.deadline - (time.monotonic() - self.start)

    def gave_up(self, received: int | None = None) -> _MirrorFailed:
        if received is None:
            received = self.part.stat().st_size if self.part.exists() else 0
        return _GiveUp(f"gave up after {time.monotonic() - self.start:.1f} s at {received} "
                             f"bytes (deadline {self.http.deadline:g} s per file per mirror)")


_NOT_RESOLVED = ("NameResolution", "Failed to resolve", "getaddrinfo", "Name or service not known",
                 "nodename nor servname")


def _describe(error: Exception, http: HttpOptions) -> tuple[str, bool]:
    """A failed request in words, and whether asking the same mirror again may help: a refused
    or reset connection may (a server restarting); a server that says nothing, a host name that
    does not resolve (DNS failures are not transient) or a TLS failure do not."""
    text = str(error)
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return f"stalled: no connection within {http.connect_timeout:g} s (connect timeout)", False
    if isinstance(error, requests.exceptions.ReadTimeout) or "timed out" in text:
        return f"stalled: no answer for {http.read_timeout:g} s (read timeout)", False
    if isinstance(error, requests.exceptions.SSLError):
        return "TLS/SSL error (a proxy intercepting HTTPS?)", False
    if any(s in text for s in _NOT_RESOLVED):
        return "host not found (no network, or DNS failure)", False
    if "Connection refused" in text:
        return "connection refused", True
    if isinstance(error, requests.exceptions.ConnectionError):
        return "connection failed (no network?)", True
    return f"{type(error).__name__}: {text[:160]}", False


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


def _download(t: _Transfer) -> None:
    """Bring ``t.url`` into ``t.part``, resuming after mid-body drops, all within the deadline;
    raise ``_MirrorFailed``."""
    for attempt in range(t.http.resumes + 1):
        try:
            _get(t)
            return
        except _Dropped as dropped:
            if t.left() <= 0:
                raise t.gave_up() from None
            if attempt == t.http.resumes:
                raise _MirrorFailed(f"{dropped} (the .part is kept to resume from this mirror)")


def _get(t: _Transfer) -> None:
    """One request for the rest of the file: resumed where the .part may be, else restarted."""
    headers, offset = _resume_from(t)
    response = _request(t, headers)
    with response:
        mode = _body_mode(t, response, offset)
        if mode == "wb":
            offset = 0
        # Record where these bytes come from BEFORE any of them land in the .part.
        atomic_text(_sidecar(t.part), json.dumps({
            "url": t.url, "etag": response.headers.get("ETag"),
            "last_modified": response.headers.get("Last-Modified")}))
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        received = _receive(t, response, mode, offset, total)
    if total is not None and received != total:
        raise _Dropped(f"connection dropped after {received} of {total} bytes")


def _resume_from(t: _Transfer) -> tuple[dict, int]:
    """Range headers and the offset to resume from; ``({}, 0)``: start from the beginning."""
    state = _load_sidecar(_sidecar(t.part))
    validator = state.get("etag") or state.get("last_modified")
    offset = t.part.stat().st_size if t.part.exists() else 0
    if offset and state.get("url") == t.url and validator:
        return {"Range": f"bytes={offset}-", "If-Range": validator}, offset
    return {}, 0  # a .part from another URL, or without a validator: never stitch; restart


def _request(t: _Transfer, headers: dict) -> requests.Response:
    """GET ``t.url`` (streamed), retrying refused or reset connections, 429 and 5xx after a
    backoff or the server's Retry-After (capped); each wait is said; all within the deadline.
    A server that does not answer within the read timeout is not asked again (``_GiveUp``)."""
    http = t.http
    for attempt in range(http.retries + 1):
        left = t.left()
        if left <= 0:
            raise t.gave_up()
        try:
            response = t.session.get(t.url, headers=headers, stream=True, timeout=(
                min(http.connect_timeout, left), min(http.read_timeout, left)))
        except requests.RequestException as error:
            if t.left() <= 0:
                raise t.gave_up() from None
            why, transient = _describe(error, http)
            if not transient:  # a stall, an unknown host, a bad URL: no retry helps
                raise _GiveUp(why) from None
            asked = None
        else:
            if response.status_code not in _RETRY_STATUSES:
                return response
            why = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
            asked = _retry_after(response)
            response.close()
        if attempt < http.retries:
            _wait_to_retry(t, why, asked, attempt)
    after = f" (after {http.retries} retries)" if http.retries else ""
    raise _MirrorFailed(why + after)


def _retry_after(response: requests.Response) -> float | None:
    """The seconds a 429 or 503 answer's Retry-After asks for (a number or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if not value or response.status_code not in (429, 503):
        return None
    try:
        return max(0.0, float(Retry(0).parse_retry_after(value)))
    except (urllib3.exceptions.InvalidHeader, ValueError, OverflowError):
        return None


def _wait_to_retry(t: _Transfer, why: str, asked: float | None, attempt: int) -> None:
    http = t.http
    wait = http.backoff * 2 ** attempt if asked is None else min(asked, http.max_retry_after)
    if wait >= t.left():
        raise _MirrorFailed(f"{why}; a retry in {wait:g} s would pass the deadline "
                            f"({http.deadline:g} s per file per mirror)")
    capped = f" (it asked for {asked:g} s; capped)" if asked is not None and asked > wait else ""
    t.info(f"{t.part.name.removesuffix('.part')}: {why} from {t.url}; retrying in {wait:.3g} s"
           f"{capped} (retry {attempt + 1} of {http.retries})")
    time.sleep(wait)


def _body_mode(t: _Transfer, response: requests.Response, offset: int) -> str:
    """How the answer's body lands in the .part: "ab" (it continues it) or "wb" (restart)."""
    status = response.status_code
    if status == 416 and offset:  # the .part is no prefix of what is there now
        _clear_part(t.part)
        raise _Dropped("the server refused to resume")
    if status == 206:
        if not (offset and response.headers.get("Content-Range", "").startswith(
                f"bytes {offset}-")):
            _clear_part(t.part)
            raise _Dropped("the server sent a part that does not continue the .part")
        mode = "ab"
    elif status == 200:
        mode = "wb"  # a full answer, even to a Range request: restart
    else:
        raise _MirrorFailed(f"HTTP {status} {response.reason or ''}".rstrip())
    if "html" in response.headers.get("Content-Type", "").lower():
        raise _MirrorFailed("served a web page (text/html) instead of the gzip file — "
                            "a proxy, captive portal or error page answered")
    return mode


def _speed(rate: float) -> str:
    return f"{rate / 1000:.1f}".rstrip("0").rstrip(".") + " kB/s" if rate >= 100 else f"{rate:.2g} B/s"


class _Meter:
    """The bytes of a body and when they came: is it slower than ``speed_limit`` over the last
    ``speed_time`` seconds (curl's low-speed check)? Samples closer than a tenth of the window
    are merged, so a dozen are kept however fast the bytes come."""

    def __init__(self, http: HttpOptions):
        self.limit, self.window = http.speed_limit, http.speed_time
        self.start = time.monotonic()
        self.total = 0
        self._samples = collections.deque([(self.start, 0)])  # (time, bytes by then)
        self._lock = threading.Lock()  # the reading loop adds, the watchdog asks

    def add(self, n: int) -> None:
        now = time.monotonic()
        with self._lock:
            self.total += n
            if now - self._samples[-1][0] >= self.window / 10:
                self._samples.append((now, self.total))

    def stalled(self) -> str | None:
        """"stalled: <speed> over <window> s, below <limit>" once a whole window ran slow."""
        now = time.monotonic()
        if self.limit <= 0 or now - self.start < self.window:
            return None
        with self._lock:
            samples = self._samples
            while len(samples) > 1 and samples[1][0] <= now - self.window:
                samples.popleft()  # the newest sample a window ago or earlier stays: the base
            since, before = samples[0]
            rate = (self.total - before) / (now - since)
        if rate >= self.limit:
            return None
        return (f"stalled: {_speed(rate)} over {self.window:g} s, below {_speed(self.limit)} "
                f"(after {self.total} bytes)")


class _Watchdog:
    """Watches a body arrive, and cuts the connection when the mirror stalls (``_Meter``) or
    the deadline passes, so that a read blocked on a server that trickles or sends nothing
    wakes at once (urllib3 >= 2.3; else the reading loop's checks and the read timeout
    remain). ``why``: the reason it fired ("deadline", or the meter's line)."""

    def __init__(self, t: _Transfer, response: requests.Response, meter: _Meter):
        self.why: str | None = None
        self._t, self._response, self._meter = t, response, meter
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        tick = min(1.0, self._t.http.speed_time / 10)
        while not self._done.wait(max(0.0, min(tick, self._t.left()))):
            why = "deadline" if self._t.left() <= 0 else self._meter.stalled()
            if why:
                self.why = why
                try:
                    self._response.raw.shutdown()
                except Exception:  # already released, or an older urllib3: nothing to cut
                    pass
                return

    def check(self, received: int, total: int | None) -> None:
        """Raise ``_GiveUp`` when the watchdog fired before the body was complete."""
        if self.why is None or received == total:
            return
        if self.why == "deadline":
            raise self._t.gave_up(received)
        raise _GiveUp(self.why)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def _reader(response: requests.Response) -> Callable[[], bytes]:
    """The next bytes of the body as sent (no Content-Encoding decoding: the bytes the hashes
    are pinned for), as soon as any arrive (``read1``), b"" at its end. Older urllib3 (no
    ``read1``): small chunks, each read waiting for a whole one."""
    raw = response.raw
    if hasattr(raw, "read1"):
        return lambda: raw.read1(_HASH_CHUNK // 64, decode_content=False)
    chunks = raw.stream(_HASH_CHUNK // 64, decode_content=False)
    return lambda: next(chunks, b"")


def _receive(t: _Transfer, response: requests.Response, mode: str, offset: int,
             total: int | None) -> int:
    """Stream the body into the .part; return the bytes it then holds."""
    received, meter, read = offset, _Meter(t.http), _reader(response)
    with open(t.part, mode) as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=t.part.name.removesuffix(".part"), leave=False, disable=not t.progress) as bar, \
            _Watchdog(t, response, meter) as watchdog:
        while True:
            try:
                chunk = read()
            except (requests.RequestException, urllib3.exceptions.HTTPError,
                    OSError) as error:  # network errors only: writes happen below
                watchdog.check(received, None)
                if t.left() <= 0:
                    raise t.gave_up(received) from None
                if "timed out" in str(error):
                    raise _GiveUp(f"stalled: nothing for {t.http.read_timeout:g} s after "
                                  f"{received} bytes (read timeout)") from None
                raise _Dropped(f"connection dropped after {received} bytes") from None
            if not chunk:
                break
            out.write(chunk)
            out.flush()  # a Ctrl-C keeps what arrived
            received += len(chunk)
            meter.add(len(chunk))
            bar.update(len(chunk))
            watchdog.check(received, total)
            if t.left() <= 0 and received != total:
                raise t.gave_up(received)
        watchdog.check(received, total)
        out.flush()
        os.fsync(out.fileno())
    return received


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


@dataclass(frozen=True)
class FetchOptions:
    """How ``fetch`` works.

    ``mirrors`` are tried before the registry's own; ``force`` downloads (or imports) again
    even when verified files are present — a file present is replaced only once its verified
    successor has fully arrived; ``verify=False`` accepts files that fail their pinned hashes
    (loudly); ``quiet`` says only warnings; ``source_dir`` imports local copies instead of
    downloading; ``files`` limits the work to some of the data set's file names.
    """

    mirrors: Sequence[str] = ()
    force: bool = False
    verify: bool = True
    quiet: bool = False
    source_dir: str | os.PathLike | None = None
    files: Sequence[str] | None = None
    http: HttpOptions = field(default_factory=HttpOptions)


class _EveryMirrorFailed(FetchError):
    """No mirror delivered a verified file (``ensure_dataset`` words the hint for train/eval)."""


@dataclass
class _Job:
    """What one ``fetch`` call needs for each of its files."""

    dataset: str
    folder: Path
    options: FetchOptions
    mirrors: Sequence[str]
    info: Callable[[str], None]
    progress: bool
    note: str = ""
    session: requests.Session | None = None
    current: list = field(default_factory=list)  # the .part being written (for Ctrl-C)
    given_up: dict = field(default_factory=dict)  # mirror -> why it is not asked again


def fetch(name: str, data_dir: str | os.PathLike, options: FetchOptions | None = None,
          echo: Callable[[str], None] | None = None) -> list[str]:
    """Download (or import from ``options.source_dir``) and verify data set ``name`` into
    ``<data_dir>/<name>/``; return one summary line per file.

    Progress, retries and per-mirror failures go to ``echo`` (stderr by default; silent with
    ``options.quiet``, except warnings). A file present that fails verification is never
    deleted or overwritten without ``options.force``: the call fails, naming it. Raises
    ``FetchError`` when a file cannot be obtained and verified, ``Interrupted`` on Ctrl-C (a
    ``.part`` is kept for resuming).
    """
    spec = dataset_spec(name)
    options = options or FetchOptions()
    say = echo or _stderr
    if not options.verify:
        say("WARNING: --no-verify: files that do not match their pinned hashes are ACCEPTED "
            "as they are; they may be corrupt, truncated or not the data you asked for.")
    job = _Job(spec.name, Path(data_dir) / spec.name, options,
               mirrors=list(dict.fromkeys([*options.mirrors, *spec.mirrors])),
               info=(lambda message: None) if options.quiet else say,
               progress=not options.quiet and sys.stderr.isatty(), note=spec.note)
    names = None if options.files is None else set(options.files)
    wanted = [f for f in spec.files if names is None or f.name in names]
    with _writing(job.folder):
        job.folder.mkdir(parents=True, exist_ok=True)
    present = _check_present(job, wanted)
    summary = []
    try:
        with make_session() as job.session:
            for file_spec in wanted:
                summary.append(present.get(file_spec.name) or _fetch_file(job, file_spec))
    except KeyboardInterrupt:
        kept = ""
        if job.current and job.current[-1].exists():
            kept = f"; {job.current[-1].name} ({_mb(job.current[-1])}) is kept"
        raise Interrupted(f"interrupted{kept}", "run the same command again to resume") \
            from None
    return summary


def _check_present(job: _Job, files: Sequence[FileSpec]) -> dict[str, str]:
    """The summary lines of files already present and verified (none with ``force``).

    A file present that fails verification may be the user's own (a subset, another data
    set): it is left alone and the call fails before anything is downloaded (with
    ``verify=False`` it is kept as it is).
    """
    if job.options.force:
        return {}
    done, bad = {}, []
    for spec in files:
        final = job.folder / spec.name
        if not final.exists():
            continue
        check = verify_file(final, spec)
        if check.ok:
            done[spec.name] = f"{spec.name}: already present, verified by {check.how} (skipped)"
        elif not job.options.verify:
            done[spec.name] = f"{spec.name}: already present, NOT VERIFIED ({check.how}) (skipped)"
        else:
            bad.append((final, check))
    if bad:
        (final, check), more = bad[0], len(bad) - 1
        others = f" (and {more} more file(s) there)" if more else ""
        raise FetchError(
            f"{final} does not match the pinned {job.dataset} file ({check.how}){others}; "
            "mlpcli leaves it alone",
            f"to train on your own IDX files use --set data.path={job.folder}, or replace it "
            f"with: mlpcli fetch --dataset {job.dataset} --force")
    return done


def _fetch_file(job: _Job, spec: FileSpec) -> str:
    final = job.folder / spec.name
    part = job.folder / (spec.name + ".part")
    job.current.append(part)
    if job.options.source_dir is not None:
        return _import(job, spec, part, final)
    failures = []
    for i, mirror in enumerate(job.mirrors):
        if mirror in job.given_up:  # it stalled or did not resolve for an earlier file
            failures.append(f"{mirror}: {job.given_up[mirror]} (for an earlier file)")
            continue
        try:
            return _from_mirror(job, spec, mirror)
        except (_MirrorFailed, DataError) as error:
            why = error.message if isinstance(error, DataError) else str(error)
            failures.append(f"{mirror}: {why}")
            if isinstance(error, _GiveUp):
                job.given_up[mirror] = why
            verb = "" if why.startswith("stalled") else "failed: "
            more = "; trying the next mirror" if i + 1 < len(job.mirrors) else ""
            job.info(f"{spec.name}: mirror {mirror} {verb}{why}{more}")
    note = f"; {job.note}" if job.note else ""
    raise _EveryMirrorFailed(
        f"{spec.name}: every mirror failed: " + "; ".join(failures) + note,
        "give a working mirror with --mirror URL (or MLPCLI_MIRROR), "
        "or import local copies with --from DIR")


def _from_mirror(job: _Job, spec: FileSpec, mirror: str) -> str:
    """Download one file from one mirror, verify it, and only then give it its final name."""
    final = job.folder / spec.name
    part = job.folder / (spec.name + ".part")
    transfer = _Transfer(job.session, mirror.rstrip("/") + "/" + spec.name, part,
                         job.options.http, job.progress, job.info)
    with _writing(part):
        _download(transfer)
    check = verify_file(part, spec)
    if not check.ok:
        _accept_unverified(job, spec, part, check)
    with _writing(final):
        os.replace(part, final)  # atomic: a file present (with --force) is replaced only now
        _sidecar(part).unlink(missing_ok=True)
    verified = f"verified by {check.how}" if check.ok else f"NOT VERIFIED ({check.how})"
    return f"{spec.name}: downloaded from {mirror} ({_mb(final)}), {verified}"


def _accept_unverified(job: _Job, spec: FileSpec, part: Path, check: Check) -> None:
    """With --no-verify a structurally valid IDX file is kept; otherwise the bytes go."""
    if job.options.verify:
        _clear_part(part)
        raise _MirrorFailed(check.how + " (the bad download was deleted)")
    try:
        read_idx(part)  # not even --no-verify accepts a web page or a truncated file
    except DataError as error:
        _clear_part(part)
        raise _MirrorFailed(error.message.replace(str(part), "the download")) from None


def _import(job: _Job, spec: FileSpec, part: Path, final: Path) -> str:
    source_dir = Path(job.options.source_dir)
    source = find_file(source_dir, spec.name)
    if source is None:
        raise FetchError(f"{spec.name}: not in {source_dir} (looked for {spec.name} and "
                         f"{spec.name.removesuffix('.gz')})", "--from needs all four files")
    check = verify_file(source, spec)
    if not check.ok:
        if job.options.verify:
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


def _offline_hint(name: str, data_dir: str | os.PathLike) -> str:
    """What works from ``train``/``eval`` when a registered data set cannot be downloaded."""
    where = "" if str(data_dir) == "data" else f" --data-dir {data_dir}"
    return (f"download it with: mlpcli fetch --dataset {name}{where} --mirror URL (or set "
            f"MLPCLI_MIRROR=URL and run again), or import copies you have with: mlpcli fetch "
            f"--dataset {name}{where} --from DIR; or use your own IDX files with "
            f"--set data.path=DIR (eval: --data-path DIR)")


def ensure_dataset(name: str, data_dir: str | os.PathLike, quiet: bool = False,
                   echo: Callable[[str], None] | None = None,
                   http: HttpOptions | None = None) -> Path:
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
        options = FetchOptions(mirrors=tuple(os.environ.get("MLPCLI_MIRROR", "").split()),
                               quiet=quiet, files=tuple(missing), http=http or HttpOptions())
        try:
            lines = fetch(name, data_dir, options, echo=echo)
        except _EveryMirrorFailed as error:
            raise FetchError(error.message, _offline_hint(spec.name, data_dir)) from None
        for line in lines:
            if not quiet:
                say(line)
    return folder


def load_splits(data_cfg, quiet: bool = False, http: HttpOptions | None = None,
                need: tuple[str, ...] = data.SPLITS) -> data.Splits:
    """``data.read_splits`` (``need``: the splits to read), after fetching a registered data
    set whose files are missing.

    ``data_cfg`` is a config's ``data`` section (``config.data``). ``quiet``: no progress on
    stderr while fetching. ``http``: timeouts and retries of the download (defaults if None).

    This is what ``train``, ``eval`` and the public API use: a fresh machine needs no separate
    ``mlpcli fetch``. A config with ``data.path`` set is read as it is, never fetched.
    """
    if data_cfg.path is None and data_cfg.dataset in REGISTRY:
        ensure_dataset(data_cfg.dataset, data_cfg.dir, quiet=quiet, http=http)
    return data.read_splits(data_cfg, need=need)
