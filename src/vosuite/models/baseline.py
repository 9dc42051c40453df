"""Training-free trackers as registry models (no parameters): optical-flow propagation and the
first mask repeated. They are the floors every trained model must beat and that every accuracy
table shows. The tracking itself is per-video state: :mod:`vosuite.inference.baselines`."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

#: Baseline kinds: flow warping (by estimator) or holding the last given mask.
BASELINE_KINDS = ("flow", "copy")


@dataclass(frozen=True)
class BaselineConfig:
    """``kind``: ``"flow"`` or ``"copy"``; ``flow``: the estimator (``"farneback"`` or ``"dis"``)."""

    name: str = "flow"
    kind: str = "flow"
    flow: str = "farneback"


BASELINES: dict[str, BaselineConfig] = {
    "flow": BaselineConfig("flow", "flow", "farneback"),
    "flow-dis": BaselineConfig("flow-dis", "flow", "dis"),
    "copy-first": BaselineConfig("copy-first", "copy", ""),
}


def get_baseline_config(name: str) -> BaselineConfig:
    key = name.lower().replace("_", "-")
    if key not in BASELINES:
        raise KeyError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    return BASELINES[key]


class TrainingFreeTracker(nn.Module):
    """A parameter-free stand-in network: it carries the config (``cfg``) that picks the tracker."""

    def __init__(self, cfg: BaselineConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or BASELINES["flow"]
        self.default_size: int | None = None
