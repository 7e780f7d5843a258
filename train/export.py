"""Export a run's backbone as a skeleton-only TorchScript and/or ONNX model.

The exported model takes a float32 tensor (N, C, T, V, M), already preprocessed the way the
run's test feeder does it, and returns logits (N, num_classes). The batch size N is free; T
is the run's window. Each export carries its metadata (model, input shape and channels,
class names, the resolved run config with its layout, and how the skeleton cache read its
files, from which ``train predict`` rebuilds the preprocessing): inside
the TorchScript archive (extra file ``mmcl_export.json``), in the ONNX model's
``metadata_props`` (key ``mmcl_export``) and beside them in ``export.json``.

Every export is loaded back and compared with the eager model on a random batch before it is
reported as written. ONNX needs the optional extra ``pip install mmcl-toolkit[onnx]``
(onnx, onnxscript; onnxruntime for the check and for ``train predict`` on ``.onnx`` files).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from data_manifest.classes import class_names
from data_manifest.splits import protocol_dataset
from train.config import TrainConfig, model_layout
from train.errors import TrainError
from train.files import write_text_atomic
from train.modeling import model_info
from train.models.load_run import load_run

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("torchscript", "onnx")
FORMAT_VERSION = 1
META_KEY = "mmcl_export"
META_FILE = f"{META_KEY}.json"            # inside the TorchScript archive
SIDECAR_NAME = "export.json"
FILE_NAMES = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx"}
INPUT_NAME, OUTPUT_NAME = "skeleton", "logits"
MAX_RELATIVE_ERROR = 1e-4


class ExportError(TrainError):
    """An export that cannot be made, or that does not reproduce the eager model."""


@dataclass
class ExportResult:
    out_dir: Path
    files: dict[str, Path]                       # format -> model file
    relative_error: dict[str, float | None]      # format -> checked error (None: unchecked)
    metadata: dict[str, Any] = field(repr=False, default_factory=dict)


# --------------------------------------------------------------------------- metadata


def dataset_of(config: TrainConfig) -> str:
    """The dataset a run trained on, from its split protocol (``ntu60``, ``nw-ucla``...)."""
    return protocol_dataset(config.data.protocol) or "csv"


def run_class_names(config: TrainConfig) -> list[str]:
    """Class names of a run: the dataset's when they fit the class count, else ``class i``."""
    names = class_names(dataset_of(config))
    if names is not None and len(names) == config.model.num_classes:
        return list(names)
    return [f"class {index}" for index in range(config.model.num_classes)]


def input_shape(config: TrainConfig) -> dict[str, int]:
    return {"channels": config.model.in_channels, "frames": config.data.window,
            "joints": model_layout(config).num_joints,
            "persons": config.model.num_persons}


def export_metadata(config: TrainConfig, checkpoint: Path | str,
                    names: list[str] | None = None,
                    skeletons: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "model": model_info(config),
        "input": {**input_shape(config), "order": "N, C, T, V, M",
                  "channels": config.data.channels, "layout": model_layout(config).name,
                  "modality": config.data.modality, "name": INPUT_NAME},
        "output": {"name": OUTPUT_NAME, "kind": "logits"},
        "dataset": dataset_of(config),
        "class_names": names or run_class_names(config),
        "checkpoint": str(checkpoint),
        "torch_version": torch.__version__,
        "config": config.to_dict(),
        "skeletons": skeletons,
    }


def example_input(config: TrainConfig, batch: int = 2, seed: int = 0) -> torch.Tensor:
    shape = input_shape(config)
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, shape["channels"], shape["frames"], shape["joints"],
                       shape["persons"], generator=generator)


# --------------------------------------------------------------------------- exporters


def export_torchscript(model: nn.Module, path: Path, metadata: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        # torch >= 2.10 marks TorchScript deprecated; it is still the format that loads
        # without this project's code (and from C++), which is what an export is for.
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated")
        warnings.filterwarnings("ignore", message=".*torch.jit.save.*deprecated")
        scripted = torch.jit.script(model)
        torch.jit.save(scripted, str(path), _extra_files={META_FILE: json.dumps(metadata)})


def onnx_available() -> tuple[bool, str]:
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        return False, (f"ONNX export needs {' and '.join(missing)}: "
                       "pip install 'mmcl-toolkit[onnx]'")
    return True, ""


def export_onnx(model: nn.Module, path: Path, metadata: dict[str, Any],
                example: torch.Tensor) -> None:
    ok, reason = onnx_available()
    if not ok:
        raise ExportError(reason)
    import onnx

    batch = torch.export.Dim("batch", min=1, max=65536)
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), warnings.catch_warnings(), \
                _quiet_loggers("torch.onnx", "onnx_ir", "onnxscript"):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), dynamo=True,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_shapes={"x": {0: batch}}, external_data=False)
    except Exception as error:   # the exporter raises many types; report them all as one
        log.debug("torch.onnx.export output:\n%s", chatter.getvalue())
        raise ExportError(f"ONNX export failed: {type(error).__name__}: {error}") from error
    log.debug("torch.onnx.export output:\n%s", chatter.getvalue())
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(metadata)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


