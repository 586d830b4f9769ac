"""The equations page's generated parts: each equation as LaTeX beside the source lines that
compute it, read from ``mlpcli/nn/*.py`` when the site is built, and what ``mlpcli gradcheck``
prints when one of the derivations' typos is planted in the backward pass.

An equation names its lines by a piece of text that must occur on exactly one line of the file
(mostly the equation comment the line already carries, e.g. ``# Δ[L] = ∂C/∂Z[L]``), or by a
function (``def sigmoid``). The snippet is that line's whole statement (with the comment lines
above it), so a changed line changes the page, and a line that lost its comment fails the
build instead of showing something else.
"""

from __future__ import annotations

import ast
import html
import io
import os
import subprocess
import sys
import tempfile
import textwrap
import tokenize
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NN = "mlpcli/nn"


@dataclass(frozen=True)
class Equation:
    latex: str
    lines: tuple[tuple[str, str], ...]  # (file under mlpcli/nn, locator text or "def NAME")
    name: str = ""


EQUATIONS: dict[str, Equation] = {
    "input": Equation(r"X = \tfrac{1}{255}\,X_{\text{uint8}} \in [0, 1]^{m \times n_0}",
                      (("network.py", "def scale01"),), "the only preprocessing"),
    "forward-affine": Equation(
        r"Z^{[l]} = A^{[l-1]}\,W^{[l]\top} + \mathbf{1}\,b^{[l]\top}",
        (("network.py", "# z[l] = W[l] a[l-1] + b[l]"),), "weighted input; one example as a column: z = W a + b"),
    "forward-activation": Equation(r"A^{[l]} = g_l\bigl(Z^{[l]}\bigr), \qquad A^{[0]} = X",
                                   (("network.py", "# a[l] = g_l(z[l])"),), "activation"),
    "cost-data": Equation(r"C = \frac{1}{m}\sum_{i=1}^{m} c\bigl(a^{[L]}_i, y_i\bigr)",
                          (("network.py", "return float(F.COSTS[self.cost].fn(AL, Y).mean("),), "data cost"),
    "cost-l2": Equation(r"J = C + \frac{\lambda}{2n}\sum_{l=1}^{L}\bigl\lVert W^{[l]}\bigr\rVert_F^2",
                        (("network.py", "return lam / (2 * n) * sum("),), "L2 term"),
    "cost-quadratic": Equation(
        r"c = \sum_j (y_j - a_j)^2, \qquad \frac{\partial c}{\partial a_j} = 2\,(a_j - y_j)",
        (("functions.py", 'Cost("quadratic"'),), "quadratic"),
    "cost-cross-entropy": Equation(
        r"c = -\sum_j \bigl[y_j \ln a_j + (1 - y_j)\ln(1 - a_j)\bigr], \qquad "
        r"\frac{\partial c}{\partial a_j} = \frac{a_j - y_j}{a_j(1 - a_j)}",
        (("functions.py", "# c = −Σ_j [y ln a + (1 − y) ln(1 − a)]"),), "cross-entropy"),
    "cost-log-likelihood": Equation(
        r"c = -\ln a_y = -\sum_j y_j \ln a_j, \qquad \frac{\partial c}{\partial a_j} = -\frac{y_j}{a_j}",
        (("functions.py", "# c = −ln a_y"),), "log-likelihood"),
    "output-sigmoid": Equation(r"\sigma(z) = \frac{1}{1 + e^{-z}} = \tfrac12\bigl(1 + \tanh\tfrac{z}{2}\bigr)",
                               (("functions.py", "def sigmoid"),), "sigmoid"),
    "output-softmax": Equation(r"a_j = \frac{e^{z_j - \max_k z_k}}{\sum_i e^{z_i - \max_k z_k}}",
                               (("functions.py", "def softmax"),), "softmax"),
    "vjp-sigmoid": Equation(r"\Delta = G \odot A \odot (1 - A), \qquad G = \partial J/\partial A^{[L]}",
                            (("functions.py", 'Output("sigmoid", sigmoid,'),), "sigmoid output's error"),
    "vjp-softmax": Equation(
        r"\frac{\partial a_j}{\partial z_i} = a_j(\delta_{ij} - a_i) \;\Rightarrow\; "
        r"\Delta_i = \sum_j G_j \frac{\partial a_j}{\partial z_i} = a_i\Bigl(G_i - \sum_j G_j a_j\Bigr)",
        (("functions.py", "# softmax: ∂a_j/∂z_i"),), "softmax output's error"),
    "BP1": Equation(
        r"\Delta^{[L]} = \frac{\partial J}{\partial Z^{[L]}} = "
        r"\operatorname{vjp}_{g_L}\Bigl(A^{[L]},\ \tfrac{1}{m}\,\nabla_{A^{[L]}}\, c\Bigr)"
        r"\\ \small\text{Nielsen: } \delta^L = \nabla_a C \odot \sigma'(z^L)",
        (("network.py", "# Δ[L] = ∂C/∂Z[L]"), ("functions.py", "# ∂J/∂A[L]"),
         ("functions.py", "D = OUTPUTS[output_name].vjp(A, G)")), "BP1: the output error"),
    "BP1-matched": Equation(r"\Delta^{[L]} = \tfrac{1}{m}\bigl(A^{[L]} - Y\bigr)",
                            (("functions.py", "# Δ = (A − Y)/m"), ("functions.py", "return np.divide(D, m, out=D)")),
                            "BP1 for sigmoid + cross-entropy and softmax + log-likelihood"),
    "BP2": Equation(
        r"\Delta^{[l-1]} = \bigl(\Delta^{[l]}\,W^{[l]}\bigr) \odot g_{l-1}'\bigl(Z^{[l-1]}\bigr)"
        r"\\ \small\text{Nielsen: } \delta^l = \bigl((w^{l+1})^{\top}\delta^{l+1}\bigr) \odot \sigma'(z^l)",
        (("network.py", "# Δ[l-1] = (Δ[l] W[l])"), ("network.py", "g.times_derivative(delta, A[l - 1]"),
         ("functions.py", "return np.multiply(D, self.derivative(A, out=tmp), out=D)")),
        "BP2: the error one layer down"),
    "BP3": Equation(r"\frac{\partial J}{\partial b^{[l]}} = \sum_{i=1}^{m} \Delta^{[l]}_{i,:} = \mathbf{1}^{\top}\Delta^{[l]}",
                    (("network.py", "# ∂C/∂b[l] = Σ_rows Δ[l]"),), "BP3: biases"),
    "BP4": Equation(r"\frac{\partial C}{\partial W^{[l]}} = \Delta^{[l]\top} A^{[l-1]}",
                    (("network.py", "# ∂C/∂W[l] = Δ[l]ᵀ A[l-1]"),), "BP4: weights"),
    "l2-gradient": Equation(
        r"\frac{\partial J}{\partial W^{[l]}} = \Delta^{[l]\top} A^{[l-1]} + \frac{\lambda}{n}\,W^{[l]}",
        (("network.py", "+ (λ/n) W[l]   (L2"),), "the L2 term's gradient"),
    "l2-sgd": Equation(
        r"w \leftarrow \Bigl(1 - \frac{\eta\lambda}{n}\Bigr) w - \eta\,\frac{\partial C}{\partial w}",
        (("optim.py", "np.multiply(p, self.dtype.type(1) - lr * decay, out=p)"),), "sgd with L2 (Nielsen ch. 3)"),
    "ema-decay": Equation(
        r"d_t = \min\Bigl(\text{ema},\ \frac{1 + t}{10 + t}\Bigr) \quad\text{(the decay per step; applied as } d_t^{\,4}"
        r"\text{ at every 4th step } t\text{)}",
        (("optim.py", "keep = self.dtype.type(1 - min(self.ema, (1 + steps) / (10 + steps)) ** EMA_EVERY)"),),
        "the decay"),
    "ema-update": Equation(
        r"\bar\theta \leftarrow d_t^{\,4}\,\bar\theta + \bigl(1 - d_t^{\,4}\bigr)\,\theta "
        r"= \bar\theta - \bigl(1 - d_t^{\,4}\bigr)\bigl(\bar\theta - \theta\bigr)",
        (("optim.py", "np.subtract(average, np.multiply(np.subtract(average, p, out=t), keep, out=t), out=average)"),),
        "the average"),
    "d-sigmoid": Equation(r"\sigma'(z) = \sigma(z)\bigl(1 - \sigma(z)\bigr) = a(1 - a)",
                          (("functions.py", "def sigmoid_derivative"),), "σ′"),
    "d-tanh": Equation(r"\tanh'(z) = 1 - \tanh^2(z) = 1 - a^2", (("functions.py", "def tanh_derivative"),), "tanh′"),
    "d-relu": Equation(r"\operatorname{relu}'(z) = [z > 0] = [a > 0]",
                       (("functions.py", "def relu_derivative"),), "relu′"),
    "dropout-mask": Equation(
        r"M^{[l]}_{ij} = \begin{cases} 1/p & \text{kept, with probability } p = 1 - \text{rate} \\ "
        r"0 & \text{dropped} \end{cases} \qquad \mathbb{E}\bigl[M^{[l]}_{ij}\bigr] = 1",
        (("network.py", "kept = rng.random((m, layers[l]), dtype=dtype) < keep"),
         ("network.py", "masks[l] = kept.astype(dtype) * np.asarray(1 / keep, dtype=dtype)")), "the mask"),
    "dropout-forward": Equation(r"A^{[l]} = g_l\bigl(Z^{[l]}\bigr) \odot M^{[l]}",
                                (("network.py", "# a[l] ⊙ m[l]"),), "forward"),
    "dropout-backward": Equation(
        r"\Delta^{[l-1]} = \bigl(\Delta^{[l]} W^{[l]}\bigr) \odot M^{[l-1]} \odot g_{l-1}'\bigl(Z^{[l-1]}\bigr)",
        (("network.py", "np.multiply(delta, M, out=delta)"),
         ("network.py", "g.times_derivative(delta, g.fn(Z[l - 1])")), "backward"),
    "gradcheck-central": Equation(
        r"n_i = \frac{J(\theta + \varepsilon e_i) - J(\theta - \varepsilon e_i)}{2\varepsilon}",
        (("gradcheck.py", "grad[k] = np.sum(np.subtract(plus, minus)) / (2 * eps)"),), "central difference"),
    "gradcheck-relative": Equation(
        r"\frac{\lVert a - n\rVert_2}{\lVert a\rVert_2 + \lVert n\rVert_2} \le \text{tol}",
        (("gradcheck.py", "return float(np.linalg.norm(a - n) / denominator)"),), "pass criterion"),
}


