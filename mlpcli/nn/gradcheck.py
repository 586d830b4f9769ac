"""Finite-difference check of ``Network.gradients`` (``backward`` and the L2 term).

The analytic gradient a = ∂J/∂θ from ``backward`` is compared with the central difference
n = (J(θ + ε) − J(θ − ε)) / 2ε, entry by entry, in float64, with J the full objective
(batch-mean cost + (λ/2n) Σ‖W‖²) that ``backward`` claims to differentiate.

The pass criterion is per parameter array: over the checked entries,

    ‖a − n‖₂ / (‖a‖₂ + ‖n‖₂)  ≤  tol            (both arrays all zero: passes)

Element-wise relative error is useless here: entries whose gradient is near 1e-7 are
dominated by round-off even in float64 and would fail a correct backprop, while a real bug
(σ in place of σ', the typo in eq. (1) of the Einstein-notation derivation after
Nielsen) moves the whole array and gives about 1e-1.

Small, separate pieces: ``numerical_gradient``, ``relative_difference``, ``sample_indices``,
``avoid_kinks``; ``check_network`` puts them together for one network and batch (how: a
``CheckOptions``) and returns one ``Row`` per parameter array; ``check_all`` runs it on every
valid combination, ``check_config`` on the network a config describes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from mlpcli.nn import functions as F
from mlpcli.nn.network import Network, dropout_masks, dropout_rates

ALL_LAYERS = (7, 5, 4, 3)
# λ > 0 is checked with a small n so the L2 term (λ/n) W is as large as the data gradient
# and a mistake in it cannot hide under round-off.
ALL_LAMBDAS = (0.0, 5.0)
ALL_N = 20
# Pre-activations closer than this to 0 are moved away (see ``avoid_kinks``).
KINK_MARGIN = 1e-4


def kink_margin(eps: float) -> float:
    """How far from 0 pre-activations are kept for a step ε: far enough that θ ± ε (which
    moves a pre-activation by about ε times an activation or weight) never crosses a kink."""
    return max(KINK_MARGIN, 100 * eps)


@dataclass(frozen=True)
class Row:
    """The comparison for one parameter array of one checked network."""

    label: str  # the combination checked, or the layer number
    parameter: str  # "W1", "b1", …
    checked: int  # entries compared
    size: int  # entries in the array
    max_abs_error: float  # max_i |a_i − n_i|
    relative_difference: float  # ‖a − n‖ / (‖a‖ + ‖n‖)

    def passed(self, tol: float) -> bool:
        return bool(self.relative_difference <= tol)


# --- the pieces -----------------------------------------------------------------------------


def numerical_gradient(
    f: Callable[[], float | Sequence[float]], x: np.ndarray, indices: np.ndarray, eps: float
) -> np.ndarray:
    """Central differences (f(x + ε e_i) − f(x − ε e_i)) / 2ε for the flat ``indices`` of x.

    ``x`` is perturbed in place (and restored) so that ``f``, which reads it, sees the change.
    ``f`` may return its value as a sum of parts (data cost, L2 term): each part is then
    differenced on its own before they are added, so a large part that a parameter does not
    touch (the L2 term, for a bias) cancels exactly instead of adding its round-off.
    """
    grad = np.empty(len(indices), dtype=np.float64)
    for k, i in enumerate(indices):
        idx = np.unravel_index(i, x.shape)
        old = x[idx]
        x[idx] = old + eps
        plus = f()
        x[idx] = old - eps
        minus = f()
        x[idx] = old
        grad[k] = np.sum(np.subtract(plus, minus)) / (2 * eps)
    return grad


def relative_difference(a: np.ndarray, n: np.ndarray) -> float:
    """‖a − n‖₂ / (‖a‖₂ + ‖n‖₂); 0 when both are all zero."""
    a, n = np.asarray(a, dtype=np.float64), np.asarray(n, dtype=np.float64)
    denominator = np.linalg.norm(a) + np.linalg.norm(n)
    if denominator == 0:
        return 0.0
    return float(np.linalg.norm(a - n) / denominator)


def sample_indices(size: int, params: int, rng: np.random.Generator) -> np.ndarray:
    """All flat indices when ``size ≤ params``, else ``params`` distinct ones at random."""
    if size <= params:
        return np.arange(size)
    return np.sort(rng.choice(size, params, replace=False))


def _smallest_shift(z: np.ndarray, margin: float) -> float:
    """The smallest |δ| with |z_i + δ| ≥ margin for every i."""
    # Some optimum puts one z_i at ±2·margin (or leaves z alone); δ = 2·margin − min z
    # (all positive) is always among the candidates, so one of them always works. On a tie
    # (a unit whose z are all 0: its inputs are a dead layer's zeros) the negative side wins,
    # so a ReLU unit stays off instead of carrying a tiny activation of 2·margin.
    candidates = np.concatenate(([0.0], -2 * margin - z, 2 * margin - z))
    for delta in candidates[np.argsort(np.abs(candidates), kind="stable")]:
        if np.all(np.abs(z + delta) >= margin):
            return float(delta)
    raise AssertionError("unreachable: 2·margin − min(z) always satisfies the condition")


def avoid_kinks(net: Network, forward: Callable[[], tuple], margin: float = KINK_MARGIN) -> int:
    """Shift hidden biases so that no hidden pre-activation lies within ``margin`` of 0.

    relu and leaky_relu have a kink at z = 0: a central difference across it measures the
    average of the two slopes, not the derivative ``backward`` uses, and would fail a correct
    backprop (a dead unit's zero input row, e.g. Z = 0 exactly when the bias is 0). We move
    each offending unit's bias b[l][j] by the smallest amount that puts every example's z
    at least ``margin`` away from 0 — the inputs stay as they are (real data rows stay
    real). A perturbation of ε ≪ margin then never crosses a kink. Smooth activations lose
    nothing by the move, so it is applied to every hidden layer without looking up names.
    Layers are fixed in order because a shift in layer l changes the inputs of layer l+1.
    ``forward()`` returns (Z, A) for the batch. Returns the number of biases moved.
    """
    moved = 0
    for l in range(1, net.L):
        Z = forward()[0][l]
        for j in np.flatnonzero((np.abs(Z) < margin).any(axis=0)):
            net.b[l][j] += _smallest_shift(Z[:, j].astype(np.float64), margin)
            moved += 1
    return moved


# --- one network ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckOptions:
    """How ``check_network`` compares: the step ``eps``; ``params`` entries per array (all when
    the array is smaller); the rows' ``label`` (None: each row's layer number); ``masks`` (from
    ``network.dropout_masks``): dropout with ONE fixed mask per hidden layer, passed to forward
    and backward, so that J is a deterministic function of the parameters again and finite
    differences apply; ``dtype`` of the copy checked (float64; another only to show why not)."""

    eps: float = 1e-6
    params: int = 50
    label: str | None = None
    masks: Sequence[np.ndarray | None] | None = None
    dtype: type = np.float64


def check_network(
    net: Network,
    X: np.ndarray,
    Y: np.ndarray,
    lam: float,
    n: int,
    rng: np.random.Generator | None = None,
    options: CheckOptions = CheckOptions(),
) -> list[Row]:
    """Compare ``backward`` with central differences on every parameter array of ``net``, for
    the objective with L2 weight ``lam`` over ``n`` training examples, on the batch (X, Y).

    The check runs on a copy cast to ``options.dtype``, so ``net`` itself is never changed.
    The entries checked are drawn with ``rng``. One ``Row`` per parameter array.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    eps, masks = options.eps, options.masks
    net = net.astype(options.dtype)  # a copy: the kink-avoiding nudges must not touch the caller's
    X, Y = np.asarray(X, dtype=options.dtype), np.asarray(Y, dtype=options.dtype)
    kwargs = {} if masks is None else {"masks": masks}

    def forward():
        return net.forward(X, **kwargs)

    def objective() -> tuple[float, float]:  # J as its two parts (see numerical_gradient)
        return net.data_cost(forward()[1][-1], Y), net.l2_penalty(lam, n)

    avoid_kinks(net, forward, kink_margin(eps))
    dW, db = net.gradients(X, Y, lam, n, masks)  # ∂J/∂θ: backward + the L2 term

    rows = []
    for l in range(1, net.L + 1):
        for name, x, grad in ((f"W{l}", net.W[l], dW[l]), (f"b{l}", net.b[l], db[l])):
            indices = sample_indices(x.size, options.params, rng)
            analytic = np.asarray(grad, dtype=np.float64).reshape(-1)[indices]
            numeric = numerical_gradient(objective, x, indices, eps)
            error = np.abs(analytic - numeric)
            rows.append(
                Row(
                    label=str(l) if options.label is None else options.label,
                    parameter=name,
                    checked=len(indices),
                    size=x.size,
                    max_abs_error=float(error.max()) if error.size else 0.0,
                    relative_difference=relative_difference(analytic, numeric),
                )
            )
    return rows


