"""mlpcli tune across processes on a real PostgreSQL server, started by these tests.

The server (Debian's ``postgresql`` package: initdb + pg_ctl) runs in a temporary folder,
listening on 127.0.0.1 only, with a password, and is stopped at the end. Workers are real
``mlpcli tune`` processes sharing one study: the count of finished trials is exact, no trial
number repeats, every trial's run folder matches its database record, a SIGTERMed study is
finished by the same command, a SIGKILLed worker's trial is run again by another, and the
password appears in nothing printed or written.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="the tune extra is not installed: pip install 'mlpcli[tune]'")
pytest.importorskip("psycopg", reason="the PostgreSQL driver is not installed: pip install 'psycopg[binary]'")

from mlpcli.run import checkpoint  # noqa: E402
from mlpcli.run.config import load_config  # noqa: E402
from mlpcli.run.runs import read_metrics  # noqa: E402

PASSWORD = "pg-S3cret-for-tests"
# mlpcli in a subprocess, without matplotlib: no picture (drawing costs more than a tiny study)
NO_PICTURE = "import sys; sys.modules['matplotlib'] = None; from mlpcli.cli import main; sys.argv[0] = 'mlpcli'; main()"


def server_binaries() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server on 127.0.0.1 (a free port) for this module: its URL, with a password."""
    bin_dir = server_binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="mlpcli-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    (folder / "pw").write_text(PASSWORD)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def pg(*command):
        subprocess.run([*as_user, *map(str, command)], check=True, capture_output=True, timeout=120)

    data = folder / "data"
    try:
        pg(bin_dir / "initdb", "-D", data, "-U", "tuner", f"--pwfile={folder / 'pw'}", "--auth-host=scram-sha-256",
           "--auth-local=trust", "-E", "UTF8", "--no-sync")
        pg(bin_dir / "pg_ctl", "-D", data, "-l", folder / "log", "-w", "-t", "60", "-o",
           f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder} -c fsync=off", "start")
    except subprocess.CalledProcessError as error:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {error.stderr.decode(errors='replace')}")
    try:
        yield f"postgresql://tuner:{PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def files(tiny_data, tmp_path):
    base, space = tmp_path / "base.yaml", tmp_path / "space.yaml"
    base.write_text(f"data: {{path: {tiny_data}, validation: 100, augment: {{shift: 0, rotate: 0, scale: 0, "
                    "elastic: null}}\nmodel: {layers: [784, 16, 10], dropout: 0}\n"
                    "training: {epochs: 6, batch_size: 32, learning_rate: 0.05}\nregularization: {l2: 0.5}\n")
    space.write_text("training.learning_rate: {low: 0.01, high: 1.0, log: true}\nregularization.l2: {low: 0, high: 5}\n")
    return base, space


def command(files, out: Path, study: str, *more: str) -> list[str]:
    base, space = files
    return [sys.executable, "-c", NO_PICTURE, "tune", "--config", str(base), "--space", str(space),
            "--study", study, "--out", str(out), "--pruner", "none", *more]


def environment(url: str) -> dict:
    return {**os.environ, "MLPCLI_TUNE_STORAGE": url}


def load(url: str, name: str):
    return optuna.load_study(study_name=name, storage=url)


def wait_for(predicate, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def has_epochs(run: Path) -> bool:
    metrics = run / "metrics.jsonl"
    return metrics.exists() and bool(metrics.read_text())


def no_password_in(texts, folder: Path) -> None:
    assert not any(PASSWORD in text for text in texts)
    for path in folder.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_workers_share_a_study_exactly_and_the_same_command_finishes_a_sigtermed_one(postgres, files, tmp_path):
    out, name = tmp_path / "study", "shared"
    run = command(files, out, name, "--trials", "4", "--workers", "2", "--seed", "5")
    parent = subprocess.Popen(run, env=environment(postgres), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    wait_for(lambda: has_epochs(out / "trial-0000") or has_epochs(out / "trial-0001"))
    parent.send_signal(signal.SIGTERM)
    stdout, stderr = parent.communicate(timeout=120)
    assert parent.returncode == 143, stderr
    assert stderr.splitlines()[-1].startswith("Error: terminated (SIGTERM): the workers stopped")
    assert "Traceback" not in stderr
    study = load(postgres, name)
    stopped = [t for t in study.trials if t.user_attrs.get("stopped") == "interrupted"]
    assert stopped and all(t.state.name == "FAIL" for t in stopped)  # marked failed, never complete
    assert not any(t.state.name == "RUNNING" for t in study.trials)
    queued = [t for t in study.trials if t.state.name == "WAITING"]
    assert sorted(t.user_attrs["retry_of"] for t in queued) == [t.number for t in stopped]
    again = subprocess.run(run, env=environment(postgres), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    study = load(postgres, name)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4  # exactly the study's N, two workers racing for the last places
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    assert len({t.user_attrs["worker"] for t in study.trials if "worker" in t.user_attrs}) >= 3  # 2 + 2 processes
    for t in finished:
        folder = out / t.user_attrs["run_dir"]
        assert folder.name == f"trial-{t.number:04d}"
        config = load_config(folder / "config.yaml")
        assert (config.training.learning_rate, config.regularization.l2) == (
            t.params["training.learning_rate"], t.params["regularization.l2"])
        rows = read_metrics(folder)
        assert {r["epoch"]: r["val_accuracy"] for r in rows} == t.intermediate_values
        assert t.value == max(r["val_accuracy"] for r in rows)
        assert checkpoint.load(folder / "last.npz").epoch == 6
    table = (out / "trials.txt").read_text()
    assert table.count("complete") == 4 and "running" not in table
    no_password_in([stdout, stderr, again.stdout, again.stderr], out)


def test_a_killed_workers_trial_is_run_again_by_another(postgres, files, tmp_path):
    name = "killed"
    first = subprocess.Popen(command(files, tmp_path / "a", name, "--trials", "2", "--heartbeat", "1"),
                             env=environment(postgres), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: has_epochs(tmp_path / "a" / "trial-0000"))
    first.kill()  # SIGKILL: nothing runs on the way out, the trial stays RUNNING in the database
    first.wait(timeout=60)
    assert load(postgres, name).trials[0].state.name == "RUNNING"
    other = subprocess.run(command(files, tmp_path / "b", name, "--trials", "2", "--heartbeat", "1"),
                           env=environment(postgres), capture_output=True, text=True, timeout=300)
    assert other.returncode == 0, other.stderr
    study = load(postgres, name)
    lost = study.trials[0]
    assert lost.state.name == "FAIL"
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE" and retries[0].params == lost.params
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 2
    assert "complete (retry of 0)" in other.stdout and "lost" in other.stdout
    no_password_in([other.stdout, other.stderr], tmp_path)


def test_the_workers_command_lines_hold_no_password(postgres, files, tmp_path):
    from mlpcli.tune.study import TuneOptions, plan
    from mlpcli.tune.workers import worker_argv

    base, space = files
    the_plan = plan(TuneOptions(space=space, config_source=str(base), trials=2, storage=postgres, workers=2,
                                out=tmp_path / "s"))
    argv = worker_argv(the_plan, 1, 1)
    assert "--storage" not in argv and not any(PASSWORD in a for a in argv)
    assert the_plan.storage.shown == postgres.replace(PASSWORD, "***")
