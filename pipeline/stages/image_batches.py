"""A shard task that runs a model over a shard's temporal images in batches.

The model is loaded lazily, on the first shard that has work, so a run with nothing left
to do never loads it. Each shard reads its own shard of the stitch cache, checked against
the stitch spec the stage's cache spec was built from (a stitch cache rebuilt with other
settings meanwhile is refused, never mixed in), and closes it when done.

A sample whose image is missing or cannot be decoded is that sample's recorded failure.
An error of the model call itself is not about one sample's data (a device, model or code
problem would fail every sample alike), so it stops the run with a clear message; running
out of memory stops it with advice to lower --batch-size. Finished shards are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from data_manifest.sample import Sample
from data_manifest.schemas import STITCH
from data_manifest.store import CacheReader, ShardWriter
from data_manifest.workdir import Workdir
from pipeline.models.devices import batch_memory_guard
from pipeline.models.errors import BatchTooLargeError, ModelError, ModelRunError
from pipeline.models.loading import loading_errors
from pipeline.stage_runner import ShardTask
from pipeline.stages.model_stage import ModelStagePlan
from pipeline.stages.temporal_images import load_temporal_images
from pipeline.stages.upstream import open_upstream_shard


class ImageBatchTask(ShardTask):
    """Loads ``plan.source`` on ``plan.device`` (the very revision the spec records: a hub
    branch may move meanwhile) and reads ``plan``'s stitch cache."""

    def __init__(self, workdir: str | Path, plan: ModelStagePlan, batch_size: int):
        if batch_size < 1:
            raise ValueError("batch size must be at least 1")
        self.workdir = str(workdir)
        self.plan = plan
        self.batch_size = batch_size
        self._model = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()      # a model is never pickled
        state["_model"] = None
        return state

    # -- to implement
    def load_model(self):
        raise NotImplementedError

    def run_batch(self, model, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
        """One dict of cache fields per image."""
        raise NotImplementedError

    # -- shared
    @property
    def model(self):
        if self._model is None:
            with loading_errors(self.plan.source):
                self._model = self.load_model()
        return self._model

    def open_stitch_shard(self, shard_index: int, samples: Sequence[Sample]) -> CacheReader:
        """The stitch cache's shard ``shard_index``, refused if the stitch cache is no
        longer the one the spec was made from, or not made for ``samples``."""
        cache = Workdir(self.workdir).cache_dir(STITCH, self.plan.stitch_cache)
        return open_upstream_shard(str(cache.path), STITCH, shard_index,
                                   [sample.id for sample in samples],
                                   self.plan.stitch_spec.fingerprint, self.plan.spec.stage)

    def run_shard(self, shard_index: int, samples: Sequence[Sample],
                  writer: ShardWriter) -> None:
        with self.open_stitch_shard(shard_index, samples) as reader:
            images, failures = load_temporal_images(reader, samples)
        for sample_id, reason in failures:
            writer.fail(sample_id, reason)
        if images:
            self.model        # load now: a model that fails to load is no sample's fault
        for start in range(0, len(images), self.batch_size):
            batch = images[start:start + self.batch_size]
            for (sample, _), values in zip(batch, self._run_batch(shard_index, batch)):
                writer.add(sample.id, values)

    def _run_batch(self, shard_index: int, batch: list[tuple[Sample, Image.Image]]
                   ) -> list[dict[str, Any]]:
        where = (f"shard {shard_index}, sample {batch[0][0].id}" if len(batch) == 1 else
                 f"shard {shard_index}, samples {batch[0][0].id} .. {batch[-1][0].id}")
        try:
            with batch_memory_guard(len(batch), where):
                values = self.run_batch(self.model, [image for _, image in batch])
        except (BatchTooLargeError, ModelError):
            raise
        except Exception as error:
            raise ModelRunError(where, error) from error
        if len(values) != len(batch):
            raise ModelRunError(where, RuntimeError(
                f"{len(values)} result(s) for {len(batch)} image(s)"))
        return values
