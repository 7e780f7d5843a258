"""InfoGCN as published (stnoah1/infogcn: model/infogcn.py, model/modules.py,
model/ms_tcn.py, graph/ntu_rgb_d.py, graph/ucla.py), re-implemented independently in
functional torch for the import tests: its graphs from the reference's own edge lists,
the state-dict keys and the evaluation-mode forward pass (z = mu). Nothing here calls the
toolkit's model code."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from reference_ops import bn, bn_keys, conv, linear

# graph/ntu_rgb_d.py inward_ori_index (1-based pairs, from the spine middle outwards)
NTU_INWARD = [(2, 1), (2, 21), (21, 3), (3, 4), (21, 5), (5, 6), (6, 7), (7, 8), (8, 23),
              (23, 22), (21, 9), (9, 10), (10, 11), (11, 12), (12, 25), (25, 24), (1, 13),
              (13, 14), (14, 15), (15, 16), (1, 17), (17, 18), (18, 19), (19, 20)]
# graph/ucla.py inward_ori_index (1-based child, parent, as CTR-GCN's)
UCLA_INWARD = [(1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9),
               (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17),
               (19, 18), (20, 19)]
# model/infogcn.py InfoGCN: (in, out, stride) of l1..l9
BLOCKS = [(64, 64, 1), (64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 128, 1),
          (128, 256, 2), (256, 256, 1), (256, 256, 1)]
DILATIONS = (1, 2)


def relative_matrix(inward_1based, num_node: int, k: int) -> np.ndarray:
    """InfoGCN.get_A: I - A_outward_binary ** k, with A_outward_binary[edge] = 1 for the
    reversed inward pairs (tools.get_adjacency_matrix)."""
    outward = [(b - 1, a - 1) for a, b in inward_1based]
    binary = np.zeros((num_node, num_node), dtype=np.float32)
    for edge in outward:
        binary[edge] = 1.0
    return np.eye(num_node) - np.linalg.matrix_power(binary, k)


def key_shapes(num_classes: int, num_joints: int = 25, num_persons: int = 2,
               heads: int = 3, in_channels: int = 3) -> dict[str, tuple[int, ...]]:
    shapes = {"to_joint_embedding.weight": (64, in_channels), "to_joint_embedding.bias": (64,),
              "pos_embedding": (1, num_joints, 64),
              **bn_keys("data_bn", num_persons * 64 * num_joints)}
    for index, (cin, cout, stride) in enumerate(BLOCKS):
        p = f"l{index + 1}"
        a = f"{p}.agcn"
        shapes[f"{a}.shared_topology"] = (heads, num_joints, num_joints)
        for head in range(heads):
            shapes[f"{a}.conv_d.{head}.weight"] = (cout, cin, 1, 1)
            shapes[f"{a}.conv_d.{head}.bias"] = (cout,)
        if cin != cout:
            shapes[f"{a}.down.0.weight"] = (cout, cin, 1, 1)
            shapes[f"{a}.down.0.bias"] = (cout,)
            shapes.update(bn_keys(f"{a}.down.1", cout))
        shapes.update(bn_keys(f"{a}.bn", cout))
        hidden = cin // 8
        shapes[f"{a}.attn.to_qk.weight"] = (2 * hidden * heads, cin)
        shapes[f"{a}.attn.to_qk.bias"] = (2 * hidden * heads,)
        shapes[f"{a}.attn.ln.weight"] = (cin,)
        shapes[f"{a}.attn.ln.bias"] = (cin,)
        width = cout // 4
        t = f"{p}.tcn.branches"
        for branch in range(4):
            shapes[f"{t}.{branch}.0.weight"] = (width, cout, 1, 1)
            shapes[f"{t}.{branch}.0.bias"] = (width,)
            shapes.update(bn_keys(f"{t}.{branch}.1", width))
        for branch in range(2):
            shapes[f"{t}.{branch}.3.conv.weight"] = (width, width, 5, 1)
            shapes[f"{t}.{branch}.3.conv.bias"] = (width,)
            shapes.update(bn_keys(f"{t}.{branch}.3.bn", width))
        shapes.update(bn_keys(f"{t}.2.4", width))
        if cin != cout or stride != 1:
            shapes[f"{p}.residual.conv.weight"] = (cout, cin, 1, 1)
            shapes[f"{p}.residual.conv.bias"] = (cout,)
            shapes.update(bn_keys(f"{p}.residual.bn", cout))
    for name in ("fc", "fc_mu", "fc_logvar"):
        shapes[f"{name}.weight"] = (256, 256)
        shapes[f"{name}.bias"] = (256,)
    shapes["decoder.weight"] = (num_classes, 256)
    shapes["decoder.bias"] = (num_classes,)
    return shapes


def _sa_gc(s, p: str, x: torch.Tensor) -> torch.Tensor:
    n, c, t, v = x.shape
    topology = s[f"{p}.shared_topology"]
    heads = topology.shape[0]
    y = F.layer_norm(x.permute(0, 2, 3, 1), (c,), s[f"{p}.attn.ln.weight"],
                     s[f"{p}.attn.ln.bias"])
    q, k = linear(y, s, f"{p}.attn.to_qk").chunk(2, dim=-1)        # n t v (h d)
    d = q.shape[-1] // heads
    q = q.reshape(n * t, v, heads, d).permute(0, 2, 1, 3)
    k = k.reshape(n * t, v, heads, d).permute(0, 2, 1, 3)
    attention = torch.einsum("bhid,bhjd->bhij", q, k) * (c // 8) ** -0.5
    graph = attention.softmax(dim=-1) * topology.unsqueeze(0)
    feature = x.permute(0, 2, 3, 1).reshape(n * t, v, c)
    out = 0
    for h in range(heads):
        z = (graph[:, h] @ feature).reshape(n, t, v, c).permute(0, 3, 1, 2)
        out = out + conv(z, s, f"{p}.conv_d.{h}")
    down = bn(conv(x, s, f"{p}.down.0"), s, f"{p}.down.1") if f"{p}.down.0.weight" in s else x
    return F.relu(bn(out, s, f"{p}.bn") + down)


def _temporal(s, p: str, x: torch.Tensor, stride: int) -> torch.Tensor:
    outs = []
    for branch, dilation in enumerate(DILATIONS):
        b = f"{p}.branches.{branch}"
        y = F.relu(bn(conv(x, s, f"{b}.0"), s, f"{b}.1"))
        y = conv(y, s, f"{b}.3.conv", stride=(stride, 1), padding=(2 * dilation, 0),
                 dilation=(dilation, 1))
        outs.append(bn(y, s, f"{b}.3.bn"))
    y = F.relu(bn(conv(x, s, f"{p}.branches.2.0"), s, f"{p}.branches.2.1"))
    y = F.max_pool2d(y, kernel_size=(3, 1), stride=(stride, 1), padding=(1, 0))
    outs.append(bn(y, s, f"{p}.branches.2.4"))
    outs.append(bn(conv(x, s, f"{p}.branches.3.0", stride=(stride, 1)), s,
                   f"{p}.branches.3.1"))
    return F.relu(torch.cat(outs, dim=1))                # ms_tcn's activation at the end


def forward(s, x: torch.Tensor, relative: np.ndarray) -> torch.Tensor:
    """InfoGCN.forward in evaluation mode (z = mu): x (N, C, T, V, M) -> logits."""
    n, c, t, v, m = x.shape
    x = x.permute(0, 4, 2, 3, 1).reshape(n * m * t, v, c)                # (n m t) v c
    x = torch.from_numpy(relative).float().expand(n * m * t, -1, -1) @ x
    x = linear(x, s, "to_joint_embedding") + s["pos_embedding"][:, :v]
    x = x.reshape(n, m, t, v, -1).permute(0, 1, 3, 4, 2).reshape(n, -1, t)  # n (m v c) t
    x = bn(x, s, "data_bn").reshape(n, m, v, -1, t).permute(0, 1, 3, 4, 2).reshape(
        n * m, -1, t, v)
    for index, (_, _, stride) in enumerate(BLOCKS):
        p = f"l{index + 1}"
        y = _temporal(s, f"{p}.tcn", _sa_gc(s, f"{p}.agcn", x), stride)
        res = bn(conv(x, s, f"{p}.residual.conv", stride=(stride, 1)), s,
                 f"{p}.residual.bn") if f"{p}.residual.conv.weight" in s else x
        x = F.relu(y + res)
    feature = x.view(n, m, x.shape[1], -1).mean(3).mean(1)
    hidden = F.relu(linear(feature, s, "fc"))
    linear(hidden, s, "fc_logvar")                       # computed, unused when z = mu
    return linear(linear(hidden, s, "fc_mu"), s, "decoder")
