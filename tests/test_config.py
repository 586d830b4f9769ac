"""Config: presets, defaults, precedence, round trips, and every validation error.

Errors are checked through ``load_config`` on real YAML files in tmp folders: each must name
the offending key AND the file (or environment variable, or ``--set``) it came from.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from mlpcli.run import config as C
from mlpcli.run.train import flat_keys as flat
from mlpcli.cli import Group, cli
from mlpcli.run.config import (
    Config,
    EarlyStoppingConfig,
    config_from_dict,
    config_to_dict,
    dump_yaml,
    list_presets,
    load_config,
)
from mlpcli.errors import ConfigError

PRESETS = ("fashion-mnist", "mnist", "mnist-record", "nielsen-ch3", "seed-quadratic")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch, tmp_path):
    monkeypatch.delenv(C.DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(source=None, overrides=()) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(source, overrides)
    return info.value




# --- presets and defaults ------------------------------------------------------------------------


def test_all_presets_are_packaged_and_load():
    assert tuple(list_presets()) == PRESETS
    for name in PRESETS:
        cfg = load_config(name)
        assert cfg.name == name
        assert cfg.model.layers[0] == 784 and cfg.model.layers[-1] == 10


def test_presets_in_configs_folder_are_the_packaged_files():
    packaged = resources.files("mlpcli.presets")
    for name in PRESETS:
        assert (packaged / f"{name}.yaml").read_text() == (REPO / "configs" / f"{name}.yaml").read_text()


def test_defaults_are_the_mnist_preset():
    mnist, default = load_config("mnist"), load_config(None)
    assert default.name == "default"
    assert dataclasses.replace(mnist, name="default") == default
    # ... and the dataclass defaults themselves (load_config only makes paths absolute)
    assert dataclasses.replace(default, data=dataclasses.replace(default.data, dir="data")) == Config()


def test_mnist_preset_spells_out_every_key_but_the_data_dir():
    # data.dir is left out on purpose: a file value would beat MLPCLI_DATA_DIR.
    raw = yaml.safe_load((REPO / "configs" / "mnist.yaml").read_text())
    expected = set(flat(config_to_dict(Config()))) - {"name", "data.dir"}
    assert set(flat(raw)) == expected


def test_no_preset_pins_the_data_dir():
    for name in PRESETS:
        raw = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())
        assert "dir" not in raw.get("data", {}), name


def test_presets_have_a_comment_header_saying_what_they_reproduce():
    for name in PRESETS:
        text = (REPO / "configs" / f"{name}.yaml").read_text()
        header = text.split("\n\n")[0]
        assert header.startswith(f"# {name}") and "Reaches:" in header, name


def test_seed_and_nielsen_presets_match_their_sources():
    seed = load_config("seed-quadratic")
    assert (seed.model.layers, seed.model.activation, seed.model.output, seed.cost) == (
        (784, 30, 10), "sigmoid", "sigmoid", "quadratic")
    assert (seed.training.learning_rate, seed.training.optimizer, seed.training.batch_size) == (1.5, "sgd", 10)
    assert seed.model.init == "normal" and seed.regularization.l2 == 0
    ch3 = load_config("nielsen-ch3")
    assert (ch3.model.layers, ch3.cost, ch3.regularization.l2, ch3.model.init) == (
        (784, 100, 10), "cross_entropy", 5.0, "nielsen")
    assert (ch3.training.learning_rate, ch3.training.batch_size, ch3.training.epochs) == (0.5, 10, 30)
    assert load_config("fashion-mnist").data.dataset == "fashion-mnist"


def test_partial_file_inherits_the_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "training: {epochs: 3}\n"))
    assert cfg.training.epochs == 3
    assert cfg.model == Config().model and cfg.training.optimizer == "nesterov"
    assert cfg.name == "exp"


def test_empty_file_is_the_defaults_under_its_own_name(tmp_path):
    cfg = load_config(write(tmp_path, "# nothing\n", "empty.yaml"))
    assert dataclasses.replace(cfg, name="default") == load_config(None)


def test_name_key_overrides_the_file_stem(tmp_path):
    assert load_config(write(tmp_path, "name: wide\n")).name == "wide"
    err = error_of(write(tmp_path, "name: a/b\n"))
    assert "name" in str(err) and "exp.yaml" in str(err)


# --- round trips ---------------------------------------------------------------------------------


def test_dump_yaml_round_trips(tmp_path):
    cfg = load_config("nielsen-ch3", ["model.activation=[tanh]", "training.early_stopping={patience: 3}",
                                      "data.augment.shift=2", "model.dropout=[0.25]",
                                      "training.adam.eps=1e-7", "output.dir=out"])
    path = tmp_path / "run" / "config.yaml"
    path.parent.mkdir()
    path.write_text(dump_yaml(cfg))
    assert load_config(path) == cfg
    assert load_config(path).name == "nielsen-ch3"  # not the file's stem


def test_resolved_config_means_the_same_from_another_directory(tmp_path, monkeypatch):
    cfg = load_config(write(tmp_path, "data: {path: mine}\noutput: {dir: out}\n"))
    assert cfg.data.dir == str(tmp_path / "data")
    assert cfg.data.path == str(tmp_path / "mine") and cfg.output.dir == str(tmp_path / "out")
    saved = write(tmp_path, dump_yaml(cfg), "config.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv(C.DATA_DIR_ENV, "other")  # the saved file's data.dir wins over the environment
    assert load_config(saved) == cfg


def test_config_dict_round_trips_through_json():
    cfg = load_config("mnist", ["model.activation=[relu, tanh]", "model.dropout=0.3"])
    d = json.loads(json.dumps(config_to_dict(cfg)))
    assert config_from_dict(d) == cfg
    assert d["model"]["layers"] == [784, 800, 800, 10] and d["name"] == "mnist"


def test_config_from_dict_validates_and_names_its_source():
    d = config_to_dict(load_config("mnist"))
    d["training"]["learning_rate"] = -1
    with pytest.raises(ConfigError, match=r"run/last\.npz: training\.learning_rate"):
        config_from_dict(d, source="run/last.npz")


def test_values_are_normalized_to_tuples_and_floats(tmp_path):
    cfg = load_config(write(tmp_path, "training: {learning_rate: 1}\nmodel: {activation: [relu, tanh]}\n"))
    assert cfg.training.learning_rate == 1.0 and isinstance(cfg.training.learning_rate, float)
    assert cfg.model.activation == ("relu", "tanh") and isinstance(cfg.model.layers, tuple)
    assert cfg.model.hidden_activations() == ("relu", "tanh")
    rate = load_config(None).model.dropout  # one default rate, spread over both hidden layers
    assert cfg.model.dropout_rates() == (rate, rate) and isinstance(rate, float)


def test_scientific_notation_without_a_dot_is_a_number(tmp_path):
    # PyYAML alone reads 1e-8 as the string "1e-8" (YAML 1.1); users write it anyway.
    cfg = load_config(write(tmp_path, "training: {adam: {eps: 1e-7}, learning_rate: 5E-2}\n"))
    assert cfg.training.adam.eps == 1e-7 and cfg.training.learning_rate == 0.05


# --- precedence: --set > --data-dir > file > environment > defaults --------------------------------------------


def test_environment_sets_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(C.DATA_DIR_ENV, "shared-data")
    assert load_config(None).data.dir == str(tmp_path / "shared-data")
    assert load_config("mnist").data.dir == str(tmp_path / "shared-data")


def test_file_beats_environment_and_set_beats_file(tmp_path, monkeypatch):
    monkeypatch.setenv(C.DATA_DIR_ENV, "/env")
    path = write(tmp_path, "data: {dir: /file}\ntraining: {epochs: 7}\n")
    assert load_config(path).data.dir == "/file"
    cfg = load_config(path, ["data.dir=/set", "training.epochs=2"])
    assert cfg.data.dir == "/set" and cfg.training.epochs == 2


def test_later_set_wins_and_sections_merge():
    cfg = load_config("mnist", ["training.epochs=4", "training.epochs=5",
                                "training.schedule={name: step}", "training.schedule.factor=0.1"])
    assert cfg.training.epochs == 5
    assert (cfg.training.schedule.name, cfg.training.schedule.factor) == ("step", 0.1)
    assert cfg.training.schedule.step_every == 10  # untouched keys keep their value


def test_set_values_are_yaml():
    cfg = load_config(None, ["model.layers=[784,30,10]", "training.early_stopping.metric=val_loss",
                             "output.dir=null", "data.augment.flip=true", "data.dataset=fashion-mnist"])
    assert cfg.model.layers == (784, 30, 10)
    assert cfg.training.early_stopping == EarlyStoppingConfig(patience=10, metric="val_loss")
    assert cfg.output.dir is None and cfg.data.augment.flip is True


def test_set_can_turn_early_stopping_off(tmp_path):
    path = write(tmp_path, "training: {early_stopping: {patience: 2}}\n")
    assert load_config(path).training.early_stopping == EarlyStoppingConfig(patience=2)
    assert load_config(path, ["training.early_stopping=null"]).training.early_stopping is None


# --- finding the source --------------------------------------------------------------------------


def test_missing_config_lists_the_presets():
    err = error_of("nope.yaml")
    assert "nope.yaml" in str(err)
    for name in PRESETS:
        assert name in err.hint


def test_misspelled_preset_gets_a_suggestion():
    assert "did you mean 'mnist'" in error_of("mnsit").hint


def test_folder_is_not_a_config(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    assert "folder" in str(error_of(tmp_path / "dir.yaml"))


def test_a_folder_named_like_a_preset_does_not_hide_it(tmp_path):
    (tmp_path / "mnist").mkdir()
    assert load_config("mnist") == load_config("mnist", ["training.epochs=65"])
    assert load_config("mnist").name == "mnist"


def test_local_file_beats_a_preset_of_the_same_name(tmp_path):
    write(tmp_path, "training: {epochs: 1}\n", "mnist")
    assert load_config("mnist").training.epochs == 1


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "model:\n  layers: [784, 30, 10\ncost: quadratic\n")
    err = str(error_of(path))
    assert f"{path}:3:" in err and "not valid YAML" in err


def test_duplicate_key_is_an_error(tmp_path):
    path = write(tmp_path, "training:\n  epochs: 3\n  epochs: 4\n")
    err = str(error_of(path))
    assert "duplicate key 'epochs'" in err and f"{path}:3:" in err


def test_top_level_must_be_a_mapping(tmp_path):
    err = str(error_of(write(tmp_path, "- 784\n- 10\n")))
    assert "exp.yaml" in err and "mapping" in err


# --- unknown keys --------------------------------------------------------------------------------


UNKNOWN_KEYS = [
    ("trainig: {epochs: 3}\n", "trainig", "'training'"),
    ("training: {learning_rat: 0.1}\n", "training.learning_rat", "'learning_rate'"),
    ("training: {lr: 0.1}\n", "training.lr", "'training.learning_rate'"),
    ("l2: 5\n", "l2", "'regularization.l2'"),
    ("layers: [784, 10]\n", "layers", "'model.layers'"),
    ("model: {actvation: tanh}\n", "model.actvation", "'activation'"),
    ("data: {augment: {shfit: 2}}\n", "data.augment.shfit", "'shift'"),
    ("training: {adam: {beta_1: 0.8}}\n", "training.adam.beta_1", "'beta1'"),
]


@pytest.mark.parametrize("text, key, suggestion", UNKNOWN_KEYS)
def test_unknown_key_names_file_and_suggests(tmp_path, text, key, suggestion):
    err = error_of(write(tmp_path, text))
    assert f"exp.yaml: unknown key '{key}'" in str(err)
    assert f"did you mean {suggestion}" in err.hint


def test_unknown_key_without_a_close_match_lists_the_valid_keys(tmp_path):
    err = error_of(write(tmp_path, "model: {colour: blue}\n"))
    assert "did you mean" not in err.hint and "layers, activation, output, init, dropout" in err.hint


# --- wrong types ---------------------------------------------------------------------------------


WRONG_TYPES = [
    ("training: {epochs: true}\n", "training.epochs", "an integer, got true"),  # bool is not int
    ("training: {epochs: 2.5}\n", "training.epochs", "an integer, got 2.5"),
    ("training: {batch_size: '128'}\n", "training.batch_size", 'an integer, got "128"'),
    ("training: {learning_rate: fast}\n", "training.learning_rate", 'a number, got "fast"'),
    ("training: {learning_rate: false}\n", "training.learning_rate", "a number, got false"),
    ("regularization: {l2: [1]}\n", "regularization.l2", "a number"),
    ("model: {layers: 784}\n", "model.layers", "a list of integers"),
    ("model: {layers: [784, '30', 10]}\n", "model.layers", "a list of integers"),
    ("model: {layers: [784, true, 10]}\n", "model.layers", "a list of integers"),
    ("model: {activation: 3}\n", "model.activation", "a string or a list of strings"),
    ("model: {dropout: half}\n", "model.dropout", "a number or a list of numbers"),
    ("data: {augment: {flip: 1}}\n", "data.augment.flip", "true or false, got 1"),
    ("data: {path: 5}\n", "data.path", "a string or null"),
    ("data: {validation: null}\n", "data.validation", "an integer, got null"),
    ("cost: [quadratic]\n", "cost", "a string"),
    ("training: {seed: 1.0}\n", "training.seed", "an integer"),
    ("name: 3\n", "name", "a string"),
    ("training: 5\n", "training", "a mapping"),
    ("training: {adam: 0.9}\n", "training.adam", "a mapping"),
    ("training: {early_stopping: 5}\n", "training.early_stopping", "a mapping or null"),
    ("data: {augment: true}\n", "data.augment", "a mapping"),
]


@pytest.mark.parametrize("text, key, expected", WRONG_TYPES)
def test_wrong_type_names_file_and_key(tmp_path, text, key, expected):
    err = str(error_of(write(tmp_path, text)))
    assert f"exp.yaml: {key} must be {expected}" in err


# --- out-of-range values, unknown names, bad combinations ----------------------------------------


OUT_OF_RANGE = [
    ("regularization: {l2: -0.1}\n", "regularization.l2", ">= 0"),
    ("training: {learning_rate: 0}\n", "training.learning_rate", "> 0"),
    ("training: {learning_rate: -0.5}\n", "training.learning_rate", "> 0"),
    ("training: {batch_size: 0}\n", "training.batch_size", ">= 1"),
    ("training: {epochs: 0}\n", "training.epochs", ">= 1"),
    ("training: {momentum: 1.0}\n", "training.momentum", "[0, 1)"),
    ("training: {momentum: -0.1}\n", "training.momentum", "[0, 1)"),
    ("training: {ema: 1.0}\n", "training.ema", "[0, 1)"),
    ("training: {ema: -0.5}\n", "training.ema", "[0, 1)"),
    ("training: {adam: {beta1: 1}}\n", "training.adam.beta1", "[0, 1)"),
    ("training: {adam: {beta2: -0.5}}\n", "training.adam.beta2", "[0, 1)"),
    ("training: {adam: {eps: 0}}\n", "training.adam.eps", "> 0"),
    ("training: {schedule: {step_every: 0}}\n", "training.schedule.step_every", ">= 1"),
    ("training: {schedule: {factor: 0}}\n", "training.schedule.factor", "(0, 1]"),
    ("training: {schedule: {factor: 1.5}}\n", "training.schedule.factor", "(0, 1]"),
    ("training: {schedule: {warmup_epochs: -1}}\n", "training.schedule.warmup_epochs", ">= 0"),
    ("training: {early_stopping: {patience: 0}}\n", "training.early_stopping.patience", ">= 1"),
    ("training: {seed: -1}\n", "training.seed", ">= 0"),
    ("data: {validation: -1}\n", "data.validation", ">= 0"),
    ("data: {augment: {shift: -1}}\n", "data.augment.shift", ">= 0"),
    ("data: {augment: {shift: 28}}\n", "data.augment.shift", "< 28"),
    ("data: {dir: ''}\n", "data.dir", "must not be empty"),
    ("model: {layers: []}\n", "model.layers", "must not be empty"),
    ("model: {layers: [784]}\n", "model.layers", "start at 784"),
    ("model: {layers: [100, 30, 10]}\n", "model.layers", "start at 784"),
    ("model: {layers: [784, 30, 2]}\n", "model.layers", "end at 10"),
    ("model: {layers: [784, 0, 10]}\n", "model.layers", ">= 1"),
    ("model: {dropout: 1.0}\n", "model.dropout", "[0, 1)"),
    ("model: {dropout: [0.5, -0.1]}\n", "model.dropout", "[0, 1)"),
    ("model: {activation: [relu, tanh, relu]}\n", "model.activation", "3 entries for 2 hidden layers"),
    ("model: {activation: [relu]}\n", "model.activation", "1 entries for 2 hidden layers"),
    ("model: {dropout: [0.1]}\n", "model.dropout", "1 entries for 2 hidden layers"),
]


@pytest.mark.parametrize("text, key, expected", OUT_OF_RANGE)
def test_out_of_range_names_file_and_key(tmp_path, text, key, expected):
    err = str(error_of(write(tmp_path, text)))
    assert f"exp.yaml: {key} " in err and expected in err


def float_keys(cls=Config, prefix: str = "") -> list[str]:
    """Every dotted key of the config whose type admits a float (lists of floats included)."""
    from mlpcli.run import schema

    keys = []
    for name, hint in schema.hints(cls).items():
        sub, _ = schema.section_type(hint)
        if sub is not None:
            keys += float_keys(sub, f"{prefix}{name}.")
        elif "float" in str(hint):
            keys.append(f"{prefix}{name}")
    return keys


def nested(key: str, value) -> dict:
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def test_the_float_keys_are_found():
    keys = float_keys()
    assert {"regularization.l2", "training.learning_rate", "training.momentum",
            "training.adam.beta1", "training.adam.beta2", "training.adam.eps",
            "training.schedule.factor", "model.dropout", "data.augment.rotate",
            "data.augment.scale", "data.augment.shear", "data.augment.elastic.alpha",
            "data.augment.elastic.sigma"} <= set(keys)


@pytest.mark.parametrize("key", float_keys())
@pytest.mark.parametrize("special", [".inf", "-.inf", ".nan", "+.INF", "1e999", "-1e999"])
def test_every_float_key_refuses_infinity_and_nan(tmp_path, key, special):
    """.inf passes every `>= low` check and .nan every `not ...` one: the type check itself
    refuses them, naming the key and the file (or the --set)."""
    path = write(tmp_path, yaml.safe_dump(nested(key, "SPECIAL")).replace("SPECIAL", special))
    err = error_of(path)
    assert str(err).startswith(f"{path}: {key} must be a finite number, got ")
    assert ".inf or .nan" in err.hint and "\n" not in str(err)
    err = error_of(None, [f"{key}={special}"])
    assert str(err).startswith(f"--set {key}={special}: {key} must be a finite number")


def test_a_list_of_floats_refuses_a_nan_in_it():
    err = error_of(None, ["model.layers=[784,30,30,10]", "model.dropout=[0.1, .nan]"])
    assert "model.dropout must be finite numbers, got [0.1, .nan]" in str(err)


def test_a_float_key_refuses_an_integer_too_large_for_a_float():
    err = error_of(None, ["regularization.l2=" + "9" * 400])
    assert "regularization.l2 must be a finite number, got <an integer of about 400" in str(err)


UNKNOWN_NAMES = [
    ("model: {activation: rellu}\n", "model.activation", "relu", "leaky_relu"),
    ("model: {activation: [relu, sigmod]}\n", "model.activation", "sigmoid", "tanh"),
    ("model: {output: softmx}\n", "model.output", "softmax", "identity"),
    ("model: {init: xavir}\n", "model.init", "xavier", "nielsen"),
    ("cost: cross-entropy\n", "cost", "cross_entropy", "log_likelihood"),
    ("training: {optimizer: nesterow}\n", "training.optimizer", "nesterov", "adam"),
    ("training: {schedule: {name: cosin}}\n", "training.schedule.name", "cosine", "step"),
    ("training: {dtype: flaot32}\n", "training.dtype", "float32", "float64"),
    ("data: {dataset: fashion_mnist}\n", "data.dataset", "fashion-mnist", "kmnist"),
    ("training: {early_stopping: {metric: val_acc}}\n", "training.early_stopping.metric",
     "val_accuracy", "val_loss"),
]


@pytest.mark.parametrize("text, key, suggestion, listed", UNKNOWN_NAMES)
def test_unknown_name_lists_valid_ones(tmp_path, text, key, suggestion, listed):
    err = error_of(write(tmp_path, text))
    assert f"exp.yaml: {key} is " in str(err)
    assert listed in err.hint and f"did you mean {suggestion!r}" in err.hint


@pytest.mark.parametrize(
    "output, cost",
    [("sigmoid", "log_likelihood"), ("identity", "log_likelihood"), ("softmax", "cross_entropy"),
     ("identity", "cross_entropy")],
)
def test_invalid_output_cost_pair(tmp_path, output, cost):
    err = error_of(write(tmp_path, f"model: {{output: {output}}}\ncost: {cost}\n"))
    assert "exp.yaml: cost" in str(err) and output in str(err)
    assert "softmax+log_likelihood" in err.hint and "sigmoid+cross_entropy" in err.hint


@pytest.mark.parametrize("output, cost", [("softmax", "quadratic"), ("sigmoid", "cross_entropy"),
                                          ("identity", "quadratic"), ("sigmoid", "quadratic")])
def test_valid_output_cost_pairs_are_accepted(tmp_path, output, cost):
    cfg = load_config(write(tmp_path, f"model: {{output: {output}}}\ncost: {cost}\n"))
    assert (cfg.model.output, cfg.cost) == (output, cost)


def test_pair_error_names_the_source_that_broke_it(tmp_path):
    # the file's cost is fine with the default output; the --set output breaks the pair
    path = write(tmp_path, "cost: log_likelihood\n")
    assert str(error_of(path, ["model.output=sigmoid"])).startswith("--set model.output=sigmoid: cost")


def test_per_layer_lists_follow_the_number_of_hidden_layers(tmp_path):
    cfg = load_config(write(tmp_path, "model: {layers: [784, 10], activation: [], dropout: []}\n"))
    assert cfg.model.hidden_activations() == () and cfg.model.dropout_rates() == ()
    cfg = load_config(None, ["model.layers=[784,64,32,10]", "model.dropout=[0.5, 0]"])
    assert cfg.model.dropout_rates() == (0.5, 0.0) and cfg.model.hidden_activations() == ("relu", "relu")
    # the length error names the layer that changed the layer count
    err = str(error_of(write(tmp_path, "model: {activation: [relu, tanh]}\n"), ["model.layers=[784,10]"]))
    assert err.startswith("--set model.layers=[784,10]: model.activation has 2 entries for 0 hidden")


@pytest.mark.parametrize("dataset", ["mnist", "kmnist"])
def test_flip_is_refused_for_characters(tmp_path, dataset):
    err = str(error_of(write(tmp_path, f"data: {{dataset: {dataset}, augment: {{flip: true}}}}\n")))
    assert "exp.yaml: data.augment.flip" in err and "mirror image" in err


def test_flip_and_shift_are_allowed_for_fashion_mnist(tmp_path):
    cfg = load_config(write(tmp_path, "data: {dataset: fashion-mnist, augment: {flip: true, shift: 2}}\n"))
    assert cfg.data.augment == C.AugmentConfig(shift=2, flip=True)


def test_validation_zero_with_early_stopping_is_an_error(tmp_path):
    path = write(tmp_path, "data: {validation: 0}\ntraining: {early_stopping: {patience: 3}}\n")
    err = str(error_of(path))
    assert "exp.yaml: training.early_stopping" in err and "data.validation is 0" in err
    assert load_config(path, ["training.early_stopping=null"]).data.validation == 0


# --- --set errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("item", ["training.epochs", "=5", "training..epochs=5", "training.epochs.=5"])
def test_set_without_key_path_and_value_is_an_error(item):
    err = error_of(None, [item])
    assert item in str(err) and "key.path=value" in str(err)


def test_set_unknown_key_suggests():
    err = error_of("mnist", ["training.epoch=3"])
    assert str(err).startswith("--set training.epoch=3: unknown key 'training.epoch'")
    assert "did you mean 'epochs'" in err.hint


def test_set_wrong_type_and_bad_yaml_name_the_set():
    assert str(error_of(None, ["training.epochs=many"])).startswith(
        '--set training.epochs=many: training.epochs must be an integer, got "many"')
    assert "--set model.layers=[784,: not valid YAML" in str(error_of(None, ["model.layers=[784,"]))


def test_empty_environment_variable_is_ignored(monkeypatch):
    monkeypatch.setenv(C.DATA_DIR_ENV, "")
    assert load_config(None).data.dir == os.path.abspath("data")


# --- other bases: a Config, a dict; the --data-dir layer -------------------------------------------


def test_config_base_is_that_config(monkeypatch):
    cfg = load_config("nielsen-ch3", ["model.activation=[tanh]", "output.dir=out"])
    assert load_config(cfg) == cfg and load_config(cfg).name == "nielsen-ch3"
    # like the file it stands for, a Config's data.dir wins over the environment
    monkeypatch.setenv(C.DATA_DIR_ENV, "/env")
    assert load_config(cfg).data.dir == cfg.data.dir != "/env"


def test_config_base_is_validated_and_its_relative_paths_resolved(tmp_path):
    cfg = load_config(Config(data=dataclasses.replace(Config().data, dir="mine")))
    assert cfg.data.dir == str(tmp_path / "mine") and cfg.name == "default"
    bad = Config(training=dataclasses.replace(Config().training, epochs=0))
    with pytest.raises(ConfigError, match=r"^config object: training\.epochs must be >= 1"):
        load_config(bad)


def test_config_base_with_overrides_changes_only_those_and_keeps_the_name():
    saved = load_config("seed-quadratic", ["training.epochs=3"])
    resumed = load_config(saved, ["training.epochs=9"])
    assert resumed.name == "seed-quadratic" and resumed.training.epochs == 9
    assert resumed == dataclasses.replace(saved, training=dataclasses.replace(saved.training, epochs=9))
    assert str(error_of(saved, ["training.epochs=0"])).startswith("--set training.epochs=0: training.epochs")
    assert str(error_of(saved, ["training.epoch=9"])).startswith("--set training.epoch=9: unknown key")


def test_dict_base_full_and_partial(tmp_path):
    cfg = load_config("nielsen-ch3", ["model.dropout=[0.25]"])
    d = config_to_dict(cfg)
    assert load_config(d) == cfg and load_config(d).name == "nielsen-ch3"
    assert config_to_dict(cfg) == d  # the base is not modified
    partial = load_config({"training": {"epochs": 2}, "model": {"layers": [784, 30, 10]}}, ["cost=quadratic"])
    assert (partial.training.epochs, partial.model.layers, partial.cost) == (2, (784, 30, 10), "quadratic")
    assert partial.name == "default" and partial.training.optimizer == "nesterov"
    assert partial.data.dir == str(tmp_path / "data")
    err = error_of({"trainig": {"epochs": 2}})
    assert str(err).startswith("config dict: unknown key 'trainig'") and "did you mean 'training'" in err.hint
    assert str(error_of({"training": {"epochs": "x"}})).startswith("config dict: training.epochs must be")


def test_other_bases_are_refused():
    with pytest.raises(TypeError, match="base must be"):
        load_config(5)


def test_data_dir_beats_environment_and_file_and_loses_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv(C.DATA_DIR_ENV, "/env")
    assert load_config(None, data_dir="flag").data.dir == str(tmp_path / "flag")
    assert load_config("mnist", data_dir=tmp_path / "p").data.dir == str(tmp_path / "p")
    path = write(tmp_path, "data: {dir: /file}\n")
    assert load_config(path, data_dir="/flag").data.dir == "/flag"
    assert load_config(path, ["data.dir=/set"], data_dir="/flag").data.dir == "/set"
    assert load_config(load_config(path), data_dir="/flag").data.dir == "/flag"
    assert load_config(path, data_dir=None).data.dir == "/file"


@pytest.mark.parametrize("value, expected", [("", "data.dir must not be empty"),
                                             ("a\0b", "data.dir must not contain a NUL byte"),
                                             (b"bytes", "data.dir must be a string")])
def test_data_dir_errors_name_the_option(tmp_path, monkeypatch, value, expected):
    monkeypatch.setenv(C.DATA_DIR_ENV, "/env")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "training: {epochs: 2}\n"), ["training.epochs=3"], data_dir=value)
    assert str(info.value).startswith(f"--data-dir: {expected}")


def test_nul_byte_in_a_file_path_names_the_file(tmp_path):
    err = str(error_of(write(tmp_path, 'output: {dir: "a\\0b"}\n')))
    assert err.startswith(f"{tmp_path / 'exp.yaml'}: output.dir must not contain a NUL byte")


def test_no_temp_file_is_written(tmp_path, monkeypatch):
    import builtins
    import io
    import tempfile

    def refuse(*args, **kwargs):
        raise AssertionError("load_config must not create temporary files")

    for name in ("mkstemp", "mkdtemp", "TemporaryDirectory", "NamedTemporaryFile", "TemporaryFile",
                 "SpooledTemporaryFile"):
        monkeypatch.setattr(tempfile, name, refuse)
    real_open = builtins.open

    def read_only_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            refuse()
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", read_only_open)
    monkeypatch.setattr(io, "open", read_only_open)
    before = sorted(tmp_path.iterdir())
    saved = load_config("mnist")
    assert load_config(saved, ["training.epochs=9"]).training.epochs == 9
    assert load_config(config_to_dict(saved), ["training.epochs=8"], data_dir="d").training.epochs == 8
    assert sorted(tmp_path.iterdir()) == before


def test_choice_lists_come_from_the_modules_that_own_them():
    from mlpcli.nn import network
    from mlpcli.nn import optim

    assert C.OPTIMIZERS is optim.OPTIMIZERS and C.SCHEDULES is optim.SCHEDULES and C.INITS is network.INITS
    assert C.EARLY_STOPPING_METRICS == ("val_accuracy", "val_loss") and not hasattr(C, "METRICS")
    assert not hasattr(C, "_per_hidden_layer")


def test_schema_does_not_import_config():
    code = "import sys, mlpcli.run.schema; assert 'mlpcli.run.config' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


# --- through a command line ----------------------------------------------------------------------


def _cli_with_config_command() -> click.Group:
    """A group like mlpcli's (same error mapping) with one command that loads a config."""

    @click.group(cls=Group)
    @click.option("--debug", is_flag=True)
    def group(debug):
        pass

    @group.command()
    @click.option("--config")
    @click.option("--set", "overrides", multiple=True)
    def show(config, overrides):
        click.echo(dump_yaml(load_config(config, overrides)), nl=False)

    return group


