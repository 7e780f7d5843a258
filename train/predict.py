"""Classify one skeleton file with a run directory or an exported model (skeleton only).

The file is read exactly as the run's skeleton cache read its files (``load_skeleton_sample``
with the reading recorded in the checkpoint or export: layout, joint mapping, channels,
persons, denoising) and preprocessed like the run's test feeder (``transform_for_inference``),
so a prediction matches what ``train eval`` would give, with no WORKDIR or layout file.

Models: a run directory (the eager backbone and a checkpoint), an export directory (with
``export.json``), a TorchScript export (``.pt``) or an ONNX export (``.onnx``, needs
onnxruntime). Exported files are loaded without this project's model code. Only load
models you trust: a TorchScript archive holds code that runs when the model is called.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from data_manifest.formats.load import load_skeleton_sample
from data_manifest.formats.reading import SkeletonReading
from train.config import TrainConfig
from train.data.feeders import transform_for_inference
from train.errors import TrainError, error_summary
from train.export import (FILE_NAMES, INPUT_NAME, META_FILE, META_KEY, OUTPUT_NAME,
                          SIDECAR_NAME, dataset_of, load_torchscript, run_class_names)
from train.checkpoint import CONFIG_FILE
from train.models.load_run import load_run


class PredictError(TrainError):
    """A model that cannot be loaded for prediction."""


@dataclass
class Predictor:
    """A model that maps preprocessed input (N, C, T, V, M) to logits, with its run config."""
    describe: str
    config: TrainConfig
    class_names: list[str]
    logits: Callable[[np.ndarray], np.ndarray]
    skeletons: dict[str, Any] | None = None     # the run's skeleton cache params

    def reading(self, dataset: str | None = None) -> SkeletonReading:
        """How a skeleton file is read for this model: as ``dataset``'s files if given,
        else exactly as the run's skeleton cache read its files (layout, joint mapping,
        channels, persons), else as its dataset's."""
        if dataset is None and self.skeletons and "format_version" in self.skeletons:
            return SkeletonReading.from_params(self.skeletons)
        return SkeletonReading.for_dataset(dataset or dataset_of(self.config))


@dataclass
class ClassScore:
    rank: int
    label: int
    name: str
    probability: float
    logit: float


@dataclass
class Prediction:
    skeleton: Path
    model: str
    frames: int            # frames of the file that hold a skeleton
    persons: int           # persons found in the file
    top: list[ClassScore]

    def to_dict(self) -> dict[str, Any]:
        return {"skeleton": str(self.skeleton), "model": self.model, "frames": self.frames,
                "persons": self.persons, "top": [vars(item) for item in self.top]}

    def format(self) -> str:
        lines = [f"{self.skeleton.name}: {self.frames} frames, {self.persons} person(s); "
                 f"model {self.model}"]
        lines += [f"{item.rank:>3}. {item.name} (label {item.label}) "
                  f"{100 * item.probability:6.2f}%" for item in self.top]
        return "\n".join(lines)


# --------------------------------------------------------------------------- loading


def load_predictor(model_path: str | Path, checkpoint: str | Path = "auto") -> Predictor:
    path = Path(model_path)
    if path.is_dir():
        if (path / CONFIG_FILE).is_file():
            return _eager(path, checkpoint)
        if (path / SIDECAR_NAME).is_file():
            return _from_export_dir(path)
        raise PredictError(f"{path} is neither a run directory ({CONFIG_FILE}) nor an "
                           f"export directory ({SIDECAR_NAME})")
    if not path.is_file():
        raise PredictError(f"model not found: {path}")
    if path.suffix == ".onnx":
        return _onnx(path)
    return _torchscript(path)


