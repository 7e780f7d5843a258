"""MMCL co-learning for the trainer: FAM and FRM on cached RGB and LLM features.

Training only: the auxiliary modules here add losses to the skeleton GCN's training step;
inference and export use the skeleton model alone and never import this package.
"""
