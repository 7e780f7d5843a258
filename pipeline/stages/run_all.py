"""``pipeline run``: the stages in order, with one set of options, skipping what is done.

Options come from a YAML file and/or flags (flags win)::

    from: skeletons            # first stage (default: skeletons)
    to: llm-features           # last stage  (default: llm-features)
    skip_failures: false       # go on past a stage whose samples partly failed
    poses: false               # skeletons estimated from the videos (extract-poses) instead
                               # of read from files; a mapping of extract-poses options
                               # ({stride: 2}) also turns it on
    jobs: 2                    # common options, given to every stage that takes them ...
    overwrite: false
    retry_failures: false
    progress: true
    frames: {num_frames: 5, margin: 0.1}       # ... and one section per stage, whose keys
    stitch: {canvas: [480, 480]}               # are that stage function's keyword
    rgb-features: {encoder: microsoft/resnet-50, batch_size: 32}   # arguments
    llm-features: {model: Salesforce/blip-vqa-base, questions: [...]}

Cache names use the commands' words: ``cache_name`` is the cache a stage builds (``--name``),
``skeleton_cache``, ``frames_cache`` and ``stitch_cache`` the caches it reads
(``--skeleton-cache``, ...). ``stitch_name``, the earlier spelling of ``stitch_cache``, is
still read.

With ``poses`` on, the skeletons step runs ``extract-poses`` (its options: the ``poses``
section, ``--set poses.KEY=VALUE``); a ``skeletons`` section is then an error, as options
for a stage that does not run. ``jobs`` from the common options is not given to the model stages (rgb-features,
llm-features), and their sections do not take it: each job would load its own copy of the
model (use ``accelerate launch`` for several processes / GPUs). Options that only make
sense for one stage (e.g. ``rebuild``, where a stage has it) go in that stage's section or
``--set STAGE.KEY=VALUE``. Unknown keys, at the top or in a section, are errors. Every
stage skips its finished shards, so a second run only does what is left (and loads no
model if nothing is).
"""

from __future__ import annotations

import importlib
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from data_manifest.schemas import FRAMES, LLM_FEATURES, RGB_FEATURES, SKELETONS, STITCH
from data_manifest.cache_names import check_cache_name
from data_manifest.workdir import Workdir
from pipeline.stages.model_stage import NO_JOBS_MESSAGE

RUN_STAGES = (SKELETONS, FRAMES, STITCH, RGB_FEATURES, LLM_FEATURES)
POSES = "poses"    # the skeletons step done by extract-poses (config key and section)
STAGE_FUNCTIONS = {
    SKELETONS: "pipeline.stages.extract_skeletons:extract_skeletons",
    FRAMES: "pipeline.stages.extract_frames:extract_frames",
    STITCH: "pipeline.stages.stitch:stitch",
    RGB_FEATURES: "pipeline.stages.rgb_features:cache_rgb_features",
    LLM_FEATURES: "pipeline.stages.llm_features:cache_llm_features",
    POSES: "pipeline.stages.extract_poses:extract_poses",
}
MODEL_STAGES = (RGB_FEATURES, LLM_FEATURES)
COMMON_KEYS = ("jobs", "overwrite", "retry_failures", "progress")
TOP_KEYS = ("from", "to", "skip_failures", POSES, *COMMON_KEYS)
_NOT_CONFIGURABLE = ("workdir", "shard_indices", "rank", "world_size")
#: stage options that name a cache: plain names only, checked before any stage runs
CACHE_NAME_OPTIONS = ("cache_name", "skeleton_cache", "frames_cache", "stitch_cache")
#: earlier spellings of options, still read from configs: old -> current
RENAMED_OPTIONS = {"stitch_name": "stitch_cache"}


class StageFailedError(Exception):
    """A stage left failed samples and ``skip_failures`` is off."""

    def __init__(self, stage: str, result):
        self.stage, self.result = stage, result
        super().__init__(f"stage {stage}: {len(result.failures)} sample(s) failed (see "
                         f"{Path(result.cache_path) / 'failures.jsonl'}); later stages were "
                         "not run. Fix them, or set skip_failures / pass --skip-failures to "
                         "go on without them.")


def stage_function(stage: str) -> Callable:
    module_name, attribute = STAGE_FUNCTIONS[stage].split(":")
    return getattr(importlib.import_module(module_name), attribute)


def stage_options(stage: str) -> dict[str, Any]:
    """The options a stage takes (its keyword arguments) with their defaults."""
    signature = inspect.signature(stage_function(stage))
    return {name: p.default for name, p in signature.parameters.items()
            if name not in _NOT_CONFIGURABLE and p.kind in (p.KEYWORD_ONLY,
                                                            p.POSITIONAL_OR_KEYWORD)}


