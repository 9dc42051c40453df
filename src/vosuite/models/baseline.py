"""Training-free models as registry entries (no parameters). Semi-supervised trackers: optical-flow
propagation and the first mask repeated (:mod:`vosuite.inference.baselines`). Unsupervised
proposals: a centred ellipse and motion saliency (:mod:`vosuite.inference.unsupervised_baselines`,
run by ``vosuite discover``). They are the floors every trained model must beat and that every
accuracy table shows."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from vosuite.models.variants import lookup_variant

#: Baseline kinds: flow warping (by estimator), holding the last given mask (semi-supervised);
#: the centred ellipse, motion saliency (unsupervised).
BASELINE_KINDS = ("flow", "copy", "ellipse", "motion")
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
    "ellipse": BaselineConfig("ellipse", "ellipse", ""),
    "motion-saliency": BaselineConfig("motion-saliency", "motion", "dis"),
}


def get_baseline_config(name: str) -> BaselineConfig:
    return lookup_variant(BASELINES, name, "baseline")


class TrainingFreeTracker(nn.Module):
    """A parameter-free stand-in network: it carries the config (``cfg``) that picks the tracker."""

    def __init__(self, cfg: BaselineConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or BASELINES["flow"]
        self.default_size: int | None = None
