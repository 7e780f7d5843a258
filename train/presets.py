"""Presets: the reference recipes, as partial configs layered over the defaults.

NTU presets follow CTR-GCN's published configs (SGD nesterov, lr 0.1 for a batch of 64,
weight decay 4e-4, 65 epochs, lr x0.1 at epochs 35 and 55, 5 warm-up epochs, 64-frame
window, p_interval [0.5, 1] in training and [0.95] in test, random rotation).
``ntu120-xsub-mmcl`` is MMCL's own NTU120 X-Sub config: co-learning on (``objective.name:
mmcl``, FAM and FRM) with its schedule (batch 200, 110 epochs, steps 90 and 100). NW-UCLA
follows CTR-GCN's UCLA config (weight decay 1e-4, batch 16, step 50, training set repeated
5x per epoch, 52 frames).

``<preset>-<backbone>`` (e.g. ``ntu60-xsub-hdgcn``, ``nw-ucla-stgcn``) swaps in another
backbone with the parts of its published recipe that differ from CTR-GCN's
(``BACKBONE_RECIPES``): its model settings everywhere, its optimiser and schedule on NTU,
where the authors published them. The data handling stays the toolkit's for every
backbone, so they are compared on the same inputs.

``custom`` is for own data (``pipeline manifest csv ... --layout ...``, ``pipeline manifest
pyskl ...``): the split protocol (``csv``, or a pyskl file's ``--split``), layout, class
count, persons, channels and window (the median length of the training samples) come from
the WORKDIR when the run starts; the ``custom`` feeder centres each sample on its layout's
origin, scales it to a unit size, crops and resizes in time, and rotates in training (in 3-D
for 3-D points, in the image plane for 2-D ones); a tenth of each class is held out to
choose the best checkpoint on.
"""

from __future__ import annotations

from typing import Any

Preset = dict[str, dict[str, Any]]

_NTU_COMMON: Preset = {
    "data": {"feeder": "ntu", "window": 64, "p_interval_train": [0.5, 1.0],
             "p_interval_test": [0.95], "random_rot": True, "rot_theta": 0.3, "repeat": 1},
    "model": {"name": "ctrgcn", "layout": "ntu", "num_persons": 2},
    "optim": {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 4e-4,
              "batch_size": 64, "test_batch_size": 64, "reference_batch": 64},
    "schedule": {"epochs": 65, "warmup_epochs": 5, "steps": [35, 55], "gamma": 0.1},
}


def _with(preset: Preset, **sections: dict[str, Any]) -> Preset:
    """A copy of ``preset`` with the keys of ``sections`` set (section by section)."""
    updated = {section: dict(values) for section, values in preset.items()}
    for section, values in sections.items():
        updated.setdefault(section, {}).update(values)
    return updated


def _ntu(protocol: str, num_classes: int, **extra: dict[str, Any]) -> Preset:
    return _with(_NTU_COMMON, data={"protocol": protocol},
                 model={"num_classes": num_classes}, **extra)


DATASET_PRESETS: dict[str, Preset] = {
    "ntu60-xsub": _ntu("ntu60-xsub", 60),
    "ntu60-xview": _ntu("ntu60-xview", 60),
    "ntu120-xsub": _ntu("ntu120-xsub", 120),
    "ntu120-xset": _ntu("ntu120-xset", 120),
    "nw-ucla": {
        "data": {"protocol": "nw-ucla-xview", "feeder": "nw-ucla", "window": 52,
                 "ucla_max_angle_deg": 60,
                 "ucla_scale_range": [0.5, 1.5], "ucla_center_joint": 2, "repeat": 5},
        "model": {"name": "ctrgcn", "layout": "nw-ucla", "num_classes": 10,
                  "num_persons": 1},
        "optim": {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4,
                  "batch_size": 16, "test_batch_size": 64, "reference_batch": 16},
        "schedule": {"epochs": 65, "warmup_epochs": 5, "steps": [50], "gamma": 0.1},
    },
    "custom": {
        "data": {"protocol": "auto", "feeder": "custom", "channels": "auto", "window": "auto",
                 "p_interval_train": [0.5, 1.0], "p_interval_test": [0.95],
                 "random_rot": True, "rot_theta": 0.3, "random_flip": False, "repeat": 1,
                 "val_fraction": 0.1},
        "model": {"name": "ctrgcn", "layout": "auto", "num_classes": "auto",
                  "num_persons": "auto", "in_channels": "auto"},
        "optim": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 4e-4,
                  "batch_size": 32, "test_batch_size": 64, "reference_batch": 32},
        "schedule": {"epochs": 65, "warmup_epochs": 5, "steps": [35, 55], "gamma": 0.1},
    },
}

# backbone -> {"all": sections for every dataset, "ntu": sections for the NTU presets}
BACKBONE_RECIPES: dict[str, dict[str, Preset]] = {
    # yysijie/st-gcn config/st_gcn/ntu-xsub/train.yaml and processor/recognition.py:
    # dropout 0.5 in every block but the first, SGD nesterov lr 0.1, weight decay 1e-4,
    # lr x0.1 at epochs 10 and 50, 80 epochs, batch 64, no warm-up.
    "stgcn": {
        "all": {"model": {"name": "stgcn", "dropout": 0.5}},
        "ntu": {"optim": {"weight_decay": 1e-4},
                "schedule": {"epochs": 80, "warmup_epochs": 0, "steps": [10, 50]}},
    },
    # jho-lee/HD-GCN config/nturgbd*/joint_com_21.yaml and main.py: 90 epochs, 5 warm-up
    # epochs, then cosine annealing to lr * 0.001 (lr_ratio); lr 0.1, weight decay 4e-4,
    # batch 64. model.options.com picks the hierarchy (the paper ensembles 1, 2 and 21).
    "hdgcn": {
        "all": {"model": {"name": "hdgcn"}},
        "ntu": {"model": {"options": {"com": 21}},
                "schedule": {"epochs": 90, "warmup_epochs": 5, "kind": "cosine",
                             "min_lr_ratio": 0.001}},
    },
    # stnoah1/infogcn README and args.py: its information-bottleneck loss, k = 1, batch
    # 128, weight decay 5e-4, 110 epochs, lr x0.1 at 90 and 100, 5 warm-up epochs.
    "infogcn": {
        "all": {"model": {"name": "infogcn"}, "objective": {"name": "infogcn"}},
        "ntu": {"model": {"options": {"k": 1}},
                "optim": {"batch_size": 128, "test_batch_size": 128,
                          "reference_batch": 128, "weight_decay": 5e-4},
                "schedule": {"epochs": 110, "warmup_epochs": 5, "steps": [90, 100]}},
    },
}


def _backbone_preset(base: str, backbone: str) -> Preset:
    recipe = BACKBONE_RECIPES[backbone]
    preset = _with(DATASET_PRESETS[base], **recipe["all"])
    if DATASET_PRESETS[base]["data"]["feeder"] == "ntu":
        preset = _with(preset, **recipe["ntu"])
    return preset


PRESETS: dict[str, Preset] = {
    **DATASET_PRESETS,
    "ntu120-xsub-mmcl": _ntu("ntu120-xsub", 120,
                             optim={"batch_size": 200, "reference_batch": 200},
                             schedule={"epochs": 110, "steps": [90, 100]},
                             objective={"name": "mmcl"}),
    **{f"{base}-{backbone}": _backbone_preset(base, backbone)
       for base in DATASET_PRESETS for backbone in BACKBONE_RECIPES},
}
