"""A shard task that runs a model over a shard's temporal images in batches.

The model is loaded lazily, on the first shard that has work, so a run with nothing left
to do never loads it. A batch that raises is retried one image at a time, so one bad
image becomes that sample's recorded failure; if every image of a batch of several fails
alone too, the error is systematic and stops the run. Running out of accelerator memory is
never retried: it stops with advice to lower --batch-size (finished shards are kept).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from data_manifest.sample import Sample
from data_manifest.store import CacheReader, ShardWriter
from data_manifest.workdir import Workdir
from pipeline.models.devices import batch_memory_guard
from pipeline.models.errors import BatchTooLargeError, ModelError
from pipeline.stage_runner import ShardTask, _describe
from pipeline.stages.temporal_images import load_temporal_images

log = logging.getLogger(__name__)


class ImageBatchTask(ShardTask):
    def __init__(self, workdir: str | Path, stitch_name: str, batch_size: int):
        if batch_size < 1:
            raise ValueError("batch size must be at least 1")
        self.workdir = str(workdir)
        self.stitch_name = stitch_name
        self.batch_size = batch_size
        self._model = None
        self._reader: CacheReader | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()      # workers load their own model and reader
        state["_model"], state["_reader"] = None, None
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
            self._model = self.load_model()
        return self._model

    def run_shard(self, shard_index: int, samples: Sequence[Sample],
                  writer: ShardWriter) -> None:
        if self._reader is None:
            self._reader = Workdir(self.workdir).reader("stitch", self.stitch_name)
        images, failures = load_temporal_images(self._reader, samples)
        for sample_id, reason in failures:
            writer.fail(sample_id, reason)
        if images:
            self.model        # load now: a model that fails to load is no sample's fault
        for start in range(0, len(images), self.batch_size):
            batch = images[start:start + self.batch_size]
            for sample_id, outcome in self._run_guarded(shard_index, batch):
                if isinstance(outcome, str):
                    writer.fail(sample_id, outcome)
                else:
                    writer.add(sample_id, outcome)

    def _run_guarded(self, shard_index: int, batch: list[tuple[Sample, Image.Image]]):
        where = f"shard {shard_index}, samples {batch[0][0].id} .. {batch[-1][0].id}"
        try:
            with batch_memory_guard(len(batch), where):
                values = self.run_batch(self.model, [image for _, image in batch])
            return [(sample.id, value) for (sample, _), value in zip(batch, values)]
        except (BatchTooLargeError, ModelError, KeyboardInterrupt):
            raise
        except Exception as error:          # find out which image it was
            if len(batch) == 1:
                return [(batch[0][0].id, _describe(error))]
            log.warning("a batch of %d failed (%s); retrying one image at a time", len(batch),
                        _describe(error))
        outcomes, last_error = [], None
        for sample, image in batch:
            try:
                with batch_memory_guard(1, f"shard {shard_index}, sample {sample.id}"):
                    outcomes.append((sample.id, self.run_batch(self.model, [image])[0]))
            except (BatchTooLargeError, ModelError, KeyboardInterrupt):
                raise
            except Exception as error:      # recorded as this sample's failure
                last_error = error
                outcomes.append((sample.id, _describe(error)))
        if last_error is not None and all(isinstance(o, str) for _, o in outcomes):
            raise last_error
        return outcomes
