"""CTR-GCN fast path: the parameters and state dict of ``CTRGCN``, computed faster.

``FastCTRGCN`` is a ``CTRGCN`` (same modules, same keys, checkpoints load either way) whose
forward pass reorders the same math:

- Activations are kept channel-major, (C, N, V, T), so every 1x1 convolution is one plain
  matrix product (C_out x C_in) @ (C_in x N*V*T), batch norms see each channel as one
  contiguous row, and concatenating or splitting channels moves whole blocks of memory.
- CTR graph conv: conv1/conv2 are linear, so they run on the time-averaged input
  (``mean_t(W x) == W mean_t(x)``) instead of on every frame, all subsets in one product.
  The three subsets' conv3 run as one product; ``alpha`` is folded into conv4's weights
  and the shared ``A`` is added once, giving per-(channel, sample) topologies laid out
  next to the values they aggregate, with no copies in between.
- Multi-scale temporal conv: the branches' leading 1x1 convs run as one product and their
  batch norms as one; the temporal (k x 1) convs run on the channel-major tensor seen as
  one (1, C, N*V, T) image.
- In eval mode batch norms that follow a linear layer are folded into its weights.

Batch norms are merged only when they are plain ``nn.BatchNorm2d`` with equal settings;
others (e.g. ``SyncBatchNorm`` after ``convert_sync_batchnorm``) run module by module, so
their own forward (and synchronisation) is kept. Running statistics are written back to
the original modules. The blocks' own ``forward`` methods are not called, so forward
hooks on them fire only with the reference implementation.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from data_manifest.layouts import Layout
from train.models.common import check_input, check_options, persons_joints_channels
from train.models.ctrgcn import CTRGCN, CTRGCNBlock, CTRGraphConv, MultiScaleTemporalConv
from train.models.graph import spatial_adjacency

# Tensors below are channel-major: (C, N, V, T) unless a comment says otherwise.


# --------------------------------------------------------------------------- primitives


def _matrix(conv: nn.Conv2d) -> torch.Tensor:
    """A 1x1 convolution's weight as (out, in)."""
    return conv.weight.flatten(1)


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    if conv.bias is not None:
        return conv.bias
    return conv.weight.new_zeros(conv.out_channels)


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """1x1 convolution of channel-major ``x`` by a (out, in) weight: one matrix product."""
    out = torch.addmm(bias[:, None], weight, x.reshape(x.shape[0], -1))
    return out.view(weight.shape[0], *x.shape[1:])


