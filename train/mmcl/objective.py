"""The MMCL training objective: L = L_cls + lambda1 * L_c (FAM) + lambda2 * L_R (FRM).

The objective owns the co-learning modules (FAM's MLP, FRM's projection and class-score
matrices, optionally an online image encoder); the trainer optimises them with the GCN and
saves them under ``"objective"`` in its checkpoints. The skeleton model is untouched, so the
exported model and every inference path stay skeleton-only.

Selected with ``objective.name: mmcl``; its settings are ``objective.options`` (see
:class:`MMCLSettings`). With FAM and FRM both off it is the plain baseline and opens no
feature cache.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from data_manifest.errors import DataError, MissingCacheError, StaleCacheError
from data_manifest.schemas import LLM_FEATURES, RGB_FEATURES
from train.cache_binding import fingerprint_change
from train.config import TrainConfig, check_cache_names
from train.errors import CheckpointError, ConfigError, TrainError
from train.mmcl.contrastive import DEFAULT_TAU
from train.mmcl.fam import FeatureAlignment
from train.mmcl.features import (IMAGE_KEY, LLM_COUNTS_KEY, LLM_KEY, RGB_KEY, FeatureSpec,
                                 FeatureStore)
from train.mmcl.frm import TOKEN_POOLINGS, FeatureRefinement
from train.mmcl.online_encoder import build_online_encoder
from train.modeling import backbone_outline
from train.objectives import ObjectivePlan, StepOutput, check_options

log = logging.getLogger(__name__)


@dataclass
class MMCLSettings:
    """``objective.options`` of an MMCL run."""

    fam: bool = True                        # feature alignment with RGB features
    frm: bool = True                        # feature refinement with LLM features
    lambda_contrastive: float = 0.1         # lambda1
    lambda_refine: float = 0.2              # lambda2
    tau: float = DEFAULT_TAU                # contrastive temperature
    fam_global_batch: bool = True           # several processes: contrast the global batch
    skeleton_width: int | None = None       # the GCN's global feature width; None: the
                                            # backbone's own (feature_dim)
    rgb_cache: str | None = None            # rgb-features cache name (None: the only one)
    llm_cache: str | None = None            # llm-features cache name (None: the only one)
    rgb_model: str | None = None            # encoder the rgb cache must come from (None: any)
    llm_model: str | None = None            # model the llm cache must come from (None: any)
    llm_level: str = "pooled"               # "pooled" (K, D) or "token" (ragged answer tokens)
    frm_matrices: int = 2                   # class-score matrices (positive, negative)
    frm_hidden: int = 64                    # Phi's hidden width
    frm_token_pooling: str = "mean"         # token-level features: "mean" or "max"
    frm_input_norm: bool = True             # layer-normalise each question's LLM vector
    skip_missing: bool = False              # drop training samples without features
    online_encoder: dict[str, Any] | None = None   # e.g. {"kind": "small-cnn"}; None: cached
    image_cache: str | None = None          # stitch cache the online encoder reads
    image_size: list[int] = field(default_factory=lambda: [299, 299])

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "MMCLSettings":
        data = dict(data or {})
        check_options("mmcl", data, {f.name: None for f in fields(cls)})
        settings = cls(**data)
        settings.validate()
        return settings

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        def fail(message: str) -> None:
            raise ConfigError(f"objective.options.{message}")
        for name in ("fam", "frm", "fam_global_batch", "frm_input_norm", "skip_missing"):
            if not isinstance(getattr(self, name), bool):
                fail(f"{name} must be true or false, not {getattr(self, name)!r}")
        for name in ("lambda_contrastive", "lambda_refine", "tau"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                fail(f"{name} must be a non-negative number, not {value!r}")
        if self.tau <= 0:
            fail(f"tau must be positive, not {self.tau}")
        for name in ("skeleton_width", "frm_matrices", "frm_hidden"):
            value = getattr(self, name)
            if name == "skeleton_width" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail(f"{name} must be a positive integer, not {value!r}")
        check_cache_names({f"objective.options.{name}": getattr(self, name)
                           for name in ("rgb_cache", "llm_cache", "image_cache")})
        if self.llm_level not in ("pooled", "token"):
            fail(f"llm_level must be 'pooled' or 'token', not {self.llm_level!r}")
        if self.frm_token_pooling not in TOKEN_POOLINGS:
            fail(f"frm_token_pooling must be one of {', '.join(TOKEN_POOLINGS)}, not "
                 f"{self.frm_token_pooling!r}")
        if self.online_encoder is not None and not isinstance(self.online_encoder, dict):
            fail(f"online_encoder must be a mapping such as {{kind: small-cnn}}, not "
                 f"{self.online_encoder!r}")
        if (not isinstance(self.image_size, (list, tuple)) or len(self.image_size) != 2
                or not all(isinstance(v, int) and v >= 8 for v in self.image_size)):
            fail(f"image_size must be [height, width] of at least 8 pixels, not "
                 f"{self.image_size!r}")

    @property
    def enabled(self) -> bool:
        return self.fam or self.frm

    @property
    def online(self) -> bool:
        return self.fam and self.online_encoder is not None

    def store_kwargs(self) -> dict[str, Any]:
        """The :class:`~train.mmcl.features.FeatureStore` arguments these settings imply."""
        return {
            "rgb": self.fam and not self.online, "rgb_cache": self.rgb_cache,
            "rgb_model": self.rgb_model,
            "llm": self.frm, "llm_cache": self.llm_cache, "llm_model": self.llm_model,
            "llm_level": self.llm_level,
            "image": self.online, "image_cache": self.image_cache,
            "image_size": tuple(self.image_size),
        }


def _fingerprint_words(fingerprint: str | None) -> list[int]:
    """A 16-hex-digit cache fingerprint as two int64-safe words (0, 0 when absent)."""
    if not fingerprint:
        return [0, 0]
    return [int(fingerprint[:8], 16), int(fingerprint[8:16], 16)]


class MMCLObjective(nn.Module):
    """``objective(batch, model) -> StepOutput`` with losses cls, contrastive, refine.

    The losses come weighted and sum to the training loss. ``model.forward_features(x)``
    gives the logits and the global skeleton feature (N, skeleton_width).
    """

    def __init__(self, settings: MMCLSettings, features: FeatureSpec, num_classes: int,
                 skeleton_width: int | None = None):
        """``skeleton_width``: the backbone's ``feature_dim``, unless the settings fix it."""
        super().__init__()
        self.settings = settings
        self.features = features
        self.encoder: nn.Module | None = None
        self.fam: FeatureAlignment | None = None
        self.frm: FeatureRefinement | None = None
        rgb_width = -1
        if settings.fam:
            if settings.online:
                self.encoder = build_online_encoder(
                    {**settings.online_encoder, "image_size": settings.image_size})
                rgb_width = self.encoder.out_features
            elif features.rgb_width is None:
                raise TrainError("FAM is on but no RGB features were opened")
            else:
                rgb_width = features.rgb_width
            width = settings.skeleton_width or skeleton_width
            if width is None:
                raise TrainError("FAM needs the skeleton feature width: the backbone's "
                                 "feature_dim or objective.options.skeleton_width")
            self.fam = FeatureAlignment(rgb_width, width, settings.tau)
        if settings.frm:
            if features.llm_width is None or features.num_questions is None:
                raise TrainError("FRM is on but no LLM features were opened")
            self.frm = FeatureRefinement(
                features.llm_width, features.num_questions, num_classes,
                num_matrices=settings.frm_matrices, hidden=settings.frm_hidden,
                token_pooling=settings.frm_token_pooling, input_norm=settings.frm_input_norm)
        # What the modules were built for, saved with their weights so that resuming with
        # other caches is refused by name (see check_checkpoint).
        llm_width, num_questions = ((features.llm_width, features.num_questions)
                                    if self.frm is not None else (-1, -1))
        self.register_buffer("feature_widths", torch.tensor(
            [rgb_width, llm_width, num_questions]))
        self.register_buffer("feature_fingerprints", torch.tensor(
            [_fingerprint_words(features.rgb_fingerprint if self.fam is not None else None),
             _fingerprint_words(features.llm_fingerprint if self.frm is not None else None)]))

    def forward(self, batch: Mapping[str, Any], model: nn.Module) -> StepOutput:
        logits, skeleton_feature = model.forward_features(batch["x"])
        label = batch["label"]
        losses = {"cls": F.cross_entropy(logits.float(), label)}
        if self.fam is not None:
            rgb = self.encoder(batch[IMAGE_KEY]) if self.encoder is not None else batch[RGB_KEY]
            losses["contrastive"] = (self.settings.lambda_contrastive
                                     * self.fam(skeleton_feature.float(), rgb.float(),
                                                gather=self.settings.fam_global_batch))
        if self.frm is not None:
            refined = self.frm(logits.float(), batch[LLM_KEY], batch.get(LLM_COUNTS_KEY))
            losses["refine"] = self.settings.lambda_refine * F.cross_entropy(refined, label)
        return StepOutput(losses=losses, logits=logits)

    def check_checkpoint(self, state: Mapping[str, torch.Tensor], where: str) -> None:
        """Refuse objective weights built for other features, naming both sides."""
        problems = []
        saved_widths = state.get("feature_widths")
        if saved_widths is not None and saved_widths.shape == self.feature_widths.shape:
            labels = ("RGB feature width (FAM input)", "LLM feature width (FRM input)",
                      "LLM question count K")
            for label, old, new in zip(labels, saved_widths.tolist(),
                                       self.feature_widths.tolist()):
                if old != new:
                    problems.append(f"{label}: {where} has {_shown(old)}, the caches now give "
                                    f"{_shown(new)}")
        saved_prints = state.get("feature_fingerprints")
        if not problems and saved_prints is not None \
                and saved_prints.shape == self.feature_fingerprints.shape:
            names = (f"rgb-features cache {self.features.rgb_cache!r}",
                     f"llm-features cache {self.features.llm_cache!r}")
            for name, old, new in zip(names, saved_prints.tolist(),
                                      self.feature_fingerprints.tolist()):
                if old != new and any(old) and any(new):
                    problems.append(fingerprint_change(name, where, _hex(old), _hex(new)))
        if problems:
            raise CheckpointError("the co-learning features differ from the ones the run was "
                                  "trained with: " + "; ".join(problems) + ". Use the caches "
                                  "the run started with, or start a new run directory")