# --- finding the lines ----------------------------------------------------------------------------


def _depths(source: str) -> list[int]:
    """Bracket depth at the start of each line (index 0 = line 1), from Python's tokenizer."""
    lines = source.splitlines()
    depth, at = 0, [0] * (len(lines) + 2)
    row = 1
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        while row < token.start[0]:
            row += 1
            at[row - 1] = depth
        if token.type == tokenize.OP and token.string in "([{":
            depth += 1
        elif token.type == tokenize.OP and token.string in ")]}":
            depth -= 1
    return at


def _function(tree: ast.AST, name: str) -> tuple[int, int, int]:
    """(the def line, the last line, the first line after the docstring) of ``def name``."""
    found = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name]
    if len(found) != 1:
        raise LookupError(f"def {name}: found {len(found)} definitions")
    node = found[0]
    body = node.body[1:] if ast.get_docstring(node) is not None and len(node.body) > 1 else node.body
    return node.lineno, node.end_lineno, body[0].lineno


def locate(path: Path, locator: str) -> list[tuple[int, str]]:
    """The (line number, text) pairs a locator names in ``path``: a function without its
    docstring, or the comment lines and whole statement of the one line holding the text."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    if locator.startswith("def "):
        first, last, body = _function(ast.parse(source), locator[4:])
        keep = [first] + list(range(body, last + 1))
        return [(n, lines[n - 1]) for n in keep]
    hits = [i for i, line in enumerate(lines) if locator in line]
    if len(hits) != 1:
        raise LookupError(f"{path.name}: {locator!r} is on {len(hits)} lines, not exactly one")
    start = end = hits[0]
    while lines[end].lstrip().startswith("#"):  # a comment above its statement
        end += 1
    depth = _depths(source)
    while end + 1 < len(lines) and depth[end + 1] > depth[start]:
        end += 1
    return [(n + 1, lines[n]) for n in range(start, end + 1)]


def snippet(file: str, locator: str) -> str:
    """HTML: the file and line, then the highlighted lines (dedented, with their numbers)."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    found = locate(ROOT / NN / file, locator)
    code = textwrap.dedent("\n".join(text for _, text in found))
    first = found[0][0]
    where = f"{first}" if len(found) == 1 else f"{first}–{found[-1][0]}"
    gap = any(b[0] - a[0] > 1 for a, b in zip(found, found[1:]))
    numbers = "" if gap else f' data-first-line="{first}"'
    rendered = highlight(code, PythonLexer(), HtmlFormatter(cssclass="highlight", wrapcode=True))
    return (f'<div class="equation-code"{numbers}><p class="equation-source"><code>{NN}/{file}</code>, '
            f"line{'s' if len(found) > 1 else ''} {where}</p>{rendered.strip()}</div>")


