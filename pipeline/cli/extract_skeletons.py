"""``pipeline extract-skeletons``."""

from __future__ import annotations

import click

from data_manifest.formats.reading import ABSENT_ACTOR_CHOICES
from pipeline.cli.options import report_and_exit, stage_options, user_errors_exit
from pipeline.stages.extract_skeletons import extract_skeletons


@click.command("extract-skeletons")
@click.argument("workdir", type=click.Path(exists=True, file_okay=False))
@click.option("--absent-actor", type=click.Choice(ABSENT_ACTOR_CHOICES), default=None,
              help="The empty second person slot of a single-actor sample: 'zeros' (as "
                   "CTR-GCN's NTU60 preprocessing) or 'copy' of the actor (as its NTU120 "
                   "preprocessing, which MMCL's NTU120 models are trained on). "
                   "[default: copy for ntu120, zeros otherwise]")
@stage_options
@user_errors_exit
def extract_skeletons_command(workdir, absent_actor, jobs, skip_failures, retry_failures,
                              overwrite, no_progress, rebuild):
    """Read every sample's skeleton file into WORKDIR/cache/skeletons/default.

    NTU files are denoised as CTR-GCN does (noise bodies dropped, up to 2 actors, empty
    frames removed) and translated by the spine middle of actor 1's first frame; each
    joint's colour-image position is kept for cropping the video later. NW-UCLA JSON is
    centred the same way. A single-actor sample's empty slot is filled as --absent-actor
    says (a copy has no colour-image position and does not count as an actor). Unreadable or unusable files are recorded with the reason in
    failures.jsonl of the cache; the command then exits 1 unless --skip-failures is given.
    Re-running the same command finishes an interrupted run.
    """
    result = extract_skeletons(workdir, jobs=jobs, overwrite=overwrite,
                               retry_failures=retry_failures, progress=not no_progress,
                               rebuild=rebuild, absent_actor=absent_actor)
    report_and_exit(result, skip_failures)
