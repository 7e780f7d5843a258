"""Skeleton trainer that reads the pipeline's caches (never imports ``pipeline``)."""
