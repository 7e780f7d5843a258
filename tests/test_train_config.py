"""Config: presets carry the reference recipes; files and overrides layer; bad keys fail."""

from __future__ import annotations

import pytest
import yaml

from train.config import TrainConfig, config_differences, parse_override, resolve_config
from train.errors import ConfigError
from train.objectives import build_objective
from train.presets import PRESETS
from train.schedule import WarmupStepFactor


def test_ntu_presets_carry_the_ctr_gcn_recipe():
    for name, protocol, classes in (("ntu60-xsub", "ntu60-xsub", 60),
                                    ("ntu60-xview", "ntu60-xview", 60),
                                    ("ntu120-xsub", "ntu120-xsub", 120),
                                    ("ntu120-xset", "ntu120-xset", 120)):
        config = resolve_config(name)
        assert config.preset == name
        assert config.data.protocol == protocol and config.model.num_classes == classes
        assert (config.optim.lr, config.optim.momentum, config.optim.nesterov) == (0.1, 0.9, True)
        assert config.optim.weight_decay == pytest.approx(4e-4)
        assert config.optim.batch_size == 64
        assert (config.schedule.epochs, config.schedule.warmup_epochs) == (65, 5)
        assert config.schedule.steps == [35, 55]
        assert config.data.window == 64 and config.data.random_rot
        assert config.data.p_interval_train == [0.5, 1.0]
        assert config.data.p_interval_test == [0.95]
        assert config.model.layout == "ntu" and config.model.num_persons == 2
    mmcl = resolve_config("ntu120-xsub-mmcl")
    assert (mmcl.optim.batch_size, mmcl.schedule.epochs, mmcl.schedule.steps) == (200, 110,
                                                                                  [90, 100])
    # MMCL's own config trains with co-learning; the plain NTU120 preset does not
    assert mmcl.objective.name == "mmcl"
    assert resolve_config("ntu120-xsub").objective.name == "classification"


def test_nw_ucla_preset():
    config = resolve_config("nw-ucla")
    assert config.data.feeder == "nw-ucla" and config.data.window == 52
    assert config.data.repeat == 5 and config.data.protocol == "nw-ucla-xview"
    assert config.optim.weight_decay == pytest.approx(1e-4)
    assert config.optim.batch_size == 16 and config.schedule.steps == [50]
    assert (config.model.layout, config.model.num_classes, config.model.num_persons) == (
        "nw-ucla", 10, 1)


def test_layers_apply_in_order(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"preset": "nw-ucla", "optim": {"lr": 0.05},
                                    "data": {"modality": "bone"}}))
    config = resolve_config(files=[path], overrides=["optim.lr=0.02", "schedule.steps=[10, 20]"])
    assert config.preset == "nw-ucla" and config.data.feeder == "nw-ucla"
    assert config.optim.lr == 0.02 and config.data.modality == "bone"
    assert config.schedule.steps == [10, 20] and config.optim.weight_decay == pytest.approx(1e-4)
    again = TrainConfig.from_dict(yaml.safe_load(config.to_yaml()))
    assert again == config
    assert config_differences(config, again) == []
    other = resolve_config(files=[path], overrides=["optim.lr=0.03"])
    assert config_differences(config, other)[0].startswith("optim.lr: 0.02 -> 0.03")


