"""Find a model (hub id or local directory) and describe it without loading its weights.

Only ``config.json`` is parsed here (and a local directory's files digested, see
:func:`local_digest`), so a stage can build its cache spec (which records the model's name
and revision) and see that nothing is left to do without paying for loading the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.models.errors import ModelError

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5",
                    ".msgpack", ".onnx")
_LARGE_FILE_BYTES = 64 << 20


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from and what kind of model it is."""

    name: str                   # hub id as given, or the local directory's absolute path
    path: str                   # local directory holding config.json (a hub snapshot or the user's)
    is_local: bool
    revision: str | None        # hub commit hash; for a local directory a content digest
    model_type: str
    architectures: tuple[str, ...]
    config: dict[str, Any]
    needs_remote_code: bool

    def describe(self) -> dict[str, Any]:
        """What a cache spec records about the model."""
        return {"name": self.name, "revision": self.revision, "model_type": self.model_type}


def _looks_like_local_path(name: str) -> bool:
    return (name.startswith(("/", "./", "../", "~")) or name.endswith(("/", os.sep))
            or name.count("/") > 1 or os.sep != "/" and os.sep in name)


def _model_files(directory: Path) -> list[Path]:
    """Every file under ``directory`` except hidden ones (a git clone's .git holds a second
    copy of the weights), sorted, for a stable digest."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        found += [Path(root) / f for f in files if not f.startswith(".")]
    return sorted(found)


def _is_weight_file(path: Path, size: int) -> bool:
    return path.suffix in _WEIGHT_SUFFIXES or size > _LARGE_FILE_BYTES


def local_digest(directory: Path) -> str:
    """A content digest of a local model directory, so a changed model is another cache.

    Every file but the weights (config, tokenizer, processor, chat template, generation
    config, ...) is hashed whole. A weight file (or any file over 64 MiB) counts by name,
    size and modification time: reading many GB on every run would be slow, and an edit
    changes the time. (A copy that does not keep times, unlike ``cp -p``/``rsync -t``,
    counts as a change too.)
    """
    digest = hashlib.sha256()
    for path in _model_files(directory):
        name = path.relative_to(directory).as_posix()
        try:
            stat = path.stat()
            if _is_weight_file(path, stat.st_size):
                digest.update(f"weights {name} {stat.st_size} {stat.st_mtime_ns}\n".encode())
                continue
            digest.update(f"file {name} {stat.st_size}\n".encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError as error:
            raise ModelError(f"cannot read {path} of the local model {directory}: "
                             f"{error.strerror or error}") from None
    return "local-" + digest.hexdigest()[:16]


def _hub_config(name: str, revision: str | None) -> Path:
    from transformers.utils import cached_file

    try:
        path = cached_file(name, "config.json", revision=revision)
    except (OSError, ValueError) as error:
        raise ModelError(
            f"cannot find model {name!r}: it is not a local directory, and the Hugging Face "
            f"Hub could not provide it ({str(error).splitlines()[0]}). Check the spelling, "
            "or download it while online (it is then cached), or pass a local directory "
            "made with save_pretrained.") from None
    if path is None:
        raise ModelError(f"model {name!r} on the Hugging Face Hub has no config.json")
    return Path(path)


def resolve_model(name: str, revision: str | None = None) -> ModelSource:
    """Locate ``name`` and read its config. Raises :class:`ModelError` with the reason."""
    if not name or not name.strip():
        raise ModelError("no model given")
    local = Path(name).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ModelError(f"model path {name} is a file; give the directory that holds "
                             "config.json and the weights")
        config_path = local / "config.json"
        if not config_path.is_file():
            raise ModelError(f"{local} has no config.json: it is not a transformers model "
                             "directory (save one with model.save_pretrained(DIR))")
        is_local, path = True, local.resolve()
        if revision is not None:
            raise ModelError("--revision applies to hub models, not to a local directory")
    elif _looks_like_local_path(name):
        raise ModelError(f"model directory {name} does not exist")
    else:
        config_path = _hub_config(name, revision)
        is_local, path = False, config_path.parent
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise ModelError(f"unreadable model config {config_path}: {error}") from None
    model_type = str(config.get("model_type") or "")
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    needs_remote_code = bool(config.get("auto_map")) and model_type not in CONFIG_MAPPING_NAMES
    if is_local:
        resolved_revision = local_digest(path)
    else:
        # hub snapshots live in .../snapshots/<commit hash>/
        resolved_revision = path.name if path.parent.name == "snapshots" else revision
    return ModelSource(name=str(path) if is_local else name, path=str(path), is_local=is_local,
                       revision=resolved_revision, model_type=model_type,
                       architectures=tuple(config.get("architectures") or ()), config=config,
                       needs_remote_code=needs_remote_code)


def check_remote_code(source: ModelSource, trust_remote_code: bool) -> None:
    if source.needs_remote_code and not trust_remote_code:
        raise ModelError(
            f"model {source.name} (model_type {source.model_type!r}) needs custom Python code "
            "from its repository (config.json has an auto_map), which this toolkit does not "
            "run by default. If you trust that code, pass --trust-remote-code.")
