"""Checkpoints: round trip, atomic writes, and refusal of anything that is not a valid one."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import rewrite

from mlpcli.run import checkpoint
from mlpcli.nn import kernels
from mlpcli.cli import cli
from mlpcli.run.config import load_config
from mlpcli.errors import CheckpointError
from mlpcli.nn.network import Network
from mlpcli.nn.optim import make_optimizer


@pytest.fixture
def config():
    return load_config(None, ["model.layers=[784,12,10]", "model.activation=tanh",
                              "training.optimizer=adam", "name=ckpt"])


def make_network(config, seed=0, dtype=np.float32):
    m = config.model
    return Network.create(m.layers, m.activation, m.output, config.cost, m.init,
                          np.random.default_rng(seed), dtype)


def trained_state(network, config):
    optimizer = make_optimizer(network, config.training)
    rng = np.random.default_rng(1)
    X, labels = rng.random((20, 784), dtype=np.float32), rng.integers(0, 10, 20)
    Y = np.eye(10, dtype=np.float32)[labels]
    ws = kernels.Workspace(network, 20)  # as training does: the gradients land in network.grad
    Z, A = network.forward(X, None, ws)
    network.backward(Z, A, Y, None, ws)
    optimizer.step(0.01, 1.0 / 20)
    return optimizer.state_dict()


@pytest.fixture
def saved(tmp_path, config):
    network = make_network(config)
    state = trained_state(network, config)
    path = checkpoint.save(tmp_path / "last.npz", network, config,
                           {"epoch": 3, "metrics": {"val_accuracy": 0.5}}, state)
    return path, network, state


def test_round_trip_restores_everything(saved, config):
    path, network, state = saved
    ck = checkpoint.load(path)
    assert ck.config == config
    assert ck.epoch == 3 and ck.meta["metrics"] == {"val_accuracy": 0.5}
    assert ck.meta["format_version"] == checkpoint.FORMAT_VERSION
    assert ck.meta["preprocess"] == "scale01"
    assert ck.network.layers == [784, 12, 10] and ck.network.activations == ["tanh"]
    for name, value in network.parameters().items():
        loaded = ck.network.parameters()[name]
        assert loaded.dtype == np.float32 and np.array_equal(loaded, value)
    assert set(ck.optimizer_state) == set(state)
    for name, value in state.items():
        assert np.array_equal(ck.optimizer_state[name], value)
    X = np.random.default_rng(2).random((5, 784), dtype=np.float32)
    assert np.array_equal(ck.network.forward(X)[1][-1], network.forward(X)[1][-1])


def test_file_layout_is_plain_named_arrays_and_json_meta(saved):
    path, _, _ = saved
    with np.load(path, allow_pickle=False) as npz:
        names = set(npz.files)
        meta = json.loads(str(npz["meta"]))
    assert {"W1", "b1", "W2", "b2", "meta", "opt_t", "opt_m_W1", "opt_s_b2"} <= names
    assert meta["config"]["model"]["layers"] == [784, 12, 10]
    assert "mlpcli_version" in meta


def test_crash_between_write_and_replace_keeps_the_old_checkpoint(saved, config, monkeypatch):
    path, network, state = saved
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    other = make_network(config, seed=99)
    with pytest.raises(OSError, match="simulated"):
        checkpoint.save(path, other, config, {"epoch": 4}, state)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert checkpoint.load(path).epoch == 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.npz"]  # no temp file left


def test_crash_while_writing_keeps_the_old_checkpoint(saved, config, monkeypatch):
    path, network, state = saved
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, network, config, {"epoch": 4}, state)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.npz"]


def test_pickled_object_array_is_refused(saved, tmp_path):
    path, _, _ = saved
    evil = rewrite(path, tmp_path / "evil.npz", W1=np.array([{"code": "os.system"}], dtype=object))
    with pytest.raises(CheckpointError, match="object arrays"):
        checkpoint.load(evil)


def test_pickled_meta_is_refused(saved, tmp_path):
    path, _, _ = saved
    evil = rewrite(path, tmp_path / "evil.npz", meta=np.array({"format_version": 1}, dtype=object))
    with pytest.raises(CheckpointError, match="object arrays"):
        checkpoint.load(evil)


def test_truncated_file_is_refused(saved, tmp_path):
    path, _, _ = saved
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or not an .npz"):
        checkpoint.load(cut)


def test_corrupted_member_is_refused(saved, tmp_path):
    path, _, _ = saved
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("W1.npy")
    middle = info.header_offset + 200 + info.compress_size // 2
    data[middle : middle + 16] = b"\xff" * 16
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        checkpoint.load(bad)


@pytest.mark.parametrize("content", [b"", b"hello, not a checkpoint\n", b"PK\x03\x04garbage"])
def test_non_npz_files_are_refused(tmp_path, content):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a valid mlpcli checkpoint"):
        checkpoint.load(path)


def test_plain_pickle_is_refused(tmp_path):
    import pickle

    path = tmp_path / "p.npz"
    path.write_bytes(pickle.dumps({"W1": [1, 2]}))
    with pytest.raises(CheckpointError, match="pickle"):
        checkpoint.load(path)


def test_plain_npy_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(CheckpointError, match="not an .npz"):
        checkpoint.load(tmp_path / "x.npy")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.npz")


def test_missing_array_is_refused(saved, tmp_path):
    path, _, _ = saved
    with pytest.raises(CheckpointError, match="W2 is missing"):
        checkpoint.load(rewrite(path, tmp_path / "m.npz", drop=("W2",)))


def test_missing_meta_is_refused(saved, tmp_path):
    path, _, _ = saved
    with pytest.raises(CheckpointError, match="no 'meta'"):
        checkpoint.load(rewrite(path, tmp_path / "m.npz", drop=("meta",)))


def test_shape_not_matching_config_is_refused(saved, tmp_path):
    path, _, _ = saved
    bad = rewrite(path, tmp_path / "s.npz", W1=np.zeros((13, 784), np.float32))
    with pytest.raises(CheckpointError, match=r"W1 has shape \(13, 784\), its config says \(12, 784\)"):
        checkpoint.load(bad)


def test_extra_layer_is_refused(saved, tmp_path):
    path, _, _ = saved
    bad = rewrite(path, tmp_path / "e.npz", W3=np.zeros((10, 10), np.float32))
    with pytest.raises(CheckpointError, match="W3"):
        checkpoint.load(bad)


def test_integer_weights_are_refused(saved, tmp_path):
    path, _, _ = saved
    bad = rewrite(path, tmp_path / "i.npz", b1=np.zeros(12, np.int64))
    with pytest.raises(CheckpointError, match="not floating point"):
        checkpoint.load(bad)


def test_newer_format_version_is_refused(saved, tmp_path):
    path, _, _ = saved
    with np.load(path) as npz:
        meta = json.loads(str(npz["meta"]))
    meta["format_version"] = checkpoint.FORMAT_VERSION + 1
    bad = rewrite(path, tmp_path / "v.npz", meta=np.array(json.dumps(meta)))
    with pytest.raises(CheckpointError, match="newer") as error:
        checkpoint.load(bad)
    assert error.value.hint == "upgrade mlpcli"


def test_invalid_config_in_meta_is_refused(saved, tmp_path):
    path, _, _ = saved
    with np.load(path) as npz:
        meta = json.loads(str(npz["meta"]))
    meta["config"]["training"]["optimizer"] = "teleport"
    bad = rewrite(path, tmp_path / "c.npz", meta=np.array(json.dumps(meta)))
    with pytest.raises(CheckpointError, match="training.optimizer"):
        checkpoint.load(bad)


def test_float64_network_round_trips_in_float64(tmp_path, config):
    network = make_network(config, dtype=np.float64)
    path = checkpoint.save(tmp_path / "f64.npz", network, config, {}, {})
    loaded = checkpoint.load(path).network
    assert loaded.dtype == np.float64
    assert np.array_equal(loaded.W[2], network.W[2])


def test_cli_reports_a_bad_checkpoint_without_traceback(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    result = CliRunner().invoke(cli, ["eval", str(bad)])
    assert result.exit_code == 1
    assert "Error:" in result.output and "not a valid mlpcli checkpoint" in result.output
    assert "Traceback" not in result.output


# --- meta: every field has the type the code reading it expects (issue: faults) --------------


def meta_of(path) -> dict:
    with np.load(path) as npz:
        return json.loads(str(npz["meta"]))


def with_meta(src, dst, change):
    """A copy of checkpoint ``src`` at ``dst`` whose meta is ``change(meta)``'s result."""
    return rewrite(src, dst, meta=np.array(json.dumps(change(meta_of(src)))))


