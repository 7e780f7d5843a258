"""HD-GCN as published (jho-lee/HD-GCN: model/HDGCN.py, graph/tools.py,
graph/ntu_rgb_d_hierarchy.py), re-implemented independently in functional torch for the
import tests: the published NTU groups, the hierarchical graph built from them, the
state-dict keys and the evaluation-mode forward pass. Nothing here calls the toolkit's
model code."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from reference_ops import bn, bn_keys, conv

# graph/tools.py get_groups(dataset='NTU', CoM), 1-based
NTU_GROUPS = {
    21: [[21], [2, 3, 5, 9], [4, 6, 10, 1], [7, 11, 13, 17], [8, 12, 14, 18],
         [22, 23, 24, 25, 15, 19], [16, 20]],
    2: [[2], [1, 21], [13, 17, 3, 5, 9], [14, 18, 4, 6, 10], [15, 19, 7, 11],
        [16, 20, 8, 12], [22, 23, 24, 25]],
    1: [[1], [2, 13, 17], [14, 18, 21], [3, 5, 9, 15, 19], [4, 6, 10, 16, 20], [7, 11],
        [8, 12, 22, 23, 24, 25]],
}
# model/HDGCN.py Model: (in, out, stride, residual, attention) of l1..l10
BLOCKS = [(3, 64, 1, False, False), (64, 64, 1, True, True), (64, 64, 1, True, True),
          (64, 64, 1, True, True), (64, 128, 2, True, True), (128, 128, 1, True, True),
          (128, 128, 1, True, True), (128, 256, 2, True, True), (256, 256, 1, True, True),
          (256, 256, 1, True, True)]
DILATIONS = (1, 2)
KERNEL = 5


def _edges_to_matrix(links, num_node):
    matrix = np.zeros((num_node, num_node))
    for i, j in links:
        matrix[j, i] = 1
    return matrix


def _normalise_digraph(matrix):
    degree = matrix.sum(0)
    scale = np.zeros_like(degree)
    scale[degree > 0] = 1.0 / degree[degree > 0]
    return matrix @ np.diag(scale)


def hierarchical_graph(groups_1based, num_node: int = 25) -> np.ndarray:
    """tools.get_edgeset + get_hierarchical_graph: (L, 3, V, V)."""
    groups = [[j - 1 for j in group] for group in groups_1based]
    levels = len(groups) - 1
    identity, forward_sets, reverse_sets = [], [], []
    for i in range(levels):
        identity.append([(j, j) for j in groups[i] + groups[i + 1]])
        forward_sets.append([(j, k) for j in groups[i] for k in groups[i + 1]])
        reverse_sets.append([(j, k) for j in groups[-1 - i] for k in groups[-2 - i]])
    graph = []
    for i in range(levels):
        graph.append(np.stack([_edges_to_matrix(identity[i], num_node),
                               _normalise_digraph(_edges_to_matrix(forward_sets[i], num_node)),
                               _normalise_digraph(_edges_to_matrix(reverse_sets[-1 - i],
                                                                   num_node))]))
    return np.stack(graph)


def key_shapes(num_classes: int, levels: int = 6, num_joints: int = 25, num_persons: int = 2,
               in_channels: int = 3) -> dict[str, tuple[int, ...]]:
    shapes = dict(bn_keys("data_bn", num_persons * in_channels * num_joints))
    for index, (cin, cout, stride, residual, attention) in enumerate(BLOCKS):
        p = f"l{index + 1}"
        cin = in_channels if index == 0 else cin
        inner = cout // 4
        g = f"{p}.gcn1"
        shapes[f"{g}.PA"] = (levels, 3, num_joints, num_joints)
        for level in range(levels):
            shapes[f"{g}.conv_down.{level}.0.weight"] = (inner, cin, 1, 1)
            shapes[f"{g}.conv_down.{level}.0.bias"] = (inner,)
            shapes.update(bn_keys(f"{g}.conv_down.{level}.1", inner))
            for subset in range(3):
                shapes[f"{g}.conv.{level}.{subset}.0.weight"] = (inner, inner, 1, 1)
                shapes[f"{g}.conv.{level}.{subset}.0.bias"] = (inner,)
                shapes.update(bn_keys(f"{g}.conv.{level}.{subset}.1", inner))
            shapes[f"{g}.conv.{level}.3.conv.0.weight"] = (inner, 2 * inner, 1, 1)
            shapes.update(bn_keys(f"{g}.conv.{level}.3.conv.1", inner))
        if attention:
            quarter = cout // 4
            shapes[f"{g}.aha.conv_down.0.weight"] = (quarter, cout, 1, 1)
            shapes[f"{g}.aha.conv_down.0.bias"] = (quarter,)
            shapes.update(bn_keys(f"{g}.aha.conv_down.1", quarter))
            shapes[f"{g}.aha.edge_conv.conv.0.weight"] = (quarter, 2 * quarter, 1, 1)
            shapes.update(bn_keys(f"{g}.aha.edge_conv.conv.1", quarter))
            shapes[f"{g}.aha.aggregate.weight"] = (cout, quarter, 1)
            shapes[f"{g}.aha.aggregate.bias"] = (cout,)
        if cin != cout:
            shapes[f"{g}.down.0.weight"] = (cout, cin, 1, 1)
            shapes[f"{g}.down.0.bias"] = (cout,)
            shapes.update(bn_keys(f"{g}.down.1", cout))
        shapes.update(bn_keys(f"{g}.bn", cout))
        width = cout // 4
        t = f"{p}.tcn1.branches"
        for branch in range(4):
            shapes[f"{t}.{branch}.0.weight"] = (width, cout, 1, 1)
            shapes[f"{t}.{branch}.0.bias"] = (width,)
            shapes.update(bn_keys(f"{t}.{branch}.1", width))
        for branch in range(2):
            shapes[f"{t}.{branch}.3.conv.weight"] = (width, width, KERNEL, 1)
            shapes[f"{t}.{branch}.3.bias"] = (1, width, 1, 1)
            shapes.update(bn_keys(f"{t}.{branch}.3.bn", width))
        shapes.update(bn_keys(f"{t}.2.4", width))
        if residual and (cin != cout or stride != 1):
            shapes[f"{p}.residual.conv.weight"] = (cout, cin, 1, 1)
            shapes[f"{p}.residual.conv.bias"] = (cout,)
            shapes.update(bn_keys(f"{p}.residual.bn", cout))
    shapes["fc.weight"] = (num_classes, 256)
    shapes["fc.bias"] = (num_classes,)
    return shapes


def _edge_conv(s, prefix: str, x: torch.Tensor, k: int) -> torch.Tensor:
    """EdgeConv on points x (N, C, P) -> (N, out, P)."""
    n, c, points = x.shape
    inner = -2 * torch.matmul(x.transpose(2, 1), x)
    xx = torch.sum(x ** 2, dim=1, keepdim=True)
    idx = (-xx - inner - xx.transpose(2, 1)).topk(k=k, dim=-1)[1]
    idx = (idx + torch.arange(n).view(-1, 1, 1) * points).view(-1)
    flat = x.transpose(1, 2).reshape(n * points, c)
    neighbours = flat[idx].view(n, points, k, c)
    centre = x.transpose(1, 2).unsqueeze(2).repeat(1, 1, k, 1)
    feature = torch.cat((neighbours - centre, centre), dim=3).permute(0, 3, 1, 2)
    y = bn(conv(feature, s, f"{prefix}.conv.0", bias=False), s, f"{prefix}.conv.1")
    return F.leaky_relu(y, 0.2).max(dim=-1)[0]


def _graph_conv(s, p: str, x: torch.Tensor, groups, attention: bool) -> torch.Tensor:
    graph = s[f"{p}.PA"]
    levels = graph.shape[0]
    outs = []
    for i in range(levels):
        down = F.relu(bn(conv(x, s, f"{p}.conv_down.{i}.0"), s, f"{p}.conv_down.{i}.1"))
        parts = []
        for j in range(3):
            z = torch.einsum("nctu,vu->nctv", down, graph[i, j])
            parts.append(bn(conv(z, s, f"{p}.conv.{i}.{j}.0"), s, f"{p}.conv.{i}.{j}.1"))
        edge = _edge_conv(s, f"{p}.conv.{i}.3", down.mean(dim=-2), k=5)
        parts.append(edge.unsqueeze(2).repeat(1, 1, x.shape[2], 1))
        outs.append(torch.cat(parts, dim=1))
    out = torch.stack(outs, dim=2)                                  # N, C, L, T, V
    if attention:
        zero_based = [[j - 1 for j in group] for group in groups]
        layers = [zero_based[i] + zero_based[i + 1] for i in range(levels)]
        summary = F.relu(bn(conv(out.max(dim=-2)[0], s, f"{p}.aha.conv_down.0"), s,
                            f"{p}.aha.conv_down.1"))
        sampled = torch.cat([summary[:, :, i, layers[i]].mean(dim=-1, keepdim=True)
                             for i in range(levels)], dim=2)
        weights = _edge_conv(s, f"{p}.aha.edge_conv", sampled, k=3)
        weights = F.conv1d(weights, s[f"{p}.aha.aggregate.weight"],
                           s[f"{p}.aha.aggregate.bias"])
        out = (out * torch.sigmoid(weights)[:, :, :, None, None]).sum(dim=2)
    else:
        out = out.sum(dim=2)
    out = bn(out, s, f"{p}.bn")
    down = bn(conv(x, s, f"{p}.down.0"), s, f"{p}.down.1") if f"{p}.down.0.weight" in s else x
    return F.relu(out + down)


def _temporal(s, p: str, x: torch.Tensor, stride: int) -> torch.Tensor:
    outs = []
    for branch, dilation in enumerate(DILATIONS):
        b = f"{p}.branches.{branch}"
        y = F.relu(bn(conv(x, s, f"{b}.0"), s, f"{b}.1"))
        y = conv(y, s, f"{b}.3.conv", stride=(stride, 1), padding=(2 * dilation, 0),
                 dilation=(dilation, 1), bias=False) + s[f"{b}.3.bias"]
        outs.append(bn(y, s, f"{b}.3.bn"))
    y = F.relu(bn(conv(x, s, f"{p}.branches.2.0"), s, f"{p}.branches.2.1"))
    y = F.max_pool2d(y, kernel_size=(3, 1), stride=(stride, 1), padding=(1, 0))
    outs.append(bn(y, s, f"{p}.branches.2.4"))
    outs.append(bn(conv(x, s, f"{p}.branches.3.0", stride=(stride, 1)), s,
                   f"{p}.branches.3.1"))
    return torch.cat(outs, dim=1)


def forward(s, x: torch.Tensor, groups) -> torch.Tensor:
    """Model.forward in evaluation mode, with the hierarchy ``groups`` (1-based) of A-HA."""
    n, c, t, v, m = x.shape
    x = x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t)                # n (m v c) t
    x = bn(x, s, "data_bn").reshape(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(
        n * m, c, t, v)
    for index, (_, _, stride, residual, attention) in enumerate(BLOCKS):
        p = f"l{index + 1}"
        y = _temporal(s, f"{p}.tcn1", _graph_conv(s, f"{p}.gcn1", x, groups, attention),
                      stride)
        if not residual:
            res = 0
        elif f"{p}.residual.conv.weight" in s:
            res = bn(conv(x, s, f"{p}.residual.conv", stride=(stride, 1)), s,
                     f"{p}.residual.bn")
        else:
            res = x
        x = F.relu(y + res)
    feature = x.view(n, m, x.shape[1], -1).mean(3).mean(1)
    return F.linear(feature, s["fc.weight"], s["fc.bias"])
