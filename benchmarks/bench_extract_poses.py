"""Benchmark ``extract-poses`` (MediaPipe Pose) on the real NTU videos: frames/s with
``-j 2`` against ``-j 1`` measured in the same run, and peak memory.

The WORKDIR is a CSV of videos only: ``--copies`` x the three real videos in
../shared/data/ntu (1920x1080, 103-158 frames), in two shards so two workers have work.
Each measurement is a fresh process running the stage (as the command does: start-up and
MediaPipe's graph creation included), the two settings interleaved ``--repeats`` times
because the machine may be shared; medians are printed.

- frames/s: frames given to MediaPipe (every ``--stride``-th) over the stage's wall time;
  the ratio -j 2 / -j 1 is the parallel speed-up (at most the cores free for it).
- peak RSS: the largest resident set of the stage's processes (the main one with -j 1, the
  largest worker with -j 2). For scale, the memory one video would take if all its frames
  were decoded at once is printed next to it (computed: frames x width x height x 3 bytes):
  the stage holds one frame at a time.

Run (full size, a few minutes): ``python benchmarks/bench_extract_poses.py``;
small: ``python benchmarks/bench_extract_poses.py --copies 1 --stride 10 --repeats 1``.
Needs MediaPipe (``bash scripts/setup.sh`` installs it).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
NTU_DIR = REPO.parent / "shared" / "data" / "ntu"
VIDEOS = ("S001C001P001R001A001", "S001C001P001R001A002", "S018C001P008R001A062")

_CHILD = """
import json, resource, sys, time
from data_manifest.workdir import Workdir
from pipeline.stages.extract_poses import extract_poses
workdir, name, jobs, stride = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
start = time.perf_counter()
result = extract_poses(workdir, cache_name=name, jobs=jobs, stride=stride, progress=False)
seconds = time.perf_counter() - start
assert not result.failures, result.failures
with Workdir(workdir).reader("skeletons", name) as reader:
    frames = sum(len(range(0, int(reader.get(i, ["source_frames"])["source_frames"]), stride))
                 for i in reader.ids)
rss = [resource.getrusage(who).ru_maxrss / 1024
       for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
print(json.dumps({"seconds": seconds, "frames": frames, "peak_rss_mib": max(rss)}))
"""


def make_workdir(root: Path, copies: int) -> Path:
    from pipeline.manifest_builder import build_manifest
    table = root / "videos.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "skeleton", "video", "split"])
        for copy in range(copies):
            for label, name in enumerate(VIDEOS):
                writer.writerow([f"{name}_{copy:03d}", label, "",
                                 str(NTU_DIR / f"{name}_rgb.avi"), "train"])
    workdir = root / "wd"
    samples = copies * len(VIDEOS)
    build_manifest("csv", table, workdir, shard_size=math.ceil(samples / 2))
    return workdir


def run_stage(workdir: Path, name: str, jobs: int, stride: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(workdir), name, str(jobs),
                          str(stride)], check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def whole_video_mib() -> float:
    """What the longest real video takes with every frame decoded at once."""
    largest = 0
    for name in VIDEOS:
        capture = cv2.VideoCapture(str(NTU_DIR / f"{name}_rgb.avi"))
        size = (int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) * 3
                * int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
                * int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        capture.release()
        largest = max(largest, size)
    return largest / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=2,
                        help="Times each of the 3 real videos appears (default 2).")
    parser.add_argument("--stride", type=int, default=1,
                        help="Estimate every k-th frame (default 1: every frame).")
    parser.add_argument("--repeats", type=int, default=3,
                        help="Runs of each setting, interleaved (default 3).")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from pipeline.models.pose_estimator import mediapipe_version
    version = mediapipe_version()

    runs: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = make_workdir(Path(tmp), args.copies)
        for repeat in range(args.repeats):
            for jobs in (1, 2):
                runs[jobs].append(run_stage(workdir, f"j{jobs}-{repeat}", jobs, args.stride))

    frames = runs[1][0]["frames"]
    speed = {jobs: statistics.median(r["frames"] / r["seconds"] for r in found)
             for jobs, found in runs.items()}
    rss = {jobs: statistics.median(r["peak_rss_mib"] for r in found)
           for jobs, found in runs.items()}
    report = {
        "mediapipe": version, "videos": args.copies * len(VIDEOS), "stride": args.stride,
        "frames_estimated_per_run": frames, "repeats": args.repeats,
        "frames_per_s_j1": round(speed[1], 2), "frames_per_s_j2": round(speed[2], 2),
        "speedup_j2_over_j1": round(speed[2] / speed[1], 2),
        "ms_per_frame_j1": round(1000 / speed[1], 1),
        "peak_rss_mib_j1": round(rss[1], 1), "peak_rss_mib_j2_largest_process": round(rss[2], 1),
        "one_video_fully_decoded_mib": round(whole_video_mib(), 1),
        "runs_s": {f"j{jobs}": [round(r["seconds"], 2) for r in found]
                   for jobs, found in runs.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
