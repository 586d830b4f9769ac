"""``mlpcli page``: one self-contained HTML file to draw on and look inside a checkpoint.

The page needs no server and no network: its template (``page_template.html``, with the
JavaScript of ``page.js`` inlined) holds everything, and a ``Content-Security-Policy`` forbids
any fetch. The data travel in one JSON ``<script type="application/json">`` block:

* the parameters W[l], b[l] as base64 little-endian float32 (W[l] row-major, shape
  (n_l, n_{l-1}), as in ``network.py``), with each layer's activation;
* up to ``--examples N`` test images (base64 uint8, 784 each) with their labels — the most
  confident mistakes first (at most half of them), then the first test images;
* the header: data set, layers, test accuracy (computed here, through ``infer``), and the
  preprocessing ``predict`` would use (``images.resolve_mode``).

The JavaScript repeats, for the page, what Python does: ``images.to_ink`` and
``preprocess_digits``/``preprocess_none`` on the drawing, ``network.scale01`` and the forward
pass of ``infer.probabilities``. ``window.mlpcli`` exposes ``classify(pixels)``, ``input()``
and a few helpers for tests and teachers' scripts (see the README).
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from mlpcli import __version__
from mlpcli.errors import ConfigError, MlpcliError

DEFAULT_EXAMPLES = 50
DATA_TOKEN = "/*__MLPCLI_PAGE_DATA__*/"
SCRIPT_TOKEN = "/*__MLPCLI_PAGE_SCRIPT__*/"
TITLE_TOKEN = "__MLPCLI_PAGE_TITLE__"


class PageError(MlpcliError):
    """The page cannot be written where it was asked to go."""


@dataclass(frozen=True)
class TestSet:
    """The test split the page shows examples of (with its image shape and the class names
    ``data.names_for_network`` gives), or why there is none (``note``)."""

    X: np.ndarray | None
    y: np.ndarray | None
    note: str | None = None
    shape: tuple[int, int] | None = None
    names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PageResult:
    path: Path
    size: int  # bytes
    examples: int
    accuracy: float | None
    note: str | None  # why the page has no examples, if it has none


# --- checks that run before any work ------------------------------------------------------------


def check_output(path: str | Path) -> Path:
    """Fail now, writing nothing, when ``path`` cannot be written: it is a folder, its folder
    does not exist (or is a file), or the folder is not writable."""
    path = Path(path)
    what_to_do = "give --out a file name in a folder you can write to"
    if path.is_dir():
        raise PageError(f"{path} is a folder, not a file name", what_to_do)
    folder = path.parent
    if not folder.is_dir():
        where = "is a file" if folder.exists() else "does not exist"
        raise PageError(f"cannot write {path}: the folder {folder} {where}", what_to_do)
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".mlpcli-probe-"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise PageError(f"cannot write {path}: {folder} is not writable ({reason})", what_to_do) from None
    return path


def check_examples(examples: int | None, n_test: int | None) -> int:
    """The number of examples to embed: ``examples`` as asked (0..n_test), or the default
    (50, fewer when the test set is smaller). ``n_test`` None: there is no test set."""
    if examples is not None and examples < 0:
        raise ConfigError(f"--examples {examples} is negative", "give a number of test images, 0 for none")
    if n_test is None:
        return 0
    if examples is None:
        return min(DEFAULT_EXAMPLES, n_test)
    if examples > n_test:
        raise ConfigError(f"--examples {examples} is more than the test set's {n_test} images",
                          f"give at most {n_test}")
    return examples


# --- the data the page embeds ---------------------------------------------------------------------


def load_test_set(ckpt) -> TestSet:
    """The checkpoint's test split if it is on disk and fits the network — nothing is
    downloaded: a page is written offline. Otherwise a TestSet with no images and a ``note``
    saying why."""
    from mlpcli.data import splits as data
    from mlpcli.data.fetch import REGISTRY, load_splits

    cfg = ckpt.config.data
    if cfg.path is None and cfg.dataset in REGISTRY:  # where load_splits would download
        folder = data.dataset_folder(cfg)
        missing = [name for name in data.FILES if data.find_file(folder, name) is None]
        if missing:
            return TestSet(None, None, f"the data set {cfg.dataset} is not on disk ({folder}: "
                                       f"missing {', '.join(missing)})")
    try:
        splits = load_splits(cfg, quiet=True, need=("test",))
        names = data.names_for_network(splits, ckpt.network.layers, ckpt.meta.get("class_names"))
    except MlpcliError as error:
        return TestSet(None, None, f"the test set of {cfg.dataset} cannot be used ({error.message})")
    shape = tuple(getattr(splits, "image_shape", None) or image_shape(ckpt.network.layers[0]))
    return TestSet(splits.X_test, splits.y_test, None, shape, tuple(names))


def image_shape(n_inputs: int) -> tuple[int, int]:
    """(h, w) of a network's flat input: square when it can be (28×28 for 784), else one row."""
    from mlpcli.data.sources import image_shape as shape_of

    return tuple(shape_of(int(n_inputs)))