def _stage_name(key: str) -> str | None:
    """The stage a config section is for (``poses`` included), or None."""
    name = key.replace("_", "-")
    aliases = {"rgb": RGB_FEATURES, "llm": LLM_FEATURES}
    name = aliases.get(name, name)
    return name if name in STAGE_FUNCTIONS else None


@dataclass
class RunConfig:
    start: str = SKELETONS
    stop: str = LLM_FEATURES
    skip_failures: bool = False
    poses: bool = False
    common: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def step(self, stage: str) -> str:
        """The stage function that does ``stage``: extract-poses for skeletons with poses."""
        if stage != SKELETONS or not self.poses:
            return stage
        if self.stages.get(SKELETONS):
            raise ValueError(f"extract-skeletons options ({', '.join(self.stages[SKELETONS])}) "
                             "but poses is on, so extract-poses makes the skeletons: give "
                             "its options in the poses section")
        return POSES

    def stage_range(self) -> list[str]:
        first, last = RUN_STAGES.index(self.start), RUN_STAGES.index(self.stop)
        if first > last:
            raise ValueError(f"--from {self.start} comes after --to {self.stop}; the order is "
                             f"{' -> '.join(RUN_STAGES)}")
        return list(RUN_STAGES[first:last + 1])

    def kwargs_for(self, stage: str) -> dict[str, Any]:
        allowed = stage_options(stage)
        kwargs = {key: value for key, value in self.common.items() if key in allowed}
        kwargs.update(self.stages.get(stage, {}))
        return kwargs


def _check_stage(name: str) -> str:
    stage = _stage_name(name)
    if stage is None:
        raise ValueError(f"unknown stage {name!r}; the stages are {', '.join(RUN_STAGES)}")
    return stage


def parse_config(data: Mapping[str, Any] | None, source: str = "config") -> RunConfig:
    """Validate a config mapping (as read from YAML); unknown keys are errors."""
    config = RunConfig()
    for key, value in (data or {}).items():
        key = str(key)
        if key in ("from", "to"):
            stage = _check_stage(str(value))
            if key == "from":
                config.start = stage
            else:
                config.stop = stage
        elif key == "skip_failures":
            config.skip_failures = bool(value)
        elif key == POSES and isinstance(value, bool):
            config.poses = value
        elif key in COMMON_KEYS:
            config.common[key] = value
        elif _stage_name(key) is not None:
            stage = _stage_name(key)
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise ValueError(f"{source}: section {key!r} must be a mapping of options"
                                 + (" (or true/false)" if stage == POSES else ""))
            value = _current_spellings(value, f"{source}: {stage}")
            allowed = stage_options(stage)
            unknown = sorted(set(value) - set(allowed))
            if "jobs" in unknown and stage in MODEL_STAGES:
                raise ValueError(f"{source}: stage {stage} takes no jobs: {NO_JOBS_MESSAGE}")
            if unknown:
                raise ValueError(f"{source}: unknown option(s) {', '.join(unknown)} for stage "
                                 f"{stage}; it takes: {', '.join(sorted(allowed))}")
            for option in CACHE_NAME_OPTIONS:
                if value.get(option) is not None:
                    check_cache_name(value[option], f"{source}: {stage}.{option}")
            config.stages.setdefault(stage, {}).update(
                {k: _normalise(stage, k, v) for k, v in value.items()})
            config.poses = config.poses or stage == POSES
        else:
            raise ValueError(f"{source}: unknown key {key!r}; allowed: {', '.join(TOP_KEYS)} "
                             f"and one section per stage ({', '.join(RUN_STAGES)})")
    return config


def _current_spellings(options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``options`` with earlier spellings (:data:`RENAMED_OPTIONS`) renamed."""
    for old, current in RENAMED_OPTIONS.items():
        if old in options and current in options:
            raise ValueError(f"{where}: {old} is the earlier spelling of {current}; give "
                             "one of them")
    return {RENAMED_OPTIONS.get(key, key): value for key, value in options.items()}


def _normalise(stage: str, key: str, value: Any) -> Any:
    """YAML lists become the tuples the stage functions take for sizes; a single
    question string becomes a one-question list."""
    if key == "questions" and isinstance(value, str):
        return [value]
    if isinstance(value, list) and key != "questions":
        return tuple(value)
    return value


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: the config must be a mapping of options")
    return dict(data)


def run_all(workdir: str | os.PathLike | Workdir, config: RunConfig,
            echo: Callable[[str], None] = print) -> list[tuple[str, Any]]:
    """Run the configured stages in order; stop at a stage with failures unless told not to."""
    workdir = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    results = []
    steps = [config.step(stage) for stage in config.stage_range()]
    for step in steps:
        echo(f"== {step}")
        result = stage_function(step)(workdir, **config.kwargs_for(step))
        echo(result.summary())
        results.append((step, result))
        if result.failures and not config.skip_failures:
            raise StageFailedError(step, result)
    return results
