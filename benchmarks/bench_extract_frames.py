"""Benchmark ``extract-frames`` against decoding every frame (the reference tools' way).

Measures, on the three real NTU videos in ../shared/data/ntu (1920x1080, 103-158 frames,
a key frame every 12), each way measured in the same run, interleaved, medians over
``--repeats``:

1. reading: seconds for the 3 videos to reach their 5 chosen frames by decoding every
   frame with ``VideoCapture.read`` (the baseline), by OpenCV grab/seek (the old default),
   by the key-frame index (PyAV, exact frames, the new default) and by key-frame
   sampling; with the frames each decodes and the speed-up over the baseline;
2. the whole stage (decode, crop, JPEG, HDF5; -j 1) over ``--copies`` x the 3 videos for
   the same three ways vs the baseline (the reference writes every frame to JPEG as well,
   so this baseline is a generous one);
3. start-up: seconds from launching ``pipeline extract-frames`` on a one-video WORKDIR to
   its first opened video (imports included), the RSS then, and the whole run, with the
   OpenCV reader (what it imported before) and with PyAV's (which adds PyAV's import);
4. stored bytes and encode time of JPEG crops vs raw uint8 (and gzip'd uint8);
5. peak RSS of extract-frames on a generated 2,000-frame video vs a 100-frame one of the
   same size (must stay flat), next to a keep-every-frame baseline;
6. the speed-up of ``-j 2`` over ``-j 1``.

Run: ``python benchmarks/bench_extract_frames.py [--copies 10] [--repeats 5]``
(``--skip storage memory jobs`` for the decoding figures alone).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
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
NUM_FRAMES = 5


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


def decode_everything(paths: list[str], num_frames: int = NUM_FRAMES,
                      threads: int | None = None) -> int:
    """Read every frame, keep the chosen ones; returns the frames decoded."""
    from pipeline.video import select_frames
    decoded = 0
    for path in paths:
        params = [] if threads is None else [cv2.CAP_PROP_N_THREADS, threads]
        capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params)
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
        decoded += index
    return decoded


def read_chosen(paths: list[str], way: str, threads: int | None) -> int:
    """Reach the chosen frames of each video ``way``; returns the frames decoded."""
    from pipeline.video import VideoReader, keyframe_tolerance, select_frames
    from pipeline.video.indexed import IndexedVideoReader
    decoded = 0
    for path in paths:
        if way == "opencv":
            with VideoReader(path, method="auto", threads=threads) as video:
                wanted = select_frames(video.info.frame_count, NUM_FRAMES).indices
                for _ in video.frames(wanted):
                    pass
                decoded += max(wanted) + 1     # grabbed up to the last one (gaps < 64)
            continue
        with IndexedVideoReader(path, threads=threads) as video:
            count = video.info.frame_count
            wanted = select_frames(count, NUM_FRAMES).indices
            if way == "keyframe":
                wanted = video.nearest_keyframes(wanted, keyframe_tolerance(count,
                                                                            NUM_FRAMES))
            for _ in video.frames(wanted):
                pass
            decoded += video.packets_decoded
    return decoded


def run_stage(workdir: Path, name: str, **options) -> None:
    from pipeline.stages.extract_frames import extract_frames
    result = extract_frames(workdir, cache_name=name, progress=False, **options)
    assert not result.failures, result.failures


READING_WAYS = {"decode everything (OpenCV read)": None,
                "exact, OpenCV grab/seek (old)": "opencv",
                "exact, key-frame index (new)": "index",
                "key-frame sampling": "keyframe"}


def interleaved(ways: dict, repeats: int) -> tuple[dict, dict]:
    """Median wall and CPU seconds of each way's callable, run in turn ``repeats`` times
    (interleaved, so that load changes hit every way alike); and what each returned."""
    runs, results = {name: [] for name in ways}, {}
    for _ in range(repeats):
        for name, function in ways.items():
            wall, cpu = time.perf_counter(), time.process_time()
            results[name] = function()
            runs[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: tuple(statistics.median(t[k] for t in times) for k in (0, 1))
            for name, times in runs.items()}, results


def print_against_baseline(title: str, medians: dict, unit_count: int, unit: str,
                           extra: dict | None = None) -> dict:
    """The first way is the baseline. CPU time (all threads of this process) is the
    steadier figure on a shared machine."""
    wall0, cpu0 = next(iter(medians.values()))
    print(title, flush=True)
    report = {}
    for name, (wall, cpu) in medians.items():
        note = f", {extra[name]} frames decoded" if extra else ""
        print(f"  {name:34s} {wall / unit_count:6.3f} s per {unit} ({wall0 / wall:5.2f}x "
              f"the baseline); CPU {cpu / unit_count:6.3f} s ({cpu0 / cpu:5.2f}x){note}",
              flush=True)
        report[name] = {"median_wall_s": wall, "speedup": wall0 / wall,
                        "median_cpu_s": cpu, "cpu_speedup": cpu0 / cpu,
                        **({"frames_decoded": extra[name]} if extra else {})}
    return report


def bench_reading(repeats: int, threads: int | None) -> dict:
    paths = [str(NTU_DIR / f"{name}_rgb.avi") for name in VIDEOS]
    ways = {name: (lambda way=way: decode_everything(paths, threads=threads) if way is None
                   else read_chosen(paths, way, threads))
            for name, way in READING_WAYS.items()}
    medians, decoded = interleaved(ways, repeats)
    return print_against_baseline(
        f"reading {NUM_FRAMES} frames of each of the {len(paths)} NTU videos (median of "
        f"{repeats}; decoding threads: {threads or 'default'}):", medians, len(paths),
        "video", decoded)


STAGE_WAYS = {"exact, OpenCV grab (old default)": {"method": "grab"},
              "exact, key-frame index (new)": {"method": "index"},
              "key-frame sampling": {"method": "index", "sampling": "keyframe"}}


def bench_speed(workdir: Path, paths: list[str], repeats: int) -> dict:
    counter = iter(range(10 ** 6))
    ways = {"decode everything (OpenCV read)": lambda: decode_everything(paths)}
    ways.update({name: (lambda options=options: run_stage(workdir, f"speed{next(counter)}",
                                                          **options))
                 for name, options in STAGE_WAYS.items()})
    medians, _ = interleaved(ways, repeats)
    return print_against_baseline(
        f"extract-frames -j 1 over {len(paths)} videos (decode, crop, JPEG, HDF5; median "
        f"of {repeats}):", medians, len(paths), "video")


def bench_storage(workdir: Path) -> dict:
    """JPEG (q90) vs raw uint8 vs gzip'd uint8 for the crops of the first samples."""
    from data_manifest.workdir import Workdir
    from pipeline.stages.stitch import stored_crops
    reader = Workdir(workdir).reader("frames", "storage")
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