def equation_html(key: str) -> str:
    """One equation beside its code, as one raw HTML block (no blank lines inside)."""
    eq = EQUATIONS[key]
    name = f'<p class="equation-name">{html.escape(eq.name)}</p>' if eq.name else ""
    latex = rf"\begin{{gathered}}{eq.latex}\end{{gathered}}" if r"\\" in eq.latex else eq.latex
    code = "".join(snippet(file, locator) for file, locator in eq.lines)
    block = (f'<div class="equation" id="eq-{key}"><div class="equation-math">'
             f'<div class="arithmatex">\\[{html.escape(latex)}\\]</div>{name}</div>'
             f'<div class="equation-lines">{code}</div></div>')
    return "\n".join(line for line in block.splitlines() if line.strip()) + "\n"


# --- gradcheck with a planted typo ----------------------------------------------------------------

# Each plants one of the derivations' typos in the real code, in a child process, and then runs
# the real CLI; the page shows what it printed.
PLANTS = {
    "sigma": '''
import numpy as np
from mlpcli.nn import functions as F

def sigma_in_place_of_sigma_prime(A, out=None):  # the typo: σ(z), where σ'(z) = a(1 − a) belongs
    if out is None:
        return A.copy()
    np.copyto(out, A)
    return out

F.HIDDEN["sigmoid"] = F.Activation("sigmoid", F.sigmoid, sigma_in_place_of_sigma_prime)
''',
    "weights": '''
from mlpcli.nn.network import Network

backward = Network.backward

def own_weights_in_place_of_next(self, *args, **kwargs):
    # the typo: Δ[l-1] from W[l-1] where W[l] belongs (W^l for W^(l+1) in the column form),
    # wherever the shapes let it through unnoticed
    W = self.W
    self.W = [None] + [p if p is not None and p.shape == w.shape else w for p, w in zip(W[:-1], W[1:])]
    try:
        return backward(self, *args, **kwargs)
    finally:
        self.W = W

Network.backward = own_weights_in_place_of_next
''',
    "none": "",
}
RUN_CLI = '''
import sys
from mlpcli.cli import main
sys.argv = ["mlpcli"] + sys.argv[1:]
main()
'''