def setting(key, value, under=None):
    def change(meta):
        (meta.setdefault(under, {}) if under else meta)[key] = value
        return meta

    return change


def snapshot(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


BAD_META = [
    ("epoch", "abc", None, "meta.epoch is 'abc', not a whole number ≥ 0"),
    ("epoch", None, None, "meta.epoch is null, not a whole number ≥ 0"),
    ("epoch", -3, None, "meta.epoch is -3, not a whole number ≥ 0"),
    ("epoch", 2.5, None, "meta.epoch is 2.5, not a whole number ≥ 0"),
    ("epoch", True, None, "meta.epoch is true, not a whole number ≥ 0"),
    ("state", [1, 2], None, "meta.state is [1, 2], not a JSON object"),
    ("best_val_accuracy", "high", None, "meta.best_val_accuracy is 'high', not a number from 0 to 1 or null"),
    ("best_val_accuracy", "high", "state", "meta.state.best_val_accuracy is 'high', not a number from 0 to 1"),
    ("best_epoch", "last", "state", "meta.state.best_epoch is 'last', not a whole number ≥ 0 or null"),
    ("es_bad_epochs", -1, "state", "meta.state.es_bad_epochs is -1, not a whole number ≥ 0"),
    ("rng_state", "seed 1", None, "meta.rng_state is 'seed 1', not a JSON object"),
    ("rng_state", [1, 2, 3], None, "meta.rng_state is [1, 2, 3], not a JSON object"),
    ("bit_generator", "Mersenne", "rng_state", "meta.rng_state.bit_generator is 'Mersenne', not one of PCG64"),
    ("metrics", 0.5, None, "meta.metrics is 0.5, not a JSON object"),
    ("val_accuracy", "good", "metrics", "meta.metrics.val_accuracy is 'good', not a number or null"),
    ("n_train", -5, None, "meta.n_train is -5, not a whole number ≥ 0 or null"),
    ("n_train", "50000", None, "meta.n_train is '50000', not a whole number ≥ 0 or null"),
    ("dataset", 7, None, "meta.dataset is 7, not a string"),
    ("dataset", None, None, "meta.dataset is null, not a string"),
    ("mlpcli_version", 1.0, None, "meta.mlpcli_version is 1.0, not a string"),
    ("init_from", 3, None, "meta.init_from is 3, not a path (string) or null"),
    ("class_names", ["a", "b"], None, "meta.class_names is [\"a\", \"b\"], not a list of 10 strings"),
    ("class_names", "digits", None, "meta.class_names is 'digits', not a list of 10 strings"),
    ("class_names", list(range(10)), None, "meta.class_names is [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], not a list of 10"),
    ("class_names", None, None, "meta.class_names is null, not a list of 10 strings"),
    ("format_version", 0, None, "meta.format_version is 0, not a format mlpcli wrote"),
]


@pytest.mark.parametrize("key, value, under, message", BAD_META, ids=[f"{u or 'meta'}.{k}={v!r}" for k, v, u, _ in BAD_META])
def test_meta_field_of_the_wrong_type_is_refused_on_load(saved, tmp_path, key, value, under, message):
    path, _, _ = saved
    bad = with_meta(path, tmp_path / "bad.npz", setting(key, value, under))
    with pytest.raises(CheckpointError) as error:
        checkpoint.load(bad)
    assert str(error.value).startswith(f"{bad} is not a valid mlpcli checkpoint: {message}")


@pytest.mark.parametrize("key, value, under", [
    ("epoch", 0, None), ("n_train", None, None), ("best_val_accuracy", None, "state"),
    ("best_val_accuracy", 1, "state"), ("es_best", -0.25, "state"), ("init_from", None, None),
    ("class_names", [f"class {k}" for k in range(10)], None), ("metrics", {"val_accuracy": None}, None),
])
def test_meta_fields_of_the_right_type_load(saved, tmp_path, key, value, under):
    path, _, _ = saved
    ck = checkpoint.load(with_meta(path, tmp_path / "ok.npz", setting(key, value, under)))
    assert (ck.meta[under] if under else ck.meta)[key] == value


def test_a_checkpoint_a_run_wrote_passes_every_meta_check(tiny_config, tmp_path):
    from mlpcli.run import train

    run = train.start(tiny_config("training.epochs=1"), tmp_path / "run")
    from mlpcli.data.fetch import load_splits

    train.fit(run, load_splits(run.config.data, quiet=True))
    ck = checkpoint.load(tmp_path / "run" / "last.npz")
    assert {"epoch", "metrics", "rng_state", "state", "n_train", "dataset"} <= set(ck.meta)


@pytest.mark.parametrize("command", ["eval", "resume", "predict"])
@pytest.mark.parametrize("key, value, under, shown", [
    ("epoch", "abc", None, "meta.epoch is 'abc'"), ("state", [1, 2], None, "meta.state is [1, 2]"),
    ("best_val_accuracy", "high", "state", "meta.state.best_val_accuracy is 'high'"),
    ("rng_state", None, None, "meta.rng_state is null"),
])
def test_cli_refuses_bad_meta_in_one_line_before_any_work(saved, tmp_path, command, key, value, under, shown):
    path, _, _ = saved
    run = tmp_path / "run"
    run.mkdir()
    bad = with_meta(path, run / "last.npz", setting(key, value, under))
    before = snapshot(tmp_path)
    args = {"eval": ["eval", str(bad)], "resume": ["train", "--resume", str(bad)],
            "predict": ["predict", str(bad), "--index", "0"]}[command]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(bad) in lines[0] and shown in lines[0]
    assert snapshot(tmp_path) == before


# --- memory: no member is allocated before its npy header is checked (issue: faults) --------


def npy_bytes(array=None, *, shape=None, descr="<f4", data=b"") -> bytes:
    """An .npy member: a real array's bytes, or a header declaring ``shape`` followed by ``data``."""
    buf = io.BytesIO()
    if array is not None:
        np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
        return buf.getvalue()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


def members_of(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return {info.filename[:-4]: archive.read(info) for info in archive.infolist()}


def write_archive(dst, members: dict):
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name + ".npy", data)
    return dst


def meta_last(members: dict) -> dict:
    """meta as the archive's last member: it is read first all the same."""
    return {**{k: v for k, v in members.items() if k != "meta"}, "meta": members["meta"]}


def refused_without_allocating(path, match):
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=match) as error:
            checkpoint.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000, f"{peak} bytes allocated"
    return error.value


