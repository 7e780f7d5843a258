"""Weighted fusion of several streams' scores (joint, bone, motion...), matched by sample id.

The fused score of a sample is ``sum_i w_i * s_i`` over streams ``i`` (raw logits, as
CTR-GCN's ensemble, or softmax probabilities with ``softmax=True``). Weights are given,
or searched on a held-out set (scores of the same streams on other samples) by
coordinate ascent over a grid, so the test set never chooses them: held-out scores that
share a sample with the scores to fuse are refused.

``train ensemble --output fused.npz`` also writes ``fused.json`` beside the scores, the
record ``train compare`` reads: format ``"mmcl-ensemble"``, version 1, ``streams`` (per
scores file: its path and, from the ``train eval`` report beside it when there is one,
run_dir, checkpoint, epoch, part, selected_on, modality), ``weights``, ``weights_from``
(given, searched or equal), ``heldout`` (the files the weights were searched on, each
with its part), ``heldout_check`` (searched weights only: the proof that the held-out
samples are not the fused ones, ``{"overlap": 0, "heldout_samples", "heldout_ids_sha256",
"fused_ids_sha256"}``, the digests of the sorted sample ids), ``softmax``, ``top1``,
``top5``, ``num_samples``, ``stream_top1``, ``heldout_top1``. Version 1 records lack
``heldout_check``: ``train compare`` withholds the accuracy of their searched weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from train.errors import TrainError
from train.scoring import Scores

DEFAULT_GRID = tuple(round(0.1 * i, 1) for i in range(11))
RECORD_FORMAT = "mmcl-ensemble"
RECORD_VERSION = 2
# what a stream's record takes from the `train eval` report (metrics.json) beside its scores
STREAM_KEYS = ("run_dir", "checkpoint", "epoch", "part", "selected_on", "modality")


@dataclass
class EnsembleResult:
    weights: list[float]
    fused: Scores
    top1: float
    top5: float
    stream_top1: list[float]
    heldout_top1: float | None = None
    heldout_check: dict[str, Any] | None = None   # searched weights: held-out vs fused ids


def align(streams: Sequence[Scores], names: Sequence[str] | None = None) -> list[Scores]:
    """The streams reordered to the first one's sample order; ids and labels must agree."""
    if not streams:
        raise TrainError("no scores to fuse")
    names = list(names or [f"stream {i + 1}" for i in range(len(streams))])
    first = streams[0]
    ids = set(first.ids)
    classes = first.scores.shape[1]
    aligned = [first]
    for name, stream in zip(names[1:], streams[1:]):
        other = set(stream.ids)
        if other != ids:
            only_first = sorted(ids - other)[:5]
            only_other = sorted(other - ids)[:5]
            raise TrainError(f"{name} covers other samples than {names[0]}: "
                             f"{len(ids - other)} only in {names[0]} (e.g. {only_first}), "
                             f"{len(other - ids)} only in {name} (e.g. {only_other})")
        if stream.scores.shape[1] != classes:
            raise TrainError(f"{name} has {stream.scores.shape[1]} classes, {names[0]} has "
                             f"{classes}")
        position = {sample_id: i for i, sample_id in enumerate(stream.ids)}
        order = np.array([position[sample_id] for sample_id in first.ids])
        labels = stream.labels[order]
        if not np.array_equal(labels, first.labels):
            bad = [first.ids[i] for i in np.flatnonzero(labels != first.labels)[:5]]
            raise TrainError(f"{name} and {names[0]} disagree on labels (e.g. {bad})")
        aligned.append(Scores(ids=list(first.ids), labels=labels,
                              scores=stream.scores[order]))
    return aligned


def _prepare(stream: Scores, softmax: bool) -> np.ndarray:
    values = stream.scores.astype(np.float64)
    if softmax:
        values = np.exp(values - values.max(axis=1, keepdims=True))
        values /= values.sum(axis=1, keepdims=True)
    return values


def fuse(streams: Sequence[Scores], weights: Sequence[float], *,
         softmax: bool = False, names: Sequence[str] | None = None) -> Scores:
    streams = align(streams, names)
    if len(weights) != len(streams):
        raise TrainError(f"{len(weights)} weights for {len(streams)} score files")
    total = sum(w * _prepare(s, softmax) for w, s in zip(weights, streams))
    first = streams[0]
    return Scores(ids=list(first.ids), labels=first.labels,
                  scores=np.asarray(total, dtype=np.float32))


def search_weights(streams: Sequence[Scores], *, grid: Sequence[float] = DEFAULT_GRID,
                   softmax: bool = False, rounds: int = 3,
                   names: Sequence[str] | None = None) -> tuple[list[float], float]:
    """Weights maximising top-1 on ``streams`` (coordinate ascent from all ones)."""
    streams = align(streams, names)
    values = [_prepare(s, softmax) for s in streams]
    labels = streams[0].labels
    weights = [1.0] * len(values)

    def accuracy(ws: Sequence[float]) -> float:
        fused = sum(w * v for w, v in zip(ws, values))
        return float((fused.argmax(axis=1) == labels).mean())

    best = accuracy(weights)
    for _ in range(rounds):
        improved = False
        for i in range(len(values)):
            for candidate in grid:
                trial = list(weights)
                trial[i] = float(candidate)
                if not any(trial):
                    continue
                score = accuracy(trial)
                if score > best + 1e-12:
                    best, weights, improved = score, trial, True
        if not improved:
            break
    return weights, best