def test_config_error_on_the_command_line_is_one_line_exit_2(tmp_path):
    path = write(tmp_path, "training: {learning_rate: -1}\n")
    result = CliRunner().invoke(_cli_with_config_command(), ["show", "--config", str(path)])
    assert result.exit_code == 2
    assert f"Error: {path}: training.learning_rate must be > 0" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("how", ["file", "--set"])
def test_train_with_an_infinite_l2_exits_2_naming_key_and_file_and_writes_nothing(tmp_path, how):
    path = write(tmp_path, "regularization: {l2: .inf}\n", "bad.yaml")
    args = ["--config", str(path)] if how == "file" else ["--set", "regularization.l2=.nan"]
    before = sorted(tmp_path.rglob("*"))
    proc = subprocess.run([sys.executable, "-m", "mlpcli", "train", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    where = str(path) if how == "file" else "--set regularization.l2=.nan"
    value = ".inf" if how == "file" else ".nan"
    assert proc.stderr == (f"Error: {where}: regularization.l2 must be a finite number, got "
                           f"{value} — no key takes .inf or .nan: write an ordinary number\n")
    assert sorted(tmp_path.rglob("*")) == before  # no run folder, no data fetched


def test_print_config_prints_what_load_config_resolves(tmp_path):
    ok = CliRunner().invoke(cli, ["train", "--config", "nielsen-ch3", "--set", "training.epochs=2",
                                  "--print-config"])
    assert ok.exit_code == 0, ok.output
    printed = write(tmp_path, ok.output, "printed.yaml")
    assert load_config(printed) == load_config("nielsen-ch3", ["training.epochs=2"])
    bad = CliRunner().invoke(cli, ["train", "--config", "mnist", "--set", "training.batchsize=5",
                                   "--print-config"])
    assert bad.exit_code == 2 and "unknown key 'training.batchsize'" in bad.output
    assert "did you mean 'batch_size'" in bad.output and "Traceback" not in bad.output


def test_config_error_in_a_real_subprocess_exits_2_without_traceback(tmp_path):
    path = write(tmp_path, "model: {layers: [784, 30, 10], activation: [relu, relu]}\n")
    proc = subprocess.run([sys.executable, "-m", "mlpcli", "train", "--config", str(path), "--print-config"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"{path}: model.activation has 2 entries for 1 hidden" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_names_match_the_modules_that_use_them():
    fetch = pytest.importorskip("mlpcli.data.fetch")
    data = pytest.importorskip("mlpcli.data.splits")
    assert set(C.DATASETS) == set(fetch.REGISTRY) == set(data.CLASS_NAMES)


CLI_ERROR_CASES = [(text, key) for text, key, *_ in UNKNOWN_KEYS + WRONG_TYPES + OUT_OF_RANGE + UNKNOWN_NAMES]


@pytest.mark.parametrize("text, key", CLI_ERROR_CASES)
def test_every_config_error_through_train_print_config(tmp_path, text, key):
    path = write(tmp_path, text)
    result = CliRunner().invoke(cli, ["train", "--config", str(path), "--print-config"])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert line.startswith(f"Error: {path}: ") and key in line
    assert "\n" not in line and "Traceback" not in result.output


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--set", "training.epochs"], "--set 'training.epochs' is not key.path=value"),
        (["--set", "model.layers=[784,30,2]"], "--set model.layers=[784,30,2]: model.layers must"),
        (["--set", "data.augment.flip=true"], "data.augment.flip cannot be true for mnist"),
        (["--set", "data.validation=0", "--set", "training.early_stopping={}"], "training.early_stopping needs"),
        (["--config", "mnits"], "no config file or preset named 'mnits'"),
    ],
)
def test_set_and_source_errors_through_train_print_config(args, expected):
    result = CliRunner().invoke(cli, ["train", *args, "--print-config"])
    assert result.exit_code == 2 and expected in result.output and "Traceback" not in result.output
