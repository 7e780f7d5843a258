"""Errors raised while loading or running a model, worded for the command line."""

from __future__ import annotations


class ModelError(ValueError):
    """A model that cannot be used: missing, unsupported, or needing remote code."""


class BatchTooLargeError(RuntimeError):
    """The accelerator (or the CPU's memory) ran out of memory on one batch."""

    def __init__(self, batch_size: int, where: str):
        super().__init__(
            f"out of memory on a batch of {batch_size} image(s) ({where}); lower --batch-size "
            f"(it is {batch_size}). Finished shards are kept: re-run the same command to go on.")
        self.batch_size = batch_size


class ModelRunError(RuntimeError):
    """The model call failed on a batch: a problem of the model, the device or the code,
    not of one sample's data, so it would fail every sample alike and stops the run."""

    def __init__(self, where: str, error: BaseException):
        text = str(error).strip().splitlines()
        detail = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
        super().__init__(
            f"the model failed ({where}): {detail}. This is not a problem of one sample's "
            "image, so the run stops instead of failing every sample; fix the cause (model, "
            "device, --dtype) and re-run the same command: finished shards are kept.")
