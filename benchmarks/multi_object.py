"""Accuracy against the number of objects (the layout of Fig. 1(b) of arXiv 2401.13937) on the
synthetic multi-object check set (:mod:`vosuite.datasets.composites`: val-dev objects pasted into
each other's videos, 1 to 5 objects a clip, seeded). **The clips are synthetic**: pasted objects
have hard edges and move by a drift on top of their own motion.

    python benchmarks/multi_object.py --set ~/vosuite-runs/composites --models deaot-t-deform flow \\
        student=runs/a/final.pt --out multi.json --plot docs/img/multi_object.png

The set is written under ``--set`` once (kept: the same clips for every later run). Each model
follows every object from the first frame (``Segmenter`` at its default size); the evaluator scores
each clip, and J&F is averaged over the clips of each object count. Prints the table; ``--plot``
draws one line per model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

from accuracy import shared_root  # noqa: E402  (benchmarks/ is the script's folder)


def build_set(folder: Path, split: str) -> Path:
    """The check set under ``folder`` (written when absent) from DAVIS-2016 ``split``."""
    from vosuite.datasets import open_dataset
    from vosuite.datasets.composites import write_composites

    if not (folder / "Annotations").is_dir():
        videos = list(open_dataset("davis2016", shared_root() / "data" / "davis2016", split))
        write_composites(videos, folder)
    return folder


def scores_by_count(model: str | None, checkpoint: str | None, folder: Path) -> dict[int, float]:
    """Object count -> mean J&F over that count's clips."""
    from vosuite.segment import Segmenter
    from vosuite.training.validation import score_model

    segmenter = Segmenter(model=model, checkpoint=checkpoint, progress=False)
    clips = sorted(p.name for p in (folder / "Annotations").iterdir())
    by_count: dict[int, list[float]] = {}
    for clip in clips:
        count = int(clip.removeprefix("objects").split("-")[0])
        val = SimpleNamespace(dataset="generic", root=str(folder), split=None, videos=[clip], size=segmenter.size)
        by_count.setdefault(count, []).append(score_model(segmenter.model, val)["J&F-Mean"])
    return {count: sum(values) / len(values) for count, values in sorted(by_count.items())}


def plot(rows: dict[str, dict[int, float]], out: Path) -> None:
    from vosuite.plotting import pyplot

    plt = pyplot("the multi-object plot")
    figure, axes = plt.subplots(figsize=(6, 4))
    for name, by_count in rows.items():
        axes.plot(list(by_count), list(by_count.values()), marker="o", label=name)
    axes.set_xlabel("objects in the clip (synthetic composites of DAVIS-2016 val-dev)")
    axes.set_ylabel("J&F")
    axes.set_xticks(sorted({c for by_count in rows.values() for c in by_count}))
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, required=True, help="where the check set is (written once)")
    parser.add_argument("--split", default="val-dev", help="the DAVIS-2016 videos the set is made from")
    parser.add_argument("--models", nargs="+", default=["deaot-t-deform", "flow", "copy-first"],
                        metavar="NAME[=CHECKPOINT]")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the table as JSON")
    parser.add_argument("--plot", type=Path, help="write the plot (PNG)")
    args = parser.parse_args()
    import torch

    from vosuite.io.atomic import write_text_atomic

    torch.set_num_threads(args.threads)
    folder = build_set(args.set, args.split)
    rows = {}
    for entry in args.models:
        name, _, checkpoint = entry.partition("=")
        rows[name] = scores_by_count(None if checkpoint else name, checkpoint or None, folder)
        print(f"{name:<24} " + "  ".join(f"{c} objects {v:.3f}" for c, v in rows[name].items()), flush=True)
    if args.out is not None:
        write_text_atomic(args.out, json.dumps(rows, indent=1))
    if args.plot is not None:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
