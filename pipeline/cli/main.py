"""``pipeline``: the root command group. Each subcommand lives in its own module."""

from __future__ import annotations

import importlib
import logging

import click

# command name -> ("module:attribute", its one-line help). Modules are imported only when
# their command runs (or shows its own --help): `pipeline --help` lists the commands from
# here, since importing them all would load the model libraries (seconds) to print text.
COMMANDS = {
    "manifest": (
        "pipeline.cli.manifest:manifest",
        "Build WORKDIR/manifest.jsonl for DATASET from the files under ROOT."),
    "status": (
        "pipeline.cli.status:status",
        "Show WORKDIR's train/test counts per split protocol, then every stage: per cache, "
        "shards done/total, samples, failures, shards to redo and why, damaged shards and "
        "fingerprint; stages without a cache show as not started."),
    "split": (
        "pipeline.cli.split:split",
        "Print the sample ids of one part of a split protocol, one per line, in manifest "
        "order."),
    "cache-llm-features": (
        "pipeline.cli.cache_llm_features:cache_llm_features_command",
        "Ask a vision-language model about each temporal image; cache answers and "
        "features."),
    "cache-rgb-features": (
        "pipeline.cli.cache_rgb_features:cache_rgb_features_command",
        "Cache one image-backbone feature vector per temporal image (the FAM's CNN "
        "feature)."),
    "make-tiny-models": (
        "pipeline.cli.make_tiny_models:make_tiny_models_command",
        "Write tiny random-weight models (BLIP VQA, Qwen2-VL-style chat, ResNet) to "
        "DIRECTORY."),
    "run": (
        "pipeline.cli.run:run_command",
        "Run the pipeline stages of WORKDIR in order, from --from to --to."),
    "extract-skeletons": (
        "pipeline.cli.extract_skeletons:extract_skeletons_command",
        "Read every sample's skeleton file into WORKDIR/cache/skeletons/default."),
    "extract-poses": (
        "pipeline.cli.extract_poses:extract_poses_command",
        "Estimate each sample's pose from its video into WORKDIR/cache/skeletons/NAME."),
    "extract-frames": (
        "pipeline.cli.extract_frames:extract_frames",
        "Take m person crops per sample from its video into WORKDIR/cache/frames/NAME."),
    "stitch": (
        "pipeline.cli.stitch:stitch",
        "Paste each sample's m crops left to right into one image: "
        "WORKDIR/cache/stitch/NAME."),
    "preview": (
        "pipeline.cli.preview:preview",
        "Write SAMPLE_ID's temporal image with its skeleton drawn on each tile."),
    "export-pyskl": (
        "pipeline.cli.export_pyskl:export_pyskl_command",
        "Write WORKDIR's skeleton cache as a pyskl annotation file OUT (.pkl)."),
    "make-demo-data": (
        "pipeline.cli.make_demo_data:make_demo_data",
        "Write a small NTU-style demo dataset (skeletons and videos) into ROOT."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                               "show_default": True})
@click.option("--log-level", default="WARNING",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Logging verbosity.")
def cli(log_level: str) -> None:
    """MMCL offline pipeline: manifest, skeletons, frames, temporal images, features.

    Every stage caches its output as sharded HDF5 files under WORKDIR/cache and can be
    re-run safely: finished shards are kept, unfinished ones are redone.
    """
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