def _shown(width: int) -> str:
    return "none" if width < 0 else str(width)


def _hex(words: list[int]) -> str:
    return f"{words[0]:08x}{words[1]:08x}"


def _train_ids(config: TrainConfig) -> list[str]:
    from data_manifest.workdir import Workdir
    from train.data.dataset import open_skeletons, split_samples
    workdir = Workdir(config.data.workdir)
    split = split_samples(workdir, open_skeletons(workdir, config), config)
    return [sample.id for sample in split.train]


def build_mmcl(config: TrainConfig) -> ObjectivePlan:
    """The ``mmcl`` objective of a config: open and check the caches, build the modules."""
    settings = MMCLSettings.from_dict(config.objective.options)
    num_classes = config.model.num_classes
    if not settings.enabled:
        return ObjectivePlan(MMCLObjective(settings, FeatureSpec(), num_classes))
    if not config.data.workdir:
        raise ConfigError("data.workdir is not set: give the WORKDIR with the skeleton and "
                          "feature caches")
    try:
        store = FeatureStore(config.data.workdir, **settings.store_kwargs())
        _, report = store.join(_train_ids(config), settings.skip_missing)
    except (DataError, MissingCacheError, StaleCacheError) as error:
        raise TrainError(str(error)) from error
    if len(report):
        log.warning("%s", report.summary())
    objective = MMCLObjective(settings, store.spec, num_classes,
                              backbone_outline(config).feature_dim)
    log.info("mmcl: FAM %s, FRM %s; features %s", "on" if settings.fam else "off",
             "on" if settings.frm else "off", store.spec.to_dict())
    return ObjectivePlan(objective, extras=store.sources(), skip_missing=settings.skip_missing,
                         inputs=feature_inputs(store))


def feature_inputs(store: FeatureStore) -> dict[str, Any]:
    """The feature caches a run reads and their spec params (what made them: model,
    questions, settings), recorded in its checkpoints: another WORKDIR's caches can then be
    checked against them (``train eval --refine`` on another dataset)."""
    inputs: dict[str, Any] = {"features": store.spec.to_dict()}
    for stage, reader in ((RGB_FEATURES, store.rgb), (LLM_FEATURES, store.llm)):
        if reader is not None:
            inputs[stage] = {"cache": reader.cache.path.name,
                             "params": dict(reader.spec.params)}
    return inputs
