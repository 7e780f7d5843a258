"""Published ST-GCN, HD-GCN and InfoGCN checkpoints import exactly.

For each backbone a reference-format state dict (the published names and shapes, written
down in ``tests/reference_*.py`` from the reference code) with random trained-looking
values is loaded into the toolkit's model; its logits must match an independent
functional re-implementation of the reference forward pass to relative error < 1e-4."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reference_hdgcn
import reference_infogcn
import reference_stgcn
from model_factories import single_thread  # noqa: F401 (autouse)
from reference_ops import TrackedState, random_state
from train.models import build_model
from train.models.reference_import import (CheckpointMismatchError, load_checked,
                                           load_reference_weights)


def _relative_error(output: torch.Tensor, expected: torch.Tensor) -> float:
    return float((output - expected).norm() / expected.norm())


def _ours(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def _input(joints: int, persons: int, frames: int = 12, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, frames, joints, persons, generator=generator)


def _check_logits(model, state, reference_logits, x):
    model = load_checked(model, state).eval()
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == reference_logits.shape
    assert _relative_error(logits, reference_logits) < 1e-4
    assert torch.equal(logits.argmax(1), reference_logits.argmax(1))


# ----------------------------------------------------------------------------- ST-GCN


def _stgcn_state(seed=0, classes=60):
    graph = torch.from_numpy(reference_stgcn.spatial_graph()).float()

    def special(key, shape, generator):
        if key == "A":
            return graph.clone()
        if key.startswith("edge_importance."):
            return 1.0 + 0.2 * torch.randn(shape, generator=generator)
        return None
    return random_state(reference_stgcn.key_shapes(classes), seed, special)


def test_stgcn_has_the_published_keys_and_graph():
    model = build_model("stgcn", num_classes=60, layout="ntu")
    assert _ours(model) == reference_stgcn.key_shapes(60)
    np.testing.assert_allclose(model.A.numpy(), reference_stgcn.spatial_graph(), atol=1e-7)
    assert all(torch.equal(mask, torch.ones(3, 25, 25)) for mask in model.edge_importance)


def test_stgcn_reproduces_the_reference_logits():
    state = _stgcn_state()
    x = _input(25, 2)
    tracked = TrackedState(state)
    with torch.no_grad():
        expected = reference_stgcn.forward(tracked, x)
    assert tracked.unread() == []
    _check_logits(build_model("stgcn", num_classes=60, layout="ntu"), state, expected, x)


def test_stgcn_without_edge_importance_drops_the_masks():
    model = build_model("stgcn", num_classes=60, layout="ntu",
                        options={"edge_importance": False})
    expected = {key: shape for key, shape in reference_stgcn.key_shapes(60).items()
                if not key.startswith("edge_importance")}
    assert _ours(model) == expected


# ----------------------------------------------------------------------------- HD-GCN


def _hdgcn_state(com, seed=1, classes=60):
    graph = torch.from_numpy(reference_hdgcn.hierarchical_graph(
        reference_hdgcn.NTU_GROUPS[com])).float()

    def special(key, shape, generator):
        if key.endswith(".PA"):           # learned in training: the graph, moved
            return graph + 0.05 * torch.randn(shape, generator=generator)
        return None
    return random_state(reference_hdgcn.key_shapes(classes), seed, special)


@pytest.mark.parametrize("com", [21, 2, 1])
def test_hdgcn_has_the_published_keys_and_hierarchy(com):
    model = build_model("hdgcn", num_classes=60, layout="ntu", options={"com": com})
    assert _ours(model) == reference_hdgcn.key_shapes(60)
    expected = reference_hdgcn.hierarchical_graph(reference_hdgcn.NTU_GROUPS[com])
    np.testing.assert_allclose(model.l1.gcn1.PA.detach().numpy(), expected, atol=1e-7)
    np.testing.assert_allclose(model.l10.gcn1.PA.detach().numpy(), expected, atol=1e-7)


@pytest.mark.parametrize("com", [21, 1])
def test_hdgcn_reproduces_the_reference_logits(com):
    state = _hdgcn_state(com)
    x = _input(25, 2, seed=com)
    tracked = TrackedState(state)
    with torch.no_grad():
        expected = reference_hdgcn.forward(tracked, x, reference_hdgcn.NTU_GROUPS[com])
    assert tracked.unread() == []
    model = build_model("hdgcn", num_classes=60, layout="ntu", options={"com": com})
    _check_logits(model, state, expected, x)


def test_hdgcn_attention_groups_matter():
    """The A-HA groups are not in the state dict: logits of a model built for another
    centre of mass differ, so the test above does check them."""
    state = _hdgcn_state(21)
    x = _input(25, 2)
    with torch.no_grad():
        expected = reference_hdgcn.forward(state, x, reference_hdgcn.NTU_GROUPS[21])
        other = load_checked(build_model("hdgcn", num_classes=60, layout="ntu",
                                         options={"com": 2}), state).eval()(x)
    assert _relative_error(other, expected) > 1e-3


# ----------------------------------------------------------------------------- InfoGCN


def _infogcn_state(seed=2, classes=60, joints=25, persons=2):
    def special(key, shape, generator):
        if key.endswith("shared_topology"):
            return torch.eye(shape[-1]).repeat(shape[0], 1, 1) \
                + 0.1 * torch.randn(shape, generator=generator)
        if key == "pos_embedding":
            return torch.randn(shape, generator=generator)
        return None
    return random_state(reference_infogcn.key_shapes(classes, joints, persons), seed, special)


@pytest.mark.parametrize("layout, inward, joints, persons", [
    ("ntu", reference_infogcn.NTU_INWARD, 25, 2),
    ("nw-ucla", reference_infogcn.UCLA_INWARD, 20, 1)])
@pytest.mark.parametrize("k", [1, 2, 8])
def test_infogcn_input_transform_is_the_published_one(layout, inward, joints, persons, k):
    model = build_model("infogcn", num_classes=10, layout=layout, num_persons=persons,
                        options={"k": k})
    np.testing.assert_array_equal(model.A_vector.numpy(),
                                  reference_infogcn.relative_matrix(inward, joints, k))


@pytest.mark.parametrize("layout, inward, joints, persons", [
    ("ntu", reference_infogcn.NTU_INWARD, 25, 2),
    ("nw-ucla", reference_infogcn.UCLA_INWARD, 20, 1)])
def test_infogcn_reproduces_the_reference_logits(layout, inward, joints, persons):
    state = _infogcn_state(joints=joints, persons=persons, classes=10)
    x = _input(joints, persons)
    tracked = TrackedState(state)
    with torch.no_grad():
        expected = reference_infogcn.forward(tracked, x,
                                             reference_infogcn.relative_matrix(inward, joints, 1))
    assert tracked.unread() == []
    model = build_model("infogcn", num_classes=10, layout=layout, num_persons=persons)
    assert _ours(model) == reference_infogcn.key_shapes(10, joints, persons)
    _check_logits(model, state, expected, x)


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize("name, state_of", [("stgcn", _stgcn_state),
                                             ("hdgcn", lambda: _hdgcn_state(21)),
                                             ("infogcn", _infogcn_state)])
def test_published_files_load_through_the_import_path(tmp_path, name, state_of):
    """Saved from DataParallel (``module.`` prefix), read with weights_only=True."""
    state = state_of()
    path = tmp_path / f"{name}.pt"
    torch.save({f"module.{key}": value for key, value in state.items()}, path)
    model = load_reference_weights(build_model(name, num_classes=60, layout="ntu"), path)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[key], value.to(loaded[key].dtype))
               for key, value in state.items())


@pytest.mark.parametrize("name, classifier, graph", [
    ("stgcn", "fcn.weight", "A"), ("hdgcn", "fc.weight", "l1.gcn1.PA"),
    ("infogcn", "decoder.weight", "l1.agcn.shared_topology")])
def test_mismatches_are_named_for_every_backbone(name, classifier, graph):
    state = build_model(name, num_classes=60, layout="ntu").state_dict()
    with pytest.raises(CheckpointMismatchError, match="60 classes, the model 120") as caught:
        load_checked(build_model(name, num_classes=120, layout="ntu"), state)
    assert classifier in caught.value.mismatched
    ucla = build_model(name, num_classes=60, layout="nw-ucla", num_persons=1)
    with pytest.raises(CheckpointMismatchError, match="for 25 joints, the model for 20") \
            as caught:
        load_checked(ucla, state)
    assert graph in caught.value.mismatched


def test_a_checkpoint_of_another_backbone_is_named():
    stgcn = build_model("stgcn", num_classes=60, layout="ntu").state_dict()
    with pytest.raises(CheckpointMismatchError,
                       match=r"looks like a stgcn checkpoint \(model.name: stgcn\), the "
                             r"model is hdgcn"):
        load_checked(build_model("hdgcn", num_classes=60, layout="ntu"), stgcn)
