"""Training-free models as registry entries (nothing learnt). Semi-supervised trackers: optical-flow
propagation and the first mask repeated (:mod:`vosuite.inference.baselines`), and label propagation
with frozen features (``propagate-features``, :mod:`vosuite.inference.feature_propagation`: the
yardstick of self-supervised video features, DINO Sec. 4.2, CRW), whose only weights are its
backbone's (:mod:`vosuite.models.feature_backbone`). Unsupervised proposals: a centred ellipse and
motion saliency (:mod:`vosuite.inference.unsupervised_baselines`, run by ``vosuite discover``).
They are the floors every trained model must beat and that every accuracy table shows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from vosuite.errors import InputError
from vosuite.models.feature_backbone import FeatureBackbone, load_feature_backbone
from vosuite.models.variants import lookup_variant

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
    def task(self) -> str:
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

    def __init__(self, cfg: BaselineConfig | None = None, backbone: FeatureBackbone | None = None) -> None:
        super().__init__()
        self.cfg = cfg or BASELINES["flow"]
        self.default_size: int | None = None
        if self.cfg.kind == "features":
            self.backbone = backbone if backbone is not None else FeatureBackbone()


def build_tracker(name: str, checkpoint: str | Path | None = None) -> TrainingFreeTracker:
    """The tracker ``name`` in eval mode; ``propagate-features`` with the backbone ``checkpoint``
    names (default: the shipped student's encoder), the others take no weights."""
    cfg = get_baseline_config(name)
    if cfg.kind != "features":
        if checkpoint is not None:
            raise InputError(f"--checkpoint: {cfg.name} is a training-free baseline; it takes no weights")
        return TrainingFreeTracker(cfg).eval()
    return TrainingFreeTracker(cfg, load_feature_backbone(checkpoint)).eval()
