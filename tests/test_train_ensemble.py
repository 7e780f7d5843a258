"""Fusion of several streams' scores by sample id."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from train.cli.main import cli
from train.ensemble import ensemble, fuse, ids_digest, search_weights
from train.errors import TrainError
from train.scores_io import load_scores, save_scores
from train.scoring import Scores


def _stream(labels, good: set[int], seed: int, classes: int = 4, ids=None) -> Scores:
    """Scores that are right exactly on the samples in ``good``: confidently (+2) where
    right, less so (+1 on a wrong class) where wrong."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    scores = rng.normal(0, 0.1, size=(n, classes)).astype(np.float32)
    for i, label in enumerate(labels):
        target = label if i in good else (label + 1) % classes
        scores[i, target] += 2.0 if i in good else 1.0
    return Scores(ids=list(ids or [f"s{i:03d}" for i in range(n)]),
                  labels=np.array(labels), scores=scores)


def test_fusion_matches_by_id_not_by_order():
    labels = [0, 1, 2, 3, 0, 1]
    a = _stream(labels, {0, 1, 2}, seed=0)
    b = _stream(labels, {3, 4, 5}, seed=1)
    order = [5, 3, 1, 0, 2, 4]
    shuffled = Scores(ids=[b.ids[i] for i in order], labels=b.labels[order],
                      scores=b.scores[order])
    fused = fuse([a, shuffled], [0.6, 0.4])
    assert fused.ids == a.ids
    np.testing.assert_allclose(fused.scores, 0.6 * a.scores + 0.4 * b.scores, rtol=1e-6)
    probabilities = fuse([a, b], [1, 1], softmax=True).scores
    np.testing.assert_allclose(probabilities.sum(axis=1), 2.0, rtol=1e-5)


def test_fused_accuracy_beats_each_stream_when_they_complement():
    labels = [i % 4 for i in range(40)]
    a = _stream(labels, set(range(0, 30)), seed=0)     # right on 75 %
    b = _stream(labels, set(range(10, 40)), seed=1)    # right on 75 %, other samples
    result = ensemble([a, b], weights=[1.0, 1.0])
    assert result.stream_top1 == pytest.approx([0.75, 0.75])
    assert result.top1 == 1.0 and result.weights == [1.0, 1.0]


def test_weights_are_searched_on_the_held_out_set():
    labels = [i % 4 for i in range(60)]
    good = _stream(labels, set(range(57)), seed=0)
    bad = _stream(labels, set(range(10)), seed=1)
    bad.scores *= 3                                    # loud and mostly wrong
    weights, accuracy = search_weights([good, bad])
    assert weights[0] > weights[1] and accuracy == pytest.approx(57 / 60)
    test_labels = [i % 4 for i in range(20)]
    test_ids = [f"t{i}" for i in range(20)]
    result = ensemble([_stream(test_labels, set(range(18)), 2, ids=test_ids),
                       _stream(test_labels, set(), 3, ids=test_ids)], heldout=[good, bad])
    assert result.weights == weights and result.heldout_top1 == accuracy
    assert result.top1 == pytest.approx(0.9)


def test_mismatched_streams_are_clear_errors():
    labels = [0, 1, 2]
    a = _stream(labels, {0}, 0)
    with pytest.raises(TrainError, match="1 only in stream 1"):
        fuse([a, _stream(labels[:2], {0}, 1)], [1, 1])
    other = _stream([0, 1, 3], {0}, 1)
    with pytest.raises(TrainError, match="disagree on labels"):
        fuse([a, other], [1, 1])
    with pytest.raises(TrainError, match="2 weights for 3"):
        fuse([a, a, a], [1, 1])
    with pytest.raises(TrainError, match="5 classes"):
        fuse([a, _stream(labels, {0}, 1, classes=5)], [1, 1])


def test_ensemble_command(tmp_path):
    labels = [i % 4 for i in range(20)]
    paths = []
    for name, good in (("joint", set(range(15))), ("bone", set(range(5, 20)))):
        path = tmp_path / f"{name}.npz"
        save_scores(path, _stream(labels, good, len(paths)), ["a", "b", "c", "d"])
        paths.append(str(path))
    runner = CliRunner()
    result = runner.invoke(cli, ["ensemble", *paths, "--weights", "0.6,0.4",
                                 "--output", str(tmp_path / "fused.npz")])
    assert result.exit_code == 0, result.output
    assert "weights: 0.6, 0.4" in result.output and "fused: top-1" in result.output
    fused, names = load_scores(tmp_path / "fused.npz")
    assert names == ["a", "b", "c", "d"] and len(fused.ids) == 20
    held = []
    for name, good in (("joint", set(range(10))), ("bone", set(range(4, 20)))):
        path = tmp_path / f"{name}-val.npz"
        save_scores(path, _stream(labels, good, len(held) + 5,
                                  ids=[f"v{i:03d}" for i in range(20)]), ["a", "b", "c", "d"])
        held.append(str(path))
    searched = runner.invoke(cli, ["ensemble", *paths, "--search", held[0],
                                   "--search", held[1], "--output", str(tmp_path / "s.npz")])
    assert searched.exit_code == 0 and "held-out" in searched.output
    check = json.loads((tmp_path / "s.json").read_text())["heldout_check"]
    assert check == {"overlap": 0, "heldout_samples": 20,
                     "heldout_ids_sha256": ids_digest([f"v{i:03d}" for i in range(20)]),
                     "fused_ids_sha256": ids_digest(fused.ids)}
    bad = runner.invoke(cli, ["ensemble", *paths, "--weights", "1"])
    assert bad.exit_code == 2 and "1 weights for 2" in bad.output
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    junk = runner.invoke(cli, ["ensemble", str(tmp_path / "junk.npz")])
    assert junk.exit_code == 2 and "not a scores file" in junk.output


def test_held_out_scores_of_the_fused_samples_are_refused(tmp_path):
    """Regression: weights could be searched on the test scores themselves (copied under
    another name, or sharing part of the samples) and nothing said so."""
    labels = [i % 4 for i in range(20)]
    streams = [_stream(labels, set(range(15)), 0), _stream(labels, set(range(5, 20)), 1)]
    partly = [_stream(labels, set(range(12)), 2, ids=[f"s{i:03d}" for i in range(3)]
                      + [f"v{i:03d}" for i in range(17)]) for _ in range(2)]
    with pytest.raises(TrainError, match=r"3 of the 20 held-out samples are also among the "
                                         r"20 samples to fuse .*Held out: h1, h2; fused: "
                                         r"f1, f2"):
        ensemble(streams, heldout=partly, names=["f1", "f2"], heldout_names=["h1", "h2"])
    paths = []
    for index, stream in enumerate(streams):
        paths.append(tmp_path / f"test-{index}.npz")
        save_scores(paths[-1], stream, ["a", "b", "c", "d"])
        shutil.copy(paths[-1], tmp_path / f"copy-{index}.npz")
    result = CliRunner().invoke(cli, ["ensemble", *map(str, paths),
                                      "--search", str(tmp_path / "copy-0.npz"),
                                      "--search", str(tmp_path / "copy-1.npz")])
    assert result.exit_code == 2
    assert "20 of the 20 held-out samples are also among the 20 samples to fuse" \
        in result.output and str(tmp_path / "copy-0.npz") in result.output