@pytest.mark.parametrize("override,message", [
    ("optim.lrr=0.1", "did you mean optim.lr"),
    ("datta.window=3", "did you mean data"),
    ("optim.lr=fast", "optim.lr must be a number"),
    ("run.progress=1", "must be true or false"),
    ("data.modality=velocity", "data.modality must be one of"),
    ("data.p_interval_train=[0.9, 0.5]", "low 0.9 > high 0.5"),
    ("schedule.steps=[50, 10]", "increasing"),
    ("optim.batch_size=0", "at least 1"),
    ("model.layout=coco", "model.layout: unknown skeleton layout .coco.*coco-17"),
    ("model.num_classes=many", "model.num_classes must be an integer or auto"),
    ("data.channels=rgb", "data.channels must be one of xyz, xy, xy-score, auto"),
    ("lr", "section.key=value"),
    ("model.impl=compiled", "model.impl must be one of fast, reference"),
    ("run.threads=many", "run.threads must be auto or a positive number"),
    ("run.threads=0", "run.threads must be auto or a positive number"),
    ("run.threads=[2]", "run.threads must be"),
    ("optim.grad_accumulation=0", "optim.grad_accumulation must be at least 1"),
    ("optim.grad_accumulation=3", "batch_size 64 does not split into "
                                  "optim.grad_accumulation=3"),
])
def test_bad_values_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config("ntu60-xsub", overrides=[override])


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="did you mean ntu60-xsub"):
        resolve_config("ntu60-xsubb")
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config(files=[tmp_path / "nope.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        resolve_config(files=[bad])


def test_parse_override_reads_yaml_values():
    assert parse_override("optim.lr=0.5") == {"optim": {"lr": 0.5}}
    # YAML 1.1 reads 1e-4 as a string; float settings still accept it
    assert resolve_config("nw-ucla", overrides=["optim.weight_decay=1e-4"]
                          ).optim.weight_decay == 1e-4
    assert parse_override("objective.options.fam=false") == {
        "objective": {"options": {"fam": False}}}
    assert parse_override("data.workdir=/a/b=c") == {"data": {"workdir": "/a/b=c"}}


def test_lr_scaling_with_the_global_batch():
    config = resolve_config("ntu60-xsub", overrides=["optim.batch_size=128",
                                                     "optim.scale_lr=true"])
    assert config.effective_lr() == pytest.approx(0.2)
    assert resolve_config("ntu60-xsub", overrides=["optim.batch_size=128"]).effective_lr() == 0.1


def test_schedule_is_warmup_then_steps():
    factor = WarmupStepFactor(warmup_epochs=5, steps=[35, 55], gamma=0.1)
    assert [factor(e) for e in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert factor(34) == 1.0
    assert factor(35) == pytest.approx(0.1) and factor(54) == pytest.approx(0.1)
    assert factor(55) == pytest.approx(0.01)
    assert WarmupStepFactor(0, [2])(0) == 1.0


def test_objective_options_are_checked():
    config = resolve_config("nw-ucla", overrides=["objective.options.label_smoothing=0.1"])
    assert build_objective(config).objective.label_smoothing == 0.1
    with pytest.raises(ConfigError, match="no option 'smooth'"):
        build_objective(resolve_config("nw-ucla", overrides=["objective.options.smooth=1"]))
    with pytest.raises(ConfigError, match="unknown objective 'mmcll'"):
        build_objective(resolve_config("nw-ucla", overrides=["objective.name=mmcll"]))


def test_every_preset_resolves():
    for name in PRESETS:
        assert resolve_config(name).preset == name


def test_speed_settings_default_and_parse():
    config = resolve_config("ntu120-xsub-mmcl")
    assert (config.model.impl, config.run.threads, config.optim.grad_accumulation) == (
        "fast", "auto", 1)
    config = resolve_config("ntu120-xsub-mmcl", overrides=[
        "model.impl=reference", "run.threads=2", "optim.grad_accumulation=4"])
    assert (config.model.impl, config.run.threads, config.optim.grad_accumulation) == (
        "reference", 2, 4)
    assert TrainConfig.from_dict(yaml.safe_load(config.to_yaml())) == config
    assert resolve_config("nw-ucla", overrides=["run.threads=auto"]).run.threads == "auto"


def test_settings_the_feeder_ignores_are_refused_all_at_once(tmp_path):
    """Regression: p_interval_*/random_rot/rot_theta with the nw-ucla feeder and ucla_*
    with the others were silently ignored (only random_flip was caught)."""
    from train.data.feeders import check_feeder_options
    from train.loop import prepare_run_dir
    for name in PRESETS:                              # every preset stays valid
        check_feeder_options(resolve_config(name).data)
    ucla = resolve_config("nw-ucla", overrides=[
        "data.p_interval_train=[0.8, 1.0]", "data.random_rot=false", "data.rot_theta=0.5"])
    with pytest.raises(ConfigError) as caught:
        prepare_run_dir(tmp_path / "new", ucla)
    text = str(caught.value)
    assert "data.feeder nw-ucla ignores 3 settings" in text
    for key in ("data.p_interval_train=[0.8, 1.0] (read by the ntu, custom feeders)",
                "data.random_rot=False", "data.rot_theta=0.5"):
        assert key in text, key
    assert not (tmp_path / "new").exists()
    ntu = resolve_config("ntu60-xsub", overrides=[
        "data.ucla_max_angle_deg=30", "data.ucla_center_joint=2", "data.random_flip=true",
        "data.ucla_scale_range=[0.5, 1.5]"])          # the default: not reported
    with pytest.raises(ConfigError, match=r"data.feeder ntu ignores 3 settings of this config: "
                                          r"data.random_flip=True \(read by the custom "
                                          r"feeder\); data.ucla_max_angle_deg=30 .*"
                                          r"data.ucla_center_joint=2"):
        check_feeder_options(ntu.data)
    # a run recorded before the check (the nw-ucla preset set random_rot: false) resumes
    old = resolve_config("nw-ucla").to_dict()
    old["data"]["random_rot"] = False
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.yaml").write_text(yaml.safe_dump(old))
    assert prepare_run_dir(tmp_path / "old", None).data.random_rot is False
