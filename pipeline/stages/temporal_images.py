"""Reading the temporal images the stitch stage cached, for the feature stages."""

from __future__ import annotations

from typing import Iterable, Sequence

from PIL import Image

from data_manifest.errors import DataError
from data_manifest.sample import Sample
from data_manifest.schemas import STITCH
from data_manifest.store import CacheReader
from data_manifest.workdir import DEFAULT_CACHE_NAME, Workdir
from pipeline.models.images import decode_image
from pipeline.stages.upstream import open_upstream

STITCH_HINT = ("run `pipeline extract-frames WORKDIR` and then `pipeline stitch WORKDIR` "
               "first (or `pipeline run WORKDIR --to stitch`)")


def open_stitch_cache(workdir: Workdir, name: str = DEFAULT_CACHE_NAME,
                      shard_indices: Iterable[int] | None = None) -> CacheReader:
    """The stitch cache, checked to have finished every shard the caller will read."""
    return open_upstream(workdir, STITCH, name, shard_indices, STITCH_HINT)


def load_temporal_images(reader: CacheReader, samples: Sequence[Sample]
                         ) -> tuple[list[tuple[Sample, Image.Image]], list[tuple[str, str]]]:
    """Decoded images of ``samples``, and (sample id, reason) for those that have none."""
    stitch_failures = {f["id"]: f["reason"] for f in reader.failures}
    images, failures = [], []
    for sample in samples:
        if sample.id not in reader:
            reason = stitch_failures.get(sample.id)
            failures.append((sample.id, f"no temporal image: the stitch stage failed for it "
                                        f"({reason})" if reason else
                             "no temporal image in the stitch cache"))
            continue
        try:
            images.append((sample, decode_image(reader.get(sample.id, ["image"])["image"])))
        except DataError as error:
            failures.append((sample.id, error.reason))
    return images, failures