def test_member_declaring_1e11_elements_is_refused_before_allocating(saved, tmp_path):
    path, _, _ = saved
    members = {k: v for k, v in members_of(path).items() if not k.startswith("opt_")}
    members["W1"] = npy_bytes(shape=(100_000, 1_000_000), data=bytes(40_000))
    bomb = write_archive(tmp_path / "bomb.npz", meta_last(members))
    assert bomb.stat().st_size < 50_000  # a 40 kB file ...
    error = refused_without_allocating(bomb, r"array W1 has shape \(100000, 1000000\), its config says \(12, 784\)")
    assert "member W1.npy declares shape (100000, 1000000) of float32 (400.0 GB of memory)" in str(error)


def test_member_whose_shape_its_config_agrees_with_but_its_size_does_not_is_refused(saved, tmp_path):
    path, _, _ = saved
    members = members_of(path)
    meta = json.loads(str(np.load(io.BytesIO(members["meta"]))))
    meta["config"]["model"]["layers"] = [784, 100_000_000, 10]
    members = {"meta": npy_bytes(np.array(json.dumps(meta))),
               "W1": npy_bytes(shape=(100_000_000, 784), data=bytes(40_000))}
    bomb = write_archive(tmp_path / "bomb.npz", members)
    refused_without_allocating(bomb, r"member W1\.npy declares shape \(100000000, 784\) of float32 "
                                     r"\(313\.6 GB of memory\), but it holds 40\.0 kB of data")


