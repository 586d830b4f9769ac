"""A training run: the config and its schema, the epoch loop, run folders and checkpoints."""
