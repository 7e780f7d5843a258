"""The symmetric contrastive (InfoNCE) loss that FAM uses to align two views of a batch.

For L2-normalised ``z1, z2`` with similarities ``s12 = z1 z2^T`` and ``s11 = z1 z1^T``,
row ``i`` costs::

    l(i) = -log( exp(s12_ii / tau)
                 / (sum_k exp(s11_ik / tau) - exp(s11_ii / tau) + sum_k exp(s12_ik / tau)) )

i.e. the paired sample is the positive; every other sample of the batch, in either view,
is a negative. The loss is computed both ways, (z1, z2) and (z2, z1), averaged, then
averaged over the batch. It is evaluated in log space (log-sum-exp with the ``s11``
diagonal masked out), which is the same quantity without overflow for small ``tau``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

DEFAULT_TAU = 0.4


def gather_batch(z: torch.Tensor) -> torch.Tensor:
    """``z`` of every process, concatenated in rank order (just ``z`` in one process).

    Gradients flow back to each process's own rows. Each process then computes the loss
    of the global batch; the all_gather backward sums the gradients that every process's
    copy of that loss sends to a row (world size times the loss's gradient), and DDP's
    average over processes divides that by the world size again: the parameters get
    exactly the gradient of the global-batch loss.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return z
    from torch.distributed.nn.functional import all_gather
    return torch.cat(all_gather(z.contiguous()), dim=0)


def _one_way(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    within = z1 @ z1.t() / tau
    between = z1 @ z2.t() / tau
    self_pairs = torch.eye(len(z1), dtype=torch.bool, device=z1.device)
    within = within.masked_fill(self_pairs, float("-inf"))
    denominator = torch.logsumexp(torch.cat([within, between], dim=1), dim=1)
    return denominator - between.diagonal()


def symmetric_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor,
                               tau: float = DEFAULT_TAU) -> torch.Tensor:
    """Mean over the batch of the two-way InfoNCE loss between rows of ``z1`` and ``z2``."""
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"contrastive loss needs two (N, C) tensors of one shape, got "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")
    if tau <= 0:
        raise ValueError(f"temperature must be positive, got {tau}")
    dtype = torch.promote_types(z1.dtype, torch.float32)   # half precision: in float32
    z1 = F.normalize(z1.to(dtype), dim=1)
    z2 = F.normalize(z2.to(dtype), dim=1)
    return 0.5 * (_one_way(z1, z2, tau) + _one_way(z2, z1, tau)).mean()
