"""``pipeline extract-skeletons``."""

from __future__ import annotations

import click

from pipeline.cli.options import report_and_exit, stage_options, user_errors_exit
from pipeline.stages.extract_skeletons import extract_skeletons


@click.command("extract-skeletons")
@click.argument("workdir", type=click.Path(exists=True, file_okay=False))
@stage_options
@user_errors_exit
def extract_skeletons_command(workdir, jobs, skip_failures, retry_failures, overwrite,
                              no_progress, rebuild):
    """Read every sample's skeleton file into WORKDIR/cache/skeletons/default.

    NTU files are denoised as CTR-GCN does (noise bodies dropped, up to 2 actors, empty
    frames removed) and translated by the spine middle of actor 1's first frame; each
    joint's colour-image position is kept for cropping the video later. NW-UCLA JSON is
    centred the same way. Unreadable or unusable files are recorded with the reason in
    failures.jsonl of the cache; the command then exits 1 unless --skip-failures is given.
    Re-running the same command finishes an interrupted run.
    """
    result = extract_skeletons(workdir, jobs=jobs, overwrite=overwrite,
                               retry_failures=retry_failures, progress=not no_progress,
                               rebuild=rebuild)
    report_and_exit(result, skip_failures)