# A child's own memory: ru_maxrss would report the parent's peak when it is larger (Linux
# carries it over fork and exec), so read the kernel's high-water mark of this process.
_RSS_OF_THIS_PROCESS = """
import resource

def rss_mib(field="VmHWM"):
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

_RSS_CHILD = _RSS_OF_THIS_PROCESS + """
import json, sys
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
    before = rss_mib()
    result = extract_frames(root, crop="none", method=method, progress=False)
    assert not result.failures, result.failures
else:
    import cv2
    before = rss_mib()
    capture, kept = cv2.VideoCapture(video), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        kept.append(frame)
print(json.dumps([before, rss_mib()]))
"""


def peak_rss_mib(mode: str, video: Path, root: Path, method: str = "index") -> dict:
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
        for method in ("index", "seek"):
            result[f"stage_{method}_{label}_frames"] = peak_rss_mib(
                "stage", video, tmp / f"rss-{label}-{method}", method)
    # keeping every frame (what decoding a whole clip into memory does): 100 frames only,
    # the long clip would need ~5.5 GB
    result["keep_all_100_frames"] = peak_rss_mib("keep-all", short, tmp / "rss-keep")
    return result


_STARTUP_CHILD = _RSS_OF_THIS_PROCESS + """
import json, sys, time
started = float(sys.argv[1])
import pipeline.stages.extract_frames as stage
first, real_open = {}, stage.open_reader

