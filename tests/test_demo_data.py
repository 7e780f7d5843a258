"""The built-in demo dataset: NTU-style names, both splits, videos matching the skeletons."""

import hashlib

import numpy as np
import pytest
from click.testing import CliRunner

from data_manifest.schemas import FRAMES
from data_manifest.splits import select
from data_manifest.workdir import Workdir
from pipeline.cli.main import cli
from pipeline.manifest_builder import build_manifest
from pipeline.stages.extract_frames import extract_frames
from pipeline.stages.extract_skeletons import extract_skeletons
from pipeline.synthetic.demo_dataset import demo_sample_name, make_demo_dataset
from pipeline.synthetic.ntu_skeleton import generate_sequence
from pipeline.synthetic.video import render_video
from pipeline.video import VideoReader

SIZE = (320, 180)
HEAD_BGR = np.array([120, 160, 210])


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = make_demo_dataset(tmp_path_factory.mktemp("demo") / "ntu", num_classes=3,
                             samples_per_class=8, frames=(20, 30), video_size=SIZE)
    workdir = tmp_path_factory.mktemp("demo") / "wd"
    build_manifest("ntu60", root, workdir)
    extract_skeletons(workdir, progress=False)
    extract_frames(workdir, margin=0.1, progress=False)
    return root, Workdir(workdir)


def test_files_are_ntu_named_pairs(demo):
    root, workdir = demo
    skeletons = sorted(p.stem for p in root.glob("*.skeleton"))
    videos = sorted(p.name[:-len("_rgb.avi")] for p in root.glob("*_rgb.avi"))
    assert len(skeletons) == 24 and skeletons == videos
    assert len(workdir.samples) == 24
    assert all(s.video and s.skeleton for s in workdir.samples)
    assert sorted({s.label for s in workdir.samples}) == [0, 1, 2]
    assert len({demo_sample_name(i, 1) for i in range(272)}) == 272


@pytest.mark.parametrize("protocol", ["ntu60-xsub", "ntu60-xview"])
def test_both_splits_have_train_and_test_samples_of_every_class(demo, protocol):
    _, workdir = demo
    for part in ("train", "test"):
        chosen = select(workdir.samples, protocol, part)
        assert sorted({s.label for s in chosen}) == [0, 1, 2], part


def test_videos_match_their_skeletons(demo):
    _, workdir = demo
    sample = workdir.samples[5]
    skeleton = workdir.reader("skeletons").get(sample.id)
    frames = workdir.reader(FRAMES).get(sample.id)
    assert frames["crop_source"] == ["skeleton"] * 5 and frames["notes"] == ""
    middle, box = int(frames["frame_indices"][2]), frames["boxes"][2]
    with VideoReader(sample.video) as video:
        assert (video.info.width, video.info.height) == SIZE
        assert video.info.frame_count == int(skeleton["source_frames"])
        (_, frame), = list(video.frames([middle]))
    xy = skeleton["color_xy"][list(skeleton["frame_index"]).index(middle), 0]
    # the head is drawn (skin colour) where the skeleton's colour coordinates put it
    x, y = np.round(xy[3]).astype(int)
    assert np.abs(frame[y, x].astype(int) - HEAD_BGR).max() < 30
    # and every skin pixel is near the joints, inside the crop box
    ys, xs = np.nonzero(np.abs(frame.astype(int) - HEAD_BGR).max(axis=2) < 30)
    assert len(xs) > 10
    assert xs.min() >= xy[:, 0].min() - 15 and xs.max() <= xy[:, 0].max() + 15
    assert box[0] <= xs.min() and xs.max() < box[2] and box[1] <= ys.min()


def test_same_seed_same_files(tmp_path):
    def digest(root):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.iterdir())}
    a = make_demo_dataset(tmp_path / "a", num_classes=1, samples_per_class=2, frames=(5, 8),
                          video_size=(64, 36))
    b = make_demo_dataset(tmp_path / "b", num_classes=1, samples_per_class=2, frames=(5, 8),
                          video_size=(64, 36))
    c = make_demo_dataset(tmp_path / "c", num_classes=1, samples_per_class=2, frames=(5, 8),
                          video_size=(64, 36), seed=1)
    assert digest(a) == digest(b) and len(digest(a)) == 4
    skeleton = lambda root: {k: v for k, v in digest(root).items() if k.endswith("skeleton")}
    assert skeleton(a) != skeleton(c)


def test_two_actors_are_both_drawn(tmp_path):
    rng = np.random.default_rng(3)
    sequence = generate_sequence(rng, 4, num_actors=2, action=50)
    xy = sequence.color_xy * np.float32(SIZE[0] / 1920)
    path = render_video(tmp_path / "two.avi", xy, sequence.present, sequence.roles, SIZE)
    with VideoReader(path) as video:
        (_, frame), = list(video.frames([2]))
    for actor in range(2):
        x, y = np.round(xy[2, actor, 3]).astype(int)
        assert np.abs(frame[y, x].astype(int) - HEAD_BGR).max() < 30


def test_cli(tmp_path):
    runner = CliRunner()
    root = tmp_path / "demo"
    result = runner.invoke(cli, ["make-demo-data", str(root), "--num-classes", "2",
                                 "--samples-per-class", "3", "--min-frames", "12",
                                 "--max-frames", "13", "--video-size", "96x54"])
    assert result.exit_code == 0, result.output
    assert len(list(root.glob("*_rgb.avi"))) == 6 and len(list(root.glob("*.skeleton"))) == 6
    again = runner.invoke(cli, ["make-demo-data", str(root)])
    assert again.exit_code == 2 and "not empty" in again.output
    bare = runner.invoke(cli, ["make-demo-data", str(tmp_path / "bare"), "--no-video",
                               "--num-classes", "1", "--samples-per-class", "2"])
    assert bare.exit_code == 0 and not list((tmp_path / "bare").glob("*.avi"))
