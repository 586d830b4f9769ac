"""Checkpoints: round trip, atomic writes, and refusal of anything that is not a valid one."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from mlpcli import checkpoint, kernels
from mlpcli.cli import cli
from mlpcli.config import load_config
from mlpcli.errors import CheckpointError
from mlpcli.network import Network
from mlpcli.optim import make_optimizer


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


def rewrite(src, dst, drop=(), **replace):
    """Copy a checkpoint's arrays into ``dst``, without ``drop`` and with ``replace``."""
    with np.load(src) as npz:
        arrays = {k: npz[k] for k in npz.files if k not in drop}
    arrays.update(replace)
    np.savez(dst, **arrays)
    return dst


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
