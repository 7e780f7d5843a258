"""FAM, FRM and the contrastive loss, checked against direct evaluations of the formulas."""

from __future__ import annotations

import math

import pytest
import torch

from train.mmcl.contrastive import symmetric_contrastive_loss
from train.mmcl.fam import FeatureAlignment
from train.mmcl.frm import FeatureRefinement, pool_tokens, split_questions


def loop_contrastive(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    """MMCL.md's formula evaluated literally, one row and one term at a time, in float64."""
    def normalise(rows):
        return [[v / math.sqrt(sum(x * x for x in row)) for v in row] for row in rows]

    def dot(a, b):
        return sum(x * y for x, y in zip(a, b))

    def one_way(a, b):
        losses = []
        for i in range(len(a)):
            s11 = [dot(a[i], a[k]) for k in range(len(a))]
            s12 = [dot(a[i], b[k]) for k in range(len(b))]
            denominator = (sum(math.exp(s / tau) for s in s11) - math.exp(s11[i] / tau)
                           + sum(math.exp(s / tau) for s in s12))
            losses.append(-math.log(math.exp(s12[i] / tau) / denominator))
        return losses

    a, b = normalise(z1.double().tolist()), normalise(z2.double().tolist())
    both = [(x + y) / 2 for x, y in zip(one_way(a, b), one_way(b, a))]
    return sum(both) / len(both)


@pytest.mark.parametrize("batch,width,tau", [(2, 3, 0.4), (7, 16, 0.4), (16, 256, 0.4),
                                              (5, 8, 0.1), (6, 4, 1.0)])
def test_contrastive_loss_matches_the_formula(batch, width, tau):
    generator = torch.Generator().manual_seed(batch * 100 + width)
    z1 = torch.randn(batch, width, generator=generator) * 3
    z2 = torch.randn(batch, width, generator=generator)
    got = symmetric_contrastive_loss(z1.double(), z2.double(), tau).item()
    assert got == pytest.approx(loop_contrastive(z1, z2, tau), rel=1e-9)
    got32 = symmetric_contrastive_loss(z1, z2, tau).item()
    assert got32 == pytest.approx(loop_contrastive(z1, z2, tau), rel=1e-5)


def test_contrastive_loss_default_tau_is_0_4_and_symmetric():
    z1, z2 = torch.randn(5, 6), torch.randn(5, 6)
    assert symmetric_contrastive_loss(z1, z2).item() == pytest.approx(
        loop_contrastive(z1, z2, 0.4), rel=1e-5)
    assert symmetric_contrastive_loss(z1, z2).item() == pytest.approx(
        symmetric_contrastive_loss(z2, z1).item(), rel=1e-6)


def test_contrastive_loss_is_lower_for_aligned_pairs_and_stable_for_small_tau():
    z = torch.randn(8, 32)
    aligned = symmetric_contrastive_loss(z, z * 2.0).item()
    shuffled = symmetric_contrastive_loss(z, z.roll(1, dims=0)).item()
    assert aligned < shuffled
    # exp(1 / 0.005) overflows float32; the log-space form must not
    tiny = symmetric_contrastive_loss(z, z + 0.01 * torch.randn(8, 32), tau=0.005)
    assert torch.isfinite(tiny)


def test_contrastive_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="one shape"):
        symmetric_contrastive_loss(torch.randn(4, 8), torch.randn(4, 9))
    with pytest.raises(ValueError, match="temperature"):
        symmetric_contrastive_loss(torch.randn(4, 8), torch.randn(4, 8), tau=0)


def test_fam_mlp_has_the_reference_shape_and_aligns():
    fam = FeatureAlignment(1000, 256)
    shapes = [tuple(p.shape) for p in fam.mlp.parameters()]
    assert shapes == [(256, 1000), (256,), (256, 256), (256,)]
    assert isinstance(fam.mlp[1], torch.nn.ReLU)
    skeleton, rgb = torch.randn(6, 256), torch.randn(6, 1000)
    expected = loop_contrastive(skeleton, fam.mlp(rgb).detach(), 0.4)
    assert fam(skeleton, rgb).item() == pytest.approx(expected, rel=1e-5)


def test_fam_training_reduces_the_loss():
    torch.manual_seed(0)
    fam = FeatureAlignment(12, 8)
    rgb = torch.randn(16, 12)
    skeleton = torch.randn(16, 8)
    optimizer = torch.optim.SGD(fam.parameters(), lr=0.5)
    first = fam(skeleton, rgb).item()
    for _ in range(60):
        optimizer.zero_grad()
        loss = fam(skeleton, rgb)
        loss.backward()
        optimizer.step()
    assert loss.item() < first - 0.3


def test_fam_names_the_wrong_width():
    fam = FeatureAlignment(20, 256)
    with pytest.raises(ValueError, match="width 20"):
        fam(torch.randn(3, 256), torch.randn(3, 21))
    with pytest.raises(ValueError, match="width 256"):
        fam(torch.randn(3, 128), torch.randn(3, 20))


def test_frm_starts_as_identity_and_matches_the_formula():
    torch.manual_seed(1)
    frm = FeatureRefinement(feature_dim=768, num_questions=1, num_classes=10)
    logits, features = torch.randn(4, 10), torch.randn(4, 1, 768)
    # matrices start at ones and the weights sum to one: the refined score is the logits
    assert torch.allclose(frm(logits, features), logits, atol=1e-6)
    with torch.no_grad():
        frm.matrices.copy_(torch.randn(2, 10))
    weights = frm.weights(features)
    assert weights.shape == (4, 2)
    assert torch.allclose(weights.sum(1), torch.ones(4))
    expected = torch.stack([
        sum(weights[n, i] * frm.matrices[i] * logits[n] for i in range(2)) for n in range(4)])
    assert torch.allclose(frm(logits, features), expected, atol=1e-6)


