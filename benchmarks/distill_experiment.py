"""The distillation experiment (arXiv 2401.13937): the distilled student against the supervised one,
same initial weights, same budget, same data, two seeds per arm; one table and a qualitative figure.

    python benchmarks/distill_experiment.py launch --out ~/vosuite-runs/distill --budget 60m --seeds 0 1 \
        --init imagenet --code ~/vosuite-runs/snap
    python benchmarks/distill_experiment.py report --out ~/vosuite-runs/distill --seeds 0 1
    python benchmarks/distill_experiment.py figure --out /root/vosuite-runs/distill --png docs/img/distill.png
    python benchmarks/distill_experiment.py curves --out /root/vosuite-runs/distill --png docs/img/distill_cka.png

Arms (every one from ``configs/``, seed 0, ``train.time_budget`` = ``--budget``):

* ``a-supervised``: ``deaot_t_davis16.yaml`` (every frame's human mask);
* ``b-kd``: standard logit KD only (``kd_weight 1``, the others 0), reference masks human;
* ``c-distill``: L_att + L_inter + L_intra, label-free but for each clip's reference mask;
* ``d-distill-gt``: (c) plus the supervised loss;
* ``e-distill-vanilla``: (c) with vanilla instead of deformable attention (``deaot-t``);
* ``c0-label-free``: (c) with no human mask at all (``reference_masks: teacher``).

``--init imagenet`` starts every student's encoder from ImageNet (``model.encoder_init``) and trains
on the 26 train videos the ImageNet recipes use (4 held out); ``--seeds`` runs each arm once per
seed (``train.seed``), in ``<out>/<arm>/seed<N>/``, and ``report`` gives the mean and the spread
(half the range) over the seeds.

``launch`` starts ``--parallel`` arms at a time in the background (``nohup``-style, new sessions,
logs beside the runs; ``--arms`` picks some) and returns; run it again to start the next ones
(arms with a run folder are skipped). ``report`` scores each arm's last EMA weights (``final.pt``,
else ``latest.pt``) on DAVIS-16 val-dev and the PUMaVOS chair with the flow and copy-first rows,
and the student's CKA to the teacher on the 5 val-dev clips (the distillation loss's own measure).
``figure`` draws arms (a) and (c) side by side at a late frame of two val-dev videos; ``curves``
the training CKA of every distilled arm (the mean over the sampled rows of each batch, the loss's
own measure, smoothed) and the validation J&F of every arm against the step.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARMS: dict[str, tuple[str, list[str]]] = {
    "a-supervised": ("deaot_t_davis16.yaml", []),
    "b-kd": ("distill_deaot_t_davis16.yaml", ["distill.kd_weight=1", "distill.att_weight=0",
                                              "distill.inter_weight=0", "distill.intra_weight=0"]),
    "c-distill": ("distill_deaot_t_davis16.yaml", []),
    "d-distill-gt": ("distill_deaot_t_davis16.yaml", ["distill.gt_weight=1"]),
    "e-distill-vanilla": ("distill_deaot_t_davis16.yaml", ["model.name=deaot-t"]),
    "c0-label-free": ("distill_deaot_t_labelfree_davis16.yaml", []),
}
#: Overrides of ``--init imagenet``: the encoder from ImageNet, the 26 train videos of the ImageNet recipes.
IMAGENET = ["model.encoder_init=imagenet-mobilenetv2", "data.split=configs/splits/davis16-train-26.txt"]


def arm_folder(out: Path, arm: str, seed: int) -> Path:
    return out / arm / f"seed{seed}"


def run_folder(folder: Path) -> Path | None:
    """The run inside an arm's seed folder (its newest)."""
    folders = sorted(folder.glob("*/config.yaml")) if folder.is_dir() else []
    return folders[-1].parent if folders else None


