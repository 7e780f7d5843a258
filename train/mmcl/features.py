"""Cached RGB and LLM features of the skeleton samples, joined by sample id.

The pipeline runs the image encoder and the vision-language model once per sample and
stores the results in the ``rgb-features`` and ``llm-features`` caches of a WORKDIR (fields
in :mod:`data_manifest.schemas`). This module opens those caches for training, checks that
they belong to this WORKDIR's manifest and to the models the run's config names, and hands
out one sample's features as arrays, one :class:`FeatureSource` per batch key for the
trainer's dataset. The trainer's collate pads ragged token-level features; FRM splits them
back into questions with the per-sample token counts.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from data_manifest.errors import DataError, MissingCacheError, StaleCacheError
from data_manifest.schemas import LLM_FEATURES, RGB_FEATURES, STITCH
from data_manifest.store import CacheReader
from data_manifest.workdir import Workdir
from train.mmcl.online_encoder import DEFAULT_IMAGE_SIZE, decode_image

log = logging.getLogger(__name__)

# Keys of the per-sample feature dicts and of the batch.
RGB_KEY = "rgb_feature"          # (D_rgb,) float32          -> batch (N, D_rgb)
LLM_KEY = "llm_feature"          # pooled (K, D) float32     -> batch (N, K, D)
                                 # token-level (sum L_k, D) float16 -> batch (N, L, D) padded
LLM_COUNTS_KEY = "llm_token_counts"  # token-level only: (K,) int64 -> batch (N, K)
IMAGE_KEY = "image"              # online encoder only: (3, H, W) float32 -> (N, 3, H, W)

LLM_LEVELS = ("pooled", "token")
# Spec params that name the model that made a cache (the first one present is used).
MODEL_PARAM_KEYS = {RGB_FEATURES: ("encoder", "model"), LLM_FEATURES: ("model",)}
_SHOWN_IDS = 20

_OPTION_OF = {RGB_FEATURES: "rgb_cache", LLM_FEATURES: "llm_cache", STITCH: "image_cache"}
_PIPELINE_COMMAND = {RGB_FEATURES: "pipeline cache-rgb-features WORKDIR",
                     LLM_FEATURES: "pipeline cache-llm-features WORKDIR",
                     STITCH: "pipeline stitch WORKDIR"}


@dataclass(frozen=True)
class FeatureSpec:
    """The caches a run reads and what they hold: the co-learning modules are built for it."""

    rgb_cache: str | None = None
    rgb_model: str | None = None
    rgb_width: int | None = None
    rgb_fingerprint: str | None = None
    llm_cache: str | None = None
    llm_model: str | None = None
    llm_width: int | None = None
    num_questions: int | None = None
    llm_level: str = "pooled"
    llm_fingerprint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MissingReport:
    """Samples left out because a cache has no features for them."""

    by_cache: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for ids in self.by_cache.values():
            seen.update(dict.fromkeys(ids))
        return list(seen)

    def __len__(self) -> int:
        return len(self.ids)

    def summary(self) -> str:
        if not self.by_cache:
            return "no sample missing from the feature caches"
        parts = [f"{len(ids)} missing from {cache}" for cache, ids in self.by_cache.items()]
        return f"skipped {len(self)} sample(s) without features ({'; '.join(parts)})"


def model_of(spec_params: Mapping[str, Any], stage: str) -> str | None:
    """The name of the model that made a cache, from its spec params.

    The pipeline records the model as ``{"name", "revision", "model_type"}``; shown here as
    ``name@revision`` when the revision is known.
    """
    for key in MODEL_PARAM_KEYS.get(stage, ("model",)):
        value = spec_params.get(key)
        if isinstance(value, Mapping):
            name, revision = value.get("name"), value.get("revision")
            if name is not None:
                return f"{name}@{revision}" if revision else str(name)
        elif value is not None:
            return str(value)
    return None


def model_matches(have: str | None, expected: str) -> bool:
    """``expected`` is a model name, or ``name@revision`` (a revision prefix is enough)."""
    if have is None:
        return False
    have_name, _, have_revision = have.partition("@")
    name, _, revision = expected.partition("@")
    if name != have_name and not (Path(name).expanduser().is_dir()
                                  and str(Path(name).expanduser().resolve()) == have_name):
        return False
    return not revision or have_revision.startswith(revision)


def choose_cache(workdir: Workdir, stage: str, name: str | None,
                 expected_model: str | None = None) -> str:
    """The cache to use: ``name``, or the WORKDIR's only cache of ``stage`` (of that model).

    The feature stages name their caches after the model and settings, so a WORKDIR often
    holds one cache per stage; when it holds several, the run's config must choose.
    """
    if name is not None:
        return name
    names = workdir.cache_names(stage)
    if not names:
        raise MissingCacheError(f"{workdir.path} has no {stage} cache; build one with "
                                f"`{_PIPELINE_COMMAND[stage]}`")
    models = {n: model_of(workdir.cache_dir(stage, n).spec().params, stage) for n in names}
    if expected_model is not None:
        names = [n for n in names if model_matches(models[n], expected_model)]
        if not names:
            listed = ", ".join(f"{n} (model {m})" for n, m in models.items())
            raise DataError(f"the run's config names model {expected_model!r}, but no "
                            f"{stage} cache of {workdir.path} was made with it; the caches "
                            f"are: {listed}")
    if len(names) > 1:
        listed = ", ".join(f"{n} (model {models[n]})" for n in names)
        raise DataError(f"{workdir.path} holds several {stage} caches: {listed}; choose one "
                        f"in the config (objective.options.{_OPTION_OF[stage]})")
    return names[0]


def open_cache(workdir: Workdir, stage: str, name: str | None,
               expected_model: str | None = None) -> CacheReader:
    """Open a feature cache of ``workdir`` with errors that name both sides of a mismatch."""
    name = choose_cache(workdir, stage, name, expected_model)
    where = f"the {stage} cache {name!r} of {workdir.path}"
    try:
        reader = workdir.reader(stage, name)
    except MissingCacheError:
        available = workdir.cache_names(stage)
        hint = (f"available {stage} caches: {', '.join(available)}" if available
                else f"build it with `{_PIPELINE_COMMAND[stage]}`")
        raise MissingCacheError(f"{where} does not exist; {hint}") from None
    except (DataError, StaleCacheError) as error:
        raise DataError(f"{where} cannot be used: {error}") from None
    have = model_of(reader.spec.params, stage)
    if expected_model is not None and not model_matches(have, expected_model):
        raise DataError(f"{where} was made with model {have!r}, but the run's config names "
                        f"{expected_model!r}; point the config at the cache made with that "
                        "model, or change the config's model to match the cache")
    return reader


def _check_upstream_agree(readers: Mapping[str, CacheReader], workdir: Workdir) -> None:
    """Both feature caches must come from one version of each upstream cache (the stitch)."""
    seen: dict[str, tuple[str, str]] = {}
    for stage, reader in readers.items():
        for upstream, fingerprint in reader.spec.upstream.items():
            if upstream in seen and seen[upstream][1] != fingerprint:
                other, other_fp = seen[upstream]
                raise StaleCacheError(
                    f"the {other} cache was made from {upstream} {other_fp}, the {stage} "
                    f"cache from {upstream} {fingerprint}: they describe different temporal "
                    "images; rebuild the older one")
            seen.setdefault(upstream, (stage, fingerprint))
            up_stage, _, up_name = upstream.partition("/")
            current = workdir.cache_dir(up_stage, up_name or "default")
            if up_stage == STITCH and current.exists():
                current_fp = current.spec().fingerprint
                if current_fp != fingerprint:
                    raise StaleCacheError(
                        f"the {stage} cache was made from {upstream} {fingerprint}, but that "
                        f"cache is now {current_fp} (rebuilt with other settings); rebuild "
                        f"the features with `{_PIPELINE_COMMAND[stage]}`")


class FeatureStore:
    """One sample's cached co-learning inputs by id, checked against the run's config.

    ``rgb`` / ``llm`` / ``image`` choose the modalities; ``rgb_cache`` / ``llm_cache`` /
    ``image_cache`` name their caches in the WORKDIR (None: the only cache of that stage, or
    the only one made with ``rgb_model`` / ``llm_model``). ``llm_level`` picks the pooled
    ``(K, D)`` vectors or the answer tokens' hidden states. ``image`` adds the decoded
    temporal image of the stitch cache, for an image encoder fine-tuned online instead of
    cached RGB features. The readers open their HDF5 files lazily per process, so the store
    can be handed to DataLoader workers.
    """

    def __init__(self, workdir: Workdir | str, *, rgb: bool = True, llm: bool = True,
                 rgb_cache: str | None = None, llm_cache: str | None = None,
                 llm_level: str = "pooled", rgb_model: str | None = None,
                 llm_model: str | None = None, image: bool = False,
                 image_cache: str | None = None,
                 image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE):
        if llm_level not in LLM_LEVELS:
            raise ValueError(f"unknown LLM feature level {llm_level!r}; choose one of "
                             f"{', '.join(LLM_LEVELS)}")
        self.workdir = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
        self.llm_level = llm_level
        self.rgb = open_cache(self.workdir, RGB_FEATURES, rgb_cache, rgb_model) if rgb else None
        self.llm = open_cache(self.workdir, LLM_FEATURES, llm_cache, llm_model) if llm else None
        self.images = open_cache(self.workdir, STITCH, image_cache) if image else None
        self.image_size = tuple(image_size)
        readers = {stage: r for stage, r in ((RGB_FEATURES, self.rgb), (LLM_FEATURES, self.llm))
                   if r is not None}
        _check_upstream_agree(readers, self.workdir)
        self._names = {stage: reader.cache.path.name for stage, reader in self._readers()}
        self.spec = self._describe()

    # -- what the caches hold
    def _first_id(self, reader: CacheReader, stage: str) -> str:
        if not len(reader):
            raise DataError(f"the {stage} cache {self._names[stage]!r} at {reader.cache.path} "
                            "holds no samples" + (f" ({len(reader.failures)} failed; see its "
                                                  "failures.jsonl)" if reader.failures else ""))
        return next(iter(reader))

    def _describe(self) -> FeatureSpec:
        values: dict[str, Any] = {"llm_level": self.llm_level}
        if self.rgb is not None:
            first = self._first_id(self.rgb, RGB_FEATURES)
            feature = self.rgb.get(first, ["feature"])["feature"]
            if feature.ndim != 1:
                raise DataError(f"rgb-features field 'feature' must be one vector per sample, "
                                f"sample {first} has shape {feature.shape}",
                                path=str(self.rgb.cache.path))
            values.update(rgb_cache=self._names[RGB_FEATURES],
                          rgb_model=model_of(self.rgb.spec.params, RGB_FEATURES),
                          rgb_width=int(feature.shape[0]),
                          rgb_fingerprint=self.rgb.spec.fingerprint)
        if self.llm is not None:
            first = self._first_id(self.llm, LLM_FEATURES)
            fields = set(self.llm.fields())
            needed = {"pooled"} if self.llm_level == "pooled" else {"hidden", "token_counts"}
            if not needed <= fields:
                raise DataError(f"the llm-features cache {self._names[LLM_FEATURES]!r} has no "
                                f"field(s) {sorted(needed - fields)} needed for "
                                f"{self.llm_level}-level features (it has {sorted(fields)})",
                                path=str(self.llm.cache.path))
            pooled = self.llm.get(first, ["pooled"])["pooled"] if "pooled" in fields else None
            if pooled is not None:
                num_questions, width = int(pooled.shape[0]), int(pooled.shape[1])
            else:
                sample = self.llm.get(first, ["hidden", "token_counts"])
                num_questions, width = len(sample["token_counts"]), int(sample["hidden"].shape[1])
            declared = self.llm.spec.params.get("questions")
            if isinstance(declared, (list, tuple)) and len(declared) != num_questions:
                raise DataError(f"the llm-features cache {self._names[LLM_FEATURES]!r} declares "
                                f"K={len(declared)} questions in its spec, but sample {first} "
                                f"holds K={num_questions}", path=str(self.llm.cache.path))
            values.update(llm_cache=self._names[LLM_FEATURES],
                          llm_model=model_of(self.llm.spec.params, LLM_FEATURES),
                          llm_width=width, num_questions=num_questions,
                          llm_fingerprint=self.llm.spec.fingerprint)
        return FeatureSpec(**values)

    # -- joining by id
    def missing(self, sample_ids: Iterable[str]) -> MissingReport:
        ids = list(sample_ids)
        report = MissingReport()
        for stage, reader in self._readers():
            absent = reader.missing(ids)
            if absent:
                report.by_cache[f"{stage}/{self._names[stage]}"] = absent
        return report

    def join(self, sample_ids: Sequence[str], skip_missing: bool = False,
             what: str = "the training split") -> tuple[list[str], MissingReport]:
        """The ids that have every feature; the rest are an error unless ``skip_missing``."""
        report = self.missing(sample_ids)
        if report.by_cache and not skip_missing:
            raise DataError(self._missing_message(report, len(sample_ids), what))
        if report.by_cache:
            log.warning("%s", report.summary())
        dropped = set(report.ids)
        return [i for i in sample_ids if i not in dropped], report

    def _missing_message(self, report: MissingReport, total: int, what: str) -> str:
        lines = []
        for cache, ids in report.by_cache.items():
            stage = cache.split("/", 1)[0]
            reader = dict(self._readers())[stage]
            reasons = {f["id"]: f["reason"] for f in reader.failures}
            shown = [f"{i} ({reasons[i]})" if i in reasons else i for i in ids[:_SHOWN_IDS]]
            more = f" and {len(ids) - _SHOWN_IDS} more" if len(ids) > _SHOWN_IDS else ""
            lines.append(f"{len(ids)} of {total} sample(s) of {what} are missing from the "
                         f"{cache} cache: {', '.join(shown)}{more}")
        return ("; ".join(lines) + ". Finish the cache with the pipeline (with "
                "--retry-failures for the failed ones), or pass --skip-missing to train "
                "without those samples")

    def _readers(self) -> list[tuple[str, CacheReader]]:
        pairs = ((RGB_FEATURES, self.rgb), (LLM_FEATURES, self.llm), (STITCH, self.images))
        return [(stage, reader) for stage, reader in pairs if reader is not None]

    # -- reading
    def keys(self) -> list[str]:
        """The per-sample keys :meth:`get` gives (and the batch will carry)."""
        keys = [IMAGE_KEY] if self.images is not None else []
        keys += [RGB_KEY] if self.rgb is not None else []
        if self.llm is not None:
            keys += [LLM_KEY] + ([LLM_COUNTS_KEY] if self.llm_level == "token" else [])
        return keys

    def _reader_of(self, key: str) -> CacheReader:
        return {IMAGE_KEY: self.images, RGB_KEY: self.rgb, LLM_KEY: self.llm,
                LLM_COUNTS_KEY: self.llm}[key]

    def get(self, sample_id: str, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """One sample's values of ``keys`` (default: all of :meth:`keys`)."""
        wanted = self.keys() if keys is None else list(keys)
        values: dict[str, np.ndarray] = {}
        spec = self.spec
        if IMAGE_KEY in wanted:
            jpeg = self.images.get(sample_id, ["image"])["image"]
            try:
                values[IMAGE_KEY] = decode_image(jpeg, self.image_size)
            except OSError as error:
                raise DataError(f"unreadable temporal image in the stitch cache ({error})",
                                sample_id=sample_id) from None
        if RGB_KEY in wanted:
            feature = np.asarray(self.rgb.get(sample_id, ["feature"])["feature"], np.float32)
            if feature.shape != (spec.rgb_width,):
                raise DataError(f"rgb feature of shape {feature.shape}, the cache's first "
                                f"sample has ({spec.rgb_width},)", sample_id=sample_id)
            values[RGB_KEY] = feature
        if LLM_KEY in wanted and self.llm_level == "pooled":
            pooled = np.asarray(self.llm.get(sample_id, ["pooled"])["pooled"], np.float32)
            if pooled.shape != (spec.num_questions, spec.llm_width):
                raise DataError(self._k_mismatch(pooled.shape), sample_id=sample_id)
            values[LLM_KEY] = pooled
        elif LLM_KEY in wanted or LLM_COUNTS_KEY in wanted:
            names = ["token_counts"] + (["hidden"] if LLM_KEY in wanted else [])
            sample = self.llm.get(sample_id, names)
            counts = np.asarray(sample["token_counts"], np.int64)
            if len(counts) != spec.num_questions:
                raise DataError(self._k_mismatch((len(counts), spec.llm_width)),
                                sample_id=sample_id)
            if LLM_KEY in wanted:
                hidden = sample["hidden"]
                if hidden.ndim != 2 or hidden.shape[1] != spec.llm_width:
                    raise DataError(self._k_mismatch((len(counts), hidden.shape[-1])),
                                    sample_id=sample_id)
                if int(counts.sum()) != hidden.shape[0]:
                    raise DataError(f"token counts sum to {int(counts.sum())} but "
                                    f"{hidden.shape[0]} token hidden states are stored",
                                    sample_id=sample_id)
                values[LLM_KEY] = hidden
            if LLM_COUNTS_KEY in wanted:
                values[LLM_COUNTS_KEY] = counts
        return values

    def sources(self) -> dict[str, "FeatureSource"]:
        """One per-sample source per key, for the trainer's dataset ``extras``."""
        return {key: FeatureSource(self, key) for key in self.keys()}

    def _k_mismatch(self, shape: tuple[int, ...]) -> str:
        return (f"LLM features with K={shape[0]} questions of width {shape[1]}, but the "
                f"{self._names[LLM_FEATURES]!r} cache's first sample has K="
                f"{self.spec.num_questions}, width {self.spec.llm_width}")

    def close(self) -> None:
        for _, reader in self._readers():
            reader.close()


@dataclass
class FeatureSource:
    """One key of a :class:`FeatureStore`: ``get(id)`` and ``missing(ids)`` by sample id."""

    store: FeatureStore
    key: str

    def get(self, sample_id: str) -> np.ndarray:
        return self.store.get(sample_id, [self.key])[self.key]

    def missing(self, sample_ids: Sequence[str]) -> list[str]:
        return self.store._reader_of(self.key).missing(sample_ids)
