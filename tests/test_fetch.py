"""mlpcli fetch: verified, resumable downloads from a real HTTP server on 127.0.0.1, and imports.

The synthetic data set (fixture ``idx_dataset``) goes through the same registry and code path
as the real ones; ``fault_server`` scripts HTTP failures per path.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlpcli.data import fetch
from mlpcli.cli import cli
from mlpcli.run.config import DataConfig
from mlpcli.data.splits import FILES, read_splits
from mlpcli.errors import FetchError
from mlpcli.data.fetch import HttpOptions

FAST = HttpOptions(connect_timeout=2.0, read_timeout=0.4, retries=2, backoff=0.01, resumes=2)
IMAGES = "train-images-idx3-ubyte.gz"


def run_fetch(data_dir, mirrors, **kw):
    messages = []
    kw.setdefault("http", FAST)
    options = fetch.FetchOptions(mirrors=tuple(mirrors), **kw)
    lines = fetch.fetch("synthetic", data_dir, options, echo=messages.append)
    return lines, messages


def final_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def test_fetch_downloads_verifies_and_loads(idx_dataset, fault_server, tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    lines, _ = run_fetch(tmp_path, [mirror])
    assert len(lines) == 4
    assert all("downloaded from " + mirror in line and "verified by archive SHA-256" in line
               for line in lines)
    assert final_files(tmp_path / "synthetic") == set(FILES)  # no .part, no sidecar left
    splits = read_splits(DataConfig(dataset="synthetic", dir=str(tmp_path), validation=10))
    images = idx_dataset.arrays["train_images"].reshape(50, 784)
    assert (splits.X_train == images[:40]).all() and (splits.X_val == images[40:]).all()
    assert (splits.y_test == idx_dataset.arrays["test_labels"]).all()


def test_dropped_connection_is_resumed_from_the_same_url(idx_dataset, fault_server, tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    fault_server.fail("/a/" + IMAGES, ("drop", 1000))
    lines, _ = run_fetch(tmp_path, [mirror])
    first, second = fault_server.hits("/a/" + IMAGES)
    assert "Range" not in first
    assert second["Range"] == "bytes=1000-" and second["If-Range"].startswith('"')
    assert "verified" in lines[0]
    assert (tmp_path / "synthetic" / IMAGES).read_bytes() == idx_dataset.archives[IMAGES]


def test_part_from_another_mirror_is_restarted_not_resumed(idx_dataset, fault_server, tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    folder = tmp_path / "synthetic"
    folder.mkdir()
    part = folder / (IMAGES + ".part")
    part.write_bytes(idx_dataset.archives[IMAGES][:1000])
    (folder / (IMAGES + ".part.json")).write_text(json.dumps(
        {"url": fault_server.url("b/") + IMAGES, "etag": "\"x\"", "last_modified": None}))
    lines, _ = run_fetch(tmp_path, [mirror])
    (request,) = fault_server.hits("/a/" + IMAGES)
    assert "Range" not in request
    assert "verified" in lines[0] and not part.exists()


def test_a_200_reply_to_a_range_request_restarts_the_part(idx_dataset, fault_server, tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    fault_server.fail("/a/" + IMAGES, ("drop", 1000), "no_range")
    lines, _ = run_fetch(tmp_path, [mirror])
    assert fault_server.hits("/a/" + IMAGES)[1]["Range"] == "bytes=1000-"
    # Appending the full body to the 1000 bytes would fail verification; restarting passes.
    assert "verified" in lines[0]


def test_changed_validator_restarts_the_part(idx_dataset, fault_server, tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    fault_server.fail("/a/" + IMAGES, ("drop", 1000))
    with pytest.raises(FetchError):
        run_fetch(tmp_path, [mirror], http=replace(FAST, resumes=0))
    assert (tmp_path / "synthetic" / (IMAGES + ".part")).stat().st_size == 1000
    fault_server.etag_salt = "-changed"  # the file on the server changed since
    lines, _ = run_fetch(tmp_path, [mirror])
    assert fault_server.hits("/a/" + IMAGES)[-1]["Range"] == "bytes=1000-"
    assert "verified" in lines[0]


def test_503_twice_then_200_is_retried(idx_dataset, fault_server, tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    fault_server.fail("/a/" + IMAGES, ("status", 503), ("status", 503))
    lines, _ = run_fetch(tmp_path, [mirror])
    assert len(fault_server.hits("/a/" + IMAGES)) == 3
    assert "verified" in lines[0]


def test_404_on_the_first_mirror_falls_through_to_the_second(idx_dataset, fault_server, tmp_path):
    empty = fault_server.url("empty/")
    mirror = fault_server.add("b/", idx_dataset.archives)
    lines, messages = run_fetch(tmp_path, [empty, mirror])
    assert all("downloaded from " + mirror in line for line in lines)
    assert any(empty in m and "HTTP 404" in m for m in messages)


def test_wrong_bytes_fail_the_checksum_and_leave_nothing(idx_dataset, fault_server, tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    wrong = gzip.compress(b"\0\0\x08\x03" + bytes(12 + 50 * 784), mtime=0)
    fault_server.fail("/a/" + IMAGES, ("body", wrong), always=True)
    with pytest.raises(FetchError, match="checksum mismatch") as error:
        run_fetch(tmp_path, [mirror])
    assert "every mirror failed" in str(error.value) and "--from" in str(error.value)
    assert final_files(tmp_path / "synthetic") == set()


@pytest.mark.parametrize("how", ["text/html", "sniffed"])
def test_an_html_page_is_rejected(idx_dataset, fault_server, tmp_path, how):
    mirror = fault_server.add("a/", idx_dataset.archives)
    page = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head></html>"
    fault_server.fail("/a/" + IMAGES, "html" if how == "text/html" else ("body", page),
                      always=True)
    with pytest.raises(FetchError, match="web page"):
        run_fetch(tmp_path, [mirror])
    assert final_files(tmp_path / "synthetic") == set()


def test_an_html_page_is_rejected_even_with_no_verify(idx_dataset, fault_server, tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    fault_server.fail("/a/" + IMAGES, ("body", b"<html><body>quota</body></html>"), always=True)
    with pytest.raises(FetchError, match="web page"):
        run_fetch(tmp_path, [mirror], verify=False)
    assert IMAGES not in final_files(tmp_path / "synthetic")


def test_a_slow_server_times_out_and_the_next_mirror_is_used(idx_dataset, fault_server, tmp_path):
    slow = fault_server.add("slow/", idx_dataset.archives)
    fast = fault_server.add("fast/", idx_dataset.archives)
    fault_server.fail("/slow/" + IMAGES, ("slow", 30), always=True)
    lines, messages = run_fetch(tmp_path, [slow, fast], http=replace(FAST, retries=0))
    assert "downloaded from " + fast in lines[0]
    assert any(slow in m and "read timeout" in m for m in messages)


def test_a_recompressed_archive_is_accepted_by_its_payload_hash(idx_dataset, fault_server, tmp_path):
    payload = idx_dataset.payloads[IMAGES]
    recompressed = gzip.compress(payload, compresslevel=1, mtime=123)
    assert recompressed != idx_dataset.archives[IMAGES]
    mirror = fault_server.add("a/", {**idx_dataset.archives, IMAGES: recompressed})
    lines, _ = run_fetch(tmp_path, [mirror])
    assert lines[0].endswith("verified by payload SHA-256")
    assert "archive SHA-256" in lines[1]


@pytest.mark.parametrize("where", ["payload", "archive"])
def test_a_one_byte_change_is_rejected(idx_dataset, fault_server, tmp_path, where):
    if where == "payload":
        payload = bytearray(idx_dataset.payloads[IMAGES])
        payload[5000] ^= 1
        bad = gzip.compress(bytes(payload), mtime=0)
    else:
        bad = bytearray(idx_dataset.archives[IMAGES])
        bad[len(bad) // 2] ^= 1
        bad = bytes(bad)
    mirror = fault_server.add("a/", {**idx_dataset.archives, IMAGES: bad})
    with pytest.raises(FetchError, match="every mirror failed"):
        run_fetch(tmp_path, [mirror])
    assert IMAGES not in final_files(tmp_path / "synthetic")


def test_from_imports_gz_and_raw_files(idx_dataset, tmp_path):
    source = idx_dataset.write(tmp_path / "downloads", raw=(FILES[0], FILES[3]))
    assert not (source / FILES[0]).exists()  # raw: no .gz there
    lines, _ = run_fetch(tmp_path / "data", [], source_dir=source)
    assert all("imported from" in line and "verified" in line for line in lines)
    assert "payload SHA-256" in lines[0] and "archive SHA-256" in lines[1]
    assert final_files(tmp_path / "data" / "synthetic") == set(FILES)
    splits = read_splits(DataConfig(dataset="synthetic", dir=str(tmp_path / "data"),
                                    validation=0))
    assert (splits.X_train == idx_dataset.arrays["train_images"].reshape(50, 784)).all()


def test_from_rejects_a_file_that_is_not_the_pinned_one(idx_dataset, tmp_path):
    source = idx_dataset.write(tmp_path / "downloads")
    (source / FILES[1]).write_bytes(gzip.compress(b"\0\0\x08\x01" + (50).to_bytes(4, "big")
                                                  + bytes(50)))
    with pytest.raises(FetchError, match="checksum mismatch"):
        run_fetch(tmp_path / "data", [], source_dir=source)
    assert FILES[1] not in final_files(tmp_path / "data" / "synthetic")


def test_verified_files_are_skipped_without_any_request(idx_dataset, fault_server, tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    run_fetch(tmp_path, [mirror])
    before = len(fault_server.requests)
    lines, _ = run_fetch(tmp_path, [mirror])
    assert len(fault_server.requests) == before == 4
    assert all(line.endswith("(skipped)") for line in lines)
    run_fetch(tmp_path, [mirror], force=True)
    assert len(fault_server.requests) == 8


def test_a_corrupt_file_present_is_kept_and_replaced_only_with_force(idx_dataset, fault_server,
                                                                     tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    folder = idx_dataset.write(tmp_path / "synthetic")
    corrupt = idx_dataset.archives[IMAGES][:-10]
    (folder / IMAGES).write_bytes(corrupt)
    with pytest.raises(FetchError, match="does not match the pinned synthetic file") as error:
        run_fetch(tmp_path, [mirror])
    assert "leaves it alone" in str(error.value) and "--force" in str(error.value)
    assert fault_server.requests == [] and (folder / IMAGES).read_bytes() == corrupt
    lines, _ = run_fetch(tmp_path, [mirror], force=True)
    assert "downloaded" in lines[0]
    assert (folder / IMAGES).read_bytes() == idx_dataset.archives[IMAGES]


def test_no_verify_accepts_unpinned_bytes_loudly(idx_dataset, fault_server, tmp_path):
    other = gzip.compress(idx_dataset.payloads[IMAGES][:-1] + b"\x07", mtime=0)
    mirror = fault_server.add("a/", {**idx_dataset.archives, IMAGES: other})
    lines, messages = run_fetch(tmp_path, [mirror], verify=False, quiet=True)
    assert messages and messages[0].startswith("WARNING")  # said even with quiet
    assert "NOT VERIFIED" in lines[0] and "verified by" in lines[1]
    assert (tmp_path / "synthetic" / IMAGES).read_bytes() == other


def test_every_mirror_failing_lists_each_mirror_and_why(idx_dataset, fault_server, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{s.getsockname()[1]}/"
    missing = fault_server.url("nothing/")
    unknown = "http://mirror.invalid/"  # .invalid never resolves (RFC 2606)
    fetch.register(replace(idx_dataset.spec, note="this host is known to time out"))
    with pytest.raises(FetchError) as error:
        run_fetch(tmp_path, [refused, missing, unknown])
    message = str(error.value)
    assert f"{refused}: connection refused" in message
    assert f"{missing}: HTTP 404" in message
    assert f"{unknown}: host not found" in message
    assert "known to time out" in message and "--mirror" in message and "--from" in message
    assert "\n" not in message


def test_kmnist_failure_says_its_host_times_out():
    assert "time out" in fetch.REGISTRY["kmnist"].note


def test_registry_pins_every_file():
    for spec in fetch.REGISTRY.values():
        assert tuple(f.name for f in spec.files) == FILES and spec.mirrors
        assert all(f.pinned and f.payload_size for f in spec.files)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_a_recompressed_copy_of_every_official_file_can_verify(name):
    """Mirrors re-compress: each file pins its payload's SHA-256 beside the archive's, and the
    exact payload size (16 + n·784 bytes of images, 8 + n of labels) that bounds decompression."""
    sizes = dict(zip(FILES, (16 + 60000 * 784, 8 + 60000, 16 + 10000 * 784, 8 + 10000)))
    for spec in fetch.REGISTRY[name].files:
        assert len(spec.payload_sha256 or "") == 64, spec.name
        assert spec.payload_size == sizes[spec.name]
        assert len(spec.archive_sha256 or "") == 64 and spec.archive_size  # SHA-256, not MD5


def recompressed(name: str, payload: bytes) -> bytes:
    """``payload`` gzipped as the gzip tool does it: its file name in the header (so the archive
    differs in size even when the bytes do not compress), another time stamp and level."""
    buffer = io.BytesIO()
    with gzip.GzipFile(name.removesuffix(".gz"), "wb", 1, buffer, mtime=99) as out:
        out.write(payload)
    return buffer.getvalue()


@pytest.mark.parametrize("how", ["--from gz", "--from raw", "--mirror"])
def test_cli_fetch_accepts_recompressed_files_of_another_size(idx_dataset, fault_server, tmp_path,
                                                              how):
    """The official archive's size and hash both fail (like a 9630634-byte copy of MNIST's
    9912422-byte train-images); the payload hash verifies it, however it arrives."""
    again = {name: recompressed(name, payload) for name, payload in idx_dataset.payloads.items()}
    assert all(len(again[name]) != len(idx_dataset.archives[name]) for name in FILES)
    source = tmp_path / "copies"
    source.mkdir()
    for name in FILES:
        if how == "--from raw":
            (source / name.removesuffix(".gz")).write_bytes(idx_dataset.payloads[name])
        else:
            (source / name).write_bytes(again[name])
    where = fault_server.add("re/", again) if how == "--mirror" else str(source)
    result = CliRunner().invoke(cli, ["fetch", "--dataset", "synthetic", how.split()[0], where,
                                      "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert result.output.count("verified by payload SHA-256") == 4
    assert "mismatch" not in result.output
    splits = read_splits(DataConfig(dataset="synthetic", dir=str(tmp_path / "data"),
                                    validation=0))
    assert (splits.y_test == idx_dataset.arrays["test_labels"]).all()


@pytest.mark.skipif(getattr(os, "geteuid", lambda: 1)() == 0, reason="root ignores file permissions")
def test_a_read_only_data_dir_is_a_clear_error(idx_dataset, fault_server, tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    (tmp_path / "synthetic").mkdir()
    (tmp_path / "synthetic").chmod(0o555)
    try:
        with pytest.raises(FetchError, match="cannot write"):
            run_fetch(tmp_path, [mirror])
    finally:
        (tmp_path / "synthetic").chmod(0o755)


def test_a_data_dir_that_is_a_file_is_a_clear_error(idx_dataset, tmp_path):
    (tmp_path / "synthetic").write_text("not a folder")
    with pytest.raises(FetchError, match="cannot write") as error:
        run_fetch(tmp_path, [])
    assert "--data-dir" in str(error.value)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux /dev/full")
def test_a_full_disk_is_a_clear_error(idx_dataset, fault_server, tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    (tmp_path / "synthetic").mkdir()
    (tmp_path / "synthetic" / (IMAGES + ".part")).symlink_to("/dev/full")  # writes: ENOSPC
    with pytest.raises(FetchError, match="no space left"):
        run_fetch(tmp_path, [mirror])
    assert IMAGES not in final_files(tmp_path / "synthetic")


def test_ensure_dataset_fetches_only_missing_files(idx_dataset, fault_server, tmp_path,
                                                   monkeypatch):
    mirror = fault_server.add("a/", idx_dataset.archives)
    idx_dataset.write(tmp_path / "synthetic", raw=(FILES[0],))
    (tmp_path / "synthetic" / FILES[3]).unlink()
    monkeypatch.setenv("MLPCLI_MIRROR", f"{fault_server.url('none/')} {mirror}")
    folder = fetch.ensure_dataset("synthetic", tmp_path, quiet=True)
    assert folder == tmp_path / "synthetic"
    assert [p for p, _ in fault_server.requests] == ["/none/" + FILES[3], "/a/" + FILES[3]]
    fetch.ensure_dataset("synthetic", tmp_path, quiet=True)
    assert len(fault_server.requests) == 2


def test_load_splits_fetches_a_missing_registered_dataset(idx_dataset, fault_server, tmp_path,
                                                          monkeypatch):
    monkeypatch.setenv("MLPCLI_MIRROR", fault_server.add("a/", idx_dataset.archives))
    splits = fetch.load_splits(DataConfig(dataset="synthetic", dir=str(tmp_path), validation=5),
                               quiet=True)
    assert len(splits.X_train) == 45 and len(fault_server.requests) == 4


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_fetch_downloads_and_reports_each_file(idx_dataset, fault_server, tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    result = CliRunner().invoke(cli, ["fetch", "--dataset", "synthetic", "--mirror", mirror,
                                      "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.count("verified by archive SHA-256") == 4


def test_cli_reads_mirrors_and_data_dir_from_the_environment(idx_dataset, fault_server,
                                                             tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    env = {"MLPCLI_MIRROR": f"{fault_server.url('gone/')} {mirror}",
           "MLPCLI_DATA_DIR": str(tmp_path / "d")}
    result = CliRunner().invoke(cli, ["fetch", "--dataset", "synthetic"], env=env)
    assert result.exit_code == 0, result.output
    assert final_files(tmp_path / "d" / "synthetic") == set(FILES)
    assert fault_server.requests[0][0] == "/gone/" + FILES[0]


def test_cli_failure_is_one_line_without_traceback(idx_dataset, fault_server, tmp_path):
    result = CliRunner().invoke(cli, ["fetch", "--dataset", "synthetic", "--quiet",
                                      "--mirror", fault_server.url("x/"),
                                      "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: train-images-idx3-ubyte.gz: every mirror failed")
    assert "Traceback" not in result.output and result.output.count("\n") == 1


def test_cli_from_and_unknown_dataset(idx_dataset, tmp_path):
    source = idx_dataset.write(tmp_path / "src")
    runner = CliRunner()
    ok = runner.invoke(cli, ["fetch", "--dataset", "synthetic", "--from", str(source),
                             "--data-dir", str(tmp_path / "data")])
    assert ok.exit_code == 0 and ok.output.count("imported from") == 4
    bad = runner.invoke(cli, ["fetch", "--dataset", "cifar"])
    assert bad.exit_code == 2 and "fashion-mnist" in bad.output and "synthetic" in bad.output


def test_cli_help_has_examples():
    result = CliRunner().invoke(cli, ["fetch", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "mlpcli fetch --from" in result.output
    assert "MLPCLI_MIRROR" in result.output and "MLPCLI_DATA_DIR" in result.output


def test_subprocess_fetch_from_an_empty_folder_fails_cleanly(tmp_path):
    (tmp_path / "empty").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "mlpcli", "fetch", "--dataset", "mnist", "--from",
         str(tmp_path / "empty"), "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: train-images-idx3-ubyte.gz: not in ")
    assert "Traceback" not in result.stderr
    assert not any((tmp_path / "data" / "mnist").iterdir())


_CHILD = """
import json, sys
from mlpcli.data import fetch
from mlpcli.cli import main
spec = json.loads(sys.argv[1])
fetch.register(fetch.DatasetSpec(spec["name"], mirrors=(),
                                 files=tuple(fetch.FileSpec(**f) for f in spec["files"])))
