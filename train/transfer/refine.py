"""The authors' "w/ BLIP refine" scoring on another dataset: the run's FRM (trained with
it, saved in its checkpoint's ``objective`` state) re-weights the backbone's logits with
the target sample's own LLM features, S_R = sum_i w_i(F_text) * M_i * S_M.

The target's llm-features cache must be made as the run's was: the run records its cache's
spec params (``objective_inputs`` in its checkpoints), and a target cache is used only when
its model (name and revision, or the same revision at another path), questions,
generation settings, hidden layer and image settings are the same; the feature width and
question count must be those FRM was built for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from data_manifest.errors import MissingCacheError
from data_manifest.schemas import LLM_FEATURES
from data_manifest.workdir import Workdir
from train.config import TrainConfig
from train.data.collate import collate_samples
from train.errors import CheckpointError, TrainError
from train.mmcl.features import LLM_COUNTS_KEY, LLM_KEY, FeatureStore, choose_cache
from train.mmcl.frm import FeatureRefinement
from train.mmcl.objective import MMCLSettings
from train.models.reference_import import load_checked
from train.scoring import Scores

log = logging.getLogger(__name__)

# llm-features spec params that change the features (must match), and ones worth a warning
IDENTITY_PARAMS = ("model", "kind", "questions", "generation", "layer", "image_size",
                   "keep_aspect")
NOTED_PARAMS = ("dtype",)


@dataclass
class Refiner:
    frm: FeatureRefinement
    store: FeatureStore
    cache: str                       # the target's llm-features cache used
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        spec = self.store.spec
        return {"llm_cache": self.cache, "llm_model": spec.llm_model,
                "llm_level": spec.llm_level, "feature_width": spec.llm_width,
                "questions": spec.num_questions}

    def refine(self, scores: Scores, batch_size: int = 256) -> Scores:
        """The refined scores of every sample of ``scores`` (its LLM features must all be
        in the target's cache: a missing one is an error naming it)."""
        missing = self.store.missing(scores.ids).ids
        if missing:
            raise TrainError(f"--refine: {len(missing)} of the {len(scores.ids)} evaluated "
                             f"samples have no features in the llm-features cache "
                             f"{self.cache!r} (e.g. {', '.join(missing[:10])}); finish it with "
                             "`pipeline cache-llm-features` (--retry-failures for failed ones)")
        keys = [LLM_KEY] + ([LLM_COUNTS_KEY] if self.store.llm_level == "token" else [])
        refined = []
        self.frm.eval()
        with torch.no_grad():
            for start in range(0, len(scores.ids), batch_size):
                ids = scores.ids[start:start + batch_size]
                batch = collate_samples([self.store.get(i, keys) for i in ids])
                logits = torch.from_numpy(scores.scores[start:start + batch_size]).float()
                refined.append(self.frm(logits, batch[LLM_KEY], batch.get(LLM_COUNTS_KEY))
                               .numpy())
        return Scores(ids=list(scores.ids), labels=scores.labels,
                      scores=np.concatenate(refined).astype(np.float32))


def build_refiner(state: Mapping[str, Any], config: TrainConfig, checkpoint: Path,
                  workdir: Workdir) -> Refiner:
    """The run's FRM and the target's matching LLM features, or an error saying why not."""
    if config.objective.name != "mmcl":
        raise TrainError(f"--refine scores with the run's FRM, but {checkpoint} was trained "
                         f"with the {config.objective.name!r} objective (no FRM); train with "
                         "--mmcl")
    settings = MMCLSettings.from_dict(config.objective.options)
    if not settings.frm:
        raise TrainError(f"--refine scores with the run's FRM, but {checkpoint} was trained "
                         "without it (objective.options.frm is false, --no-frm)")
    objective = state.get("objective") or {}
    weights = {key[len("frm."):]: value for key, value in objective.items()
               if key.startswith("frm.")}
    if not weights:
        raise CheckpointError(f"{checkpoint} holds no FRM weights in its objective state")
    warnings: list[str] = []
    recorded = (state.get("objective_inputs") or {}).get(LLM_FEATURES)
    cache = _target_cache(workdir, settings, recorded, warnings)
    store = FeatureStore(workdir, rgb=False, llm=True, llm_cache=cache,
                         llm_level=settings.llm_level)
    spec = store.spec
    widths = objective.get("feature_widths")
    if widths is not None:
        trained = (int(widths[1]), int(widths[2]))
        if trained != (spec.llm_width, spec.num_questions):
            raise TrainError(f"the run's FRM was built for LLM features of width "
                             f"{trained[0]} with {trained[1]} question(s); the llm-features "
                             f"cache {cache!r} of {workdir.path} holds width "
                             f"{spec.llm_width} with {spec.num_questions}")
    frm = FeatureRefinement(spec.llm_width, spec.num_questions, config.model.num_classes,
                            num_matrices=settings.frm_matrices, hidden=settings.frm_hidden,
                            token_pooling=settings.frm_token_pooling,
                            input_norm=settings.frm_input_norm)
    load_checked(frm, weights, source=f"the FRM weights in {checkpoint}")
    return Refiner(frm, store, cache, warnings)


def _target_cache(workdir: Workdir, settings: MMCLSettings, recorded: Mapping | None,
                  warnings: list[str]) -> str:
    names = workdir.cache_names(LLM_FEATURES)
    made_as = _describe(recorded["params"]) if recorded else "the run's"
    if not names:
        raise MissingCacheError(f"{workdir.path} has no llm-features cache: --refine needs the "
                                f"target's LLM features made as the run's ({made_as}); build "
                                f"them with `pipeline cache-llm-features {workdir.path}` "
                                "with that model and those questions")
    if recorded is None:    # a run from before checkpoints recorded their caches
        message = ("the run did not record how its LLM features were made: the target's "
                   "cache is checked by feature width and question count only")
        warnings.append(message)
        log.warning("%s", message)
        return choose_cache(workdir, LLM_FEATURES, settings.llm_cache, settings.llm_model)
    candidates = [settings.llm_cache] if settings.llm_cache in names else names
    problems = {name: _differences(recorded["params"],
                                   workdir.cache_dir(LLM_FEATURES, name).spec().params)
                for name in candidates}
    matching = [name for name, found in problems.items() if not found]
    if not matching:
        listed = "; ".join(f"{name}: {', '.join(found)}" for name, found in problems.items())
        raise TrainError(f"no llm-features cache of {workdir.path} was made as the run's "
                         f"({made_as}), so the run's FRM cannot read it: {listed}. Build one "
                         f"with `pipeline cache-llm-features {workdir.path}` and the run's "
                         "model and questions")
    if len(matching) > 1:
        raise TrainError(f"several llm-features caches of {workdir.path} were made as the "
                         f"run's: {', '.join(matching)}; choose one with --set "
                         "objective.options.llm_cache=NAME")
    run_params = recorded["params"]
    target_params = workdir.cache_dir(LLM_FEATURES, matching[0]).spec().params
    for key in NOTED_PARAMS:
        if run_params.get(key) != target_params.get(key):
            warnings.append(f"the target's LLM features were computed in {key} "
                            f"{target_params.get(key)!r}, the run's in {run_params.get(key)!r}")
    return matching[0]


def _same_model(a: Any, b: Any) -> bool:
    """The same revision (a hub commit, or a model folder's content digest, whatever its
    path), else without revisions the same name."""
    if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
        return a == b
    if a.get("revision") or b.get("revision"):
        return a.get("revision") == b.get("revision")
    return a.get("name") == b.get("name")


def _differences(run: Mapping[str, Any], target: Mapping[str, Any]) -> list[str]:
    found = []
    for key in IDENTITY_PARAMS:
        same = _same_model if key == "model" else (lambda a, b: a == b)
        if not same(run.get(key), target.get(key)):
            found.append(f"{key} {_shown(target.get(key))} (run: {_shown(run.get(key))})")
    return found


def _shown(value: Any) -> str:
    if isinstance(value, Mapping) and "name" in value:
        revision = value.get("revision")
        return repr(f"{value['name']}@{revision}" if revision else value["name"])
    return repr(value)


def _describe(params: Mapping[str, Any]) -> str:
    return f"model {_shown(params.get('model'))}, questions {params.get('questions')!r}"
