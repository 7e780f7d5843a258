"""Benchmark ``extract-frames`` against decoding every frame (the reference tools' way).

Measures, on the real NTU videos in ../shared/data/ntu repeated to a few dozen samples:

1. videos/s of the whole extract-frames stage (decode the 5 chosen frames, crop, JPEG,
   HDF5) vs a same-run baseline that decodes every frame of every video with
   ``VideoCapture.read`` and keeps the chosen ones (the reference extracts every frame,
   and writes each to JPEG as well, so this baseline is a generous one);
2. seconds per video of the three ways of reaching the chosen frames (grab, seek, auto);
3. stored bytes and encode time of JPEG crops vs raw uint8 (and gzip'd uint8);
4. peak RSS of extract-frames on a generated 2,000-frame video vs a 100-frame one of the
   same size (must stay flat), next to a keep-every-frame baseline;
5. the speed-up of ``-j 2`` over ``-j 1``.

Medians over ``--repeats`` runs, interleaved, because the machine is shared.
Run: ``python benchmarks/bench_extract_frames.py [--copies 10] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
NTU_DIR = REPO.parent / "shared" / "data" / "ntu"
VIDEOS = ("S001C001P001R001A001", "S001C001P001R001A002", "S018C001P008R001A062")


def median_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_workdir(root: Path, copies: int, shard_size: int) -> Path:
    """A csv WORKDIR of ``copies`` x the 3 real videos (skeleton for the one that has it)."""
    from pipeline.manifest_builder import build_manifest
    table = root / "samples.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "skeleton", "video", "split"])
        for copy in range(copies):
            for name in VIDEOS:
                skeleton = NTU_DIR / f"{name}.skeleton"
                writer.writerow([f"{name}_{copy:03d}", 0,
                                 str(skeleton) if skeleton.exists() else "",
                                 str(NTU_DIR / f"{name}_rgb.avi"), "train"])
    workdir = root / "wd"
    build_manifest("csv", table, workdir, shard_size=shard_size)
    return workdir


def decode_everything(paths: list[str], num_frames: int = 5) -> None:
    from pipeline.video import select_frames
    for path in paths:
        capture = cv2.VideoCapture(path)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = set(select_frames(count, num_frames).indices)
        kept, index = [], 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index in wanted:
                kept.append(frame)
            index += 1
        capture.release()


def run_stage(workdir: Path, name: str, **options) -> None:
    from pipeline.stages.extract_frames import extract_frames
    result = extract_frames(workdir, cache_name=name, progress=False, **options)
    assert not result.failures, result.failures


def bench_speed(workdir: Path, paths: list[str], repeats: int) -> dict:
    runs = {"stage": [], "baseline": []}
    for repeat in range(repeats):          # interleaved: load changes hit both alike
        start = time.perf_counter()
        run_stage(workdir, f"speed{repeat}")
        runs["stage"].append(time.perf_counter() - start)
        start = time.perf_counter()
        decode_everything(paths)
        runs["baseline"].append(time.perf_counter() - start)
    stage, baseline = (statistics.median(runs[k]) for k in ("stage", "baseline"))
    return {"videos": len(paths), "stage_videos_per_s": len(paths) / stage,
            "baseline_videos_per_s": len(paths) / baseline, "ratio": baseline / stage,
            "stage_runs_s": runs["stage"], "baseline_runs_s": runs["baseline"]}


def bench_methods(repeats: int) -> dict:
    from pipeline.video import VideoReader, select_frames
    result = {}
    for method in ("grab", "seek", "auto"):
        per_video = []
        for name in VIDEOS:
            path = NTU_DIR / f"{name}_rgb.avi"

            def read():
                with VideoReader(path, method=method) as video:
                    wanted = select_frames(video.info.frame_count, 5).indices
                    for _ in video.frames(wanted):
                        pass
            per_video.append(median_time(read, repeats))
        result[method] = sum(per_video) / len(per_video)
    return result


def bench_storage(workdir: Path) -> dict:
    """JPEG (q90) vs raw uint8 vs gzip'd uint8 for the crops of the first samples."""
    from data_manifest.workdir import Workdir
    from pipeline.stages.stitch import stored_crops
    reader = Workdir(workdir).reader("frames", "speed0")
    crops = [c for sample_id in reader.ids[:3] for c in stored_crops(reader.get(sample_id))]
    raw = sum(c.nbytes for c in crops)
    start = time.perf_counter()
    jpeg = sum(len(cv2.imencode(".jpg", c, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]) for c in crops)
    jpeg_s = time.perf_counter() - start
    start = time.perf_counter()
    gz = sum(len(gzip.compress(c.tobytes(), compresslevel=4)) for c in crops)
    gz_s = time.perf_counter() - start
    return {"crops": len(crops), "raw_bytes_per_crop": raw / len(crops),
            "jpeg_bytes_per_crop": jpeg / len(crops), "gzip_bytes_per_crop": gz / len(crops),
            "jpeg_ms_per_crop": 1000 * jpeg_s / len(crops),
            "gzip_ms_per_crop": 1000 * gz_s / len(crops)}


def write_long_video(path: Path, frames: int, size=(1280, 720)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FMP4"), 30, size)
    base = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), np.uint8)
    base = cv2.GaussianBlur(base, (0, 0), 6)
    for index in range(frames):
        frame = np.roll(base, 4 * index, axis=1)
        cv2.putText(frame, str(index), (100, 300), cv2.FONT_HERSHEY_SIMPLEX, 6,
                    (255, 255, 255), 12)
        writer.write(frame)
    writer.release()
    return path


