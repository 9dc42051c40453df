"""Accuracy of models next to the training-free baselines: DAVIS-2016 val-dev, train videos held out
from training, and the PUMaVOS chair.

    python benchmarks/accuracy.py                                   # the shipped default + baselines
    python benchmarks/accuracy.py --models deaot-t-deform run-a=runs/a/final.pt --threads 2

Every entry is a registered model name (``vosuite models``) or ``NAME=CHECKPOINT``; the baselines
``flow``, ``flow-dis``, ``copy-first`` and ``propagate-features`` are added (``--no-baselines``:
not). ``--holdout FILE`` names DAVIS-2016 train videos kept out of training (default:
``configs/splits/davis16-train-holdout-4.txt``, the recipes from ImageNet train on the other 26),
a second check beside val-dev, which chose recipes. Each is run with ``Segmenter.infer`` at
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

BASELINES = ("flow", "flow-dis", "copy-first", "propagate-features")
HOLDOUT = Path(__file__).resolve().parents[1] / "configs" / "splits" / "davis16-train-holdout-4.txt"


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
    parser.add_argument("--holdout", type=Path, default=HOLDOUT, help="split file of held-out train videos")
    parser.add_argument("--no-baselines", action="store_true", help="only --models")
    parser.add_argument("--out", type=Path, help="write the table as JSON")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = parser.parse_args()
    import torch

    from vosuite.io.atomic import write_text_atomic
    from vosuite.io.output import claim_file

    if args.out is not None:
        claim_file(args.out, overwrite=args.overwrite, option="--out")
    torch.set_num_threads(args.threads)
    davis = shared_root() / "data" / "davis2016"
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        chair = chair_dataset(Path(tmp))
        for entry in [*args.models, *([] if args.no_baselines else BASELINES)]:
            name, _, checkpoint = entry.partition("=")
            model = None if checkpoint else name
            rows[name] = {"dev": score(model, checkpoint or None, "davis2016", davis, "val-dev"),
                          "holdout": score(model, checkpoint or None, "davis2016", davis, str(args.holdout)),
                          "chair": score(model, checkpoint or None, "generic", chair, None)}
            parts = [f"{part} J&F {s['J&F-Mean']:.3f} (J {s['J-Mean']:.3f}, F {s['F-Mean']:.3f})"
                     for part, s in rows[name].items()]
            print(f"{name:<24} " + "   ".join(parts), flush=True)
    if args.out is not None:
        write_text_atomic(args.out, json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