def running(out: Path) -> list[Path]:
    return [pid.parent for pid in out.glob("*/seed*/pid") if _alive(int(pid.read_text()))]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def launch(out: Path, arms: list[str], seeds: list[int], init: str, budget: str, parallel: int, threads: int,
           code: Path) -> None:
    busy = running(out)
    for arm, seed in ((arm, seed) for seed in seeds for arm in arms):
        folder = arm_folder(out, arm, seed)
        if len(busy) >= parallel:
            break
        if folder in busy or run_folder(folder) is not None:
            continue
        config, overrides = ARMS[arm]
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "vosuite.cli", "train", "--config", str(code / "configs" / config),
                   "--out", str(folder), f"train.time_budget={budget}", f"train.threads={threads}",
                   f"train.seed={seed}", *(IMAGENET if init == "imagenet" else []), *overrides]
        env = {**os.environ, "PYTHONPATH": str(code / "src"), "OMP_NUM_THREADS": str(threads)}
        with open(folder / "train.log", "a") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO),
                                       start_new_session=True)
        (folder / "pid").write_text(str(process.pid))
        busy.append(folder)
        print(f"started {arm} seed {seed} (pid {process.pid}): {' '.join(command[3:])}")


def weights_of(run: Path) -> Path | None:
    return next((run / name for name in ("final.pt", "latest.pt", "best.pt") if (run / name).is_file()), None)


def student_cka(weights: Path, teacher: str = "deaot-l", clips: int = 8) -> float:
    """Mean CKA of the student's GPM attention to the teacher's last layer on val-dev clips."""
    import torch

    from vosuite.factory import create_model
    from vosuite.training.config import load_config
    from vosuite.training.data.clips import collate_clips
    from vosuite.training.methods import method_class

    config = load_config(REPO / "configs" / "distill_deaot_t_davis16.yaml",
                         ["data.split=val-dev", "data.augment=false", f"distill.teacher={teacher}"])
    method = method_class("distill")(config)
    method.auxiliary_modules()
    student = create_model(weights=weights).eval()
    dataset = method.build_data(student).dataset
    values = []
    with torch.no_grad():
        for index in range(min(clips, len(dataset))):
            batch = collate_clips([{**dataset[index], "index": index}])
            reference = torch.zeros_like(batch["labels"])
            reference[:, 0] = batch["labels"][:, 0]
            obj_nums = [int(n) for n in batch["obj_num"]]
            own = method.propagate(student, batch["frames"], reference, obj_nums, None)
            theirs = method.propagate(method.teacher, batch["frames"], reference, obj_nums, None)
            values += [1 - float(method.attention_loss(s, t)) for s, t in zip(own.attention, theirs.attention,
                                                                                strict=True)]
    return sum(values) / len(values)


