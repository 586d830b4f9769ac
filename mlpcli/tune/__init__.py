"""Hyperparameter search over mlpcli's config (``mlpcli tune``), on Optuna.

The trainer does not know Optuna. A trial is an ordinary run: its config is the base config
with the sampled values layered on top (``space``: the same rules as ``--set``), it trains into
its own run folder under the study folder (``trial``), and a progress object at the edge reports
the validation metric after each epoch and, when the pruner says so, ends the run cleanly.
The study lives in a database (``storage``: SQLite by default, a server for many machines);
``study`` runs a worker's loop, ``workers`` starts several on one machine, ``report`` draws
the table, the best config and the picture. Optuna is an optional extra, imported only when a
study runs: nothing here is imported by the rest of mlpcli.
"""

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
METRICS = ("val_accuracy", "val_loss")  # the validation metric a study optimizes
STORAGE_ENV = "MLPCLI_TUNE_STORAGE"
HEARTBEAT = 30  # seconds between a running trial's heartbeats (default)
