"""Training-free models as registry entries (nothing learnt). Semi-supervised trackers: optical-flow
propagation and the first mask repeated (:mod:`vosuite.inference.baselines`), and label propagation
with frozen features (``propagate-features``, :mod:`vosuite.inference.feature_propagation`: the
yardstick of self-supervised video features, DINO Sec. 4.2, CRW), whose only weights are its
backbone's (:mod:`vosuite.models.feature_backbone`). Unsupervised proposals: a centred ellipse and
motion saliency (:mod:`vosuite.unsupervised.baselines`, run by ``vosuite discover``).
They are the floors every trained model must beat and that every accuracy table shows."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from vosuite.models.feature_backbone import FeatureBackbone
from vosuite.models.variants import lookup_variant
from vosuite.options import Task
from vosuite.registry import Family, register_family, register_model

#: Baseline kinds: flow warping (by estimator), holding the last given mask, label propagation
#: with frozen features (semi-supervised); the centred ellipse, motion saliency (unsupervised).
BASELINE_KINDS = ("flow", "copy", "features", "ellipse", "motion")
UNSUPERVISED_KINDS = ("ellipse", "motion")


@dataclass(frozen=True)
class BaselineConfig:
    """``kind``: one of :data:`BASELINE_KINDS`; ``flow``: the estimator (``"farneback"`` or ``"dis"``)."""

    name: str = "flow"
    kind: str = "flow"
    flow: str = "farneback"

    @property
    def task(self) -> Task:
        """``"semi"`` (follows given masks) or ``"unsupervised"`` (finds objects on its own)."""
        return "unsupervised" if self.kind in UNSUPERVISED_KINDS else "semi"


BASELINES: dict[str, BaselineConfig] = {
    "flow": BaselineConfig("flow", "flow", "farneback"),
    "flow-dis": BaselineConfig("flow-dis", "flow", "dis"),
    "copy-first": BaselineConfig("copy-first", "copy", ""),
    "propagate-features": BaselineConfig("propagate-features", "features", ""),
    "ellipse": BaselineConfig("ellipse", "ellipse", ""),
    "motion-saliency": BaselineConfig("motion-saliency", "motion", "dis"),
}


def get_baseline_config(name: str) -> BaselineConfig:
    return lookup_variant(BASELINES, name, "baseline")


class TrainingFreeTracker(nn.Module):
    """A stand-in network that carries the config (``cfg``) that picks the tracker; parameter-free
    but for ``propagate-features``, whose frozen ``backbone`` it holds (random unless given)."""

    family = "baseline"

    def __init__(self, cfg: BaselineConfig | None = None, backbone: FeatureBackbone | None = None) -> None:
        super().__init__()
        self.cfg = cfg or BASELINES["flow"]
        self.default_size: int | None = None
        if self.cfg.kind == "features":
            self.backbone = backbone if backbone is not None else FeatureBackbone()


register_family(Family("baseline", network="vosuite.models.baseline:TrainingFreeTracker",
                       config="vosuite.models.baseline:get_baseline_config",
                       config_class="vosuite.models.baseline:BaselineConfig", trained=False))
_SUMMARIES = {
    "flow": "training-free: labels warped along Farneback optical flow",
    "flow-dis": "training-free: labels warped along DIS optical flow",
    "copy-first": "training-free: the first mask repeated (zero motion)",
    "propagate-features": "training-free: labels propagated by frozen-feature similarity (DINO / CRW protocol)",
    "ellipse": "training-free, unsupervised: a centred ellipse (the centre prior)",
    "motion-saliency": "training-free, unsupervised: what moves against the camera's affine motion (flow)",
}
for _name, _config in BASELINES.items():
    register_model(_name, "baseline", summary=_SUMMARIES[_name], task=_config.task)
