"""Every inference setting, with its one name, its one default and its checks (torch-free).

The CLI, :class:`~vosuite.segment.Segmenter`, the app and the training configs share these: a
setting left out is ``None`` ("not given"), and what a given value means is decided once, here and
in the inference core that reads it. A value the CLI would refuse is refused by the dataclass, so
the Python API refuses it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vosuite.errors import InputError

#: The model of ``vosuite segment`` / ``infer`` / ``demo`` and ``Segmenter()`` by default.
DEFAULT_MODEL = "deaot-t-deform"
#: The model of ``vosuite discover``, ``Discoverer()`` and the app's "Find objects" by default.
DEFAULT_DISCOVER_MODEL = "motion-saliency"
#: DeAOT's cap on long-term memory frames when ``max_memory_frames`` is not given.
DEFAULT_MAX_MEMORY_FRAMES = 32
#: Where the per-frame graphs run.
RUNTIMES = ("eager", "onnx")
#: How S2S merges its objects' probabilities (the first is the default).
MERGES = ("soft", "rs2s")

#: The datasets ``--dataset`` names (:mod:`vosuite.datasets.registry` opens them; aliases too).
DATASET_NAMES = ("davis2016", "davis2017", "youtubevos", "generic")
#: The evaluator's tasks: semi-supervised (objects given) or unsupervised (proposals matched to objects).
EVALUATION_TASKS = ("semi", "unsupervised")

#: What a model does: follows given masks, finds objects on its own, or only pre-trains a backbone.
Task = Literal["semi", "unsupervised", "pre-training"]
TASKS: tuple[Task, ...] = ("semi", "unsupervised", "pre-training")


def check_positive(value: object, option: str, minimum: int = 1) -> None:
    """An InputError unless ``value`` is None or an int >= ``minimum``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise InputError(f"{option} must be an integer >= {minimum}, got {value!r}")


def check_choice(value: object, choices: tuple[str, ...], option: str) -> None:
    """An InputError unless ``value`` is None or one of ``choices``."""
    if value is not None and value not in choices:
        raise InputError(f"{option} {value!r}: use {' or '.join(choices)}")


@dataclass(frozen=True)
class InferenceOptions:
    """Test-time settings of a per-video inference core; None is "not given" for each.

    Attributes:
        size: internal resolution (outputs stay at the input's); None: the size the weights were
            trained for, else the model's rule. DeAOT shrinks the short side to <= size before its
            size rule; S2S scales the short side to size (default 256).
        long_term_gap: DeAOT: a long-term memory frame every N frames; None: the model's.
        max_memory_frames: DeAOT: most long-term memory frames, the oldest non-reference frames
            dropped; None: :data:`DEFAULT_MAX_MEMORY_FRAMES`.
        merge: S2S: ``"soft"`` or ``"rs2s"`` object merging; None: ``"soft"``.
        runtime: ``"eager"`` (PyTorch) or ``"onnx"`` (ONNX Runtime); None: eager.

    A family refuses a setting it has no use for (S2S keeps no frame memory; DeAOT merges its own
    way; baselines take none of them).
    """

    size: int | None = None
    long_term_gap: int | None = None
    max_memory_frames: int | None = None
    merge: str | None = None
    runtime: str | None = None

    def __post_init__(self) -> None:
        check_positive(self.size, "--size", minimum=16)
        check_positive(self.long_term_gap, "--long-term-gap")
        check_positive(self.max_memory_frames, "--max-memory-frames")
        check_choice(self.merge, MERGES, "--merge")
        check_choice(self.runtime, RUNTIMES, "--runtime")

    @property
    def memory_cap(self) -> int:
        """The DeAOT long-term memory cap these options give."""
        return DEFAULT_MAX_MEMORY_FRAMES if self.max_memory_frames is None else self.max_memory_frames

    @property
    def uses_onnx(self) -> bool:
        return self.runtime == "onnx"

    def given(self, *names: str) -> list[str]:
        """The CLI spellings of those of ``names`` that were given (not None)."""
        return [f"--{name.replace('_', '-')}" for name in names if getattr(self, name) is not None]