def ids_digest(ids: Sequence[str]) -> str:
    """sha256 of the sorted sample ids (one per line): which samples, not their order."""
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()


def check_heldout(streams: Sequence[Scores], heldout: Sequence[Scores],
                  names: Sequence[str] | None = None,
                  heldout_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Refuse held-out scores that share samples with the scores to fuse (weights searched
    on them would be chosen on the samples they are then tested on); the proof otherwise."""
    fused_ids = set().union(*(stream.ids for stream in streams))
    held_ids = set().union(*(held.ids for held in heldout))
    overlap = sorted(fused_ids & held_ids)
    if overlap:
        held_files = ", ".join(heldout_names or []) or "the held-out scores"
        fused_files = ", ".join(names or []) or "the scores to fuse"
        raise TrainError(
            f"{len(overlap)} of the {len(held_ids)} held-out samples are also among the "
            f"{len(fused_ids)} samples to fuse (e.g. {overlap[:5]}): weights searched on "
            f"them would be chosen on the test samples. Held out: {held_files}; fused: "
            f"{fused_files}. Search on scores of other samples, e.g. the runs' validation "
            "part (train ensemble RUN_DIR... --search-val)")
    return {"overlap": 0, "heldout_samples": len(held_ids),
            "heldout_ids_sha256": ids_digest(list(held_ids)),
            "fused_ids_sha256": ids_digest(list(fused_ids))}


def ensemble(streams: Sequence[Scores], *, weights: Sequence[float] | None = None,
             heldout: Sequence[Scores] | None = None, softmax: bool = False,
             names: Sequence[str] | None = None,
             heldout_names: Sequence[str] | None = None) -> EnsembleResult:
    """Fuse ``streams`` with given weights, weights searched on ``heldout``, or equal ones.

    ``names`` (one per stream, e.g. the files or runs) and ``heldout_names`` (one per
    held-out file) name them in errors."""
    if weights is not None and heldout is not None:
        raise TrainError("give weights or a held-out set to search them on, not both")
    heldout_top1 = check = None
    if heldout is not None:
        if len(heldout) != len(streams):
            raise TrainError(f"{len(heldout)} held-out score files for {len(streams)} "
                             "streams; give one per stream, in the same order")
        check = check_heldout(streams, heldout, names, heldout_names)
        weights, heldout_top1 = search_weights(
            heldout, softmax=softmax,
            names=list(heldout_names) if heldout_names else
            [f"{name} (held out)" for name in names] if names else None)
    elif weights is None:
        weights = [1.0] * len(streams)
    fused = fuse(streams, weights, softmax=softmax, names=names)
    return EnsembleResult(weights=list(weights), fused=fused, top1=fused.top(1),
                          top5=fused.top(5), stream_top1=[s.top(1) for s in streams],
                          heldout_top1=heldout_top1, heldout_check=check)


def stream_record(scores_path: str | os.PathLike) -> dict[str, Any]:
    """A scores file and what the ``train eval`` report beside it says about it."""
    path = Path(scores_path).resolve()
    record: dict[str, Any] = {"scores": str(path)}
    report = path.parent / "metrics.json"
    if report.is_file():
        try:
            metrics = json.loads(report.read_text())
        except ValueError:
            metrics = {}
        record.update({key: metrics.get(key) for key in STREAM_KEYS})
    return record


def ensemble_record(result: EnsembleResult, scores: Sequence[str | os.PathLike],
                    heldout: Sequence[str | os.PathLike] | None, softmax: bool,
                    given_weights: bool) -> dict[str, Any]:
    return {"format": RECORD_FORMAT, "version": RECORD_VERSION,
            "streams": [stream_record(path) for path in scores],
            "weights": list(result.weights),
            "weights_from": "searched" if heldout else "given" if given_weights else "equal",
            "heldout": [stream_record(path) for path in heldout] if heldout else None,
            "heldout_check": result.heldout_check,
            "softmax": softmax, "top1": result.top1, "top5": result.top5,
            "num_samples": len(result.fused.ids), "stream_top1": result.stream_top1,
            "heldout_top1": result.heldout_top1}


def read_ensemble_record(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise TrainError(f"{path} is not a readable ensemble record ({error})") from error
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise TrainError(f"{path} is not an ensemble record (no format {RECORD_FORMAT!r}); "
                         "`train ensemble --output FUSED.npz` writes FUSED.json")
    streams, weights = record.get("streams"), record.get("weights")
    problem = None
    if not (isinstance(streams, list) and streams and all(
            isinstance(stream, dict) and isinstance(stream.get("scores"), str)
            for stream in streams)):
        problem = "its 'streams' are missing or not a list of scores files"
    elif not (isinstance(weights, list) and len(weights) == len(streams) and all(
            isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights)):
        problem = f"its 'weights' are missing or not {len(streams)} numbers"
    elif not all(isinstance(held, dict) and isinstance(held.get("scores"), str)
                 for held in record.get("heldout") or []):
        problem = "its 'heldout' entries are not scores files"
    if problem:
        raise TrainError(f"{path} is a damaged ensemble record: {problem}; write it again "
                         "with `train ensemble ... --output FUSED.npz`")
    return record
