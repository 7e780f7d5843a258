"""``model.init_from``: a new run starts from published weights, a checkpoint or another
run (a run directory: its ``auto`` checkpoint), keeping the source's classifier, leaving
it fresh (``model.init_skip``) or re-mapping it through a class map
(``model.init_class_map``: this run's class k starts from the source's row map[k], classes
without a mapping keep their fresh rows), e.g. to fine-tune an NTU120 run on UTD-MHAD."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from data_manifest.class_map import load_class_map
from data_manifest.layouts import load_layout
from train.checkpoint import load_checkpoint, resolve_checkpoint
from train.config import TrainConfig, model_layout
from train.errors import CheckpointError, ConfigError
from train.models.reference_import import (CheckpointMismatchError, InitReport,
                                           init_from_checkpoint, is_skipped, read_state_dict)


@dataclass
class SourceInit:
    report: InitReport
    run_dir: str | None = None                # init_from was a run directory
    class_map: dict[int, int] | None = None   # this run's class -> the source's classifier row
    fresh_classes: list[int] = field(default_factory=list)   # rows left freshly initialised

    def record(self) -> dict[str, Any]:
        """What ``init.json`` adds to the loaded and skipped keys."""
        found: dict[str, Any] = {}
        if self.run_dir is not None:
            found["run_dir"] = self.run_dir
        if self.class_map is not None:
            found["class_map"] = {str(k): v for k, v in self.class_map.items()}
            found["fresh_classes"] = self.fresh_classes
        return found


def init_from_source(model: nn.Module, config: TrainConfig,
                     class_names: Sequence[str] | None = None) -> SourceInit:
    """Load ``config.model.init_from`` into a new run's backbone (see the module docstring);
    ``class_names``: this run's, for a class map that names classes."""
    m = config.model
    source = Path(m.init_from)
    run_dir, payload = None, None
    if source.is_dir():
        path = resolve_checkpoint(source, "auto")
        run_dir, payload = str(source), load_checkpoint(path)
    else:
        path = source
    skip = tuple(m.init_skip)
    try:
        if m.init_class_map is None:
            return SourceInit(init_from_checkpoint(model, path, skip), run_dir)
        return _remapped(model, path, payload, config, class_names, skip, run_dir)
    except CheckpointMismatchError as error:
        hint = _layout_hint(payload, config)
        if hint is None:
            raise
        raise CheckpointMismatchError(f"{error}. {hint}", missing=error.missing,
                                      unexpected=error.unexpected,
                                      mismatched=error.mismatched) from error


def _remapped(model: nn.Module, path: Path, payload: Mapping[str, Any] | None,
              config: TrainConfig, class_names: Sequence[str] | None, skip: tuple[str, ...],
              run_dir: str | None) -> SourceInit:
    weight = getattr(model, "classifier_weight", "fc.weight")
    own = model.state_dict()
    keys = [key for key in (weight, weight.rsplit(".", 1)[0] + ".bias") if key in own]
    if any(is_skipped(key, skip) for key in keys):
        raise ConfigError("model.init_skip leaves the classifier fresh but "
                          "model.init_class_map re-maps it: set one of them")
    state = read_state_dict(path)
    absent = [key for key in keys if key not in state]
    if absent:
        raise CheckpointError(f"{path} has no classifier {', '.join(absent)} to re-map")
    wrong = [key for key in keys if tuple(state[key].shape[1:]) != tuple(own[key].shape[1:])]
    if wrong:
        raise CheckpointMismatchError(
            f"{path}: the classifier's rows do not fit the model ("
            + ", ".join(f"{key} {tuple(state[key].shape)} vs model {tuple(own[key].shape)}"
                        for key in wrong) + ")", missing=[], unexpected=[], mismatched=wrong)
    source_classes = int(state[weight].shape[0])
    source_names = list((payload or {}).get("class_names") or [])
    mapping = load_class_map(config.model.init_class_map).resolve(
        target_names=list(class_names) if class_names else None,
        target_classes=int(own[weight].shape[0]),
        source_names=source_names if len(source_names) == source_classes else None,
        source_classes=source_classes, target="this run", source=str(config.model.init_from))
    report = init_from_checkpoint(model, path, (*skip, *keys))
    with torch.no_grad():
        current = model.state_dict()     # shares storage with the parameters
        for key in keys:
            for label, row in mapping.items():
                current[key][label].copy_(state[key][row].to(current[key].dtype))
    report.skipped = [key for key in report.skipped if key not in keys]
    report.loaded += keys
    return SourceInit(report, run_dir, mapping,
                      [k for k in range(int(own[weight].shape[0])) if k not in mapping])


def _layout_hint(payload: Mapping[str, Any] | None, config: TrainConfig) -> str | None:
    """Why a source run's weights cannot fit (its layout or persons), and what to do."""
    info = (payload or {}).get("model_info") or {}
    if "layout" not in info:
        return None
    source = load_layout(info["layout"])
    layout = model_layout(config)
    persons = info.get("num_persons")
    if source == layout and persons == config.model.num_persons:
        return None
    return (f"The source run reads the {source.name} layout ({source.num_joints} joints) with "
            f"{persons} person(s), this run {layout.name} ({layout.num_joints}) with "
            f"{config.model.num_persons}: a run's graph and input weights fit its own layout "
            f"and persons only. Convert this run's data to them when building its WORKDIR "
            f"(pipeline manifest csv DATA.csv WORKDIR --layout {source.name} --from-layout "
            f"{layout.name} --max-persons {persons}; see docs/transfer.md), or leave those "
            "parameters fresh with model.init_skip")
