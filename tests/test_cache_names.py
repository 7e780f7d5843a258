"""Cache names are plain names, never paths (issue 9, item 2): refused wherever they
enter, and a cache folder is the only thing a rebuild deletes."""

import json
import os

import pytest
from click.testing import CliRunner

from data_manifest.errors import DataError
from data_manifest.store import CacheDir, CacheSpec, check_cache_name
from pipeline.cli.main import cli
from pipeline.stages.run_all import parse_config
from train.config import TrainConfig
from train.errors import ConfigError
from train.mmcl.objective import MMCLSettings

from frames_factories import make_workdir, sample, write_frames_cache

BAD_NAMES = ["", ".", "..", "../../x", "a/b", "/abs", "-x", ".hidden", "a\\b", "x" * 129,
             "sp ace"]


@pytest.mark.parametrize("name", ["default", "resnet-50-1a2b3c4d", "_mine", "v1.2", "A_b-c"])
def test_plain_names_pass(name):
    assert check_cache_name(name) == name


@pytest.mark.parametrize("name", BAD_NAMES + [None, 3])
def test_paths_and_odd_names_are_refused(name):
    with pytest.raises(ValueError, match="not a plain name"):
        check_cache_name(name, "--name")


@pytest.fixture
def workdir(tmp_path):
    workdir = make_workdir(tmp_path / "wd", [sample(f"s{i}", None) for i in range(2)])
    write_frames_cache(workdir, {}, num_frames=1)
    return workdir


def _bait(path):
    """A folder that looks like a cache (it even has a spec file): it must survive."""
    path.mkdir(parents=True)
    (path / "spec.json").write_text("{}")
    (path / "precious.txt").write_text("keep me")
    return path


def test_stitch_name_going_up_and_out_of_the_cache_is_refused_and_deletes_nothing(workdir):
    workdir.cache_dir("stitch", "kept").prepare(workdir.spec("stitch", {"k": 1}))
    outside = _bait(workdir.path / "x")        # WORKDIR/cache/stitch/../../x
    result = CliRunner().invoke(cli, ["stitch", str(workdir.path), "--name", "../../x",
                                      "--rebuild", "--no-progress"])
    assert result.exit_code == 2
    assert "'../../x' is not a plain name" in result.output
    assert (outside / "precious.txt").read_text() == "keep me"


def test_an_empty_name_is_refused_and_other_caches_of_the_stage_survive(workdir):
    keep = workdir.cache_dir("stitch", "kept")
    keep.prepare(workdir.spec("stitch", {"k": 1}))
    result = CliRunner().invoke(cli, ["stitch", str(workdir.path), "--name", "", "--rebuild",
                                      "--no-progress"])
    assert result.exit_code == 2 and "not a plain name" in result.output
    assert keep.exists()


@pytest.mark.parametrize("args", [
    ["extract-frames", "--skeleton-cache", "../x"], ["extract-frames", "--name", "a/b"],
    ["stitch", "--frames-cache", ".."], ["preview", "s0", "--stitch-cache", "/tmp"],
    ["cache-rgb-features", "--stitch-cache", "../s"], ["cache-llm-features", "--name", ""],
    ["cache-llm-features", "--stitch-cache", "a/b"], ["cache-rgb-features", "--name", ".."],
    ["export-pyskl", "out.pkl", "--skeleton-cache", "../x"], ["extract-poses", "--name", "/x"],
])
def test_every_cache_name_option_is_checked(workdir, args):
    command, *options = args
    result = CliRunner().invoke(cli, [command, str(workdir.path), *options])
    assert result.exit_code == 2 and "not a plain name" in result.output, result.output


def test_pipeline_run_config_names_are_checked_before_any_stage_runs():
    with pytest.raises(ValueError, match=r"run.yaml: stitch.cache_name '../x' is not a plain"):
        parse_config({"stitch": {"cache_name": "../x"}}, "run.yaml")
    with pytest.raises(ValueError, match="frames.skeleton_cache"):
        parse_config({"frames": {"skeleton_cache": ""}})
    with pytest.raises(ValueError, match="rgb-features.stitch_cache"):
        parse_config({"rgb-features": {"stitch_name": "a/b"}})     # the earlier spelling
    config = parse_config({"stitch": {"cache_name": "wide"}})
    assert config.stages["stitch"]["cache_name"] == "wide"
    assert parse_config({"llm-features": {"stitch_name": "wide"}}).stages[
        "llm-features"] == {"stitch_cache": "wide"}
    with pytest.raises(ValueError, match="stitch_name is the earlier spelling of stitch_cache"):
        parse_config({"llm-features": {"stitch_name": "a", "stitch_cache": "b"}})


