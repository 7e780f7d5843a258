"""Importing published CTR-GCN weights: exact logits, strict key/shape checks, bad files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from model_factories import (REFERENCE_NPZ, reference_arrays, reference_state_dict,
                            single_thread)  # noqa: F401 (single_thread: autouse)
from train.errors import CheckpointError
from train.models import build_model
from train.models.reference_import import (CheckpointMismatchError, load_checked,
                                           load_reference_weights, read_state_dict)


def _relative_error(output: torch.Tensor, expected: torch.Tensor) -> float:
    return float((output - expected).norm() / expected.norm())


def _ntu60():
    return build_model(num_classes=60, layout="ntu", num_persons=2)


def test_reference_npz_reproduces_the_reference_logits():
    arrays = reference_arrays()
    model = load_reference_weights(_ntu60(), REFERENCE_NPZ).eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(arrays["input"]))
    expected = torch.from_numpy(arrays["logits"])
    assert logits.shape == (2, 60)
    assert _relative_error(logits, expected) < 1e-4
    assert torch.equal(logits.argmax(1), expected.argmax(1))
    # the reference sets alpha != 0, so the CTR refinement path is part of the check
    assert model.l1.gcn1.alpha.item() != 0.0


@pytest.mark.parametrize("wrap", ["plain", "module_prefix", "state_dict_key", "model_key"])
def test_published_pt_checkpoints_load(tmp_path, wrap):
    state = reference_state_dict()
    if wrap == "module_prefix":            # saved from DataParallel
        state = {f"module.{key}": value for key, value in state.items()}
    elif wrap == "state_dict_key":
        state = {"state_dict": state, "epoch": torch.tensor(64)}
    elif wrap == "model_key":              # this project's run checkpoints
        state = {"model": state}
    path = tmp_path / "runs_ntu60.pt"
    torch.save(state, path)
    arrays = reference_arrays()
    model = load_reference_weights(_ntu60(), path).eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(arrays["input"]))
    assert _relative_error(logits, torch.from_numpy(arrays["logits"])) < 1e-4


def _assert_untouched(model, before):
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_wrong_class_count_names_the_classifier_and_loads_nothing():
    model = build_model(num_classes=120, layout="ntu")
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as caught:
        load_reference_weights(model, REFERENCE_NPZ)
    message = str(caught.value)
    assert "60 classes, the model 120" in message
    assert "fc.weight (60, 256) vs model (120, 256)" in message
    assert caught.value.mismatched == ["fc.bias", "fc.weight"]
    _assert_untouched(model, before)


def test_wrong_layout_names_the_joint_count():
    model = build_model(num_classes=60, layout="nw-ucla", num_persons=2)
    with pytest.raises(CheckpointMismatchError, match="for 25 joints, the model for 20"):
        load_reference_weights(model, REFERENCE_NPZ)


def test_missing_and_unexpected_keys_are_named():
    state = reference_state_dict()
    del state["l3.gcn1.alpha"], state["l10.tcn1.branches.3.1.weight"]
    state["l11.gcn1.alpha"] = torch.zeros(1)
    model = _ntu60()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as caught:
        load_checked(model, state, source="edited.pt")
    message = str(caught.value)
    assert message.startswith("edited.pt does not fit the model")
    assert "2 missing keys: l10.tcn1.branches.3.1.weight, l3.gcn1.alpha" in message
    assert "1 unexpected keys: l11.gcn1.alpha" in message
    assert caught.value.missing == ["l10.tcn1.branches.3.1.weight", "l3.gcn1.alpha"]
    _assert_untouched(model, before)


def test_checkpoint_of_another_model_is_refused(tmp_path):
    other = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 60))
    path = tmp_path / "mlp.pt"
    torch.save(other.state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match="another model") as caught:
        load_reference_weights(_ntu60(), path)
    assert "unexpected keys: 0.bias, 0.weight, 2.bias, 2.weight" in str(caught.value)


def test_corrupt_and_unsafe_files_are_refused(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="corrupt.pt: not a readable"):
        read_state_dict(corrupt)

    # a truncated real checkpoint
    good = tmp_path / "good.pt"
    torch.save(reference_state_dict(), good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        read_state_dict(truncated)

    # a pickle that would run code is never unpickled (weights_only=True)
    unsafe = tmp_path / "unsafe.pt"
    with open(unsafe, "wb") as handle:
        pickle.dump({"model": _Opaque()}, handle, protocol=2)
    with pytest.raises(CheckpointError, match="unsafe.pt"):
        read_state_dict(unsafe)

    broken_npz = tmp_path / "broken.npz"
    broken_npz.write_bytes(REFERENCE_NPZ.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="broken.npz"):
        read_state_dict(broken_npz)

    with pytest.raises(CheckpointError, match="checkpoint not found"):
        read_state_dict(tmp_path / "absent.pt")


def test_non_tensor_entries_are_refused(tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2), "note": "hello"}}, path)
    with pytest.raises(CheckpointError, match="not tensors: note"):
        read_state_dict(path)


def test_npz_without_prefix_and_float64_values(tmp_path):
    state = {key: value.numpy() for key, value in reference_state_dict().items()}
    state = {key: value.astype(np.float64) if value.dtype == np.float32 else value
             for key, value in state.items()}
    path = tmp_path / "plain.npz"
    np.savez(path, **state)
    model = load_reference_weights(_ntu60(), path)
    assert model.fc.weight.dtype == torch.float32
    np.testing.assert_allclose(model.fc.weight.detach().numpy(), state["fc.weight"], rtol=1e-6)


class _Opaque:
    pass