def choose_examples(y: np.ndarray, probs: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """(indices, k): n test images to show — the k ≤ n/2 most confident mistakes first, the
    most confident first, then the first test images not already chosen, in order."""
    from mlpcli.inspection.plot import most_confident_mistakes

    mistakes = most_confident_mistakes(y, probs, n // 2)
    rest = np.setdiff1d(np.arange(len(y)), mistakes, assume_unique=True)[: n - len(mistakes)]
    return np.concatenate([mistakes, rest]).astype(np.int64), len(mistakes)


def encode(array: np.ndarray, dtype: str) -> str:
    """base64 of the array's bytes as ``dtype`` ('<f4': little-endian float32; 'u1': uint8)."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def decode(text: str, dtype: str) -> np.ndarray:
    """The inverse of ``encode`` (tests read pages back with it)."""
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


def network_data(network) -> dict:
    """The layers, their functions and float32 parameters, as the page's JavaScript reads them."""
    return {
        "layers": [int(n) for n in network.layers],
        "activations": list(network.activations),
        "output": network.output,
        "W": [encode(w, "<f4") for w in network.W[1:]],
        "b": [encode(b, "<f4") for b in network.b[1:]],
    }


def examples_data(network, test: TestSet, n: int | None) -> tuple[dict, float | None]:
    """(the page's "examples" entry, the test accuracy): n chosen test images with labels."""
    from mlpcli.nn.infer import probabilities

    count = check_examples(n, None if test.X is None else len(test.X))
    if test.X is None:
        return {"pixels": "", "indices": [], "labels": [], "mistakes": 0, "nTest": 0, "note": test.note}, None
    probs = probabilities(network, test.X)
    accuracy = float(np.mean(probs.argmax(axis=1) == test.y))
    indices, k = choose_examples(test.y, probs, count)
    entry = {"pixels": encode(test.X[indices], "u1"), "indices": indices.tolist(),
             "labels": [int(v) for v in test.y[indices]], "mistakes": k, "nTest": int(len(test.X)), "note": None}
    return entry, accuracy


def page_data(ckpt, mode: str, test: TestSet, examples: dict, accuracy: float | None) -> dict:
    """Everything the page shows, as one JSON-ready dict. Drawing is for 28×28 networks, and
    not offered for Fashion-MNIST unless ``mode`` is digits."""
    from mlpcli.data.images import SIDE
    from mlpcli.inspection.predict import class_names_for

    dataset = ckpt.config.data.dataset
    n_in, k = ckpt.network.layers[0], ckpt.network.layers[-1]
    shape = test.shape or image_shape(n_in)
    names = test.names or class_names_for(dataset, k, ckpt.meta.get("class_names"))
    return {
        "mlpcliVersion": __version__,
        "checkpoint": Path(ckpt.path).name,
        "epoch": ckpt.epoch,
        "dataset": str(ckpt.meta.get("dataset") or dataset),
        "classNames": list(names),
        "imageShape": [int(shape[0]), int(shape[1])],
        "preprocess": mode,
        "drawing": tuple(shape) == (SIDE, SIDE) and (dataset != "fashion-mnist" or mode == "digits"),
        "accuracy": accuracy,
        "network": network_data(ckpt.network),
        "examples": examples,
    }


# --- the HTML -------------------------------------------------------------------------------------


def _asset(name: str) -> str:
    return resources.files("mlpcli.inspection").joinpath(name).read_text(encoding="utf-8")


def render(data: dict) -> str:
    """The page: the template with the script and the JSON data filled in."""
    # "</" inside a <script> block would end it; JSON allows the escaped "<\/" in strings.
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=True).replace("</", "<\\/")
    layers = "-".join(str(n) for n in data["network"]["layers"])
    title = html.escape(f"mlpcli — {data['dataset']} {layers} ({data['checkpoint']})")
    script = _asset("page.js")
    if "</script" in script.lower():  # pragma: no cover - a property of the shipped file
        raise RuntimeError("page.js must not contain </script>")
    text = _asset("page_template.html")
    return text.replace(TITLE_TOKEN, title).replace(SCRIPT_TOKEN, script).replace(DATA_TOKEN, payload)


def read_page_data(text: str) -> dict:
    """The JSON data block of a written page (for tests and tools)."""
    start = text.index('<script type="application/json" id="mlpcli-data">') + len(
        '<script type="application/json" id="mlpcli-data">')
    return json.loads(text[start : text.index("</script>", start)])


def write_page(checkpoint: str | Path, out: str | Path, examples: int | None = None,
               mode: str = "auto") -> PageResult:
    """Write the page for ``checkpoint`` to ``out`` atomically (never half a file).

    ``examples``: how many test images to embed (None: 50, or the whole test set if smaller);
    ``mode``: the drawing's preprocessing, ``auto`` choosing as ``mlpcli predict`` does.
    A data set that is not on disk gives a page without examples and accuracy (``note``)."""
    from mlpcli.run import checkpoint as ckpt_io
    from mlpcli.data.images import resolve_mode
    from mlpcli.files import atomic_write

    check_examples(examples, None)
    ckpt = ckpt_io.load(checkpoint)
    out = check_output(out)
    used = resolve_mode(mode, ckpt.config.data.dataset)
    test = load_test_set(ckpt)
    entry, accuracy = examples_data(ckpt.network, test, examples)
    body = render(page_data(ckpt, used, test, entry, accuracy)).encode("utf-8")
    try:
        atomic_write(out, lambda f: f.write(body))
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise PageError(f"cannot write {out} ({reason}); nothing was written", "check the folder and free space") from None
    return PageResult(out, len(body), len(entry["indices"]), accuracy, test.note)