def _eager(run_dir: Path, checkpoint: str | Path) -> Predictor:
    run = load_run(run_dir, checkpoint)

    def logits(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return run.model(torch.from_numpy(x)).numpy()

    return Predictor(describe=f"{run_dir} ({run.checkpoint.name})", config=run.config,
                     class_names=run.class_names or run_class_names(run.config), logits=logits,
                     skeletons=run.skeletons)


def _from_export_dir(folder: Path) -> Predictor:
    meta = _parse_meta((folder / SIDECAR_NAME).read_text(encoding="utf-8"),
                       folder / SIDECAR_NAME)
    files = meta.get("files", {})
    if "torchscript" in files and (folder / files["torchscript"]).is_file():
        return _torchscript(folder / files["torchscript"])
    if "onnx" in files and (folder / files["onnx"]).is_file():
        return _onnx(folder / files["onnx"])
    raise PredictError(f"{folder / SIDECAR_NAME} lists no model file that exists "
                       f"(expected {', '.join(FILE_NAMES.values())})")


def _torchscript(path: Path) -> Predictor:
    extra = {META_FILE: ""}
    try:
        module = load_torchscript(path, extra)
    except (RuntimeError, ValueError) as error:
        raise PredictError(f"{path} is not a TorchScript export of this toolkit "
                           f"({error_summary(error)}); give a run directory for trainer "
                           "checkpoints") from error
    meta = _parse_meta(extra[META_FILE], path)
    module.eval()

    def logits(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    return _from_meta(meta, str(path), logits)


def _onnx(path: Path) -> Predictor:
    if importlib.util.find_spec("onnxruntime") is None:
        raise PredictError(f"running {path} needs onnxruntime: "
                           "pip install 'mmcl-toolkit[onnx]'")
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:   # onnxruntime raises its own exception classes
        raise PredictError(f"{path} is not a readable ONNX model ({error_summary(error)})") \
            from error
    props = session.get_modelmeta().custom_metadata_map
    meta = _parse_meta(props.get(META_KEY, ""), path)

    def logits(x: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]

    return _from_meta(meta, str(path), logits)


def _parse_meta(text: str, path: Path) -> dict[str, Any]:
    if not text:
        raise PredictError(f"{path} carries no {META_KEY} metadata: export it with "
                           "`train export RUN_DIR`")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as error:
        raise PredictError(f"{path}: its {META_KEY} metadata is not JSON ({error})") from error
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise PredictError(f"{path}: its {META_KEY} metadata has no run config; export the "
                           "run again with `train export RUN_DIR`")
    return meta


def _from_meta(meta: dict[str, Any], describe: str,
               logits: Callable[[np.ndarray], np.ndarray]) -> Predictor:
    config = TrainConfig.from_dict(meta["config"])
    names = meta.get("class_names") or run_class_names(config)
    skeletons = meta.get("skeletons")
    return Predictor(describe=describe, config=config, class_names=list(names), logits=logits,
                     skeletons=skeletons if isinstance(skeletons, dict) else None)


# --------------------------------------------------------------------------- predicting


def predict_skeleton(predictor: Predictor, skeleton_path: str | Path, top_k: int = 5,
                     dataset: str | None = None) -> Prediction:
    """Top-``top_k`` classes for one skeleton file (read as ``dataset``'s files, default: as
    the run's skeleton cache read its files)."""
    if top_k < 1:
        raise PredictError(f"top_k must be at least 1, not {top_k}")
    skeleton_path = Path(skeleton_path)
    sample = load_skeleton_sample(skeleton_path, predictor.reading(dataset))
    try:
        x = transform_for_inference(sample["joints"], predictor.config)[None]
    except ValueError as error:   # e.g. a skeleton of another layout
        raise PredictError(f"{skeleton_path}: {error}") from error
    scores = predictor.logits(np.ascontiguousarray(x, dtype=np.float32))[0].astype(np.float64)
    probabilities = np.exp(scores - scores.max())
    probabilities /= probabilities.sum()
    order = np.argsort(-scores, kind="stable")[:top_k]
    top = [ClassScore(rank=rank, label=int(label), name=predictor.class_names[label],
                      probability=float(probabilities[label]), logit=float(scores[label]))
           for rank, label in enumerate(order, start=1)]
    return Prediction(skeleton=skeleton_path, model=predictor.describe,
                      frames=int(sample["joints"].shape[0]),
                      persons=int(sample["num_actors"]), top=top)


def predict_file(model_path: str | Path, skeleton_path: str | Path, top_k: int = 5,
                 dataset: str | None = None, checkpoint: str | Path = "auto") -> Prediction:
    return predict_skeleton(load_predictor(model_path, checkpoint), skeleton_path, top_k,
                            dataset)
