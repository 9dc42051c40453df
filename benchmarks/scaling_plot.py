"""Validation J&F against training clips seen, for several runs, with the training-free baselines.

    python benchmarks/scaling_plot.py /root/vosuite-runs/ablation/A-* /root/vosuite-runs/ablation/B-* \\
        --names recipe "lr x3" --out docs/figures/scaling.png

x = step x ``train.batch_size`` (clips of the run's ``data.num_frames`` frames), read from each run
folder's ``config.yaml`` and ``metrics.jsonl``; a log-scaled x axis shows how accuracy grows with
compute (what a longer or a GPU run would buy). The baselines' dev J&F (their model cards) are
horizontal lines. Also prints the points.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from vosuite.io.atomic import atomic_path
from vosuite.plotting import pyplot
from vosuite.registry import get_spec
from vosuite.report_models import card_fields
from vosuite.training.run_log import read_metrics

BASELINES = ("flow", "flow-dis", "copy-first")


def clips_and_scores(run: Path) -> tuple[list[int], list[float]]:
    batch = int(yaml.safe_load((run / "config.yaml").read_text())["train"]["batch_size"])
    rows = [r for r in read_metrics(run) if r.get("kind") == "val" and "J&F-Mean" in r]
    return [int(r["step"]) * batch for r in rows], [float(r["J&F-Mean"]) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--names", nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    names = args.names or [run.name for run in args.runs]
    plt = pyplot("scaling_plot")
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for run, name in zip(args.runs, names, strict=True):
        clips, scores = clips_and_scores(run)
        print(name, list(zip(clips, [round(s, 3) for s in scores], strict=True)))
        axes.plot(clips, scores, marker="o", label=name)
    for baseline, style in zip(BASELINES, (":", "-.", "--"), strict=True):
        score = card_fields(get_spec(baseline)).get("dev_jf")
        if score is not None:
            axes.axhline(float(score), color="grey", linestyle=style, label=f"{baseline} (training-free)")
    axes.set_xscale("log")
    axes.set_xlabel("training clips seen (log scale)")
    axes.set_ylabel("DAVIS-2016 val-dev J&F")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
