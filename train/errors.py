"""Errors the trainer raises for bad input; the CLI prints them as one line and exits 2."""


class TrainError(Exception):
    """A user-facing problem: bad config, data that does not fit it, a bad checkpoint."""


class ConfigError(TrainError):
    """An invalid config: unknown key, wrong type, inconsistent values."""


class CheckpointError(TrainError):
    """A checkpoint that cannot be read, or that belongs to another model."""


class NonFiniteLossError(TrainError):
    """The loss became NaN or infinite; training stopped."""
