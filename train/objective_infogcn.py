"""InfoGCN's training objective (``objective.name: infogcn``), for ``model.name: infogcn``.

As in the reference's ``main.py``: label-smoothed cross-entropy (0.1) on the logits, plus
``lambda_prior`` times the MSE between the batch's per-class mean latents and a fixed
class prior ``z_prior`` (classes present in the batch only), plus ``lambda_mean`` times the
L2 norm of the batch's mean latent. ``z_prior`` (num_classes x latent width) is drawn
orthogonal with gain ``prior_gain`` when the run starts and saved with the objective's
state, so a resumed run keeps it (the reference keeps it outside the model's state dict).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from train.config import TrainConfig
from train.errors import ConfigError, TrainError
from train.modeling import backbone_outline
from train.objectives import ObjectivePlan, StepOutput, check_options


@dataclass
class InfoGCNSettings:
    """``objective.options`` of the ``infogcn`` objective (the reference's defaults)."""

    label_smoothing: float = 0.1
    lambda_prior: float = 0.1     # lambda_2: per-class latent means -> z_prior (MMD term)
    lambda_mean: float = 1e-4     # lambda_1: norm of the batch's mean latent
    prior_gain: float = 3.0       # z_prior_gain

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "InfoGCNSettings":
        data = dict(data or {})
        check_options("infogcn", data, {f.name: None for f in fields(cls)})
        settings = cls(**data)
        for name, value in asdict(settings).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"objective.options.{name} must be a number >= 0, "
                                  f"not {value!r}")
        if settings.label_smoothing >= 1:
            raise ConfigError("objective.options.label_smoothing must be below 1, not "
                              f"{settings.label_smoothing}")
        return settings


class InfoGCNObjective(nn.Module):
    """``objective(batch, model) -> StepOutput`` with losses cls, prior and mean."""

    def __init__(self, settings: InfoGCNSettings, num_classes: int, latent_dim: int):
        super().__init__()
        self.settings = settings
        self.num_classes = num_classes
        prior = torch.empty(num_classes, latent_dim)
        nn.init.orthogonal_(prior, gain=settings.prior_gain)
        self.register_buffer("z_prior", prior)

    def forward(self, batch: Mapping[str, Any], model: nn.Module) -> StepOutput:
        logits, z = model.forward_latent(batch["x"])
        label = batch["label"]
        z = z.float()
        counts = torch.bincount(label, minlength=self.num_classes)
        present = counts > 0
        sums = torch.zeros(self.num_classes, z.shape[1], device=z.device,
                           dtype=z.dtype).index_add(0, label, z)
        class_means = sums[present] / counts[present, None]
        prior = F.mse_loss(class_means, self.z_prior[present])
        losses = {
            "cls": F.cross_entropy(logits.float(), label,
                                   label_smoothing=self.settings.label_smoothing),
            "prior": self.settings.lambda_prior * prior,
            "mean": self.settings.lambda_mean * torch.linalg.vector_norm(z.mean(dim=0)),
        }
        return StepOutput(losses=losses, logits=logits)


def build_infogcn(config: TrainConfig) -> ObjectivePlan:
    settings = InfoGCNSettings.from_dict(config.objective.options)
    outline = backbone_outline(config)
    if not hasattr(outline, "forward_latent"):
        raise ConfigError(f"objective 'infogcn' needs model.name infogcn (a backbone with a "
                          f"latent z), not {config.model.name!r}")
    latent = getattr(outline, "latent_dim", None)
    if not isinstance(latent, int):
        raise TrainError(f"{config.model.name} does not say its latent width (latent_dim)")
    return ObjectivePlan(InfoGCNObjective(settings, config.model.num_classes, latent))