def test_meta_header_declaring_hundreds_of_megabytes_is_refused(saved, tmp_path):
    path, _, _ = saved
    members = members_of(path)
    members["meta"] = npy_bytes(shape=(), descr="<U100000000", data=b"{}" + bytes(1000))
    bomb = write_archive(tmp_path / "meta-bomb.npz", members)
    refused_without_allocating(bomb, r"member meta\.npy declares shape \(\) of <U100000000 \(400\.0 MB of memory\), "
                                     r"more than a checkpoint's meta ever holds")


def test_member_shorter_than_its_header_declares_is_refused(saved, tmp_path):
    path, _, _ = saved
    members = members_of(path)
    members["W1"] = npy_bytes(shape=(12, 784), data=bytes(100))
    bad = write_archive(tmp_path / "short.npz", members)
    refused_without_allocating(bad, r"member W1\.npy declares shape \(12, 784\) of float32 \(37\.6 kB of memory\), "
                                    r"but it holds 100 bytes of data")


@pytest.mark.parametrize("name, array, match", [
    ("opt_m_W1", np.zeros((12, 785), np.float32), r"array opt_m_W1 has shape \(12, 785\), its config says \(12, 784\)"),
    ("opt_s_b2", np.zeros((100_000,), np.float32), r"array opt_s_b2 has shape \(100000,\), its config says \(10,\)"),
    ("opt_t", np.zeros(3, np.int64), r"array opt_t has shape \(3,\), its config says \(\)"),
    ("opt_v_W1", np.zeros((12, 784), np.int32), r"array opt_v_W1 has dtype int32, not floating point"),
    ("opt_t", np.array("3"), r"array opt_t has dtype <U1, not a number"),
])
def test_optimizer_arrays_are_checked_against_the_config(saved, tmp_path, name, array, match):
    path, _, _ = saved
    members = members_of(path)
    members[name] = npy_bytes(array)
    with pytest.raises(CheckpointError, match=match):
        checkpoint.load(write_archive(tmp_path / "opt.npz", members))


def test_member_that_is_not_an_array_is_refused(saved, tmp_path):
    path, _, _ = saved
    members = members_of(path)
    bad = write_archive(tmp_path / "x.npz", members)
    with zipfile.ZipFile(bad, "a") as archive:
        archive.writestr("notes.txt", b"hello")
    with pytest.raises(CheckpointError, match="member 'notes.txt' is not an array"):
        checkpoint.load(bad)


def test_cli_refuses_a_memory_bomb_in_one_line(saved, tmp_path):
    path, _, _ = saved
    members = members_of(path)
    members["W1"] = npy_bytes(shape=(100_000, 1_000_000), data=bytes(40_000))
    bomb = write_archive(tmp_path / "bomb.npz", members)
    before = snapshot(tmp_path)
    result = CliRunner().invoke(cli, ["eval", str(bomb)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(bomb) in lines[0] and "W1.npy" in lines[0] and "400.0 GB" in lines[0]
    assert snapshot(tmp_path) == before