@contextlib.contextmanager
def _quiet_loggers(*names: str):
    """The ONNX exporter logs progress and optional-operator notes (e.g. torchvision) that
    are noise for a user; keep only its errors."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


# --------------------------------------------------------------------------- checks


def relative_error(output: np.ndarray, expected: np.ndarray) -> float:
    scale = float(np.linalg.norm(expected)) or 1.0
    return float(np.linalg.norm(output - expected)) / scale


def load_torchscript(path: str | Path, extra_files: dict[str, str] | None = None):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*deprecated")
        if extra_files is None:
            return torch.jit.load(str(path), map_location="cpu")
        return torch.jit.load(str(path), map_location="cpu", _extra_files=extra_files)


def check_torchscript(path: Path, example: torch.Tensor, expected: np.ndarray) -> float:
    loaded = load_torchscript(path)
    with torch.no_grad():
        output = loaded(example).numpy()
    return relative_error(output, expected)


def check_onnx(path: Path, example: torch.Tensor, expected: np.ndarray) -> float | None:
    if importlib.util.find_spec("onnxruntime") is None:
        log.warning("onnxruntime is not installed: %s was checked structurally, not run", path)
        return None
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    output = session.run([OUTPUT_NAME], {INPUT_NAME: example.numpy()})[0]
    return relative_error(output, expected)


# --------------------------------------------------------------------------- entry point


def export_run(run_dir: str | Path, out_dir: str | Path | None = None,
               formats: tuple[str, ...] = ("torchscript",), checkpoint: str | Path = "auto",
               check_batch: int = 3) -> ExportResult:
    """Export the backbone of ``run_dir`` (its ``checkpoint``) into ``out_dir``.

    ``out_dir`` defaults to ``RUN_DIR/export``. Raises ``ExportError`` if an exported model
    does not reproduce the eager logits (relative error >= 1e-4) on a random batch.
    """
    unknown = [name for name in formats if name not in EXPORT_FORMATS]
    if unknown or not formats:
        raise ExportError(f"export formats must be among {', '.join(EXPORT_FORMATS)}, "
                          f"not {', '.join(unknown) or 'none'}")
    if "onnx" in formats:
        ok, reason = onnx_available()
        if not ok:
            raise ExportError(reason)
    run = load_run(run_dir, checkpoint, impl="reference")   # TorchScript scripts the eager model
    model = run.model.eval()
    metadata = export_metadata(run.config, run.checkpoint, run.class_names, run.skeletons)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "export"
    out.mkdir(parents=True, exist_ok=True)

    example = example_input(run.config, batch=2)
    check = example_input(run.config, batch=check_batch, seed=1)   # another batch size
    with torch.no_grad():
        expected = model(check).numpy()

    files: dict[str, Path] = {}
    errors: dict[str, float | None] = {}
    for name in formats:
        path = out / FILE_NAMES[name]
        partial = path.with_name(path.name + ".partial")
        if name == "torchscript":
            export_torchscript(model, partial, metadata)
            error = check_torchscript(partial, check, expected)
        else:
            export_onnx(model, partial, metadata, example)
            error = check_onnx(partial, check, expected)
        if error is not None and not error < MAX_RELATIVE_ERROR:
            partial.unlink(missing_ok=True)
            raise ExportError(f"the {name} export does not reproduce the model "
                              f"(relative error {error:.2e} >= {MAX_RELATIVE_ERROR:.0e})")
        partial.replace(path)
        files[name], errors[name] = path, error
        log.info("wrote %s (relative error %s)", path, error)

    sidecar = {**metadata, "files": {name: path.name for name, path in files.items()}}
    write_text_atomic(out / SIDECAR_NAME, json.dumps(sidecar, indent=2) + "\n")
    return ExportResult(out_dir=out, files=files, relative_error=errors, metadata=metadata)
