"""What the train commands import before they work: `train --help` and the run readers."""

import json
import os
import subprocess
import sys

import click

from train.cli.main import COMMANDS, cli

from train_factories import REPO

MODEL_LIBRARIES = {"torch", "transformers", "accelerate"}

_IMPORTS = """
import importlib, json, sys
if sys.argv[1] == "--module":
    importlib.import_module(sys.argv[2])
else:
    from train.cli.main import cli
    try:
        cli(sys.argv[1:])
    except SystemExit as exit:
        assert not exit.code, exit.code
print(json.dumps(sorted(set(sys.modules))))
"""


def imported_by(*args: str) -> set[str]:
    """Modules a fresh `train ARGS...` process (or `--module NAME`) has imported when done."""
    out = subprocess.run([sys.executable, "-c", _IMPORTS, *args], cwd=REPO, check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_train_help_imports_no_command():
    """Regression: listing the commands imported every one of them (6.4 s, 240 MB)."""
    modules = imported_by("--help")
    assert not _top_level(modules) & MODEL_LIBRARIES
    assert not {name for name in modules if name.startswith("train.cli.")} - {
        "train.cli.main"}


def test_the_listed_help_is_each_command_s_own():
    context = click.Context(cli)
    for name, (_, short_help) in COMMANDS.items():
        command = cli.get_command(context, name)
        assert command.get_short_help_str(limit=1000) == short_help, name


def test_run_readers_do_not_load_the_trainer():
    """Regression: `train compare`/`train plot` imported train.loop (accelerate, the data
    loaders) for a few constants. Compare reads checkpoints (torch); plot needs no torch."""
    runs = imported_by("--module", "train.runs")
    assert "train.loop" not in runs and "accelerate" not in _top_level(runs)
    curves = imported_by("--module", "train.curves")
    assert not _top_level(curves) & MODEL_LIBRARIES
