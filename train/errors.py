"""Errors the trainer raises for bad input; the CLI prints them as one line and exits 2."""


class TrainError(Exception):
    """A user-facing problem: bad config, data that does not fit it, a bad checkpoint."""


class ConfigError(TrainError):
    """An invalid config: unknown key, wrong type, inconsistent values."""


class CheckpointError(TrainError):
    """A checkpoint that cannot be read, or that belongs to another model."""


class NonFiniteLossError(TrainError):
    """The loss became NaN or infinite; training stopped."""


def error_summary(error: BaseException) -> str:
    """The first line of an error's text, for one-line messages.

    torch's weights-only loader explains how to load the file *unsafely*; that advice is
    never passed on (checkpoints must stay tensors-only), so such a line is dropped.
    """
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return "" if "weights_only" in first or "Weights only load failed" in first else first
