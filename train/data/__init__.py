"""Skeleton data for training: feeders (CTR-GCN's augmentations), the Dataset over a
WORKDIR's skeleton cache, a resumable sampler and batch collation."""

from train.data.collate import collate_samples
from train.data.dataset import DataBundle, SampleSource, SkeletonDataset, load_data
from train.data.feeders import build_feeder, transform_for_inference
from train.data.sampler import EpochSampler

__all__ = [
    "DataBundle", "EpochSampler", "SampleSource", "SkeletonDataset",
    "build_feeder", "collate_samples", "load_data", "transform_for_inference",
]
