"""mlpcli fetch under faults: files the user placed, deadlines, Retry-After, silent servers,
the offline message of train/eval, and the size of fetch.py's functions.

Every server here is real and listens on 127.0.0.1; nothing reaches the internet. Deadlines
and timeouts are a second or two, so the whole file runs in a few seconds.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import http.server
import inspect
import re
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import idx_bytes, serving

from mlpcli.data import fetch
from mlpcli.cli import cli
from mlpcli.run.config import DataConfig
from mlpcli.data.splits import FILES
from mlpcli.errors import ConfigError, FetchError
from mlpcli.data.fetch import FetchOptions, HttpOptions

IMAGES = "train-images-idx3-ubyte.gz"
QUICK = HttpOptions(connect_timeout=2.0, read_timeout=5.0, retries=2, backoff=0.01, resumes=2,
                    max_retry_after=0.2, deadline=1.0)


def run_fetch(data_dir, mirrors, http=QUICK, **kw):
    messages = []
    options = FetchOptions(mirrors=tuple(mirrors), http=http, **kw)
    lines = fetch.fetch("synthetic", data_dir, options, echo=messages.append)
    return lines, messages


def digests(folder: Path) -> dict[str, str]:
    """Name -> SHA-256 of every file in ``folder`` (what "untouched" is checked against)."""
    if not folder.exists():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def foreign_subset(idx_dataset) -> bytes:
    """A valid gzip IDX file that is not the pinned one: the first 7 images of the set."""
    return gzip.compress(idx_bytes(idx_dataset.arrays["train_images"][:7]), mtime=0)


def dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


# ---------------------------------------------------------------------------------------------
# A scripted server: per path, a queue of answers (the last one repeats)


class Scripted:
    def __init__(self):
        self.routes: dict[str, list] = {}
        self.hits: list[tuple[str, float]] = []
        self.stop = threading.Event()
        self.port = 0

    def route(self, path: str, *answers) -> str:
        self.routes[path] = list(answers)
        return f"http://127.0.0.1:{self.port}{path.rsplit('/', 1)[0]}/"


def _scripted_handler(server: Scripted):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            server.hits.append((self.path, time.monotonic()))
            queue = server.routes.get(self.path) or [("status", 404, {})]
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            try:
                getattr(self, "_" + answer[0])(*answer[1:])
            except OSError:  # the client gave up on us: expected here
                self.close_connection = True

        def _headers(self, status: int, length: int, extra: dict):
            self.send_response(status)
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str(length))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.flush()

        def _file(self, body: bytes):
            self._headers(200, len(body), {"ETag": '"e"'})
            self.wfile.write(body)

        def _status(self, status: int, extra: dict):
            self._headers(status, 0, extra)

        def _trickle(self, body: bytes, interval: float, duration: float = 30.0):
            """One byte every ``interval`` seconds, for at most ``duration`` seconds."""
            self._headers(200, len(body), {"ETag": '"e"'})
            end = time.monotonic() + duration
            for i in range(len(body)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                if server.stop.wait(interval) or time.monotonic() > end:
                    break
            self.close_connection = True

        def _silent(self, body: bytes):  # headers, then nothing
            self._headers(200, len(body), {"ETag": '"e"'})
            server.stop.wait(30)
            self.close_connection = True

    return Handler


@pytest.fixture
def scripted():
    state = Scripted()
    with serving(state, _scripted_handler(state), state.stop):
        yield state


@pytest.fixture
def mute_server():
    """A URL whose port accepts connections (the kernel's backlog) but never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield f"http://127.0.0.1:{s.getsockname()[1]}/"
    s.close()


# ---------------------------------------------------------------------------------------------
# 1. A file mlpcli did not download is never deleted or overwritten


def test_a_foreign_idx_file_is_left_alone_and_named(idx_dataset, fault_server, tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    folder = tmp_path / "synthetic"
    folder.mkdir()
    (folder / IMAGES).write_bytes(foreign_subset(idx_dataset))
    before = digests(folder)
    with pytest.raises(FetchError) as error:
        run_fetch(tmp_path, [mirror])
    text = str(error.value)
    assert text.startswith(f"{folder / IMAGES} does not match the pinned synthetic file")
    assert "leaves it alone" in text and "--set data.path=" in text
    assert "mlpcli fetch --dataset synthetic --force" in text and "\n" not in text
    assert digests(folder) == before  # byte-identical, and nothing else written
    assert fault_server.requests == []  # refused before any download


def test_cli_fetch_leaves_a_foreign_file_alone(idx_dataset, fault_server, tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    folder = tmp_path / "synthetic"
    folder.mkdir()
    (folder / IMAGES).write_bytes(foreign_subset(idx_dataset))
    before = digests(folder)
    result = CliRunner().invoke(cli, ["fetch", "--dataset", "synthetic", "--mirror", mirror,
                                      "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {folder / IMAGES} does not match the pinned")
    assert " — to train on your own IDX files use --set data.path=" in result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1
    assert digests(folder) == before


def test_force_replaces_a_foreign_file_only_after_a_verified_download(idx_dataset, fault_server,
                                                                      tmp_path):
    folder = tmp_path / "synthetic"
    idx_dataset.write(folder)
    (folder / IMAGES).write_bytes(foreign_subset(idx_dataset))
    before = digests(folder)
    bad = fault_server.add("bad/", {**idx_dataset.archives, IMAGES: foreign_subset(idx_dataset)})
    with pytest.raises(FetchError, match="every mirror failed"):
        run_fetch(tmp_path, [bad, dead_url()], force=True)
    assert digests(folder) == before  # the failed downloads left every file as it was
    good = fault_server.add("good/", idx_dataset.archives)
    lines, _ = run_fetch(tmp_path, [good], force=True)
    assert all("downloaded from " + good in line for line in lines)
    assert (folder / IMAGES).read_bytes() == idx_dataset.archives[IMAGES]
    assert set(digests(folder)) == set(FILES)


def test_a_raw_idx_file_the_user_placed_is_never_touched(idx_dataset, fault_server, tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    folder = tmp_path / "synthetic"
    folder.mkdir()
    raw = folder / IMAGES.removesuffix(".gz")
    raw.write_bytes(idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    before = raw.read_bytes()
    lines, _ = run_fetch(tmp_path, [mirror])
    assert all("verified" in line for line in lines)
    assert raw.read_bytes() == before


def test_no_verify_keeps_a_foreign_file_as_it_is(idx_dataset, fault_server, tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    folder = tmp_path / "synthetic"
    folder.mkdir()
    (folder / IMAGES).write_bytes(foreign_subset(idx_dataset))
    before = digests(folder)[IMAGES]
    lines, _ = run_fetch(tmp_path, [mirror], verify=False)
    assert "NOT VERIFIED" in lines[0] and "skipped" in lines[0]
    assert digests(folder)[IMAGES] == before


# ---------------------------------------------------------------------------------------------
# 2-4. Deadlines: a trickle, headers then nothing, no answer at all


def test_a_trickling_mirror_is_given_up_on_and_the_next_one_used(idx_dataset, scripted,
                                                                 fault_server, tmp_path):
    slow = scripted.route("/slow/" + IMAGES, ("trickle", idx_dataset.archives[IMAGES], 2.0))
    good = fault_server.add("good/", idx_dataset.archives)
    started = time.monotonic()
    lines, messages = run_fetch(tmp_path, [slow, good], files=(IMAGES,))
    elapsed = time.monotonic() - started
    (line,) = lines
    assert line.startswith(f"{IMAGES}: downloaded from {good} (")
    assert line.endswith("verified by archive SHA-256")
    (gave_up,) = [m for m in messages if slow in m]
    assert "gave up after 1." in gave_up and "bytes (deadline 1 s per file per mirror)" in gave_up
    assert elapsed < 3.0, elapsed


@pytest.mark.parametrize("kind", ["trickle", "fast-trickle", "headers-then-nothing",
                                  "never-answers"])
def test_every_stalling_mirror_gives_up_within_the_deadline(idx_dataset, scripted, mute_server,
                                                            tmp_path, kind):
    folder = idx_dataset.write(tmp_path / "synthetic")
    (folder / IMAGES).unlink()
    before = digests(folder)
    body = idx_dataset.archives[IMAGES]
    if kind == "trickle":
        mirror = scripted.route("/m/" + IMAGES, ("trickle", body, 2.0))
    elif kind == "fast-trickle":  # each byte well within the read timeout: only the deadline
        mirror = scripted.route("/m/" + IMAGES, ("trickle", body, 0.1, 4.0))
    elif kind == "headers-then-nothing":
        mirror = scripted.route("/m/" + IMAGES, ("silent", body))
    else:
        mirror = mute_server
    started = time.monotonic()
    with pytest.raises(FetchError) as error:
        run_fetch(tmp_path, [mirror])
    elapsed = time.monotonic() - started
    text = str(error.value)
    assert text.startswith(f"{IMAGES}: every mirror failed: {mirror}: gave up after 1.")
    assert "\n" not in text
    assert elapsed < 2.5, elapsed  # within the deadline (1 s) and a little
    assert {k: v for k, v in digests(folder).items() if not k.endswith((".part", ".json"))} \
        == before  # the three files there are untouched; no final name for the fourth


def test_the_deadline_is_a_new_http_option_with_a_sane_default():
    assert HttpOptions().deadline == 300.0 and HttpOptions().max_retry_after == 30.0
    assert HttpOptions().read_timeout < HttpOptions().deadline


# ---------------------------------------------------------------------------------------------
# 2b. Stalls (curl's --speed-limit/--speed-time, wget's read timeout): said in one line, the
# next mirror tried at once, the stalled mirror asked once — not again, not for the next file

STALL = HttpOptions(connect_timeout=2.0, read_timeout=1.0, speed_limit=1000.0, speed_time=2.0,
                    retries=3, backoff=0.01, resumes=3, deadline=30.0)


def test_the_stall_limits_by_default_cost_well_under_a_minute():
    http = HttpOptions()
    assert (http.read_timeout, http.speed_limit, http.speed_time) == (15.0, 1000.0, 30.0)
    assert http.connect_timeout + http.read_timeout < 60 and http.speed_time < 60


@pytest.mark.parametrize("kind, said, seconds", [
    ("trickle", r"stalled: \d(\.\d+)? B/s over 2 s, below 1 kB/s \(after \d bytes\)", 2.0),
    ("headers-then-nothing", r"stalled: nothing for 1 s after 0 bytes \(read timeout\)", 1.0),
    ("never-answers", r"stalled: no answer for 1 s \(read timeout\)", 1.0),
])
def test_a_stalled_mirror_is_said_in_one_line_and_the_next_one_used(
        idx_dataset, scripted, mute_server, fault_server, tmp_path, kind, said, seconds):
    body = idx_dataset.archives[IMAGES]
    if kind == "trickle":  # a byte every 0.5 s: each within the read timeout, 2 B/s in all
        stalled = scripted.route("/m/" + IMAGES, ("trickle", body, 0.5))
    elif kind == "headers-then-nothing":
        stalled = scripted.route("/m/" + IMAGES, ("silent", body))
    else:
        stalled = mute_server
    good = fault_server.add("good/", idx_dataset.archives)
    started = time.monotonic()
    lines, messages = run_fetch(tmp_path, [stalled, good], http=STALL)
    elapsed = time.monotonic() - started
    assert [line.split(" (")[0] for line in lines] == [f"{name}: downloaded from {good}"
                                                       for name in FILES]
    (message,) = messages  # one line, for the first file; later files do not ask it again
    assert re.fullmatch(f"{re.escape(IMAGES)}: mirror {re.escape(stalled)} {said}; "
                        "trying the next mirror", message), message
    assert seconds <= elapsed < seconds + 2.5, elapsed  # once, not once per retry or per file
    if kind != "never-answers":
        assert [path for path, _ in scripted.hits] == ["/m/" + IMAGES]  # asked once
    assert sorted(p.name for p in (tmp_path / "synthetic").iterdir()) == sorted(FILES)


def test_a_stall_mid_body_gives_up_on_the_mirror_without_resuming(idx_dataset, fault_server,
                                                                   tmp_path):
    stalling = fault_server.add("s/", idx_dataset.archives)
    good = fault_server.add("good/", idx_dataset.archives)
    fault_server.fail("/s/" + IMAGES, ("stall", 1000), always=True)  # 1000 bytes, then nothing
    started = time.monotonic()
    lines, messages = run_fetch(tmp_path, [stalling, good], files=(IMAGES,), http=STALL)
    assert time.monotonic() - started < 2.5
    assert f"downloaded from {good}" in lines[0]
    assert messages == [f"{IMAGES}: mirror {stalling} stalled: nothing for 1 s after 1000 bytes "
                        "(read timeout); trying the next mirror"]
    assert len(fault_server.hits("/s/" + IMAGES)) == 1  # no resume asked of a stalled mirror
    assert sorted(p.name for p in (tmp_path / "synthetic").iterdir()) == [IMAGES]


def test_a_speed_limit_of_0_turns_the_speed_check_off(idx_dataset, scripted, tmp_path):
    mirror = scripted.route("/m/" + IMAGES, ("trickle", idx_dataset.archives[IMAGES], 0.25))
    with pytest.raises(FetchError) as error:
        run_fetch(tmp_path, [mirror], files=(IMAGES,),
                  http=replace(STALL, speed_limit=0, deadline=3.0))
    assert f"{mirror}: gave up after 3." in str(error.value)  # the deadline, not the speed


def test_a_host_that_does_not_resolve_is_asked_once(idx_dataset, fault_server, tmp_path,
                                                    monkeypatch):
    lookups = []
    resolve = socket.getaddrinfo

    def counted(host, *args, **kwargs):  # the real resolver, counted
        lookups.append(host)
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counted)
    unknown = "http://mirror.invalid/"  # .invalid resolves nowhere (RFC 2606)
    good = fault_server.add("good/", idx_dataset.archives)
    lines, messages = run_fetch(tmp_path, [unknown, good], http=STALL)
    assert all(f"downloaded from {good}" in line for line in lines)
    assert lookups.count("mirror.invalid") == 1  # not retried, not asked for the next files
    assert messages == [f"{IMAGES}: mirror {unknown} failed: host not found (no network, or DNS "
                        "failure); trying the next mirror"]


@pytest.mark.parametrize("field, value, said", [
    ("speed_limit", -1, "--speed-limit must be a number >= 0 bytes/s (0: no limit), got -1"),
    ("speed_time", 0, "--speed-time must be a number > 0 seconds, got 0"),
    ("read_timeout", float("nan"), "--read-timeout must be a number > 0 seconds, got nan"),
    ("deadline", float("inf"), "--deadline must be a number > 0 seconds, got inf"),
])
def test_stall_limits_are_checked_where_they_are_made(field, value, said):
    with pytest.raises(ConfigError) as error:
        HttpOptions(**{field: value})
    assert str(error.value) == said and error.value.exit_code == 2


# ---------------------------------------------------------------------------------------------
# 3. Retry-After is capped, and the wait is said


def test_retry_after_an_hour_is_capped_and_said(idx_dataset, scripted, tmp_path):
    body = idx_dataset.archives[IMAGES]
    mirror = scripted.route("/r/" + IMAGES, ("status", 429, {"Retry-After": "3600"}),
                            ("file", body))
    started = time.monotonic()
    lines, messages = run_fetch(tmp_path, [mirror], files=(IMAGES,),
                                http=replace(QUICK, deadline=5.0))
    elapsed = time.monotonic() - started
    assert "verified by archive SHA-256" in lines[0]
    (waited,) = [m for m in messages if "retrying" in m]
    assert waited == (f"{IMAGES}: HTTP 429 Too Many Requests from {mirror}{IMAGES}; retrying in "
                      "0.2 s (it asked for 3600 s; capped) (retry 1 of 2)")
    assert len(scripted.hits) == 2
    gap = scripted.hits[1][1] - scripted.hits[0][1]
    assert 0.15 < gap < 2.0 and elapsed < 3.0


def test_a_retry_after_past_the_deadline_gives_up_at_once(idx_dataset, scripted, tmp_path):
    mirror = scripted.route("/r/" + IMAGES, ("status", 503, {"Retry-After": "3600"}))
    started = time.monotonic()
    with pytest.raises(FetchError) as error:
        run_fetch(tmp_path, [mirror], files=(IMAGES,), http=replace(QUICK, max_retry_after=60))
    assert "HTTP 503 Service Unavailable; a retry in 60 s would pass the deadline" \
        in str(error.value)
    assert time.monotonic() - started < 1.0 and len(scripted.hits) == 1


def test_quiet_says_no_wait_lines(idx_dataset, scripted, tmp_path):
    mirror = scripted.route("/r/" + IMAGES, ("status", 503, {}),
                            ("file", idx_dataset.archives[IMAGES]))
    lines, messages = run_fetch(tmp_path, [mirror], files=(IMAGES,), quiet=True)
    assert "verified" in lines[0] and messages == []


# ---------------------------------------------------------------------------------------------
# 5. The offline message of train / eval names what works there


def test_offline_train_or_eval_names_options_that_exist(idx_dataset, tmp_path, monkeypatch):
    fetch.register(replace(idx_dataset.spec, mirrors=(dead_url(),)))
    monkeypatch.setenv("MLPCLI_MIRROR", dead_url())
    config = DataConfig(dataset="synthetic", dir=str(tmp_path), validation=5)
    started = time.monotonic()
    with pytest.raises(FetchError) as error:
        fetch.load_splits(config, quiet=True, http=QUICK)
    assert time.monotonic() - started < 10
    message, hint = error.value.message, error.value.hint
    assert message.startswith(f"{FILES[0]}: every mirror failed: ")
    assert "connection refused" in message
    assert f"mlpcli fetch --dataset synthetic --data-dir {tmp_path} --mirror URL" in hint
    assert "MLPCLI_MIRROR=URL" in hint
    assert f"mlpcli fetch --dataset synthetic --data-dir {tmp_path} --from DIR" in hint
    assert "--set data.path=DIR" in hint and "--data-path DIR" in hint
    assert "give a working mirror with --mirror URL" not in str(error.value)
    assert "\n" not in str(error.value)
    assert digests(tmp_path / "synthetic") == {}  # nothing partial left behind


def test_the_fetch_command_keeps_its_own_hint(idx_dataset, tmp_path):
    with pytest.raises(FetchError) as error:
        run_fetch(tmp_path, [dead_url()], files=(IMAGES,))
    assert error.value.hint.startswith("give a working mirror with --mirror URL")


# ---------------------------------------------------------------------------------------------
# 6. fetch.py stays readable: short functions, few parameters


def test_fetch_py_functions_are_short_with_few_parameters():
    tree = ast.parse(Path(fetch.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            n = len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
            n -= bool(args.args) and args.args[0].arg in ("self", "cls")
            assert n <= 6, f"{node.name} has {n} parameters"
            length = node.end_lineno - node.lineno + 1
            assert length <= 60, f"{node.name} is {length} lines"


def test_fetch_takes_its_options_as_one_value():
    assert list(inspect.signature(fetch.fetch).parameters) == ["name", "data_dir", "options",
                                                               "echo"]
    options = FetchOptions()
    assert options.mirrors == () and options.force is False and options.verify is True
    assert options.files is None and options.http == HttpOptions()
    with pytest.raises(AttributeError):
        options.force = True  # frozen


def test_cli_fetch_takes_the_stall_limits_as_options(idx_dataset, mute_server, fault_server, tmp_path):
    """`mlpcli fetch --read-timeout 1`: a mirror that never answers costs about a second, said
    in one line on stderr, and the next mirror delivers every file."""
    good = fault_server.add("good/", idx_dataset.archives)
    started = time.monotonic()
    result = CliRunner().invoke(cli, [
        "fetch", "--dataset", "synthetic", "--data-dir", str(tmp_path), "--mirror", mute_server,
        "--mirror", good, "--read-timeout", "1", "--speed-limit", "10", "--speed-time", "2"])
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    said = [line for line in result.output.splitlines() if "stalled" in line]
    assert [re.fullmatch(f"{re.escape(IMAGES)}: mirror {re.escape(mute_server)} stalled: no answer for 1 s "
                         r"\(read timeout\); trying the next mirror", line) is not None for line in said] == [True]
    assert elapsed < 1 + 5, elapsed
    assert sorted(p.name for p in (tmp_path / "synthetic").iterdir()) == sorted(FILES)


@pytest.mark.parametrize("option, value, said", [("--speed-limit", "-1", "--speed-limit"),
                                                 ("--read-timeout", "0", "--read-timeout")])
def test_cli_fetch_refuses_bad_stall_limits_in_one_line(idx_dataset, tmp_path, option, value, said):
    result = CliRunner().invoke(cli, ["fetch", "--dataset", "synthetic", "--data-dir", str(tmp_path),
                                      option, value])
    assert result.exit_code == 2 and said in result.output and "Traceback" not in result.output
    assert not (tmp_path / "synthetic").exists()
