"""mlpcli: multilayer perceptrons on MNIST-format data, backpropagation by hand in NumPy.

The small public API (the CLI is built on exactly these)::

    import mlpcli
    config = mlpcli.load_config("fashion-mnist", ["training.epochs=5"])  # preset or YAML path
    splits = mlpcli.load_splits(config.data)        # uint8 train / validation / test arrays
    history = mlpcli.fit(config, splits, "runs/fm") # trains into a run folder
    ckpt = mlpcli.load_checkpoint(history.best_checkpoint)
    labels = mlpcli.predict_labels(ckpt.network, splits.X_test)    # uint8 pixels in
    result = mlpcli.score(ckpt.network, splits.X_test, splits.y_test)  # accuracy, loss, …

``fit`` is ``mlpcli.run.train.fit`` (``mlpcli.start_run`` = ``mlpcli.run.train.start`` starts a resumed
or fine-tuned run: ``mlpcli.fit(mlpcli.start_run(None, resume="runs/fm/last.npz"), splits)``);
``score`` is ``mlpcli.nn.evaluate.evaluate``, under a name that does not hide that submodule. Names load lazily, so ``import mlpcli`` stays cheap.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "load_config": ("mlpcli.run.config", "load_config"),
    "Config": ("mlpcli.run.config", "Config"),
    "load_splits": ("mlpcli.data.fetch", "load_splits"),
    "Splits": ("mlpcli.data.splits", "Splits"),
    "fit": ("mlpcli.run.train", "fit"),
    "start_run": ("mlpcli.run.train", "start"),
    "History": ("mlpcli.run.train", "History"),
    "load_checkpoint": ("mlpcli.run.checkpoint", "load"),
    "save_checkpoint": ("mlpcli.run.checkpoint", "save"),
    "Checkpoint": ("mlpcli.run.checkpoint", "Checkpoint"),
    "score": ("mlpcli.nn.evaluate", "evaluate"),
    "EvalResult": ("mlpcli.nn.evaluate", "EvalResult"),
    "predict_labels": ("mlpcli.nn.infer", "labels"),
    "predict_probabilities": ("mlpcli.nn.infer", "outputs"),
    "Network": ("mlpcli.nn.network", "Network"),
    "scale01": ("mlpcli.nn.network", "scale01"),
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