def random_batch(
    layers: Sequence[int],
    output: str,
    cost: str,
    m: int,
    rng: np.random.Generator,
    pixels: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded inputs and targets that suit the output layer: targets real-valued for
    identity + quadratic (regression), one-hot otherwise. Inputs are N(0, 1), or uniform in
    [0, 1) like scaled pixels when ``pixels``."""
    X = rng.random((m, layers[0])) if pixels else rng.standard_normal((m, layers[0]))
    if (output, cost) == ("identity", "quadratic"):
        Y = rng.standard_normal((m, layers[-1]))
    else:
        Y = F.one_hot(rng.integers(0, layers[-1], size=m), layers[-1], dtype=np.float64)
    return X, Y


# --- every combination --------------------------------------------------------------------


def mixed_network() -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Layers and hidden activations of the net that mixes every hidden activation, one per
    hidden layer."""
    # Sigmoid (σ' ≤ 1/4) goes last: below a stack of shrinking factors the first layers'
    # gradients sink toward the round-off floor of the central difference (~1e-10 absolute
    # at ε = 1e-6), where the relative difference measures noise, not backprop.
    mixed = tuple(sorted(F.HIDDEN, key=lambda name: name == "sigmoid"))
    layers = (ALL_LAYERS[0], *(6 - i // 2 for i in range(len(mixed))), ALL_LAYERS[-1])
    return layers, mixed


def combinations() -> Iterator[tuple[str, tuple[int, ...], object, str, str]]:
    """(label, layers, activation, output, cost): every hidden activation × every valid
    (output, cost) pair on ``ALL_LAYERS``, then ``mixed_network`` with every pair."""
    for activation in F.HIDDEN:
        for output, cost in F.VALID_PAIRS:
            yield f"{activation} → {output}+{cost}", ALL_LAYERS, activation, output, cost
    layers, mixed = mixed_network()
    for output, cost in F.VALID_PAIRS:
        yield f"mixed {','.join(mixed)} → {output}+{cost}", layers, mixed, output, cost


def describe_all(eps: float, batch: int, seed: int) -> str:
    """What ``check_all`` checks, as the lines ``mlpcli gradcheck --all`` prints first."""
    lambdas = " and ".join(f"{lam:g}" for lam in ALL_LAMBDAS)
    return "\n".join([
        f"every hidden activation × every valid output+cost on {list(ALL_LAYERS)},",
        f"plus all hidden activations in one net on {list(mixed_network()[0])}",
        f"λ = {lambdas} (n = {ALL_N}); batch: {batch} seeded random rows; float64, eps {eps:g}, seed {seed}",
        "each line: the worst parameter array of one combination",
    ])


def check_all(
    eps: float = 1e-6,
    params: int = 50,
    batch: int = 8,
    seed: int = 0,
    lambdas: Sequence[float] = ALL_LAMBDAS,
    n: int = ALL_N,
) -> list[Row]:
    """``check_network`` for every combination and every λ in ``lambdas`` (with this n).

    Xavier weights, zero biases and N(0, 1) inputs keep about half of every layer's units
    active and no gradient array vanishing, so every array is checked well above the
    round-off floor (a layer of dead ReLUs makes the arrays below it ~1e-5 and their
    relative difference pure noise).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for label, layers, activation, output, cost in combinations():
        for lam in lambdas:
            net = Network.create(layers, activation, output, cost, "xavier", rng, np.float64)
            X, Y = random_batch(layers, output, cost, batch, rng)
            rows += check_network(
                net, X, Y, lam, n, rng, CheckOptions(eps, params, label=f"{label}, λ={lam:g}")
            )
    return rows


# --- a configured network -------------------------------------------------------------------

def check_config(
    cfg, make_batch: Callable, eps: float = 1e-6, params: int = 50, batch: int = 8, seed: int = 0
) -> tuple[list[Row], list[str]]:
    """``check_network`` on the network a config describes, freshly initialized with ``seed``,
    in float64 whatever ``training.dtype`` says, on the batch ``make_batch(cfg, batch, rng)``
    returns as (X, Y, n, a line saying where it came from) — the data layer's
    ``gradcheck_batch``, which reads the configured training split. Returns the rows (one per
    parameter array, labelled by layer) and lines that say what was checked."""
    rng = np.random.default_rng(seed)
    model = cfg.model
    net = Network.from_config(cfg, rng, dtype=np.float64)
    X, Y, n, where = make_batch(cfg, batch, rng)
    lam = cfg.regularization.l2
    activations = ",".join(dict.fromkeys(net.activations)) or "no hidden layer"
    notes = [
        f"network: {' → '.join(map(str, net.layers))}, {activations} → "
        f"{net.output}+{net.cost}, init {model.init}, λ = {lam:g}, n = {n}",
        f"batch: {where}",
        f"float64, eps {eps:g}, up to {params} entries per parameter array, seed {seed}",
    ]
    rates = dropout_rates(model.dropout, net.L - 1)
    masks = dropout_masks(net.layers, rates, len(X), rng, np.float64)
    if masks is not None:
        notes.append(
            "dropout: checked with ONE fixed mask per hidden layer (rates "
            + ", ".join(f"{r:g}" for r in rates)
            + "), so J is a deterministic function of the weights"
        )
    return check_network(net, X, Y, lam, n, rng, CheckOptions(eps, params, masks=masks)), notes


# --- reporting ----------------------------------------------------------------------------


def worst_per_label(rows: Sequence[Row]) -> list[Row]:
    """One row per label: its worst array, with the entries checked summed over all arrays
    and the max abs error taken over all arrays."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.label, []).append(row)
    summary = []
    for label, group in groups.items():
        worst = max(group, key=lambda r: r.relative_difference)
        summary.append(
            Row(
                label=label,
                parameter=worst.parameter,
                checked=sum(r.checked for r in group),
                size=sum(r.size for r in group),
                max_abs_error=max(r.max_abs_error for r in group),
                relative_difference=worst.relative_difference,
            )
        )
    return summary


def format_table(rows: Sequence[Row], label_header: str, tol: float) -> str:
    """A plain-text table, one line per row; rows over ``tol`` are marked FAIL."""
    header = (label_header, "parameter", "checked", "max abs error", "relative difference", "")
    lines = [
        (
            row.label,
            row.parameter,
            f"{row.checked}/{row.size}",
            f"{row.max_abs_error:.1e}",
            f"{row.relative_difference:.1e}",
            "" if row.passed(tol) else "FAIL",
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()
        for cells in [header, *lines]
    )


def verdict(rows: Sequence[Row], tol: float) -> tuple[bool, str]:
    """(passed, the last line to print), naming the worst offender when it failed."""
    if not rows:
        return True, f"gradcheck passed: nothing to check (tol {tol:g})"
    worst = max(rows, key=lambda r: r.relative_difference)
    failed = [r for r in rows if not r.passed(tol)]
    if not failed:
        return True, (
            f"gradcheck passed: worst relative difference {worst.relative_difference:.1e} "
            f"(tol {tol:g})"
        )
    where = worst.parameter if worst.label.isdigit() else f"{worst.parameter} of {worst.label}"
    return False, (
        f"gradcheck FAILED: {len(failed)} of {len(rows)} parameter arrays over tol {tol:g}; "
        f"worst {where} with relative difference {worst.relative_difference:.1e}"
    )