def planted_gradcheck(plant: str, args: list[str]) -> str:
    """``$ mlpcli gradcheck ARGS`` and what it printed, with ``PLANTS[plant]`` in effect, run in
    an empty folder (so the batch is seeded random pixels, the same everywhere)."""
    env = {**os.environ, "MLPCLI_DATA_DIR": "data", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run([sys.executable, "-c", PLANTS[plant] + RUN_CLI, "gradcheck", *args], cwd=folder,
                              env=env, capture_output=True, text=True, timeout=300)
    shown = " ".join(a if "[" not in a else f"'{a}'" for a in args)
    return f"$ mlpcli gradcheck {shown}\n{done.stdout}{done.stderr}(exit status {done.returncode})"


def float_precision_rows(eps_values=(1e-6, 1e-4, 1e-2)) -> list[tuple[str, float, float]]:
    """(dtype, ε, relative difference of W1) for a CORRECT backprop, float32 against float64:
    the same small sigmoid network and batch, only the precision differs."""
    import numpy as np

    from mlpcli.nn.functions import one_hot
    from mlpcli.nn.gradcheck import numerical_gradient, relative_difference
    from mlpcli.nn.network import Network

    rng = np.random.default_rng(0)
    X, y = rng.random((8, 7)), rng.integers(0, 3, 8)
    rows = []
    for dtype in (np.float64, np.float32):
        net = Network.create((7, 5, 3), "sigmoid", "softmax", "log_likelihood", "nielsen",
                             np.random.default_rng(0), dtype)
        Xd, Y = X.astype(dtype), one_hot(y, 3, dtype)
        analytic = net.gradients(Xd, Y)[0][1].ravel()
        for eps in eps_values:
            numeric = numerical_gradient(lambda: net.objective(Xd, Y), net.W[1], np.arange(net.W[1].size), eps)
            rows.append((np.dtype(dtype).name, eps, relative_difference(analytic, numeric)))
    return rows


def float_precision_table() -> str:
    rows = "\n".join(f"| {dtype} | {eps:g} | {diff:.1e} |" for dtype, eps, diff in float_precision_rows())
    return "| dtype | ε | relative difference of W1 (a correct backprop) |\n| --- | --- | --- |\n" + rows + "\n"