def _records_grad(x: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and x.requires_grad


def _add(x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``x + other``, written into ``x`` when no gradient is recorded and the sum keeps
    ``x``'s dtype. (Autograd turns an in-place update of a view into copies of the whole
    base, which costs more than it saves; under autocast a bf16 product plus a float32
    shift must become float32, as in the reference.)"""
    if _records_grad(x) or torch.result_type(x, other) != x.dtype:
        return x + other
    return x.add_(other)


def _relu(x: torch.Tensor) -> torch.Tensor:
    return F.relu(x) if _records_grad(x) else x.relu_()


def _bn_scale_shift(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode batch norm as ``x * scale + shift``."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _plain(bns: Sequence[nn.Module]) -> bool:
    """Plain batch norms with one exponential-average momentum (``momentum=None``, the
    cumulative average, depends on each module's batch count: left to the module)."""
    first = bns[0]
    return all(type(bn) is nn.BatchNorm2d and bn.affine and bn.track_running_stats
               and bn.momentum is not None and bn.eps == first.eps
               and bn.momentum == first.momentum for bn in bns)


def _foldable(bns: Sequence[nn.Module]) -> bool:
    return _plain(bns) and not any(bn.training for bn in bns)


def _module_batch_norm(x: torch.Tensor, bn: nn.Module) -> torch.Tensor:
    return bn(x.reshape(1, x.shape[0], -1, 1)).view_as(x)


def batch_norm(x: torch.Tensor, bns: Sequence[nn.Module]) -> torch.Tensor:
    """``cat([bn(part) for bn, part in zip(bns, x.split(widths))])`` in one pass."""
    if not _plain(bns):
        parts = x.split([bn.num_features for bn in bns])
        return torch.cat([_module_batch_norm(part, bn) for bn, part in zip(bns, parts)])
    first = bns[0]
    if len(bns) == 1:
        weight, bias = first.weight, first.bias
        mean, var = first.running_mean, first.running_var
    else:
        weight = torch.cat([bn.weight for bn in bns])
        bias = torch.cat([bn.bias for bn in bns])
        mean = torch.cat([bn.running_mean for bn in bns])
        var = torch.cat([bn.running_var for bn in bns])
    training = first.training
    out = F.batch_norm(x.reshape(1, x.shape[0], -1), mean, var, weight, bias, training,
                       first.momentum, first.eps)
    if training:
        with torch.no_grad():
            widths = [bn.num_features for bn in bns]
            for bn, m, v in zip(bns, mean.split(widths), var.split(widths)):
                if len(bns) > 1:
                    bn.running_mean.copy_(m)
                    bn.running_var.copy_(v)
                bn.num_batches_tracked.add_(1)
    return out.view_as(x)


def conv_bn(x: torch.Tensor, convs: Sequence[nn.Conv2d], bns: Sequence[nn.Module],
            stride: int = 1) -> torch.Tensor:
    """BN(1x1 conv(x)) of several convs on the same input, outputs stacked by channel;
    with an optional temporal stride; folded into one product in eval."""
    if stride > 1:
        x = x[..., ::stride]
    weight = torch.cat([_matrix(conv) for conv in convs])
    bias = torch.cat([_bias(conv) for conv in convs])
    if _foldable(bns):
        scale, shift = (torch.cat(parts) for parts in zip(*map(_bn_scale_shift, bns)))
        return pointwise(x, weight * scale[:, None], bias * scale + shift)
    return batch_norm(pointwise(x, weight, bias), bns)


def temporal_conv2d(x: torch.Tensor, conv: nn.Conv2d, weight: torch.Tensor,
                    bias: torch.Tensor | None) -> torch.Tensor:
    """``conv``'s (k x 1) convolution over time with these weights, run on the channel-major
    tensor as one (1, C, N*V, T) image."""
    c, n, v, t = x.shape
    out = F.conv2d(x.view(1, c, n * v, t), weight.transpose(2, 3), bias,
                   stride=conv.stride[::-1], padding=conv.padding[::-1],
                   dilation=conv.dilation[::-1])
    return out.view(conv.out_channels, n, v, -1)


def temporal_conv_bn(x: torch.Tensor, conv: nn.Conv2d, bn: nn.Module) -> torch.Tensor:
    """BN(``conv``(x)) for a (k x 1) convolution over time, folded into one conv in eval."""
    if not _foldable([bn]):
        return batch_norm(temporal_conv2d(x, conv, conv.weight, conv.bias), [bn])
    scale, shift = _bn_scale_shift(bn)
    return temporal_conv2d(x, conv, conv.weight * scale.view(-1, 1, 1, 1),
                           _bias(conv) * scale + shift)


def max_pool_time(x: torch.Tensor, pool: nn.MaxPool2d) -> torch.Tensor:
    """``pool`` (k x 1 over time) on channel-major input; rows of T as one 1-d batch, which
    without gradients runs a kernel many times faster than the 2-d one."""
    c, n, v, t = x.shape
    kernel, stride, padding, dilation = (_pair(value)[0] for value in (
        pool.kernel_size, pool.stride, pool.padding, pool.dilation))
    out = F.max_pool1d(x.reshape(c * n * v, t), kernel, stride, padding, dilation,
                       ceil_mode=pool.ceil_mode)
    return out.view(c, n, v, -1)


# --------------------------------------------------------------------------- layers


def graph_conv(gcn: CTRGraphConv, x: torch.Tensor) -> torch.Tensor:
    """``CTRGraphConv``: (C_in, N, V, T) -> (C_out, N, V, T)."""
    _, n, v, t = x.shape
    convs = gcn.convs
    s = len(convs)
    rel = convs[0].conv1.out_channels
    c = convs[0].conv3.out_channels

    # query/key embeddings of the time-averaged input, all subsets in one product
    qk_weight = torch.cat([_matrix(sub.conv1) for sub in convs]
                          + [_matrix(sub.conv2) for sub in convs])
    qk_bias = torch.cat([_bias(sub.conv1) for sub in convs]
                        + [_bias(sub.conv2) for sub in convs])
    query, key = pointwise(x.mean(-1), qk_weight, qk_bias).view(2, s, rel, n, v).unbind(0)
    relation = torch.tanh(query.unsqueeze(-1) - key.unsqueeze(-2))      # S, R, N, V, V

    # topology[s, c, n, u, w] = alpha * conv4_s(relation)[c, n, u, w] + A[s, u, w]
    alpha = gcn.alpha
    lift = torch.stack([_matrix(sub.conv4) for sub in convs]) * alpha   # S, C, R
    offset = (torch.stack([_bias(sub.conv4) for sub in convs]) * alpha)[..., None, None, None] \
        + gcn.PA[:, None, None]                                         # S, C, 1, V, V
    lifted = torch.bmm(lift, relation.view(s, rel, -1)).view(s, c, n, v, v)
    # in the product's dtype: the in-place baddbmm_ below is not autocast
    topology = _add(lifted, offset.to(lifted.dtype)).view(s, c * n, v, v).unbind(0)

    folded = _foldable([gcn.bn])
    value_weight = torch.cat([_matrix(sub.conv3) for sub in convs])     # S*C, C_in
    value_bias = torch.cat([_bias(sub.conv3) for sub in convs])
    if folded:
        scale, shift = _bn_scale_shift(gcn.bn)
        value_weight = value_weight * scale.repeat(s)[:, None]
        value_bias = value_bias * scale.repeat(s)
    value = pointwise(x, value_weight, value_bias).view(s, c * n, v, t).unbind(0)
    out = torch.bmm(topology[0], value[0])
    for index in range(1, s):
        out.baddbmm_(topology[index], value[index])   # backward reads no output of bmm
    out = out.view(c, n, v, t)
    out = _add(out, shift.view(-1, 1, 1, 1)) if folded else batch_norm(out, [gcn.bn])
    out = _add(out, x if isinstance(gcn.down, nn.Identity)
               else conv_bn(x, [gcn.down[0]], [gcn.down[1]]))
    return _relu(out)


def temporal_conv(tcn: MultiScaleTemporalConv, x: torch.Tensor) -> torch.Tensor:
    """``MultiScaleTemporalConv`` on channel-major input."""
    *dilated, pooled, strided = tcn.branches
    stride = strided[0].stride[0]
    squeezes = [branch[0] for branch in tcn.branches[:-1]]
    norms = [branch[1] for branch in tcn.branches[:-1]]
    if stride == 1:   # the last branch's 1x1 conv joins the others'
        squeezes.append(strided[0])
        norms.append(strided[1])
    hidden = conv_bn(x, squeezes, norms)
    width = squeezes[0].out_channels
    parts = _relu(hidden[:len(dilated) * width + width]).split(width)

    outputs = [temporal_conv_bn(part, branch[3].conv, branch[3].bn)
               for part, branch in zip(parts, dilated)]
    outputs.append(batch_norm(max_pool_time(parts[-1], pooled[3]), [pooled[4]]))
    if stride == 1:
        outputs.append(hidden[-width:])
    else:
        outputs.append(conv_bn(x, [strided[0]], [strided[1]], stride=stride))
    return torch.cat(outputs)


def block(unit: CTRGCNBlock, x: torch.Tensor) -> torch.Tensor:
    out = temporal_conv(unit.tcn1, graph_conv(unit.gcn1, x))
    if unit.use_residual:
        residual = unit.residual
        out = _add(out, x if isinstance(residual, nn.Identity) else
                   conv_bn(x, [residual.conv], [residual.bn], stride=residual.conv.stride[0]))
    return _relu(out)


class FastCTRGCN(CTRGCN):
    """``CTRGCN`` with the fast forward pass; the same modules, parameters and state dict."""

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_input(x, self.in_channels, self.num_joints, self.num_persons)
        n, c, t = x.shape[0], self.in_channels, x.shape[2]
        x = self.data_bn(persons_joints_channels(x))          # N, M*V*C, T
        x = x.view(n, self.num_persons, self.num_joints, c, t).permute(3, 0, 1, 2, 4) \
            .reshape(c, n * self.num_persons, self.num_joints, t)
        for unit in (self.l1, self.l2, self.l3, self.l4, self.l5,
                     self.l6, self.l7, self.l8, self.l9, self.l10):
            x = block(unit, x)
        feature = x.flatten(2).mean(2).view(-1, n, self.num_persons).mean(2).t().contiguous()
        logits = self.fc(self.drop_out(feature))
        return logits, feature


def build(num_classes: int, layout: Layout, num_persons: int, in_channels: int,
          dropout: float, options: Mapping[str, Any] | None = None) -> FastCTRGCN:
    """``train.models.ctrgcn.build`` with the fast forward pass (``model.impl=fast``)."""
    check_options("ctrgcn", options, {})
    return FastCTRGCN(num_classes, spatial_adjacency(layout), num_persons=num_persons,
                      in_channels=in_channels, dropout=dropout)