sys.argv = ["mlpcli", *sys.argv[2:]]
main()
"""


def test_ctrl_c_exits_130_keeps_the_part_and_the_next_run_resumes(idx_dataset, fault_server,
                                                                  tmp_path):
    mirror = fault_server.add("a/", idx_dataset.archives)
    fault_server.fail("/a/" + IMAGES, ("stall", 20000))
    spec = {"name": "synthetic", "files": [f.__dict__ for f in idx_dataset.spec.files]}
    part = tmp_path / "synthetic" / (IMAGES + ".part")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(spec), "fetch", "--dataset", "synthetic",
         "--mirror", mirror, "--data-dir", str(tmp_path), "--read-timeout", "600"],  # Ctrl-C, not the stall
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # even where SIGINT is ignored (a `&` job)
    try:
        assert fault_server.stalled.wait(30)
        for _ in range(300):  # until the child has written some bytes (no timing assertion)
            if part.exists() and part.stat().st_size > 0:
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 130, stderr
    assert stderr.startswith("Error: interrupted") and "resume" in stderr
    kept = part.stat().st_size
    assert 0 < kept <= 20000 and part.with_name(part.name + ".json").exists()
    lines, _ = run_fetch(tmp_path, [mirror])
    assert fault_server.hits("/a/" + IMAGES)[-1]["Range"] == f"bytes={kept}-"
    assert "verified" in lines[0]
