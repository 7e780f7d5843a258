"""Turning transformers' loading errors into one clear :class:`ModelError`.

A directory with a config.json but no weights, a truncated safetensors file or a missing
preprocessor config make ``from_pretrained`` raise ``OSError``, ``ValueError`` or a
safetensors error; the command line should say which model and what is missing instead
of printing a traceback.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from pipeline.models.errors import ModelError
from pipeline.models.source import ModelSource

_HINTS = {
    "weights": "a model directory needs config.json and its weights (model.safetensors or "
               "pytorch_model.bin, or shards with their index file), as "
               "model.save_pretrained(DIR) writes them",
    "processor": "a model directory needs its preprocessing files too (tokenizer files, "
                 "preprocessor_config.json / processor_config.json), as "
                 "processor.save_pretrained(DIR) writes them",
    "model": "a model directory needs config.json, the weights and the preprocessing "
             "files, as save_pretrained(DIR) of the model and its processor writes them",
}


def _loading_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [OSError, ValueError]
    try:
        from safetensors import SafetensorError
        types.append(SafetensorError)
    except ImportError:         # safetensors comes with transformers; be safe anyway
        pass
    return tuple(types)


def where_to_load(source: ModelSource) -> tuple[str, dict]:
    """What to pass to ``from_pretrained``: the directory or hub id, and its revision."""
    if source.is_local:
        return source.path, {}
    return source.name, {"revision": source.revision}


@contextlib.contextmanager
def loading_errors(source: ModelSource, part: str = "model",
                   as_what: str | None = None) -> Iterator[None]:
    """Re-raise a failure to load ``part`` ("weights", "processor", or the whole "model")
    of ``source`` as a :class:`ModelError` that names the model's directory and what is
    missing."""
    try:
        yield
    except ModelError:
        raise
    except _loading_error_types() as error:
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")
        place = source.path if source.is_local else f"{source.name} (files in {source.path})"
        what = "the model" if part == "model" else f"the {part} of the model in"
        target = f" as {as_what}" if as_what else ""
        # a ValueError is about what the files say, not about files missing
        hint = "" if isinstance(error, ValueError) else f"; {_HINTS[part]}"
        raise ModelError(f"cannot load {what} {place}{target}: {detail}{hint}") from error
