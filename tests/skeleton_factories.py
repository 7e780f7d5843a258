"""Helpers for the skeleton tests: real data paths, generated files, small WORKDIRs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_manifest.workdir import Workdir
from pipeline.manifest_builder import build_manifest
from pipeline.synthetic.ntu_skeleton import (SyntheticSequence, generate_sequence, ntu_name,
                                             write_ntu_skeleton)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
NTU_DIR = SHARED / "data" / "ntu"
REAL_NTU = NTU_DIR / "S001C001P001R001A001.skeleton"
NW_UCLA_DIR = SHARED / "data" / "nw-ucla" / "all_sqe"
NTU_LISTS = NTU_DIR / "lists"


def sequence(seed: int, num_frames: int = 40, num_actors: int = 1, action: int = 1,
             **options) -> SyntheticSequence:
    return generate_sequence(np.random.default_rng(seed), num_frames, num_actors, action,
                             **options)


def write_sequence(path: Path, seed: int, line_ending: str = "\r\n", **options
                   ) -> tuple[Path, SyntheticSequence]:
    generated = sequence(seed, **options)
    return write_ntu_skeleton(path, generated, line_ending), generated


def write_ntu_files(root: Path, count: int, seed: int = 0, first_index: int = 0,
                    **options) -> list[Path]:
    """``count`` small synthetic NTU files (actions 1, 2, ...) with NTU60 names."""
    paths = []
    for i in range(first_index, first_index + count):
        action = i % 49 + 1
        path = root / f"{ntu_name(i // 49, action)}.skeleton"
        paths.append(write_sequence(path, seed * 100_000 + i, action=action,
                                    num_frames=20 + i % 17, **options)[0])
    return paths


def ntu_workdir(data: Path, workdir: Path, shard_size: int = 4) -> Workdir:
    build_manifest("ntu60", data, workdir, shard_size=shard_size)
    return Workdir(workdir)


def skeleton_text(frames: list[list[tuple[str, np.ndarray]]], line_ending: str = "\n",
                  num_frames: int | None = None) -> str:
    """An NTU file from explicit bodies: per frame a list of (body id, (25, 3) joints)."""
    nl = line_ending
    out = [f"{len(frames) if num_frames is None else num_frames}{nl}"]
    for bodies in frames:
        out.append(f"{len(bodies)}{nl}")
        for body_id, joints in bodies:
            out.append(f"{body_id} 0 1 1 1 1 0 0.1 0.2 2{nl}25{nl}")
            for x, y, z in joints:
                out.append(f"{x:.6f} {y:.6f} {z:.6f} 250 200 {1000 + 100 * x:.3f} "
                           f"{500 - 100 * y:.3f} 1 0 0 0 2{nl}")
    return "".join(out)


def upright_body(offset=(0.0, 0.0, 3.0), scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """(25, 3) joints taller than wide (spread-clean)."""
    rng = np.random.default_rng(seed)
    joints = np.zeros((25, 3))
    joints[:, 0] = rng.uniform(-0.2, 0.2, 25) * scale
    joints[:, 1] = np.linspace(-0.8, 0.7, 25) * scale
    joints[:, 2] = rng.uniform(-0.05, 0.05, 25)
    return joints + np.asarray(offset)