def timed_open(*args, **kwargs):
    reader = real_open(*args, **kwargs)
    if not first:
        first["s"] = time.monotonic() - started
        first["rss_mib"] = rss_mib("VmRSS")
    return reader

stage.open_reader = timed_open
from pipeline.cli.main import cli
try:
    cli(sys.argv[2:])
except SystemExit as exit:
    assert not exit.code, exit.code
first["total_s"] = time.monotonic() - started
print(json.dumps(first))
"""

STARTUP_WAYS = {"OpenCV reader, as before (--method grab)": ["--method", "grab"],
                "PyAV key-frame index (the default)": []}


def bench_startup(tmp: Path, repeats: int) -> dict:
    """Launch to first opened video (and its RSS) of a one-video `pipeline extract-frames`."""
    from pipeline.manifest_builder import build_manifest
    table = tmp / "one.csv"
    table.write_text("id,label,skeleton,video,split\n"
                     f"one,0,,{NTU_DIR / (VIDEOS[0] + '_rgb.avi')},train\n")
    workdir = tmp / "one-wd"
    build_manifest("csv", table, workdir, shard_size=1)
    runs = {name: [] for name in STARTUP_WAYS}
    bare = []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for repeat in range(repeats):
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.monotonic() - start)
        for number, (name, options) in enumerate(STARTUP_WAYS.items()):
            args = ["extract-frames", str(workdir), "--crop", "none", "--no-progress",
                    "--name", f"startup{repeat}-{number}", *options]
            out = subprocess.run([sys.executable, "-c", _STARTUP_CHILD, str(time.monotonic()),
                                  *args], check=True, capture_output=True, text=True,
                                 cwd=REPO, env=env)
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"one-video `pipeline extract-frames` start-up (median of {repeats}; a bare "
          f"`python -c pass` takes {statistics.median(bare):.3f} s):", flush=True)
    report = {"bare_python_s": statistics.median(bare)}
    for name, values in runs.items():
        medians = {key: statistics.median(v[key] for v in values)
                   for key in ("s", "rss_mib", "total_s")}
        print(f"  {name:42s} first video opened at {medians['s']:.3f} s, RSS "
              f"{medians['rss_mib']:.0f} MiB; whole run {medians['total_s']:.3f} s",
              flush=True)
        report[name] = medians
    return report


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
                        help="copies of each of the 3 real videos for the stage runs "
                             "(default 10: 30 samples)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="decoding threads for the reading figures (default: each "
                             "library's own, one per CPU)")
    parser.add_argument("--long-frames", type=int, default=2000)
    parser.add_argument("--skip", nargs="*", default=(),
                        choices=("reading", "speed", "startup", "storage", "memory",
                                 "jobs"))
    args = parser.parse_args()
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "reading" not in args.skip:
            report["reading"] = bench_reading(args.repeats, args.threads)
        if "startup" not in args.skip:
            report["startup"] = bench_startup(tmp, args.repeats)
        workdir = make_workdir(tmp, args.copies, shard_size=5)
        from pipeline.stages.extract_skeletons import extract_skeletons
        extract_skeletons(workdir, progress=False)
        paths = [str(NTU_DIR / f"{name}_rgb.avi") for _ in range(args.copies)
                 for name in VIDEOS]
        if "speed" not in args.skip:
            report["speed"] = bench_speed(workdir, paths, args.repeats)
        if "storage" not in args.skip:
            run_stage(workdir, "storage")
            report["storage"] = bench_storage(workdir)
            s = report["storage"]
            print(f"per crop: raw uint8 {s['raw_bytes_per_crop'] / 1024:.0f} KiB, gzip "
                  f"{s['gzip_bytes_per_crop'] / 1024:.0f} KiB "
                  f"({s['gzip_ms_per_crop']:.1f} ms), JPEG q90 "
                  f"{s['jpeg_bytes_per_crop'] / 1024:.1f} KiB "
                  f"({s['jpeg_ms_per_crop']:.1f} ms)", flush=True)
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
