"""Config faults from the fault issue: hostile YAML, huge values in messages, the YAML 1.2 core
schema, and models or batches too big for this machine's memory.

Each fault runs the CLI (``mlpcli train … --print-config``) and checks the exit code (2), that
no traceback is shown, that the error is one line, and that it names the key, value or file.
"""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from mlpcli.run import config as C
from mlpcli.run import schema
from mlpcli.cli import cli
from mlpcli.run.config import config_from_dict, config_to_dict, dump_yaml, load_config
from mlpcli.errors import ConfigError

# The longest error line a fault may print: the message, the hint, every quoted value cut.
MAX_LINE = 600


@pytest.fixture(autouse=True)
def _no_env(monkeypatch, tmp_path):
    monkeypatch.delenv(C.DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)


def train(*args: str):
    return CliRunner().invoke(cli, ["train", *args, "--print-config"])


def one_line_error(result, *expected: str) -> str:
    """The error line of a CLI run that must fail as a config error naming ``expected``."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output[:2000]
    assert len(lines[0]) <= MAX_LINE, lines[0][:2000]
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def printed(result) -> dict:
    """The config a successful ``--print-config`` printed."""
    assert result.exit_code == 0, result.output
    return schema.load_yaml(result.output, "printed")


def write(tmp_path, text: str, name: str = "exp.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- 1. hostile YAML ------------------------------------------------------------------------------


def test_5000_nested_brackets_in_a_file_are_one_line(tmp_path):
    path = write(tmp_path, "model: {layers: " + "[" * 5000 + "]" * 5000 + "}\n")
    one_line_error(train("--config", str(path)), f"{path}:1:", "nested more than 100 levels deep")


def test_5000_nested_brackets_in_a_set_are_one_line():
    one_line_error(train("--set", "model.layers=" + "[" * 5000 + "]" * 5000),
                   "--set model.layers=[[[", "nested more than 100 levels deep")


def test_nesting_up_to_the_limit_is_read_and_then_type_checked():
    line = one_line_error(train("--set", "model.layers=" + "[" * 90 + "]" * 90),
                          "model.layers must be a list of integers, got [[[[")
    assert "…" in line


def test_recursion_error_is_one_line_even_without_the_depth_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(schema, "MAX_DEPTH", 10**9)
    path = write(tmp_path, "model: {layers: " + "[" * 5000 + "]" * 5000 + "}\n")
    one_line_error(train("--config", str(path)), str(path), "nested too deeply")


BILLION_LAUGHS = "".join(
    ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n']
    + [f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi")]
    + ["model: {layers: *i}\n"]
)


def test_alias_bomb_in_a_file_is_refused_at_once(tmp_path):
    assert len(BILLION_LAUGHS) < 1000
    path = write(tmp_path, BILLION_LAUGHS)
    started = time.monotonic()
    one_line_error(train("--config", str(path)), f"{path}:1:", "config files may not use YAML anchors/aliases (&/*)")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("text, line", [
    ("training: {epochs: &e 3, batch_size: *e}\n", 1),  # an anchor is refused where it is
    ("training:\n  epochs: 3\n  batch_size: *e\n", 3),  # an undefined alias too
    ("base: &b {epochs: 3}\ntraining:\n  <<: *b\n", 1),  # merge keys need them
])
def test_anchors_and_aliases_in_a_file_are_refused(tmp_path, text, line):
    path = write(tmp_path, text)
    one_line_error(train("--config", str(path)), f"{path}:{line}:", "may not use YAML anchors/aliases")


@pytest.mark.parametrize("value", ["&a [784, 30, 10]", "[784, &n 30, *n, 10]", "*a"])
def test_anchors_and_aliases_in_a_set_are_refused(value):
    one_line_error(train("--set", f"model.layers={value}"), f"--set model.layers={value}",
                   "config files may not use YAML anchors/aliases (&/*)")


@pytest.mark.parametrize("item, value", [
    ("training.learning_rate=!!float abc", '"abc"'),
    ("training.epochs=!!int 1.5", '"1.5"'),
    ("training.epochs=!!int 1_000", '"1_000"'),
    ("data.augment.flip=!!bool yes", '"yes"'),
    ("name=!!timestamp soon", '"soon"'),
    ("training.epochs=!!int [1]", "sequence"),
])
def test_explicit_tags_that_do_not_fit_are_one_line(item, value):
    one_line_error(train("--set", item), f"--set {item}: not valid YAML", value)


def test_a_30000_digit_integer_is_one_line():
    one_line_error(train("--set", "training.epochs=" + "9" * 30000), "--set training.epochs=999",
                   "an integer of 30,000 digits is too long")


@pytest.mark.parametrize("key", ["data.dir", "data.path", "output.dir"])
def test_nul_byte_in_a_path_in_a_file(tmp_path, key):
    section, name = key.split(".")
    path = write(tmp_path, f'{section}: {{{name}: "a\\0b"}}\n')
    one_line_error(train("--config", str(path)), f"{path}: {key} must not contain a NUL byte", r'"a\u0000b"')


@pytest.mark.parametrize("key", ["data.dir", "data.path", "output.dir"])
def test_nul_byte_in_a_path_in_a_set(key):
    one_line_error(train("--set", f'{key}="a\\0b"'), f"{key} must not contain a NUL byte")
    # a raw NUL (possible in-process, not in argv) is not YAML at all
    one_line_error(train("--set", f"{key}=a\0b"), f"--set {key}=a", "not valid YAML", "#x0000")


def test_a_newline_in_a_set_keeps_the_error_on_one_line():
    one_line_error(train("--set", "model.layers=[784,\n 0, 10]"), r"--set model.layers=[784,\n 0, 10]: model.layers")


def test_raw_nul_in_a_file_names_the_line(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_bytes(b"training:\n  epochs: 3\ndata: {dir: a\0b}\n")
    one_line_error(train("--config", str(path)), f"{path}:3:", "#x0000")


def test_a_config_path_too_long_for_the_system_is_one_line():
    one_line_error(train("--config", "x" * 5000 + ".yaml"), "cannot read config file xxx", "…")


# --- 2. values in messages are cut to a readable length ---------------------------------------------


def test_show_cuts_every_kind_of_value():
    assert schema.show("x" * 10**6) == '"' + "x" * 78 + "…"
    assert len(schema.show(list(range(10**6)))) == schema.SHOW_LIMIT
    assert schema.show([[[1]]] * 10**5).startswith("[[[1]], [[1]], ")
    assert len(schema.show({f"k{i}": i for i in range(10**5)})) == schema.SHOW_LIMIT
    assert schema.show([float("nan"), float("inf"), -float("inf"), True, None]) == "[.nan, .inf, -.inf, true, null]"
    assert schema.show(10**10000) == "<an integer of about 10,000 digits>"
    assert schema.show([784, 30, 10]) == "[784, 30, 10]" and schema.show("relu") == '"relu"'
    assert schema.quoted("k" * 500) == repr("k" * 79 + "…")


def test_a_million_strings_as_layers_is_a_short_message():
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_config({"model": {"layers": ["x"] * 10**6}})
    assert time.monotonic() - started < 5
    assert str(info.value).startswith('config dict: model.layers must be a list of integers, got ["x", "x"')
    assert len(str(info.value)) < 200


def test_a_million_layers_of_zero_units_is_a_short_message():
    with pytest.raises(ConfigError) as info:
        load_config({"model": {"layers": [784] + [0] * 10**6 + [10]}})
    assert str(info.value).startswith("config dict: model.layers must all be >= 1, got [784, 0, 0")
    assert len(str(info.value)) < 200


def test_a_long_bad_list_through_the_cli_is_one_short_line():
    one_line_error(train("--set", "model.layers=[" + ", ".join(["x"] * 20000) + "]"),
                   '--set model.layers=[x, x', 'model.layers must be a list of integers, got ["x", "x"', "…")


def test_a_megabyte_string_through_the_cli_is_one_short_line():
    one_line_error(train("--set", "model.layers=" + "y" * 10**6), 'got "yyy', "…")
    one_line_error(train("--set", "training.optimizer=" + "z" * 10**6), "training.optimizer is 'zzz", "…",
                   "choose one of")


def test_a_huge_unknown_key_and_a_huge_bad_set_are_one_short_line(tmp_path):
    one_line_error(train("--set", "training." + "k" * 10**5 + "=1"), "unknown key 'training.kkk", "…")
    one_line_error(train("--set", "training." + "k" * 10**5), "is not key.path=value", "…")
    path = write(tmp_path, "training: {" + "e" * 1000 + ": 1}\n")  # YAML keys: < 1024 characters
    one_line_error(train("--config", str(path)), f"{path}: unknown key 'training.eee", "…")


def test_a_long_duplicate_key_is_one_short_line(tmp_path):
    key = "q" * 1000
    path = write(tmp_path, f"{key}: 1\n{key}: 2\n")
    one_line_error(train("--config", str(path)), f"{path}:2:", "duplicate key 'qqq", "…")


def test_a_long_bad_name_in_a_file(tmp_path):
    path = write(tmp_path, "name: " + "a/" * 10**5 + "\ncost: " + "c" * 10**5 + "\n")
    one_line_error(train("--config", str(path)), f"{path}: name must be a plain name", "…")


# --- 3. the YAML 1.2 core schema ----------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("010", 10), ("0010", 10), ("+7", 7), ("0o17", 15), ("0x1A", 26), ("0x1a", 26), ("!!int 010", 10),
])
def test_integers_are_yaml_1_2(value, expected):
    assert printed(train("--set", f"training.epochs={value}"))["training"]["epochs"] == expected


@pytest.mark.parametrize("value, expected", [
    ("1e-8", 1e-8), ("1E-8", 1e-8), ("5e-2", 0.05), (".5", 0.5), ("1.", 1.0), ("+2.5e3", 2500.0),
    ("!!float 1", 1.0),
])
def test_floats_are_yaml_1_2(value, expected):
    assert printed(train("--set", f"training.adam.eps={value}"))["training"]["adam"]["eps"] == expected


@pytest.mark.parametrize("value", ["1_000", "0b101", "-0x1A", "1:30", "0o8", "0xG"])
def test_yaml_1_1_integers_are_strings(value):
    one_line_error(train("--set", f"training.epochs={value}"), "training.epochs must be an integer",
                   f'got "{value}"')


@pytest.mark.parametrize("value", ["yes", "no", "on", "off", "y", "n", "Yes", "ON"])
def test_yes_no_on_off_are_strings_and_the_error_says_true_or_false(value):
    one_line_error(train("--set", f"data.augment.flip={value}"),
                   f'--set data.augment.flip={value}: data.augment.flip must be true or false, got "{value}"',
                   "write true or false", "YAML 1.2")


@pytest.mark.parametrize("value", ["true", "True", "TRUE", "false", "False", "FALSE"])
def test_booleans_are_true_and_false(value):
    cfg = printed(train("--set", "data.dataset=fashion-mnist", "--set", f"data.augment.flip={value}"))
    assert cfg["data"]["augment"]["flip"] is (value.lower() == "true")


@pytest.mark.parametrize("value", ["no", "on", "2024-01-01", "1_000", "0b1", "~x"])
def test_what_yaml_1_1_reads_otherwise_is_a_string(value):
    assert printed(train("--set", f"name={value}"))["name"] == value


@pytest.mark.parametrize("value", ["no", "on", "0o17", "0x1A", "1e5", "010", "1_000", "2024-01-01", "true"])
def test_names_that_look_like_numbers_round_trip_through_dump_yaml(tmp_path, value):
    cfg = load_config(None, [f'name="{value}"'])
    assert cfg.name == value
    saved = write(tmp_path, dump_yaml(cfg), "config.yaml")
    assert load_config(saved) == cfg


def test_null_and_duplicate_keys_still_behave(tmp_path):
    assert printed(train("--set", "output.dir=NULL"))["output"]["dir"] is None
    assert printed(train("--set", "output.dir=~"))["output"]["dir"] is None
    path = write(tmp_path, "training:\n  epochs: 3\n  epochs: 4\n")
    one_line_error(train("--config", str(path)), f"{path}:3:", "duplicate key 'epochs'")


# --- 4. models and batches that cannot fit in memory ----------------------------------------------------


def test_memory_needed_counts_parameters_and_activations():
    weights, activations = C.memory_needed((784, 100, 10), 128, "float32")
    assert weights == (784 * 100 + 100 + 100 * 10 + 10) * 4 * 4
    assert activations == 128 * (784 + 100 + 10) * 4 * 4
    assert C.memory_needed((784, 100, 10), 128, "float64") == (2 * weights, 2 * activations)


def test_a_layer_of_a_hundred_million_units_is_refused():
    line = one_line_error(train("--set", "model.layers=[784,100000000,10]"),
                          "--set model.layers=[784,100000000,10]: model.layers needs about",
                          "the weights alone need 318.0 GB", "784×100,000,000 + 100,000,000×10",
                          "79,500,000,010 float32 parameters", "×4 with gradients and optimizer state",
                          "this machine has")
    assert "use fewer or smaller hidden layers" in line


def test_a_batch_of_a_billion_is_refused():
    one_line_error(train("--set", "training.batch_size=1000000000"),
                   "--set training.batch_size=1000000000: training.batch_size 1,000,000,000 needs about",
                   "one batch's activations take 38.3 TB", "1,000,000,000 examples × 2,394 units × 4 bytes × 4",
                   "this machine has", "use a smaller batch")


def test_train_refuses_before_reading_data_or_allocating(tmp_path):
    result = CliRunner().invoke(cli, ["train", "--set", "model.layers=[784,100000000,10]",
                                      "--data-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "run")])
    one_line_error(result, "model.layers needs about")
    assert not (tmp_path / "run").exists()


def test_the_estimate_is_against_this_machines_memory(monkeypatch):
    monkeypatch.setattr(C, "physical_memory", lambda: 10**6)
    one_line_error(train("--config", "mnist"), "preset mnist: model.layers needs about 25.3 MB",
                   "this machine has 1.0 MB of memory")
    one_line_error(train("--config", "mnist", "--set", "model.layers=[784,10]", "--set", "training.batch_size=60000"),
                   "--set training.batch_size=60000: training.batch_size 60,000 needs about")


def test_unknown_physical_memory_assumes_64_gib(monkeypatch):
    def no_sysconf(name):
        raise ValueError(name)

    monkeypatch.setattr(C.os, "sysconf", no_sysconf)
    assert C.physical_memory() == 64 * 2**30
    monkeypatch.setattr(C.os, "sysconf", lambda name: -1 if name == "SC_PHYS_PAGES" else 4096)
    assert C.physical_memory() == 64 * 2**30


@pytest.mark.parametrize("preset", ["mnist", "mnist-record", "fashion-mnist", "nielsen-ch3", "seed-quadratic"])
def test_presets_still_validate(preset):
    assert printed(train("--config", preset))["name"] == preset


def test_float64_doubles_the_estimate_and_the_hint_says_so():
    ok = load_config(None, ["model.layers=[784,1000,10]", "training.dtype=float64"])
    assert ok.training.dtype == "float64"
    one_line_error(train("--set", "model.layers=[784,100000000,10]", "--set", "training.dtype=float64"),
                   "the weights alone need 636.0 GB", "float64 parameters", "training.dtype float32")


def test_absurd_layers_are_refused_without_overflow():
    one_line_error(train("--set", "model.layers=[784," + "9" * 400 + ",10]"), "model.layers needs about",
                   "~10^", "this machine has")


def test_a_checkpoints_config_is_not_refused_for_memory(monkeypatch):
    d = config_to_dict(load_config("mnist"))
    monkeypatch.setattr(C, "physical_memory", lambda: 10**6)
    assert config_from_dict(d).model.layers == (784, 800, 800, 10)
