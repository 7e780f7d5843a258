"""Errors raised while loading or running a model, worded for the command line."""

from __future__ import annotations


class ModelError(ValueError):
    """A model that cannot be used: missing, unsupported, or needing remote code."""


class BatchTooLargeError(RuntimeError):
    """The accelerator ran out of memory on one batch."""

    def __init__(self, batch_size: int, where: str):
        super().__init__(
            f"out of memory on a batch of {batch_size} image(s) ({where}); lower --batch-size "
            f"(it is {batch_size}). Finished shards are kept: re-run the same command to go on.")
        self.batch_size = batch_size
