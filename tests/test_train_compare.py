"""`train compare`, `train plot` and the ensemble record, on short runs over generated data:
plain and co-learning runs of two modalities, and runs of two NTU protocols."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
from click.testing import CliRunner
from PIL import Image

from data_manifest.workdir import Workdir
from train.checkpoint import checkpoint_path
from train.cli.main import cli
from train.compare import COLUMNS, compare
from train.curves import plot_runs, run_series
from train.evaluate import evaluate_run
from train.loop import read_metrics, train

from mmcl_factories import write_llm_features, write_rgb_features
from train_factories import (make_workdir, tiny_builder, tiny_config,
                             write_legacy_test_selected_best)

MMCL = ["objective.name=mmcl", "objective.options.skeleton_width=16"]
VAL = ["data.val_fraction=0.25"]
UCLA_RUNS = {
    "plain-joint": VAL,
    "mmcl-joint": VAL + MMCL,
    "fam-joint": VAL + MMCL + ["objective.options.frm=false"],
    "plain-bone": ["data.modality=bone"],
    "mmcl-bone": ["data.modality=bone"] + MMCL,
    # differs from plain-bone in the learning rate too, and is never evaluated
    "frm-bone-lr": ["data.modality=bone", "optim.lr=0.02", "run.eval_every_epochs=0"]
                   + MMCL + ["objective.options.fam=false"],
}


def with_features(root):
    workdir = Workdir(root)
    write_rgb_features(workdir, width=10)
    write_llm_features(workdir, width=6, num_questions=2)
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    ucla = with_features(make_workdir(root / "ucla-wd", num_classes=3, per_class_view=3))
    for name, overrides in UCLA_RUNS.items():
        config = tiny_config(ucla, epochs=2, overrides=["run.log_with=none", *overrides])
        train(config, root / "ucla" / name, model_builder=tiny_builder)
    # a run of an earlier version, which kept a best chosen on the test set
    write_legacy_test_selected_best(root / "ucla" / "plain-bone")
    ntu = with_features(make_workdir(root / "ntu-wd", dataset="ntu60", num_classes=3,
                                     per_class_view=3))
    for name, preset, extra in (("plain-xsub", "ntu60-xsub", []),
                                ("mmcl-xview", "ntu60-xview", MMCL)):
        config = tiny_config(ntu, preset=preset, epochs=1,
                             overrides=["model.num_classes=3", "run.log_with=none", *extra])
        train(config, root / "ntu" / name, model_builder=tiny_builder)
    return root


def by_label(rows):
    return {row.label: row for row in rows}


def test_co_learning_runs_are_paired_with_their_plain_run(runs, tmp_path):
    rows = by_label(compare([runs / "ucla"]))
    assert list(rows) == sorted(UCLA_RUNS)
    assert {label: row.objective for label, row in rows.items()} == {
        "plain-joint": "plain", "mmcl-joint": "MMCL", "fam-joint": "FAM only",
        "plain-bone": "plain", "mmcl-bone": "MMCL", "frm-bone-lr": "FRM only"}
    for label, plain in (("mmcl-joint", "plain-joint"), ("fam-joint", "plain-joint"),
                         ("mmcl-bone", "plain-bone")):
        row, base = rows[label], rows[plain]
        assert row.paired_with == plain, row.notes
        assert row.delta_top1 == pytest.approx(row.top1 - base.top1)
        assert row.delta_top5 == pytest.approx(row.top5 - base.top5)
    assert rows["plain-joint"].paired_with is None and rows["plain-joint"].delta_top1 is None
    for row in rows.values():
        assert (row.backbone, row.dataset, row.protocol, row.epochs) == \
            ("ctrgcn", "nw-ucla", "nw-ucla-xview", "2")
    # the accuracy shown is that of the checkpoint `train eval` picks by default: best
    # chosen on val where there is a val part, else last (never a best chosen on test)
    for label, kind in (("plain-joint", "best on val"), ("plain-bone", "last")):
        row = rows[label]
        assert row.checkpoint.startswith(kind) and row.source == "training log"
        result = evaluate_run(runs / "ucla" / label, output_dir=tmp_path / label,
                              model_builder=tiny_builder)
        assert result.checkpoint.stem == kind.split()[0]
        assert (row.top1, row.top5) == pytest.approx((result.top1, result.top5))


def test_runs_that_differ_in_more_than_the_objective_are_not_paired(runs, tmp_path):
    rows = by_label(compare([runs / "ucla", runs / "ntu"]))
    xview = rows["mmcl-xview"]
    assert xview.paired_with is None and xview.delta_top1 is None
    assert ("no plain run with backbone ctrgcn, modality joint, dataset ntu60, protocol "
            "ntu60-xview; closest: plain-xsub (protocol ntu60-xsub)") in xview.notes
    assert rows["mmcl-joint"].paired_with == "plain-joint"     # other runs still pair
    lr = rows["frm-bone-lr"]
    assert lr.paired_with is None and lr.top1 is None
    assert any(note.startswith("not evaluated on test") for note in lr.notes)
    assert ("not paired with plain-bone: it differs in more than the objective (optim.lr "
            "0.02 vs 0.05); --ignore KEY accepts a difference") in lr.notes
    accepted = by_label(compare([runs / "ucla"], ignore=["optim.lr"]))["frm-bone-lr"]
    assert accepted.paired_with == "plain-bone" and accepted.delta_top1 is None
    assert "paired despite optim.lr 0.02 vs 0.05" in accepted.notes
    assert "no delta: frm-bone-lr has no test accuracy" in accepted.notes
    shutil.copytree(runs / "ucla" / "plain-joint", tmp_path / "again" / "plain-joint")
    twice = by_label(compare([runs / "ucla" / "plain-joint", runs / "ucla" / "mmcl-joint",
                              tmp_path / "again" / "plain-joint"]))
    mmcl = twice["ucla/mmcl-joint"]
    assert mmcl.paired_with is None
    assert mmcl.notes == ["not paired: several plain rows match (ucla/plain-joint, "
                          "again/plain-joint); compare them separately"]


def markdown_rows(text):
    from markdown_it import MarkdownIt
    rows, current = [], None
    for token in MarkdownIt("commonmark").enable("table").parse(text):
        if token.type == "tr_open":
            current = []
        elif token.type == "tr_close":
            rows.append(current)
        elif token.type == "inline" and current is not None:
            current.append("".join(child.content for child in token.children))
    return rows


def test_compare_command_prints_and_writes_the_table(runs, tmp_path):
    paths = [str(runs / "ucla" / name) for name in ("plain-joint", "mmcl-joint")]
    result = CliRunner().invoke(cli, ["compare", *paths, "--format", "markdown", "--csv",
                                      str(tmp_path / "t.csv"), "--markdown",
                                      str(tmp_path / "t.md")])
    assert result.exit_code == 0, result.output
    rows = compare(paths)
    table = markdown_rows((tmp_path / "t.md").read_text())
    assert table[0] == list(COLUMNS)
    assert [line[0] for line in table[1:]] == ["plain-joint", "mmcl-joint"]
    mmcl = dict(zip(COLUMNS, table[2]))
    assert mmcl["objective"] == "MMCL" and mmcl["plain run"] == "plain-joint"
    assert mmcl["test top-1"] == f"{100 * rows[1].top1:.2f}"
    assert mmcl["Δ top-1"] == f"{100 * rows[1].delta_top1:+.2f}"
    assert "| mmcl-joint |" in result.output
    written = list(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    assert [line["run"] for line in written] == ["plain-joint", "mmcl-joint"]
    assert float(written[1]["delta_top1"]) == pytest.approx(100 * rows[1].delta_top1)
    assert written[0]["delta_top1"] == "" and written[1]["plain_run"] == "plain-joint"
    plain = CliRunner().invoke(cli, ["compare", *paths])
    assert plain.output.splitlines()[0].split()[:3] == ["run", "backbone", "modality"]
    missing = CliRunner().invoke(cli, ["compare", str(tmp_path)])
    assert missing.exit_code == 2 and "is not a run directory" in missing.output


def test_train_eval_reports_are_used_and_a_test_selected_best_never_is(runs, tmp_path):
    run = tmp_path / "plain-bone"
    shutil.copytree(runs / "ucla" / "plain-bone", run)
    evaluate_run(run, checkpoint="best", model_builder=tiny_builder)   # chosen on test
    row = compare([run])[0]
    assert row.checkpoint == "last, epoch 2" and row.source == "training log"
    result = evaluate_run(run, model_builder=tiny_builder)              # auto: last
    row = compare([run])[0]
    assert row.source == "train eval" and (row.top1, row.top5) == (result.top1, result.top5)
    report = run / "eval" / "test-last" / "metrics.json"
    stale = json.loads(report.read_text())
    stale["global_step"] += 1                                           # other weights
    report.write_text(json.dumps(stale))
    assert compare([run])[0].source == "training log"
    checkpoint_path(run, "last").unlink()           # only the test-selected best is left
    row = compare([run])[0]
    assert row.top1 is None and row.checkpoint == "best on test, epoch " + \
        str(json.loads((run / "eval" / "test-best" / "metrics.json").read_text())["epoch"])
    assert any("no honest test accuracy" in note for note in row.notes)


def ensemble(tmp_path, name, runs, weights="0.6,0.4", checkpoint="auto"):
    scores = []
    for run in runs:
        out = tmp_path / f"{name}-{run.name}"
        evaluate_run(run, checkpoint=checkpoint, output_dir=out, model_builder=tiny_builder)
        scores.append(str(out / "scores.npz"))
    output = tmp_path / f"{name}.npz"
    result = CliRunner().invoke(cli, ["ensemble", *scores, "--weights", weights,
                                      "--output", str(output)])
    assert result.exit_code == 0, result.output
    return output


def test_ensemble_records_and_their_rows(runs, tmp_path):
    ucla = runs / "ucla"
    plain = ensemble(tmp_path, "plain", [ucla / "plain-joint", ucla / "plain-bone"])
    mmcl = ensemble(tmp_path, "mmcl", [ucla / "mmcl-joint", ucla / "mmcl-bone"])
    record = json.loads(plain.with_suffix(".json").read_text())
    assert record["format"] == "mmcl-ensemble" and record["weights"] == [0.6, 0.4]
    assert record["weights_from"] == "given" and record["heldout"] is None
    assert [s["run_dir"] for s in record["streams"]] == \
        [str(ucla / "plain-joint"), str(ucla / "plain-bone")]
    assert [s["modality"] for s in record["streams"]] == ["joint", "bone"]
    assert [s["checkpoint"].rsplit("/", 1)[1] for s in record["streams"]] == \
        ["best.pt", "last.pt"]
    rows = compare([plain.with_suffix(".json"), mmcl])          # the .npz finds its .json
    assert [(r.kind, r.modality, r.objective) for r in rows] == \
        [("ensemble", "joint+bone", "plain"), ("ensemble", "joint+bone", "MMCL")]
    assert rows[0].top1 == record["top1"] and rows[0].source == "train ensemble"
    assert rows[0].checkpoint == "best on val, epoch {}; last, epoch 2".format(
        record["streams"][0]["epoch"])
    assert "weights joint 0.6, bone 0.4 (given)" in rows[0].notes
    assert rows[1].paired_with == rows[0].label
    assert rows[1].delta_top1 == pytest.approx(rows[1].top1 - rows[0].top1)
    other = ensemble(tmp_path, "other", [ucla / "mmcl-joint", ucla / "mmcl-bone"],
                     weights="1,1")
    assert "not paired with plain.json: it differs in more than the objective (weights " \
        "[1.0, 1.0] vs [0.6, 0.4])" in compare([plain, other])[1].notes[-1]
    chosen_on_test = ensemble(tmp_path, "test-best", [ucla / "plain-joint", ucla / "plain-bone"],
                              checkpoint="best")
    row = compare([chosen_on_test])[0]
    assert row.top1 is None
    assert any("a best checkpoint chosen on the test set" in note for note in row.notes)


def test_ensemble_output_must_be_npz(runs, tmp_path):
    result = CliRunner().invoke(cli, ["ensemble", str(tmp_path / "a.npz"), "--output",
                                      str(tmp_path / "fused.json")])
    assert result.exit_code == 2


def test_plot_draws_the_curves_of_several_runs(runs, tmp_path):
    paths = [runs / "ucla" / "plain-joint", runs / "ucla" / "mmcl-joint"]
    figure = plot_runs(paths, tmp_path / "curves.png")
    loss_axes, accuracy_axes = figure.axes
    lines = {line.get_label(): line for axes in figure.axes for line in axes.get_lines()}
    for path in paths:
        history = read_metrics(path)
        epochs = [m["epoch"] for m in history]
        loss = lines[f"{path.name} loss"]
        assert list(loss.get_xdata()) == epochs
        assert list(loss.get_ydata()) == pytest.approx([m["loss"] for m in history])
        for part in ("train", "val", "test"):
            curve = lines[f"{path.name} top1/{part}"]
            assert curve.axes is accuracy_axes
            assert list(curve.get_ydata()) == pytest.approx(
                [100 * m[f"{part}_top1"] for m in history])
    mmcl = read_metrics(paths[1])
    for term in ("cls", "contrastive", "refine"):
        line = lines[f"mmcl-joint loss/{term}"]
        assert line.axes is loss_axes
        assert list(line.get_ydata()) == pytest.approx([m["losses"][term] for m in mmcl])
    assert "plain-joint loss/cls" not in lines        # one term: the total says it all
    image = Image.open(tmp_path / "curves.png")
    assert image.format == "PNG" and image.size[0] > 800 and image.size[1] > 300


def test_run_series_keeps_only_the_evaluated_epochs():
    history = [{"epoch": 1, "loss": 2.0, "losses": {"cls": 2.0}, "train_top1": 0.1},
               {"epoch": 2, "loss": 1.0, "losses": {"cls": 1.0}, "train_top1": 0.2,
                "test_top1": 0.5}]
    series = run_series(history)
    assert set(series) == {"loss", "top1/train", "top1/test"}
    assert (series["top1/test"].x, series["top1/test"].y) == ([2], [50.0])
    assert series["loss"].y == [2.0, 1.0]


def test_plot_command(runs, tmp_path):
    result = CliRunner().invoke(cli, ["plot", str(runs / "ntu"), "-o",
                                      str(tmp_path / "c.svg"), "--title", "NTU"])
    assert result.exit_code == 0, result.output
    assert "curves of 2 run(s)" in result.output
    assert (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(runs / "ntu" / "plain-xsub" / "config.yaml", empty / "config.yaml")
    result = CliRunner().invoke(cli, ["plot", str(empty), "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "no finished epoch" in result.output
    result = CliRunner().invoke(cli, ["plot", str(runs / "ntu"), "-o", str(tmp_path / "x.jpg")])
    assert result.exit_code == 2 and "must end in .png, .svg, .pdf" in result.output


def test_a_damaged_run_is_a_clear_error(runs, tmp_path):
    run = tmp_path / "plain-joint"
    shutil.copytree(runs / "ucla" / "plain-joint", run)
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 3, "loss\n')
    result = CliRunner().invoke(cli, ["compare", str(run)])
    assert result.exit_code == 2
    assert f"{run}: data.json or metrics.jsonl is not valid JSON" in result.output


def test_searched_weights_need_the_proof_of_other_samples(runs, tmp_path):
    """Regression: compare showed the fused accuracy of weights searched on held-out files
    without knowing whether those held the fused (test) samples."""
    ucla = runs / "ucla"
    joint, bone = ucla / "plain-joint", ucla / "plain-bone"
    scores = []
    for run in (joint, bone):
        for part in ("test", "val"):
            evaluate_run(run, checkpoint="last", part=part,
                         output_dir=tmp_path / f"{run.name}-{part}",
                         model_builder=tiny_builder, overrides={"data": {"val_fraction": 0.25}})
        scores.append(tmp_path / f"{run.name}-test" / "scores.npz")
    result = CliRunner().invoke(cli, ["ensemble", *map(str, scores),
                                      "--search", str(tmp_path / "plain-joint-val/scores.npz"),
                                      "--search", str(tmp_path / "plain-bone-val/scores.npz"),
                                      "--output", str(tmp_path / "fused.npz")])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "fused.json").read_text())
    assert record["version"] == 2 and record["heldout_check"]["overlap"] == 0
    assert [held["part"] for held in record["heldout"]] == ["val", "val"]
    assert compare([tmp_path / "fused.json"])[0].top1 == record["top1"]
    del record["heldout_check"]                         # as version 1 wrote it
    record["version"] = 1
    (tmp_path / "old.json").write_text(json.dumps(record))
    row = compare([tmp_path / "old.json"])[0]
    assert row.top1 is None
    assert any("does not prove to be other samples" in note for note in row.notes)


def test_damaged_reports_and_records_are_clear_errors(runs, tmp_path):
    """Regression: a damaged `train eval` report was a traceback, an ensemble record
    without streams or weights a bare KeyError."""
    run = tmp_path / "plain-joint"
    shutil.copytree(runs / "ucla" / "plain-joint", run)
    report = run / "eval" / "test-best" / "metrics.json"
    report.parent.mkdir(parents=True)
    report.write_text('{"top1": 0.5, ')
    result = CliRunner().invoke(cli, ["compare", str(run)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{report} is not a readable `train eval` report" in result.output
    for broken, what in (({}, "'streams'"), ({"streams": [{"scores": "a.npz"}]}, "'weights'"),
                         ({"streams": [{"scores": "a.npz"}], "weights": [1, 2]}, "'weights'")):
        path = tmp_path / "broken.json"
        path.write_text(json.dumps({"format": "mmcl-ensemble", **broken}))
        result = CliRunner().invoke(cli, ["compare", str(path)])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert f"{path} is a damaged ensemble record: its {what}" in result.output


def test_a_report_of_another_workdir_is_named_as_such(runs, tmp_path):
    run = tmp_path / "plain-bone"
    shutil.copytree(runs / "ucla" / "plain-bone", run)
    evaluate_run(run, model_builder=tiny_builder)
    report = run / "eval" / "test-last" / "metrics.json"
    moved = json.loads(report.read_text())
    moved["workdir"] = str(tmp_path / "elsewhere")
    report.write_text(json.dumps(moved))
    row = compare([run])[0]
    assert row.source == "training log"
    (run / "metrics.jsonl").write_text("")             # no training log to fall back on
    row = compare([run])[0]
    assert row.top1 is None and any(
        f"its train eval report test-last is of another WORKDIR ({tmp_path / 'elsewhere'})"
        in note for note in row.notes)
