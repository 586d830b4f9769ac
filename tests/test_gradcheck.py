"""gradcheck: its pieces, that it FAILS on a broken backprop, and the `mlpcli gradcheck` command."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from mlpcli.nn import functions as F
from mlpcli.nn import gradcheck
from mlpcli.cli import cli
from mlpcli.nn.network import Network

TOL = 1e-6


def worst(rows):
    return max(rows, key=lambda r: r.relative_difference)


def sigmoid_problem(seed=0, layers=(7, 5, 4, 3)):
    rng = np.random.default_rng(seed)
    net = Network.create(layers, "sigmoid", "softmax", "log_likelihood", "xavier", rng, np.float64)
    return (net, *gradcheck.random_batch(layers, "softmax", "log_likelihood", 8, rng))


# --- the pieces -------------------------------------------------------------------------------


def test_numerical_gradient_of_a_known_function():
    x = np.array([[0.3, -1.2], [2.0, 0.7]])
    before = x.copy()

    def f():
        return float(np.sum(np.sin(x) * x**2))

    exact = (np.cos(x) * x**2 + 2 * x * np.sin(x)).reshape(-1)
    indices = np.array([0, 2, 3])
    numeric = gradcheck.numerical_gradient(f, x, indices, 1e-6)
    np.testing.assert_allclose(numeric, exact[indices], rtol=1e-8)
    np.testing.assert_array_equal(x, before)  # every perturbation was undone


def test_numerical_gradient_differences_parts_separately():
    """A big constant part must not drown a small change in round-off."""
    x = np.array([1e-3])
    whole = gradcheck.numerical_gradient(lambda: 1e6 + float(x[0] ** 2), x, np.array([0]), 1e-6)
    parts = gradcheck.numerical_gradient(lambda: (1e6, float(x[0] ** 2)), x, np.array([0]), 1e-6)
    assert abs(parts[0] - 2e-3) < 1e-12
    assert abs(whole[0] - 2e-3) > 1e-6  # ulp(1e6)/2ε ≈ 6e-5: the whole sum cannot see it


def test_relative_difference():
    a = np.array([1.0, 2.0, 3.0])
    assert gradcheck.relative_difference(a, a) == 0
    assert gradcheck.relative_difference(a, -a) == 1
    assert gradcheck.relative_difference(np.zeros(3), np.zeros(3)) == 0  # all-zero arrays pass
    assert gradcheck.relative_difference(np.zeros(3), np.full(3, 1e-12)) == 1
    n = a + np.array([1e-8, 0, 0])
    assert gradcheck.relative_difference(a, n) == pytest.approx(1e-8 / (2 * np.linalg.norm(a)), rel=1e-6)


def test_sample_indices_all_when_small_else_distinct_and_reproducible():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(gradcheck.sample_indices(7, 50, rng), np.arange(7))
    picked = gradcheck.sample_indices(627200, 50, np.random.default_rng(1))
    assert len(set(picked.tolist())) == 50 and picked.min() >= 0 and picked.max() < 627200
    np.testing.assert_array_equal(picked, gradcheck.sample_indices(627200, 50, np.random.default_rng(1)))


def test_avoid_kinks_moves_zero_pre_activations_off_the_kink():
    """A row of dead ReLUs feeds exact zeros to the next layer: with zero biases (he init)
    its pre-activations are exactly 0, on the kink. The bias shift moves them off it."""
    rng = np.random.default_rng(3)
    net = Network.create((4, 3, 3, 2), "relu", "softmax", "log_likelihood", "he", rng, np.float64)
    net.W[1][:] = -np.abs(net.W[1])
    X = np.abs(rng.normal(size=(5, 4)))
    X[0] = -X[0]  # row 0 has some live units in layer 1; the other rows have none
    Z = net.forward(X)[0]
    assert (Z[2][1:] == 0).all()
    moved = gradcheck.avoid_kinks(net, lambda: net.forward(X), 1e-4)
    assert moved > 0
    Z = net.forward(X)[0]
    for l in (1, 2):
        assert np.abs(Z[l]).min() >= 1e-4
    assert gradcheck.avoid_kinks(net, lambda: net.forward(X), 1e-4) == 0  # nothing left to move


def test_check_network_leaves_the_network_alone_and_checks_every_array():
    net, X, Y = sigmoid_problem()
    before = {k: v.copy() for k, v in net.parameters().items()}
    rows = gradcheck.check_network(net, X, Y, 5.0, 20, np.random.default_rng(0),
                                     gradcheck.CheckOptions(params=3))
    for name, value in net.parameters().items():
        np.testing.assert_array_equal(value, before[name])
    assert [(r.parameter, r.checked, r.size) for r in rows] == [
        ("W1", 3, 35), ("b1", 3, 5), ("W2", 3, 20), ("b2", 3, 4), ("W3", 3, 12), ("b3", 3, 3)
    ]
    assert worst(rows).relative_difference < TOL


# --- it can fail --------------------------------------------------------------------------------


@pytest.fixture
def sigmoid_derivative_is_sigma(monkeypatch):
    """Seed 002's eq. (1) typo: σ(z) where σ'(z) belongs, injected into the sigmoid's one table
    entry — which is all that training, backprop and gradcheck use."""
    broken = dataclasses.replace(F.HIDDEN["sigmoid"], derivative=lambda A, out=None: A)
    monkeypatch.setitem(F.HIDDEN, "sigmoid", broken)


def test_sigma_in_place_of_its_derivative_fails_the_check(sigmoid_derivative_is_sigma):
    net, X, Y = sigmoid_problem()
    rows = gradcheck.check_network(net, X, Y, 0.0, 20)
    bad = worst(rows)
    assert bad.relative_difference > 1e-2  # measured about 0.5: not a round-off effect
    assert not bad.passed(TOL)
    assert bad.parameter in ("W1", "b1", "W2", "b2")  # the layers below a sigmoid layer
    passed, line = gradcheck.verdict(rows, TOL)
    assert not passed and line.startswith("gradcheck FAILED:") and bad.parameter in line


def test_gradcheck_all_fails_exactly_the_combinations_with_sigmoid_hidden_layers(sigmoid_derivative_is_sigma):
    result = CliRunner().invoke(cli, ["gradcheck", "--all"])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[-1].startswith("gradcheck FAILED:")
    failing = {line.split(", λ=")[0] for line in lines if line.rstrip().endswith("FAIL")}
    expected = {label for label, _, activation, _, _ in gradcheck.combinations()
                if "sigmoid" in ([activation] if isinstance(activation, str) else activation)}
    assert failing == expected


def test_float32_with_eps_1e_5_cannot_check_backprop():
    """Why gradcheck runs in float64: in float32 the central difference is round-off."""
    net, X, Y = sigmoid_problem()
    rows32 = gradcheck.check_network(net, X, Y, 0.0, 20,
                                     options=gradcheck.CheckOptions(1e-5, dtype=np.float32))
    rows64 = gradcheck.check_network(net, X, Y, 0.0, 20, options=gradcheck.CheckOptions(1e-5))
    assert worst(rows32).relative_difference > TOL
    assert worst(rows64).relative_difference < TOL


# --- check_all and the table -------------------------------------------------------------------------


def test_check_all_covers_every_activation_pair_and_lambda():
    rows = gradcheck.check_all()
    labels = {r.label for r in rows}
    for activation in F.HIDDEN:
        for output, cost in F.VALID_PAIRS:
            for lam in gradcheck.ALL_LAMBDAS:
                assert f"{activation} → {output}+{cost}, λ={lam:g}" in labels
    layers, mixed = gradcheck.mixed_network()
    assert set(mixed) == set(F.HIDDEN) and len(layers) == len(mixed) + 2
    assert len(labels) == (len(F.HIDDEN) + 1) * len(F.VALID_PAIRS) * len(gradcheck.ALL_LAMBDAS)
    assert worst(rows).relative_difference < TOL


def test_identity_quadratic_is_checked_on_real_valued_targets():
    rng = np.random.default_rng(0)
    X, Y = gradcheck.random_batch((7, 3), "identity", "quadratic", 50, rng)
    assert ((Y != 0) & (Y != 1)).all()
    X, Y = gradcheck.random_batch((7, 3), "softmax", "quadratic", 50, rng)
    np.testing.assert_array_equal(Y.sum(axis=1), 1)


def test_worst_per_label_and_table():
    rows = [
        gradcheck.Row("a", "W1", 4, 10, 1e-9, 3e-9),
        gradcheck.Row("a", "b1", 2, 2, 5e-9, 7e-8),
        gradcheck.Row("b", "W1", 6, 6, 1e-3, 0.4),
    ]
    summary = gradcheck.worst_per_label(rows)
    assert summary == [gradcheck.Row("a", "b1", 6, 12, 5e-9, 7e-8), gradcheck.Row("b", "W1", 6, 6, 1e-3, 0.4)]
    table = gradcheck.format_table(summary, "combination", TOL).splitlines()
    assert table[0].split() == ["combination", "parameter", "checked", "max", "abs", "error", "relative", "difference"]
    assert table[1].split() == ["a", "b1", "6/12", "5.0e-09", "7.0e-08"]
    assert table[2].split() == ["b", "W1", "6/6", "1.0e-03", "4.0e-01", "FAIL"]
    assert gradcheck.verdict(rows[:2], TOL) == (True, "gradcheck passed: worst relative difference 7.0e-08 (tol 1e-06)")
    passed, line = gradcheck.verdict(rows, TOL)
    assert not passed and line == ("gradcheck FAILED: 1 of 3 parameter arrays over tol 1e-06; "
                                   "worst W1 of b with relative difference 4.0e-01")


# --- the command --------------------------------------------------------------------------------------


def test_cli_gradcheck_all_passes_and_names_every_combination():
    result = CliRunner().invoke(cli, ["gradcheck", "--all"])
    assert result.exit_code == 0, result.output
    for label, *_ in gradcheck.combinations():
        for lam in gradcheck.ALL_LAMBDAS:
            assert f"{label}, λ={lam:g}" in result.output
    last = result.output.splitlines()[-1]
    assert last.startswith("gradcheck passed: worst relative difference ") and last.endswith("(tol 1e-06)")
    assert "FAIL" not in result.output


def test_gradcheck_all_in_a_real_process():
    done = subprocess.run([sys.executable, "-m", "mlpcli", "gradcheck", "--all"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("gradcheck passed:")
    assert "mixed " in done.stdout and "relu → softmax+log_likelihood, λ=5" in done.stdout


def test_a_tolerance_below_round_off_fails_with_exit_1():
    result = CliRunner().invoke(cli, ["gradcheck", "--all", "--tol", "1e-15"])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith("gradcheck FAILED: ")
    assert "over tol 1e-15; worst " in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tol", "-1"], "Invalid value for '--tol'"),
        (["--tol", "0"], "Invalid value for '--tol'"),
        (["--eps", "0"], "Invalid value for '--eps'"),
        (["--batch", "0"], "Invalid value for '--batch'"),
        (["--params", "0"], "Invalid value for '--params'"),
        (["--params", "many"], "'many' is not a valid integer"),
        (["--all", "--config", "mnist"], "leave out --config and --set"),
        (["--config", "no-such-preset"], "no-such-preset"),
        (["--set", "model.output=identity", "--set", "cost=cross_entropy"], "cross_entropy"),
    ],
)
def test_bad_values_exit_2_with_a_clear_message(args, message):
    result = CliRunner().invoke(cli, ["gradcheck", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLPCLI_DATA_DIR", raising=False)
    return tmp_path


SMALL = ["--set", "model.layers=[784,16,10]"]


def test_config_without_data_checks_seeded_random_rows(no_data):
    result = CliRunner().invoke(cli, ["gradcheck", "--config", "mnist", *SMALL, "--params", "20"])
    assert result.exit_code == 0, result.output
    assert "seeded random rows" in result.output and "mlpcli fetch" in result.output
    assert "784 → 16 → 10" in result.output and "λ = 1," in result.output
    layer_rows = [line.split()[:3] for line in result.output.splitlines() if line[:2] in ("1 ", "2 ")]
    assert layer_rows == [["1", "W1", "20/12544"], ["1", "b1", "16/16"], ["2", "W2", "20/160"], ["2", "b2", "10/10"]]
    assert not (no_data / "data").exists() or not any((no_data / "data").rglob("*.gz"))  # nothing fetched
    assert result.output.splitlines()[-1].startswith("gradcheck passed:")


def test_config_with_data_checks_real_rows(no_data, idx_dataset):
    folder = idx_dataset.write(no_data / "synthetic")
    result = CliRunner().invoke(cli, [
        "gradcheck", "--config", "nielsen-ch3", "--set", f"data.path={folder}",
        "--set", "data.validation=10", *SMALL,
    ])
    assert result.exit_code == 0, result.output
    assert "8 rows of the mnist training split (synthetic)" in result.output
    assert "n = 40" in result.output  # 50 training images minus 10 held out
    assert "float64" in result.output


def test_config_dtype_float32_is_still_checked_in_float64(no_data):
    result = CliRunner().invoke(cli, ["gradcheck", *SMALL, "--set", "training.dtype=float32"])
    assert result.exit_code == 0, result.output
    assert "float64" in result.output


def test_config_with_dropout_is_checked_with_one_fixed_mask(no_data):
    result = CliRunner().invoke(cli, ["gradcheck", *SMALL, "--set", "model.dropout=0.5"])
    assert result.exit_code == 0, result.output
    assert "ONE fixed mask" in result.output and "0.5" in result.output


def test_help_has_examples():
    result = CliRunner().invoke(cli, ["gradcheck", "--help"])
    assert result.exit_code == 0
    assert "mlpcli gradcheck --all" in result.output and "mlpcli gradcheck --config" in result.output


# --- the configured network must fit the configured data ---------------------------------------


@pytest.mark.parametrize("layers, expected", [
    ("[100,30,10]", "model.layers starts at 100, but the input layer must equal the data's "
                    "pixels: 784 (28×28) — use --set model.layers=[784,30,10]"),
    ("[784,30,5]", "model.layers ends at 5, but the output layer must equal the data's "
                   "classes: 10 — use --set model.layers=[784,30,10]"),
    ("[784,30,20,12]", "model.layers ends at 12, but the output layer must equal the data's "
                       "classes: 10 — use --set model.layers=[784,30,20,10]"),
])
def test_layers_that_do_not_fit_the_data_on_disk_exit_2_in_one_line(no_data, idx_dataset,
                                                                      layers, expected):
    folder = idx_dataset.write(no_data / "idx")
    result = CliRunner().invoke(cli, ["gradcheck", "--set", f"data.path={folder}",
                                      "--set", "data.validation=10",
                                      "--set", f"model.layers={layers}"])
    assert result.exit_code == 2, result.output
    assert result.output == f"Error: {expected}\n"  # one line, no traceback, nothing checked


def test_without_data_random_rows_are_as_wide_as_the_configured_input_layer(no_data):
    result = CliRunner().invoke(cli, ["gradcheck", "--set", f"data.path={no_data / 'absent'}",
                                      "--set", "model.layers=[100,30,10]", "--params", "5000"])
    assert result.exit_code == 0, result.output
    assert "100 → 30 → 10" in result.output and "seeded random rows" in result.output
    assert "3000/3000" in result.output  # W1: 30 × 100, every entry checked
    assert result.output.splitlines()[-1].startswith("gradcheck passed:")


def test_a_data_path_that_is_not_idx_is_read_and_checked_against_the_layers(no_data):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (30, 8, 8), np.uint8), np.arange(30, dtype=np.uint8) % 3
    path = no_data / "small.npz"
    np.savez(path, x_train=images, y_train=labels, x_test=images[:6], y_test=labels[:6])
    base = ["gradcheck", "--set", f"data.path={path}", "--set", "data.validation=5"]
    ok = CliRunner().invoke(cli, [*base, "--set", "model.layers=[64,8,3]"])
    assert ok.exit_code == 0, ok.output
    assert "8 rows of the small.npz training split" in ok.output and "n = 25" in ok.output
    bad = CliRunner().invoke(cli, [*base, *SMALL])
    assert bad.exit_code == 2
    assert bad.output.startswith("Error: model.layers starts at 784, but the input layer must "
                                 "equal the data's pixels: 64 (8×8) — use --set model.layers=[64,16,3]")


# --- gradcheck.py stays readable ----------------------------------------------------------------


def test_gradcheck_functions_take_at_most_seven_parameters():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(gradcheck))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            args = node.args
            n = len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
            assert n <= 7, f"{node.name} has {n} parameters"
    assert list(inspect.signature(gradcheck.check_network).parameters) == [
        "net", "X", "Y", "lam", "n", "rng", "options"]


def test_check_options_say_how_and_are_frozen():
    options = gradcheck.CheckOptions()
    assert (options.eps, options.params, options.label, options.masks, options.dtype) == (
        1e-6, 50, None, None, np.float64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.eps = 1e-3
    net, X, Y = sigmoid_problem()
    rows = gradcheck.check_network(net, X, Y, 0.0, 20, options=gradcheck.CheckOptions(
        params=2, label="mine"))
    assert {row.label for row in rows} == {"mine"} and all(row.checked <= 2 for row in rows)
