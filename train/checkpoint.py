"""Checkpoint files of a run, and loading them safely.

Layout of a run directory::

    RUN_DIR/config.yaml              the resolved config (resuming reads it back)
    RUN_DIR/metrics.jsonl            one line per epoch
    RUN_DIR/data.json                samples per split part, samples left out and why,
                                     the skeleton cache the run is bound to
    RUN_DIR/init.json                what ``model.init_from`` loaded and left fresh (if set)
    RUN_DIR/trackers.json            experiment trackers used and their run ids
                                     (``train.tracking``); TensorBoard: RUN_DIR/tensorboard/
    RUN_DIR/model.json               the backbone (build arguments), its parameter count and
                                     FLOPs per sample at the run's input shape
    RUN_DIR/import.json              ``train import`` only: the published file the weights
                                     came from and its sha256 (see ``train.import_checkpoint``)
    RUN_DIR/checkpoints/last.pt      full training state, rewritten every epoch (and every
                                     ``run.checkpoint_every_steps`` steps)
    RUN_DIR/checkpoints/best.pt      weights of the best epoch so far (no optimizer state)
    RUN_DIR/checkpoints/rng-rank<r>.pt   RNG states of process r > 0 (multi-process runs)

Both ``.pt`` files are ``torch.save`` dicts of plain types and tensors only, so they load
with ``torch.load(path, map_location="cpu", weights_only=True)``. Keys:

``format`` (``"mmcl-train-checkpoint"``), ``version`` (1), ``kind`` (``"last"``/``"best"``,
                 or ``"imported"``: weights written by ``train import`` as ``last.pt``)
``model``        backbone ``state_dict`` (no ``module.`` prefix), what export/predict load
``model_info``   ``train.models.build_model`` arguments: name, num_classes, layout,
                 num_persons, in_channels, dropout, options, impl (the implementation
                 that ran: ``reference`` for backbones without a fast path whatever
                 ``model.impl`` asked; the weights load into either impl)
``objective``    state dict of the training objective's own parameters (may be empty)
``objective_inputs``  what the objective read besides the skeletons, plain data (MMCL: the
                 feature caches' names and spec params, see ``train.mmcl.objective``),
                 or absent
``config``       the resolved config as a dict (``TrainConfig.from_dict`` reads it)
``class_names``  list of class names, or None
``skeletons``    the params of the skeleton cache it trained on (layout, joint mapping,
                 channels, persons: how ``train predict`` reads a new file), or absent
``skeleton_cache``  the skeleton cache the run reads: ``{"stage", "name", "workdir",
                 "path", "fingerprint", "spec"}``, recorded when the run starts; resuming and
                 ``train eval`` refuse that cache once it was rebuilt
                 (``train.cache_binding``). Absent in older checkpoints.
``epoch``        completed epochs when it was written
``metrics``      the metrics line of that epoch (best) or the last one (last), or None
``best``         ``{"metric", "value", "epoch", "selected_on"}`` so far, or None
``selected_on``  ``best`` only: ``"val"``, the part the best epoch was chosen on (only
                 runs with ``data.val_fraction > 0`` keep a best). Earlier versions also
                 wrote a best chosen on the test set (``"test"``), which overstates test
                 accuracy: ``auto`` (the default of eval, export and predict) takes it
                 only when there is no ``last.pt``, and eval warns whenever it is used.
``imported``     ``imported`` only: ``{"source", "sha256", "preset", "tensors"}``; no
                 training state, ``epoch``/``best``/``metrics`` are None
``last`` only:   ``optimizer``, ``scheduler``, ``scaler`` (state dicts or None),
                 ``position`` ``{"epoch", "step_in_epoch", "global_step", "totals",
                 "processes", "elapsed_s"}`` (resume point: completed epochs and steps
                 into the next one; seconds already spent in that epoch),
                 ``rng`` ``{"torch", "cuda", "numpy", "python"}`` of process 0.

Writes are atomic and durable (``train.files``): a crash leaves the previous file intact.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from train.errors import CheckpointError, error_summary
from train.files import write_atomic
from train.run_files import CONFIG_FILE, IMPORT_FILE  # noqa: F401 (the run's files by name)

log = logging.getLogger(__name__)

FORMAT = "mmcl-train-checkpoint"
VERSION = 1
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_CHOICES = ("auto", "best", "last")


def checkpoint_path(run_dir: str | os.PathLike, kind: str = "last") -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"{kind}.pt"


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> None:
    """Write atomically and durably: a crash mid-write leaves the previous file intact."""
    write_atomic(path, lambda handle: torch.save(dict(payload), handle))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a trainer checkpoint on the CPU, or raise ``CheckpointError`` saying why not."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's text here suggests weights_only=False, i.e. running the file's code
        raise CheckpointError(f"{path} is not a tensors-only trainer checkpoint (or "
                              "corrupt)") from error
    except Exception as error:   # torch raises many types for truncated/foreign files
        summary = error_summary(error)
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(error).__name__}"
                              f"{': ' + summary if summary else ''}); it may be truncated "
                              "or not a trainer checkpoint") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a trainer checkpoint (no format {FORMAT!r}); "
                              "import published weights with the reference importer instead")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}, "
                              f"this trainer reads version {VERSION}")
    return payload


def selected_on(payload: Mapping[str, Any]) -> str | None:
    """``"val"``/``"test"``: the part a best checkpoint was chosen on (None if unknown)."""
    value = payload.get("selected_on") or (payload.get("best") or {}).get("selected_on")
    if value is None and payload.get("kind") == "best":   # older checkpoints: from metric
        metric = str((payload.get("best") or {}).get("metric", ""))
        value = metric.split("_")[0] if metric.startswith(("val_", "test_")) else None
    return value


def global_step_of(payload: Mapping[str, Any]) -> int | None:
    """The optimizer step a checkpoint's weights come from (None if it does not say)."""
    position = payload.get("position") or {}
    if "global_step" in position:
        return position["global_step"]
    return (payload.get("metrics") or {}).get("global_step")