def test_frm_phi_matches_the_reference_mlp_for_one_question():
    frm = FeatureRefinement(feature_dim=768, num_questions=1, num_classes=120,
                            input_norm=False)
    shapes = {name: tuple(p.shape) for name, p in frm.named_parameters()}
    assert shapes == {"matrices": (2, 120), "question_projection.0.weight": (64, 768),
                      "question_projection.0.bias": (64,), "mixer.weight": (2, 64),
                      "mixer.bias": (2,)}
    assert torch.equal(frm.matrices, torch.ones(2, 120))
    features = torch.randn(3, 1, 768)
    hidden = torch.relu(features[:, 0] @ frm.question_projection[0].weight.t()
                        + frm.question_projection[0].bias)
    expected = torch.softmax(hidden @ frm.mixer.weight.t() + frm.mixer.bias, dim=1)
    assert torch.allclose(frm.weights(features), expected, atol=1e-6)


@pytest.mark.parametrize("k,d,n", [(1, 3, 2), (3, 40, 2), (2, 17, 4)])
def test_frm_takes_any_width_question_count_and_matrix_count(k, d, n):
    frm = FeatureRefinement(feature_dim=d, num_questions=k, num_classes=5, num_matrices=n)
    assert frm.matrices.shape == (n, 5)
    out = frm(torch.randn(6, 5), torch.randn(6, k, d))
    assert out.shape == (6, 5)
    with pytest.raises(ValueError, match=f"K={k} questions of width D={d}"):
        frm(torch.randn(6, 5), torch.randn(6, k + 1, d))


def test_token_pooling_ignores_padding():
    hidden = torch.randn(2, 2, 4, 5)
    mask = torch.tensor([[[1, 1, 0, 0], [1, 1, 1, 1]], [[1, 0, 0, 0], [0, 0, 0, 0]]]).bool()
    pooled = pool_tokens(hidden, mask)
    assert torch.allclose(pooled[0, 0], hidden[0, 0, :2].mean(0))
    assert torch.allclose(pooled[0, 1], hidden[0, 1].mean(0))
    assert torch.allclose(pooled[1, 0], hidden[1, 0, 0])
    assert torch.equal(pooled[1, 1], torch.zeros(5))       # an empty answer pools to zeros
    changed = hidden.clone()
    changed[~mask] = 1e4
    assert torch.allclose(pool_tokens(changed, mask), pooled)
    maxed = pool_tokens(changed, mask, "max")
    assert torch.allclose(maxed[0, 0], hidden[0, 0, :2].amax(0))
    assert torch.equal(maxed[1, 1], torch.zeros(5))


def test_split_questions_recovers_each_answer_from_the_padded_batch():
    # sample 0: answers of 2 and 0 tokens; sample 1: 1 and 3 tokens (padded to 4 by collate)
    tokens = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    counts = torch.tensor([[2, 0], [1, 3]])
    hidden, mask = split_questions(tokens, counts)
    assert hidden.shape == (2, 2, 3, 3)
    assert mask.tolist() == [[[True, True, False], [False, False, False]],
                             [[True, False, False], [True, True, True]]]
    assert torch.equal(hidden[0, 0, :2], tokens[0, :2])
    assert torch.equal(hidden[1, 0, :1], tokens[1, :1])
    assert torch.equal(hidden[1, 1], tokens[1, 1:4])
    assert torch.equal(hidden[~mask], torch.zeros(int((~mask).sum()), 3))
    with pytest.raises(ValueError, match="add up to 5"):
        split_questions(tokens, torch.tensor([[2, 0], [2, 3]]))


def test_frm_token_level_equals_pooled_input_for_mean_pooling():
    torch.manual_seed(2)
    frm = FeatureRefinement(feature_dim=6, num_questions=2, num_classes=3)
    counts = torch.tensor([[1, 3], [2, 2], [0, 1], [4, 0]])
    tokens = torch.randn(4, 5, 6)
    pooled = torch.zeros(4, 2, 6)
    for n in range(4):
        start = 0
        for k in range(2):
            if counts[n, k]:
                pooled[n, k] = tokens[n, start:start + counts[n, k]].mean(0)
            start += int(counts[n, k])
    logits = torch.randn(4, 3)
    with torch.no_grad():
        frm.matrices.copy_(torch.randn(2, 3))
    assert torch.allclose(frm(logits, tokens, counts), frm(logits, pooled), atol=1e-6)
    with pytest.raises(ValueError, match="built for K=2 questions"):
        frm(logits, tokens)          # tokens without their counts look like K=5 questions


def test_frm_gradients_reach_phi_once_the_matrices_differ():
    torch.manual_seed(3)
    frm = FeatureRefinement(feature_dim=8, num_questions=2, num_classes=4)
    features, label = torch.randn(5, 2, 8), torch.tensor([0, 1, 2, 3, 0])
    optimizer = torch.optim.SGD(frm.parameters(), lr=0.1)
    logits = torch.randn(5, 4, requires_grad=True)
    torch.nn.functional.cross_entropy(frm(logits, features), label).backward()
    assert logits.grad.abs().sum() > 0
    assert frm.matrices.grad.abs().sum() > 0
    # equal matrices (the reference's init, all ones) make the weights irrelevant at step 0
    assert frm.question_projection[0].weight.grad.abs().sum() < 1e-5
    optimizer.step()
    optimizer.zero_grad()
    assert not torch.equal(frm.matrices[0], frm.matrices[1])
    torch.nn.functional.cross_entropy(frm(logits, features), label).backward()
    assert frm.question_projection[0].weight.grad.abs().sum() > 1e-3