def report(out: Path, seeds: list[int]) -> None:
    """One row per arm: the mean over the seeds and the spread (half the range) of each measure."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from accuracy import chair_dataset, score, shared_root
    from vosuite.training.run_log import read_metrics

    davis = shared_root() / "data" / "davis2016"
    print("| arm | dev J&F | chair J&F | CKA to teacher | steps | seeds |")
    print("|---|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        chair = chair_dataset(Path(tmp))
        for arm in ARMS:
            rows = []
            for seed in seeds:
                run = run_folder(arm_folder(out, arm, seed))
                weights = weights_of(run) if run else None
                if weights is None:
                    continue
                steps = max((r["step"] for r in read_metrics(run) if r.get("kind") == "train"), default=0)
                rows.append((score(None, str(weights), "davis2016", davis, "val-dev")["J&F-Mean"],
                             score(None, str(weights), "generic", chair, None)["J&F-Mean"], student_cka(weights),
                             steps))
            if not rows:
                print(f"| {arm} | not run | | | | |")
                continue
            cells = [_mean_spread([row[i] for row in rows]) for i in range(3)]
            steps = "/".join(str(row[3]) for row in rows)
            print(f"| {arm} | {' | '.join(cells)} | {steps} | {len(rows)} |", flush=True)
        for name in ("deaot-l", "flow", "copy-first"):
            dev = score(name, None, "davis2016", davis, "val-dev")["J&F-Mean"]
            label = "teacher" if name == "deaot-l" else "training-free"
            print(f"| {name} ({label}) | {dev:.3f} | {score(name, None, 'generic', chair, None)['J&F-Mean']:.3f} "
                  "| - | - | - |")


def _mean_spread(values: list[float]) -> str:
    mean = sum(values) / len(values)
    return f"{mean:.3f} ± {(max(values) - min(values)) / 2:.3f}" if len(values) > 1 else f"{mean:.3f}"


def figure(out: Path, png: Path, videos: tuple[str, ...] = ("bmx-trees", "libby"), arms=("a-supervised", "c-distill"),
           seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sys.path.insert(0, str(REPO / "benchmarks"))
    from accuracy import shared_root
    from vosuite.io.frames import read_image_rgb
    from vosuite.io.masks import read_mask
    from vosuite.io.overlay import overlay_masks
    from vosuite.segment import Segmenter

    davis = shared_root() / "data" / "davis2016"
    figure_, axes = plt.subplots(len(videos), len(arms), figsize=(5 * len(arms), 3 * len(videos)), squeeze=False)
    for row, video in enumerate(videos):
        frames = sorted((davis / "JPEGImages" / "480p" / video).glob("*.jpg"))
        first = read_mask(davis / "Annotations" / "480p" / video / "00000.png")
        late = len(frames) * 4 // 5
        for column, arm in enumerate(arms):
            weights = weights_of(run_folder(arm_folder(out, arm, seed)))
            stream = Segmenter(checkpoint=weights, progress=False).propagate(
                (read_image_rgb(p) for p in frames[:late + 1]), {0: first})
            labels = deque(stream, maxlen=1)[0][1]  # the late frame's labels
            axes[row, column].imshow(overlay_masks(read_image_rgb(frames[late]), labels))
            axes[row, column].set_title(f"{arm}: {video}, frame {late}", fontsize=9)
            axes[row, column].axis("off")
    figure_.tight_layout()
    figure_.savefig(png, dpi=100)
    print(f"wrote {png}")


def curves(out: Path, png: Path, smooth: int = 10, seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vosuite.training.run_log import read_metrics

    figure_, (cka_axis, val_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for arm in ARMS:
        run = run_folder(arm_folder(out, arm, seed))
        if run is None:
            continue
        rows = read_metrics(run)
        train = [(r["step"], r["cka"]) for r in rows if r.get("kind") == "train" and "cka" in r]
        if train and arm != "b-kd":  # (b) has no attention loss: its logged CKA is not trained for
            values = [v for _, v in train]
            smoothed = [sum(values[max(0, i - smooth + 1):i + 1]) / len(values[max(0, i - smooth + 1):i + 1])
                        for i in range(len(values))]
            cka_axis.plot([step for step, _ in train], smoothed, label=arm)
        val = [(r["step"], r["J&F-Mean"]) for r in rows if r.get("kind") == "val" and "J&F-Mean" in r]
        if val:
            val_axis.plot(*zip(*val, strict=True), marker="o", label=arm)
    cka_axis.set(xlabel="step", ylabel=f"CKA to the teacher (training batches, {smooth}-point mean)",
                 title="the student's attention against the teacher's")
    val_axis.set(xlabel="step", ylabel="val-dev J&F (EMA weights, in training)", title="validation")
    for axis in (cka_axis, val_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure_.tight_layout()
    figure_.savefig(png, dpi=100)
    print(f"wrote {png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["launch", "report", "figure", "curves"])
    parser.add_argument("--out", type=Path, default=Path("/root/vosuite-runs/distill"))
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--budget", default="60m", help="train.time_budget of every arm")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="train.seed of each run of an arm")
    parser.add_argument("--init", choices=["scratch", "imagenet"], default="scratch",
                        help="the students' encoder: random, or ImageNet's (26 train videos, 4 held out)")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--code", type=Path, default=REPO, help="the source tree the runs import (a worktree)")
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "img" / "distill_a_vs_c.png")
    args = parser.parse_args()
    if args.command == "launch":
        launch(args.out, args.arms, args.seeds, args.init, args.budget, args.parallel, args.threads, args.code)
    elif args.command == "report":
        report(args.out, args.seeds)
    elif args.command == "curves":
        default = args.png == parser.get_default("png")
        curves(args.out, REPO / "docs" / "img" / "distill_cka.png" if default else args.png)
    else:
        figure(args.out, args.png)


if __name__ == "__main__":
    main()
