"""Load published weights (and this project's own) into a backbone, strictly.

Every backbone keeps the parameter names of its published implementation (CTR-GCN,
ST-GCN, HD-GCN, InfoGCN: see ``train.models.registry``), so importing is an identity
mapping once wrappers are removed: ``module.`` (DataParallel/DDP), ``_orig_mod.``
(torch.compile), the ``state_dict/`` prefix of the reference ``.npz``, and a
``{"model": ...}`` or ``{"state_dict": ...}`` wrapper. Every key and shape is checked before
anything is loaded: a checkpoint from another model, class count or skeleton layout is
refused with the mismatched keys named, never half-loaded.

``skip`` (``model.init_skip`` when a run starts from published weights) lists parameter
name prefixes, shell-style ``*`` allowed, that are not loaded and keep their fresh values,
e.g. ``["fc"]`` to fine-tune a 60-class checkpoint on 120 classes.
"""

from __future__ import annotations

import fnmatch
import pickle
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from train.errors import CheckpointError, error_summary
from train.models.registry import backbone_of_checkpoint

NPZ_PREFIX = "state_dict/"
WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")
MAX_KEYS_SHOWN = 8


class CheckpointMismatchError(CheckpointError):
    """A readable checkpoint whose keys or shapes do not fit the model."""

    def __init__(self, message: str, *, missing: list[str], unexpected: list[str],
                 mismatched: list[str]):
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pt``/``.pth`` checkpoint or a reference ``.npz``, wrappers removed.

    ``.pt`` files are read with ``torch.load(weights_only=True)``: no code runs on load.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".npz":
        return _read_npz(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:   # torch's text would suggest unsafe loading
        raise CheckpointError(f"{path}: not a readable tensors-only PyTorch checkpoint "
                              "(or corrupt)") from error
    except (RuntimeError, EOFError, zipfile.BadZipFile,
            OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable weights-only PyTorch checkpoint "
                              f"({type(error).__name__}: {error_summary(error)})") from error
    return unwrap_state_dict(loaded, source=str(path))


def unwrap_state_dict(loaded: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensor mapping inside a loaded checkpoint, without wrapper keys or ``module.``."""
    state = loaded
    for _ in range(2):   # e.g. {"model": {"state_dict": ...}} is not expected, but cheap
        if isinstance(state, Mapping):
            wrapper = next((key for key in WRAPPER_KEYS
                            if isinstance(state.get(key), Mapping)), None)
            if wrapper is not None:
                state = state[wrapper]
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"{source}: holds no state dict (found {type(loaded).__name__})")
    not_tensors = [str(key) for key, value in state.items() if not torch.is_tensor(value)]
    if not_tensors:
        raise CheckpointError(f"{source}: entries that are not tensors: "
                              + _list_keys(not_tensors))
    return {_strip_module(str(key)): value for key, value in state.items()}


@dataclass
class InitReport:
    """What ``init_from_checkpoint`` loaded into a model and what it left alone."""

    source: str
    loaded: list[str]     # model keys set from the checkpoint
    skipped: list[str]    # model keys matched by ``skip``: left freshly initialised
    ignored: list[str]    # checkpoint keys matched by ``skip`` that the model lacks


def is_skipped(key: str, skip: Iterable[str]) -> bool:
    """``key`` is one of the ``skip`` prefixes (``fc``) or below one (``fc.weight``)."""
    return any(fnmatch.fnmatchcase(key, pattern)
               or fnmatch.fnmatchcase(key, pattern.rstrip(".") + ".*") for pattern in skip)


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor],
                     source: str = "checkpoint", skip: Iterable[str] = ()) -> None:
    """Raise ``CheckpointMismatchError`` unless ``state`` has exactly the model's keys/shapes
    (keys under a ``skip`` prefix excepted, on both sides)."""
    skip = tuple(skip)
    expected = {key: value for key, value in model.state_dict().items()
                if not is_skipped(key, skip)}
    state = {key: value for key, value in state.items() if not is_skipped(key, skip)}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(key for key in set(expected) & set(state)
                        if tuple(expected[key].shape) != tuple(state[key].shape))
    if not (missing or unexpected or mismatched):
        return
    problems = _diagnose(model, expected, state, mismatched)
    if missing:
        problems.append(f"{len(missing)} missing keys: {_list_keys(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_list_keys(unexpected)}")
    if mismatched:
        shapes = [f"{key} {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
                  for key in mismatched]
        problems.append(f"{len(mismatched)} keys with other shapes: {_list_keys(shapes)}")
    raise CheckpointMismatchError(f"{source} does not fit the model: " + "; ".join(problems),
                                  missing=missing, unexpected=unexpected,
                                  mismatched=mismatched)


def load_checked(model: nn.Module, state: Mapping[str, torch.Tensor],
                 source: str = "checkpoint", skip: Iterable[str] = ()) -> nn.Module:
    """Check ``state`` against ``model`` completely, then load it (strict except for the
    keys under a ``skip`` prefix, which keep the model's values)."""
    skip = tuple(skip)
    check_state_dict(model, state, source, skip)
    expected = model.state_dict()
    converted = {key: value.to(dtype=expected[key].dtype) for key, value in state.items()
                 if not is_skipped(key, skip)}
    model.load_state_dict(converted, strict=not skip)
    return model


def init_from_checkpoint(model: nn.Module, path: str | Path,
                         skip: Iterable[str] = ()) -> InitReport:
    """Load published (or this project's) weights into a fresh model, leaving the keys
    under the ``skip`` prefixes as they are; every other key must match exactly."""
    skip = tuple(skip)
    state = read_state_dict(path)
    own = model.state_dict()
    unused = [pattern for pattern in skip
              if not any(is_skipped(key, (pattern,)) for key in [*own, *state])]
    if unused:
        raise CheckpointError(f"skip prefixes (model.init_skip) that match no key of the "
                              f"model or of {path}: {', '.join(unused)} (keys look like "
                              "fc.weight, l1.gcn1.PA, data_bn.bias)")
    load_checked(model, state, source=str(path), skip=skip)
    return InitReport(source=str(path),
                      loaded=[key for key in own if not is_skipped(key, skip)],
                      skipped=[key for key in own if is_skipped(key, skip)],
                      ignored=sorted(key for key in state
                                     if key not in own and is_skipped(key, skip)))


def load_reference_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a published checkpoint of the model's reference code (``.pt``/``.pth``) or
    the CTR-GCN reference ``.npz``."""
    return load_checked(model, read_state_dict(path), source=str(path))


def _read_npz(path: Path) -> dict[str, torch.Tensor]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise CheckpointError(f"{path}: not a readable .npz archive "
                              f"({type(error).__name__}: {error_summary(error)})") from error
    prefixed = {key[len(NPZ_PREFIX):]: value for key, value in arrays.items()
                if key.startswith(NPZ_PREFIX)}
    state = prefixed if prefixed else arrays
    return {_strip_module(key): torch.from_numpy(np.array(value, order="C"))
            for key, value in state.items()}


def _diagnose(model: nn.Module, expected: Mapping[str, torch.Tensor],
              state: Mapping[str, torch.Tensor], mismatched: list[str]) -> list[str]:
    """Plain-words diagnoses for the usual mistakes: class count, joint count, model.

    A backbone names its classifier weight (``classifier_weight``, default ``fc.weight``)
    and the parameters whose last dimension is the joint count (``graph_keys``, patterns,
    default ``*.PA``).
    """
    found = []
    classifier = getattr(model, "classifier_weight", "fc.weight")
    if classifier in mismatched:
        found.append(f"the checkpoint has {state[classifier].shape[0]} classes, the model "
                     f"{expected[classifier].shape[0]}")
    patterns = getattr(model, "graph_keys", ("*.PA",))
    graph_keys = [key for key in mismatched
                  if any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)]
    if graph_keys:
        found.append(f"the checkpoint is for {state[graph_keys[0]].shape[-1]} joints, the "
                     f"model for {expected[graph_keys[0]].shape[-1]}")
    elif "data_bn.weight" in mismatched:
        found.append("the checkpoint expects another persons x joints x channels input "
                     f"({state['data_bn.weight'].shape[0]} values per frame, the model "
                     f"{expected['data_bn.weight'].shape[0]})")
    if len(set(expected) & set(state)) < len(expected) // 2:
        theirs, ours = backbone_of_checkpoint(state), backbone_of_checkpoint(expected)
        if theirs is not None and theirs != ours:
            found.insert(0, f"it looks like a {theirs} checkpoint (model.name: {theirs}), "
                            f"the model is {ours or 'another backbone'}")
        else:
            found.insert(0, "it looks like a checkpoint of another model")
    return found


def _strip_module(key: str) -> str:
    """Drop wrapper prefixes: ``module.`` (DataParallel/DDP), ``_orig_mod.`` (torch.compile)."""
    for prefix in ("module.", "_orig_mod."):
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key


def _list_keys(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_KEYS_SHOWN])
    more = len(keys) - MAX_KEYS_SHOWN
    return shown + (f" (and {more} more)" if more > 0 else "")
