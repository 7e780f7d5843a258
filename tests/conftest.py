"""Shared test set-up: offline Hugging Face, the location of ../shared."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tiny models on a 2-core machine run fastest with one intra-op thread; more threads only
# fight over the cores (and over them with -j worker processes). Subprocesses inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: tests need the project's shared/ folder beside "
                    "the repository")
    return SHARED