_RSS_CHILD = """
import json, resource, sys
from pathlib import Path
mode, video, root = sys.argv[1:4]
if mode == "stage":
    from data_manifest.manifest import write_manifest
    from data_manifest.sample import Sample
    from data_manifest.workdir import Workdir, WorkdirInfo
    from pipeline.stages.extract_frames import extract_frames
    root = Path(root)
    digest = write_manifest([Sample(id="long", dataset="csv", label=0, split="train",
                                    video=video)], root / "manifest.jsonl")
    Workdir.write_info(root, WorkdirInfo("csv", str(root), digest, 1, 1))
    method = sys.argv[4]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = extract_frames(root, crop="none", method=method, progress=False)
    assert not result.failures, result.failures
else:
    import cv2
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    capture, kept = cv2.VideoCapture(video), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        kept.append(frame)
print(json.dumps([before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]))
"""


def peak_rss_mib(mode: str, video: Path, root: Path, method: str = "auto") -> dict:
    """Peak RSS of a fresh process doing ``mode``, and how much the work added to it."""
    root.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, mode, str(video), str(root),
                          method], check=True, capture_output=True, text=True, cwd=REPO)
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    return {"peak_mib": after, "added_by_the_work_mib": after - before}


def bench_memory(tmp: Path, long_frames: int) -> dict:
    short = write_long_video(tmp / "short.avi", 100)
    long = write_long_video(tmp / "long.avi", long_frames)
    result = {}
    for label, video in (("100", short), (str(long_frames), long)):
        for method in ("auto", "grab"):
            result[f"stage_{method}_{label}_frames"] = peak_rss_mib(
                "stage", video, tmp / f"rss-{label}-{method}", method)
    # keeping every frame (what decoding a whole clip into memory does): 100 frames only,
    # the long clip would need ~5.5 GB
    result["keep_all_100_frames"] = peak_rss_mib("keep-all", short, tmp / "rss-keep")
    return result


def bench_jobs(workdir: Path, repeats: int) -> dict:
    """-j 1 vs -j 2, with FFmpeg's default threads (one per CPU) and with one thread."""
    settings = [(1, None), (2, None), (1, 1), (2, 1)]
    runs = {setting: [] for setting in settings}
    run_stage(workdir, "warm-up", jobs=2)    # start the worker pool once, untimed
    for repeat in range(repeats):
        for jobs, threads in settings:
            start = time.perf_counter()
            run_stage(workdir, f"jobs{jobs}-{threads}-{repeat}", jobs=jobs,
                      decode_threads=threads)
            runs[(jobs, threads)].append(time.perf_counter() - start)
    median = {setting: statistics.median(times) for setting, times in runs.items()}
    return {"j1_s": median[(1, None)], "j2_s": median[(2, None)],
            "speedup": median[(1, None)] / median[(2, None)],
            "j1_one_thread_s": median[(1, 1)], "j2_one_thread_s": median[(2, 1)],
            "speedup_one_thread": median[(1, 1)] / median[(2, 1)],
            "runs": {f"j{j}-threads{t or 'default'}": v for (j, t), v in runs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=10,
                        help="copies of each of the 3 real videos (default 10: 30 samples)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-frames", type=int, default=2000)
    parser.add_argument("--skip", nargs="*", default=(),
                        choices=("speed", "methods", "storage", "memory", "jobs"))
    args = parser.parse_args()
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        workdir = make_workdir(tmp, args.copies, shard_size=5)
        from pipeline.stages.extract_skeletons import extract_skeletons
        extract_skeletons(workdir, progress=False)
        paths = [str(NTU_DIR / f"{name}_rgb.avi") for _ in range(args.copies)
                 for name in VIDEOS]
        if "speed" not in args.skip:
            report["speed"] = bench_speed(workdir, paths, args.repeats)
            s = report["speed"]
            print(f"extract-frames (-j 1): {s['stage_videos_per_s']:.2f} videos/s; decode "
                  f"every frame: {s['baseline_videos_per_s']:.2f} videos/s; ratio "
                  f"{s['ratio']:.1f}x over {s['videos']} videos (median of {args.repeats})",
                  flush=True)
            if "storage" not in args.skip:
                report["storage"] = bench_storage(workdir)
                s = report["storage"]
                print(f"per crop: raw uint8 {s['raw_bytes_per_crop'] / 1024:.0f} KiB, gzip "
                      f"{s['gzip_bytes_per_crop'] / 1024:.0f} KiB "
                      f"({s['gzip_ms_per_crop']:.1f} ms), JPEG q90 "
                      f"{s['jpeg_bytes_per_crop'] / 1024:.1f} KiB "
                      f"({s['jpeg_ms_per_crop']:.1f} ms)", flush=True)
        if "methods" not in args.skip:
            report["methods_s_per_video"] = bench_methods(args.repeats)
            print("seconds per real video to reach 5 frames: " + ", ".join(
                f"{k} {v:.3f}" for k, v in report["methods_s_per_video"].items()), flush=True)
        if "jobs" not in args.skip:
            report["jobs"] = bench_jobs(workdir, args.repeats)
            j = report["jobs"]
            print(f"-j 1: {j['j1_s']:.2f} s, -j 2: {j['j2_s']:.2f} s, speed-up "
                  f"{j['speedup']:.2f}x (one FFmpeg thread each: {j['j1_one_thread_s']:.2f} s"
                  f" vs {j['j2_one_thread_s']:.2f} s, {j['speedup_one_thread']:.2f}x)",
                  flush=True)
        if "memory" not in args.skip:
            report["memory"] = bench_memory(tmp, args.long_frames)
            print("peak RSS, MiB (of which added after imports): " + ", ".join(
                f"{k} {v['peak_mib']:.0f} ({v['added_by_the_work_mib']:.0f})"
                for k, v in report["memory"].items()), flush=True)
    print(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