def test_every_command_spells_cache_names_alike():
    """--name: the cache a command builds; --<stage>-cache: a cache it reads."""
    import click
    allowed = {"--name", "--skeleton-cache", "--frames-cache", "--stitch-cache"}
    context = click.Context(cli)
    for name in cli.list_commands(context):
        command = cli.get_command(context, name)
        spelled = {opt for param in command.params for opt in getattr(param, "opts", [])
                   if "cache" in opt or opt == "--name" or opt.endswith("-name")}
        assert spelled <= allowed, (name, spelled - allowed)


def test_train_cache_settings_are_checked():
    with pytest.raises(ConfigError, match="data.skeleton_cache '../x' is not a plain name"):
        TrainConfig.from_dict({"data": {"skeleton_cache": "../x"}})
    for option in ("rgb_cache", "llm_cache", "image_cache"):
        with pytest.raises(ConfigError, match=f"objective.options.{option} 'a/b'"):
            MMCLSettings.from_dict({option: "a/b"})
    assert MMCLSettings.from_dict({"rgb_cache": "resnet-50-1a2b"}).rgb_cache == "resnet-50-1a2b"


def test_workdir_refuses_a_path_for_a_cache_name(workdir):
    with pytest.raises(ValueError, match="stitch cache name '../x'"):
        workdir.cache_dir("stitch", "../x")
    with pytest.raises(ValueError, match="stage name '..'"):
        workdir.cache_dir("..", "x")


def test_folders_without_a_plain_name_are_not_listed_as_caches(workdir):
    odd = workdir.path / "cache" / "frames" / "my copy"
    odd.mkdir()
    (odd / "spec.json").write_text("{}")
    (workdir.path / "cache" / "odd stage").mkdir()
    assert workdir.cache_names("frames") == ["default"]
    result = CliRunner().invoke(cli, ["status", str(workdir.path)])
    assert result.exit_code == 0 and "odd stage" not in result.output, result.output


def test_remove_deletes_only_cache_folders(tmp_path, workdir):
    real = workdir.cache_dir("frames")
    assert real.exists()
    no_spec = tmp_path / "cache" / "frames" / "plain"
    no_spec.mkdir(parents=True)
    outside = _bait(tmp_path / "elsewhere" / "frames" / "x")
    linked = tmp_path / "cache" / "frames" / "link"
    target = _bait(tmp_path / "target")
    os.symlink(target, linked)
    dotted = CacheDir(workdir.path / "cache" / "frames" / ".." / "frames" / "default")
    for path, why in ((no_spec, "holds no spec.json"),
                      (outside, "does not lie in a WORKDIR's cache/<stage>/ folder"),
                      (linked, "symbolic link")):
        with pytest.raises(DataError, match=why):
            CacheDir(path).remove()
    with pytest.raises(DataError, match="goes through '..'"):
        dotted.remove()
    assert no_spec.is_dir() and (outside / "precious.txt").exists()
    assert (target / "precious.txt").exists() and real.exists()
    CacheDir(tmp_path / "cache" / "frames" / "never-made").remove()   # nothing there: fine
    real.remove()
    assert not real.path.exists()


def test_overwrite_removes_through_the_same_check(tmp_path):
    bait = _bait(tmp_path / "not-a-workdir" / "c")
    spec = CacheSpec("frames", {"m": 1}, "digest")
    (bait / "spec.json").write_text(json.dumps(CacheSpec("frames", {"m": 2}, "digest")
                                               .to_json()))
    with pytest.raises(DataError, match="refusing to delete"):
        CacheDir(bait).prepare(spec, overwrite=True)
    assert (bait / "precious.txt").exists()
