"""FRM, the feature refinement module: LLM answer features re-weight the GCN's scores.

The cached LLM features of a sample (K questions, width D; pooled ``(K, D)`` or the answer
tokens, ragged per question and pooled here with a mask) go through a projection Phi: a
per-question layer shared by all questions (``D -> hidden``, ReLU) that unifies the width,
then one layer over the K projected answers to ``n`` scores, softmaxed into weights ``w``. With ``n`` learnable
class-score vectors ``M_i`` (size num_class, initialised to ones) the refined score is::

    S_R = sum_i w_i * M_i * S_M          (S_M = the GCN's logits)

For K = 1 and n = 2 this is the reference's MLP (in -> 64 -> 2) with its positive and
negative matrices, but the input width is the features' own, not a hard-wired 3.
"""

from __future__ import annotations

import torch
from torch import nn

TOKEN_POOLINGS = ("mean", "max")


def split_questions(tokens: torch.Tensor,
                    counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Answer tokens concatenated over questions -> one row per question, with a mask.

    ``tokens`` (N, L, D): sample n's first ``counts[n].sum()`` rows are its answers' tokens,
    question after question (the cache's layout, zero-padded by the batch collation);
    ``counts`` (N, K). Returns (N, K, L_max, D) zero-padded and its (N, K, L_max) mask.
    """
    if tokens.ndim != 3 or counts.ndim != 2 or len(tokens) != len(counts):
        raise ValueError(f"token features must be (N, L, D) with (N, K) token counts, got "
                         f"{tuple(tokens.shape)} and {tuple(counts.shape)}")
    counts = counts.to(device=tokens.device, dtype=torch.long)
    totals = counts.sum(dim=1)
    if bool((totals > tokens.shape[1]).any()):
        raise ValueError(f"token counts add up to {int(totals.max())} tokens but only "
                         f"{tokens.shape[1]} are in the batch")
    n, k = counts.shape
    longest = max(int(counts.max()) if counts.numel() else 0, 1)
    starts = counts.cumsum(dim=1) - counts                                    # (N, K)
    steps = torch.arange(longest, device=tokens.device)
    mask = steps < counts.unsqueeze(-1)                                       # (N, K, L)
    index = (starts.unsqueeze(-1) + steps).clamp(max=max(tokens.shape[1] - 1, 0))
    if tokens.shape[1] == 0:
        return tokens.new_zeros(n, k, longest, tokens.shape[2]), mask
    gathered = tokens.gather(1, index.reshape(n, k * longest, 1).expand(-1, -1, tokens.shape[2]))
    gathered = gathered.reshape(n, k, longest, tokens.shape[2])
    return gathered.masked_fill(~mask.unsqueeze(-1), 0), mask


def pool_tokens(hidden: torch.Tensor, mask: torch.Tensor, how: str = "mean") -> torch.Tensor:
    """(N, K, L, D) token features with a (N, K, L) validity mask -> (N, K, D).

    A question whose answer has no tokens pools to zeros.
    """
    if hidden.ndim != 4 or mask.shape != hidden.shape[:3]:
        raise ValueError(f"token features must be (N, K, L, D) with an (N, K, L) mask, got "
                         f"{tuple(hidden.shape)} and {tuple(mask.shape)}")
    valid = mask.unsqueeze(-1).to(hidden.dtype)
    if how == "mean":
        count = valid.sum(dim=2).clamp(min=1.0)
        return (hidden * valid).sum(dim=2) / count
    if how == "max":
        filled = hidden.masked_fill(~mask.bool().unsqueeze(-1), float("-inf"))
        pooled = filled.amax(dim=2)
        return torch.where(torch.isfinite(pooled), pooled, torch.zeros_like(pooled))
    raise ValueError(f"unknown token pooling {how!r}; choose one of {', '.join(TOKEN_POOLINGS)}")


class FeatureRefinement(nn.Module):
    def __init__(self, feature_dim: int, num_questions: int, num_classes: int,
                 num_matrices: int = 2, hidden: int = 64, token_pooling: str = "mean",
                 input_norm: bool = True):
        super().__init__()
        for name, value in (("feature width", feature_dim), ("question count", num_questions),
                            ("class count", num_classes), ("matrix count", num_matrices),
                            ("hidden width", hidden)):
            if value < 1:
                raise ValueError(f"FRM {name} must be positive, got {value}")
        if token_pooling not in TOKEN_POOLINGS:
            raise ValueError(f"unknown token pooling {token_pooling!r}; choose one of "
                             f"{', '.join(TOKEN_POOLINGS)}")
        self.feature_dim = feature_dim
        self.num_questions = num_questions
        self.num_classes = num_classes
        self.token_pooling = token_pooling
        # LLM hidden states carry a few very large dimensions; normalising each question's
        # vector keeps the projection's scale sane at the GCN's learning rate (lr 0.1).
        self.norm = nn.LayerNorm(feature_dim, elementwise_affine=False) if input_norm else None
        self.question_projection = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU())
        self.mixer = nn.Linear(num_questions * hidden, num_matrices)
        self.matrices = nn.Parameter(torch.ones(num_matrices, num_classes))

    @property
    def num_matrices(self) -> int:
        return self.matrices.shape[0]

    def weights(self, features: torch.Tensor,
                token_counts: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax weights (N, n) over the class-score matrices.

        ``features``: pooled (N, K, D); or, with ``token_counts`` (N, K), the answer tokens
        (N, L, D) concatenated over the questions as the cache stores them.
        """
        if token_counts is not None:
            hidden, mask = split_questions(features, token_counts)
            features = pool_tokens(hidden.float(), mask, self.token_pooling)
        elif features.ndim != 3:
            raise ValueError(f"pooled LLM features must be (N, K, D), got shape "
                             f"{tuple(features.shape)} (token-level features need their "
                             "token counts)")
        _, k, d = features.shape
        if (k, d) != (self.num_questions, self.feature_dim):
            raise ValueError(f"FRM was built for K={self.num_questions} questions of width "
                             f"D={self.feature_dim}, the features have K={k}, D={d}")
        features = features.to(self.mixer.weight.dtype)
        if self.norm is not None:
            features = self.norm(features)
        projected = self.question_projection(features).flatten(1)
        return torch.softmax(self.mixer(projected), dim=1)

    def forward(self, logits: torch.Tensor, features: torch.Tensor,
                token_counts: torch.Tensor | None = None) -> torch.Tensor:
        """Refined scores (N, num_class) from the GCN's logits and the LLM features."""
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"FRM was built for {self.num_classes} classes, the logits have "
                             f"shape {tuple(logits.shape)}")
        weights = self.weights(features, token_counts)
        scale = weights.to(logits.dtype) @ self.matrices.to(logits.dtype)   # (N, C)
        return scale * logits
