"""``pipeline manifest``."""

from __future__ import annotations

import click

from data_manifest.classes import CLASS_LISTS
from data_manifest.datasets import DATASETS
from data_manifest.formats.reading import CHANNELS
from data_manifest.layouts import LAYOUTS
from data_manifest.workdir import DEFAULT_SHARD_SIZE
from pipeline.cli.options import user_errors_exit
from pipeline.manifest_builder import REQUIRE_CHOICES, build_manifest


@click.command()
@click.argument("dataset", type=click.Choice(sorted(DATASETS)))
@click.argument("root", type=click.Path(path_type=str))
@click.argument("workdir", type=click.Path(file_okay=False, path_type=str))
@click.option("--video-root", type=click.Path(exists=True, file_okay=False),
              help="Where the videos are, if not under ROOT.  [default: ROOT]")
@click.option("--require", type=click.Choice(REQUIRE_CHOICES), default="skeleton",
              help="Which files a sample must have to be listed; others are reported as "
                   "orphans.")
@click.option("--ignore-list", type=click.Path(exists=True, dir_okay=False),
              help="File of sample names to leave out (e.g. NTU's missing-skeleton list).")
@click.option("--shard-size", default=DEFAULT_SHARD_SIZE, type=click.IntRange(1),
              help="Samples per cache shard (the unit of work and of resuming).")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing, different manifest (or settings) of this WORKDIR.")
@click.option("--layout", metavar="NAME|FILE",
              help="csv and pyskl data: the skeleton layout, a built-in name "
                   f"({', '.join(sorted(LAYOUTS))}) or a layout YAML file (see "
                   "docs/own-data.md); copied into WORKDIR.  [default: ntu if every skeleton "
                   "file is an NTU .skeleton file; mediapipe-33 (extract-poses) if no sample "
                   "has one; pyskl: ntu for 25 joints in 3-D, coco-17 for 17 in 2-D; "
                   "otherwise extract-skeletons asks for it]")
@click.option("--from-layout", metavar="NAME|FILE",
              help="csv and pyskl data: the layout the files are stored in, when it is not "
                   "--layout; joints are copied by name (or by --joint-map) into --layout.")
@click.option("--joint-map", metavar="NAME|FILE",
              help="csv and pyskl data: a joint mapping YAML (from, to, joints) turning the "
                   "stored joint order into --layout; implies --from-layout and, if not given, "
                   "--layout.")
@click.option("--classes", metavar="FILE|NAME",
              help="Class names: a text file with one name per line, in label order, "
                   "or a CSV with a name column (and an optional label column), or a known "
                   f"list by name ({', '.join(CLASS_LISTS)}); copied into WORKDIR and shown "
                   "in every report.  [default: the dataset's own names; pyskl: NTU's if its "
                   "splits are NTU's; none for csv data]")
@click.option("--label-base", type=click.IntRange(0, 1), default=0, show_default=True,
              help="csv data: the first label in the CSV's label column (1: labels 1..K, "
                   "stored as 0..K-1).")
@click.option("--channels", type=click.Choice(tuple(CHANNELS)),
              help="csv data: what each joint's values are: xyz (3-D), xy (2-D) or "
                   "xy-score (2-D and a confidence).  [default: from the files: 2 values xy, "
                   "3 values xyz]")
@click.option("--max-persons", type=click.IntRange(1),
              help="csv and pyskl data: persons per sample (a file with more keeps its first "
                   "persons with data).  [default: the most persons with data in any file]")
@click.option("--split", metavar="NAME",
              help="pyskl data: the pair of split lists trained on by default (data.protocol "
                   "auto), e.g. xsub for xsub_train/xsub_val; every pair stays selectable as "
                   "data.protocol=pyskl-NAME.  [default: the file's only pair]")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars (pyskl data).")
@user_errors_exit
def manifest(dataset, root, workdir, video_root, require, ignore_list, shard_size,
             overwrite, layout, from_layout, joint_map, classes, label_base, channels,
             max_persons, split, no_progress):
    """Build WORKDIR/manifest.jsonl for DATASET from the files under ROOT.

    DATASET is ntu60, ntu120, nw-ucla, csv (then ROOT is a CSV file with columns
    id,label,skeleton,video[,split], paths relative to the CSV; split is train or test),
    or pyskl (then ROOT is a pyskl annotation file, .pkl: its arrays are written into
    WORKDIR/pyskl; it is read with data types only, never running code).
    Skeleton files and videos are paired by sample name; files left unpaired are listed in
    WORKDIR/orphans.jsonl. Own data and pyskl files: docs/own-data.md.
    """
    report = build_manifest(dataset, root, workdir, video_root=video_root, require=require,
                            ignore_list=ignore_list, shard_size=shard_size,
                            overwrite=overwrite, layout=layout, from_layout=from_layout,
                            joint_map=joint_map, classes=classes, label_base=label_base,
                            channels=channels, max_persons=max_persons, split=split,
                            progress=not no_progress)
    click.echo(report.summary())
