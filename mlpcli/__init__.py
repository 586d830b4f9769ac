"""mlpcli: multilayer perceptrons on MNIST-format data, backpropagation by hand in NumPy.

The small public API (the CLI is built on exactly these)::

    import mlpcli
    config = mlpcli.load_config("fashion-mnist", ["training.epochs=5"])  # preset or YAML path
    splits = mlpcli.load_splits(config.data)        # uint8 train / validation / test arrays
    history = mlpcli.fit(config, splits, "runs/fm") # trains into a run folder
    ckpt = mlpcli.load_checkpoint(history.best_checkpoint)
    labels = mlpcli.predict_labels(ckpt.network, splits.X_test)    # uint8 pixels in
    result = mlpcli.score(ckpt.network, splits.X_test, splits.y_test)  # accuracy, loss, …

``fit`` is ``mlpcli.train.fit`` (``mlpcli.start_run`` = ``mlpcli.train.start`` starts a resumed
or fine-tuned run: ``mlpcli.fit(mlpcli.start_run(None, resume="runs/fm/last.npz"), splits)``);
``score`` is ``mlpcli.evaluate.evaluate``, under a name that does not hide that submodule. Names load lazily, so ``import mlpcli`` stays cheap.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "load_config": ("mlpcli.config", "load_config"),
    "Config": ("mlpcli.config", "Config"),
    "load_splits": ("mlpcli.fetch", "load_splits"),
    "Splits": ("mlpcli.data", "Splits"),
    "fit": ("mlpcli.train", "fit"),
    "start_run": ("mlpcli.train", "start"),
    "History": ("mlpcli.train", "History"),
    "load_checkpoint": ("mlpcli.checkpoint", "load"),
    "save_checkpoint": ("mlpcli.checkpoint", "save"),
    "Checkpoint": ("mlpcli.checkpoint", "Checkpoint"),
    "score": ("mlpcli.evaluate", "evaluate"),
    "EvalResult": ("mlpcli.evaluate", "EvalResult"),
    "predict_labels": ("mlpcli.infer", "labels"),
    "predict_probabilities": ("mlpcli.infer", "outputs"),
    "Network": ("mlpcli.network", "Network"),
    "scale01": ("mlpcli.network", "scale01"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        module, attribute = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mlpcli' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
