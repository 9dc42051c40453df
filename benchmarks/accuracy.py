"""Accuracy of models next to the training-free baselines: DAVIS-2016 val-dev and the PUMaVOS chair.

    python benchmarks/accuracy.py                                   # the shipped default + baselines
    python benchmarks/accuracy.py --models deaot-t-deform run-a=runs/a/final.pt --threads 2

Every entry is a registered model name (``vosuite models``) or ``NAME=CHECKPOINT``; the baselines
``flow``, ``flow-dis`` and ``copy-first`` are always added. Each is run with ``Segmenter.infer`` at
its default size (the size its checkpoint records) and scored with the evaluator, in memory
(``vosuite.training.validation``: the same numbers as ``vosuite infer`` + ``vosuite eval``). Prints
one table (J&F, J, F per data set) and, with ``--out FILE.json``, writes the numbers.
The chair clip is used to check, never to tune.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

BASELINES = ("flow", "flow-dis", "copy-first")


def shared_root() -> Path:
    return Path(os.environ.get("VOSUITE_DATA", Path(__file__).resolve().parents[2] / "shared"))


def chair_dataset(folder: Path) -> Path:
    """A generic-layout view (symlinks) of ``shared/data/pumavos/chair``."""
    chair = shared_root() / "data" / "pumavos" / "chair"
    for kind in ("JPEGImages", "Annotations"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        link = folder / kind / "chair"
        if not link.exists():
            link.symlink_to(chair / kind)
    return folder


def score(model: str, checkpoint: str | None, dataset: str, root: Path, split: str | None,
          size: int | None = None) -> dict[str, float]:
    """The evaluator's scores of one model (``size``: internal resolution, default the model's)."""
    from types import SimpleNamespace

    from vosuite.segment import Segmenter
    from vosuite.training.validation import score_model

    segmenter = Segmenter(model=model, checkpoint=checkpoint, size=size, progress=False)
    val = SimpleNamespace(dataset=dataset, root=str(root), split=split, videos=[], size=segmenter.size)
    return score_model(segmenter.model, val)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["deaot-t-deform"], metavar="NAME[=CHECKPOINT]")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the table as JSON")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    davis = shared_root() / "data" / "davis2016"
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        chair = chair_dataset(Path(tmp))
        for entry in [*args.models, *BASELINES]:
            name, _, checkpoint = entry.partition("=")
            model = None if checkpoint else name
            label = name
            rows[label] = {"dev": score(model, checkpoint or None, "davis2016", davis, "val-dev"),
                           "chair": score(model, checkpoint or None, "generic", chair, None)}
            dev, ch = rows[label]["dev"], rows[label]["chair"]
            print(f"{label:<24} dev J&F {dev['J&F-Mean']:.3f} (J {dev['J-Mean']:.3f}, F {dev['F-Mean']:.3f})   "
                  f"chair J&F {ch['J&F-Mean']:.3f} (J {ch['J-Mean']:.3f}, F {ch['F-Mean']:.3f})", flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