TEST_SELECTED_WARNING = ("{path} was chosen as best on the test set (the run has no "
                         "validation part: data.val_fraction is 0), so its test accuracy is "
                         "optimistic; report the last checkpoint (--checkpoint last) or "
                         "train with data.val_fraction > 0")


def resolve_checkpoint(run_dir: str | os.PathLike, checkpoint: str | os.PathLike = "auto"
                       ) -> Path:
    """The checkpoint file that eval, export and predict use.

    ``best`` / ``last`` in ``RUN_DIR/checkpoints``, or a path. ``auto`` is ``best`` when it
    was chosen on a validation part, else ``last`` (a best chosen on the test set would
    report an optimistic test accuracy; only runs of earlier versions hold one); ``best``
    if there is no ``last``.
    """
    if str(checkpoint) not in CHECKPOINT_CHOICES:
        path = Path(checkpoint)
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist")
        return path
    best, last = checkpoint_path(run_dir, "best"), checkpoint_path(run_dir, "last")
    if checkpoint != "auto":
        path = best if checkpoint == "best" else last
        if not path.is_file():
            hint = ("best.pt is kept only by runs with a validation part (data.val_fraction "
                    "> 0) once one has been evaluated" if checkpoint == "best"
                    else "has the run finished an epoch?")
            raise CheckpointError(f"{run_dir} has no {checkpoint} checkpoint ({path}); {hint}")
        return path
    if best.is_file() and (not last.is_file()
                           or selected_on(load_checkpoint(best)) == "val"):
        return best
    if last.is_file():
        if best.is_file():
            log.info("auto: using %s (best.pt was chosen on the test set)", last)
        return last
    raise CheckpointError(f"no best.pt or last.pt in {best.parent}: has the run saved a "
                          "checkpoint yet?")


# --------------------------------------------------------------------------- RNG


def rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors and plain types (loadable with weights_only)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "python": _to_lists(random.getstate()),
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(_to_tuples(state["python"]))


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value
