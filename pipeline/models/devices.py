"""Choosing the device and dtype, and turning an out-of-memory error into advice."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from pipeline.models.errors import BatchTooLargeError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_CHOICES = ("auto", *DTYPES)


def resolve_device(device: str = "auto") -> str:
    """``auto``: the CUDA device when there is one, else the CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto``: float32 on the CPU; bfloat16 on a GPU that supports it, else float16."""
    if dtype == "auto":
        if not device.startswith("cuda"):
            return "float32"
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPE_CHOICES)}")
    return dtype


def _out_of_memory_types() -> tuple[type[BaseException], ...]:
    found = [getattr(torch, "OutOfMemoryError", None),
             getattr(torch.cuda, "OutOfMemoryError", None)]
    return tuple(t for t in found if isinstance(t, type))


#: how PyTorch words running out of host memory (a plain RuntimeError, not OutOfMemoryError)
_CPU_OUT_OF_MEMORY = ("DefaultCPUAllocator", "not enough memory")


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, _out_of_memory_types()):
        return True
    return isinstance(error, RuntimeError) and any(text in str(error)
                                                   for text in _CPU_OUT_OF_MEMORY)


@contextlib.contextmanager
def batch_memory_guard(batch_size: int, where: str) -> Iterator[None]:
    """Re-raise an out-of-memory error (accelerator or CPU) as advice to lower --batch-size."""
    try:
        yield
    except RuntimeError as error:          # torch's OutOfMemoryError is one too
        if not is_out_of_memory(error):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise BatchTooLargeError(batch_size, where) from error
