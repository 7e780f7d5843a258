"""Presets: the reference recipes, as partial configs layered over the defaults.

NTU presets follow CTR-GCN's published configs (SGD nesterov, lr 0.1 for a batch of 64,
weight decay 4e-4, 65 epochs, lr x0.1 at epochs 35 and 55, 5 warm-up epochs, 64-frame
window, p_interval [0.5, 1] in training and [0.95] in test, random rotation).
``ntu120-xsub-mmcl`` is MMCL's own NTU120 X-Sub config: co-learning on (``objective.name:
mmcl``, FAM and FRM) with its schedule (batch 200, 110 epochs, steps 90 and 100). NW-UCLA follows CTR-GCN's UCLA config (weight decay 1e-4,
batch 16, step 50, training set repeated 5x per epoch, 52 frames).
"""

from __future__ import annotations

from typing import Any

_NTU_COMMON: dict[str, Any] = {
    "data": {"feeder": "ntu", "window": 64, "p_interval_train": [0.5, 1.0],
             "p_interval_test": [0.95], "random_rot": True, "rot_theta": 0.3, "repeat": 1},
    "model": {"name": "ctrgcn", "layout": "ntu", "num_persons": 2},
    "optim": {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 4e-4,
              "batch_size": 64, "test_batch_size": 64, "reference_batch": 64},
    "schedule": {"epochs": 65, "warmup_epochs": 5, "steps": [35, 55], "gamma": 0.1},
}


def _ntu(protocol: str, num_classes: int, **extra: dict[str, Any]) -> dict[str, Any]:
    preset = {key: dict(value) for key, value in _NTU_COMMON.items()}
    preset["data"]["protocol"] = protocol
    preset["model"]["num_classes"] = num_classes
    for section, values in extra.items():
        preset.setdefault(section, {}).update(values)
    return preset


PRESETS: dict[str, dict[str, Any]] = {
    "ntu60-xsub": _ntu("ntu60-xsub", 60),
    "ntu60-xview": _ntu("ntu60-xview", 60),
    "ntu120-xsub": _ntu("ntu120-xsub", 120),
    "ntu120-xset": _ntu("ntu120-xset", 120),
    "ntu120-xsub-mmcl": _ntu("ntu120-xsub", 120,
                             optim={"batch_size": 200, "reference_batch": 200},
                             schedule={"epochs": 110, "steps": [90, 100]},
                             objective={"name": "mmcl"}),
    "nw-ucla": {
        "data": {"protocol": "nw-ucla-xview", "feeder": "nw-ucla", "window": 52,
                 "random_rot": False, "ucla_max_angle_deg": 60,
                 "ucla_scale_range": [0.5, 1.5], "ucla_center_joint": 2, "repeat": 5},
        "model": {"name": "ctrgcn", "layout": "nw-ucla", "num_classes": 10,
                  "num_persons": 1},
        "optim": {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4,
                  "batch_size": 16, "test_batch_size": 64, "reference_batch": 16},
        "schedule": {"epochs": 65, "warmup_epochs": 5, "steps": [50], "gamma": 0.1},
    },
}
