"""What the pipeline commands import before they work: start-up time and memory."""

import json
import os
import subprocess
import sys

import click
import pytest

from pipeline.cli.main import COMMANDS, cli

from frames_factories import REPO, make_workdir, sample, write_video

MODEL_LIBRARIES = {"torch", "transformers", "accelerate"}

_IMPORTS = """
import json, sys
from pipeline.cli.main import cli
try:
    cli(sys.argv[1:])
except SystemExit as exit:
    assert not exit.code, exit.code
print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))
"""


def imported_by(*args: str) -> set[str]:
    """Top-level packages a fresh `pipeline ARGS...` process has imported when done."""
    out = subprocess.run([sys.executable, "-c", _IMPORTS, *args], cwd=REPO, check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_pipeline_help_imports_no_command():
    """Regression: listing the commands imported every one of them, model libraries
    included (4.6 s and 270 MB to print the help)."""
    modules = imported_by("--help")
    assert not modules & (MODEL_LIBRARIES | {"numpy", "cv2", "h5py"})


def test_the_listed_help_is_each_command_s_own():
    context = click.Context(cli)
    for name, (_, short_help) in COMMANDS.items():
        command = cli.get_command(context, name)
        assert command.get_short_help_str(limit=1000) == short_help, name


@pytest.mark.parametrize("with_video", [False, True], ids=["--help", "one-video run"])
def test_extract_frames_imports_only_what_it_needs(tmp_path, with_video):
    """No model library, and the decoder only once a video is opened."""
    if with_video:
        video = write_video(tmp_path / "v.avi", 12)
        workdir = make_workdir(tmp_path / "wd", [sample("v", video)])
        modules = imported_by("extract-frames", str(workdir.path), "--crop", "none",
                              "--no-progress")
        assert "av" in modules
    else:
        modules = imported_by("extract-frames", "--help")
        assert "av" not in modules
    assert not modules & MODEL_LIBRARIES
