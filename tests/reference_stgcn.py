"""ST-GCN as published (yysijie/st-gcn: net/st_gcn.py, net/utils/tgcn.py, net/utils/graph.py),
re-implemented independently in functional torch for the import tests: its graph from the
reference's own NTU edge list, its state-dict keys and its evaluation-mode forward pass.
Nothing here calls the toolkit's model code."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from reference_ops import bn, bn_keys, conv

# net/utils/graph.py, layout 'ntu-rgb+d': 1-based neighbour pairs and centre 21
NTU_NEIGHBOURS = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21),
                  (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15),
                  (17, 1), (18, 17), (19, 18), (20, 19), (22, 23), (23, 8), (24, 25),
                  (25, 12)]
NTU_CENTRE = 21
# net/st_gcn.py Model: (in, out, stride) of st_gcn_networks; residual off in block 0
BLOCKS = [(3, 64, 1), (64, 64, 1), (64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1),
          (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 256, 1)]
TEMPORAL_KERNEL = 9


def spatial_graph(num_node: int = 25, neighbours=NTU_NEIGHBOURS, centre: int = NTU_CENTRE,
                  max_hop: int = 1) -> np.ndarray:
    """Graph(strategy='spatial'): hop distances from powers of the adjacency matrix (capped
    at max_hop), column-normalised neighbourhood, split by distance to the centre."""
    links = [(i, i) for i in range(num_node)] + [(a - 1, b - 1) for a, b in neighbours]
    adjacency = np.zeros((num_node, num_node))
    for i, j in links:
        adjacency[i, j] = adjacency[j, i] = 1
    hop = np.full((num_node, num_node), np.inf)
    reach = [np.linalg.matrix_power(adjacency, d) > 0 for d in range(max_hop + 1)]
    for d in range(max_hop, -1, -1):
        hop[reach[d]] = d
    neighbourhood = np.zeros((num_node, num_node))
    for h in range(max_hop + 1):
        neighbourhood[hop == h] = 1
    degree = neighbourhood.sum(0)
    normalised = neighbourhood @ np.diag(np.where(degree > 0, 1.0 / np.maximum(degree, 1), 0))
    c = centre - 1
    subsets = []
    for h in range(max_hop + 1):
        root, close, further = (np.zeros((num_node, num_node)) for _ in range(3))
        for i in range(num_node):
            for j in range(num_node):
                if hop[j, i] != h:
                    continue
                if hop[j, c] == hop[i, c]:
                    root[j, i] = normalised[j, i]
                elif hop[j, c] > hop[i, c]:
                    close[j, i] = normalised[j, i]
                else:
                    further[j, i] = normalised[j, i]
        subsets += [root] if h == 0 else [root + close, further]
    return np.stack(subsets)


def key_shapes(num_classes: int, num_joints: int = 25, in_channels: int = 3,
               subsets: int = 3) -> dict[str, tuple[int, ...]]:
    """The state-dict names and shapes of net/st_gcn.py Model(edge_importance_weighting=True)."""
    shapes = {"A": (subsets, num_joints, num_joints),
              **bn_keys("data_bn", in_channels * num_joints)}
    for index, (cin, cout, stride) in enumerate(BLOCKS):
        cin = in_channels if index == 0 else cin
        p = f"st_gcn_networks.{index}"
        shapes[f"{p}.gcn.conv.weight"] = (cout * subsets, cin, 1, 1)
        shapes[f"{p}.gcn.conv.bias"] = (cout * subsets,)
        shapes.update(bn_keys(f"{p}.tcn.0", cout))
        shapes[f"{p}.tcn.2.weight"] = (cout, cout, TEMPORAL_KERNEL, 1)
        shapes[f"{p}.tcn.2.bias"] = (cout,)
        shapes.update(bn_keys(f"{p}.tcn.3", cout))
        if index > 0 and (cin != cout or stride != 1):
            shapes[f"{p}.residual.0.weight"] = (cout, cin, 1, 1)
            shapes[f"{p}.residual.0.bias"] = (cout,)
            shapes.update(bn_keys(f"{p}.residual.1", cout))
    for index in range(len(BLOCKS)):
        shapes[f"edge_importance.{index}"] = (subsets, num_joints, num_joints)
    shapes["fcn.weight"] = (num_classes, 256, 1, 1)
    shapes["fcn.bias"] = (num_classes,)
    return shapes


def forward(s, x: torch.Tensor) -> torch.Tensor:
    """Model.forward in evaluation mode: x (N, C, T, V, M) -> logits (N, classes)."""
    n, c, t, v, m = x.shape
    x = x.permute(0, 4, 3, 1, 2).contiguous().view(n * m, v * c, t)
    x = bn(x, s, "data_bn")
    x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).contiguous().view(n * m, c, t, v)
    for index, (_, cout, stride) in enumerate(BLOCKS):
        p = f"st_gcn_networks.{index}"
        graph = s["A"] * s[f"edge_importance.{index}"]
        if index == 0:
            residual = 0
        elif f"{p}.residual.0.weight" in s:
            residual = bn(conv(x, s, f"{p}.residual.0", stride=(stride, 1)), s,
                          f"{p}.residual.1")
        else:
            residual = x
        y = conv(x, s, f"{p}.gcn.conv")
        k = graph.shape[0]
        y = y.view(y.shape[0], k, y.shape[1] // k, y.shape[2], y.shape[3])
        y = torch.einsum("nkctv,kvw->nctw", y, graph)
        y = F.relu(bn(y, s, f"{p}.tcn.0"))
        y = conv(y, s, f"{p}.tcn.2", stride=(stride, 1), padding=((TEMPORAL_KERNEL - 1) // 2, 0))
        y = bn(y, s, f"{p}.tcn.3")
        x = F.relu(y + residual)
    x = F.avg_pool2d(x, x.shape[2:])
    x = x.view(n, m, -1, 1, 1).mean(dim=1)
    return conv(x, s, "fcn").view(n, -1)
