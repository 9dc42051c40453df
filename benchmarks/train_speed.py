"""Seconds per training step, by phase (data, forward, backward, optimiser), as medians.

    python benchmarks/train_speed.py --config configs/deaot_t_davis16.yaml --steps 12 --threads 2
    python benchmarks/train_speed.py --config configs/deaot_t_davis16.yaml \\
        --variant "before: train.fast=false data.workers=1" --variant "after: train.fast=true data.workers=0"

Each variant runs in its own process (so thread pools and oneDNN caches do not leak between them),
builds the recipe's Trainer with the variant's ``key=value`` overrides, skips ``--warmup`` steps,
then times ``--steps`` steps phase by phase with the real engine code (``Trainer.train_step``'s
pieces: the batch from the loader, the method's forward, ``loss.backward()``, gradient clipping +
AdamW + EMA). Prints one table of medians (and the min-max range) per variant and the speed-up of
each variant over the first. Timings on this 2-core machine vary by 20-30 %: compare medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = ("data", "forward", "backward", "optimiser", "total")
DEFAULT_CONFIG = str(Path(__file__).resolve().parents[1] / "configs/deaot_t_davis16.yaml")


def time_steps(config_path: str, overrides: list[str], steps: int, warmup: int, threads: int) -> dict[str, list[float]]:
    """Per-phase seconds of ``steps`` training steps after ``warmup`` untimed ones."""
    import torch

    from vosuite.training.config import load_config
    from vosuite.training.engine import Trainer, batch_stream

    torch.set_num_threads(threads)
    config = load_config(config_path, [f"train.total_steps={warmup + steps}", "train.threads=null",
                                       "val.every=0", "train.progress=false", *overrides])
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir=run_dir)
        batches = batch_stream(config, trainer.method.build_data(trainer.model), 0, trainer.context)
        times: dict[str, list[float]] = {phase: [] for phase in PHASES}
        for index in range(warmup + steps):
            started = time.perf_counter()
            batch = trainer._to_device(next(batches))
            loaded = time.perf_counter()
            trainer.schedule.apply(trainer.optimizer, trainer.step, trainer.method.freeze_active(trainer.step),
                                   config.optim.weight_decay)
            loss, _ = trainer.wrapped(batch, trainer.step)
            forward = time.perf_counter()
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            backward = time.perf_counter()
            params = [p for p in trainer.model.parameters() if p.requires_grad]
            torch.nn.utils.clip_grad_norm_(params, config.optim.clip_grad_norm)
            trainer.optimizer.step()
            trainer.ema.update(trainer.model)
            trainer.step += 1
            done = time.perf_counter()
            if index >= warmup:
                for phase, seconds in zip(PHASES, (loaded - started, forward - loaded, backward - forward,
                                                   done - backward, done - started), strict=True):
                    times[phase].append(seconds)
    return times


def run_variant(args: argparse.Namespace, overrides: list[str]) -> dict[str, list[float]]:
    """One variant in a fresh process (its JSON line on stdout)."""
    command = [sys.executable, __file__, "worker", "--config", args.config, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--threads", str(args.threads), "--", *overrides]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def print_table(results: list[tuple[str, dict[str, list[float]]]]) -> None:
    base_total = statistics.median(results[0][1]["total"])
    header = f"{'variant':<28}" + "".join(f"{phase:>22}" for phase in PHASES) + f"{'speed-up':>10}"
    print(header)
    for name, times in results:
        cells = "".join(f"{statistics.median(times[p]):>8.3f} [{min(times[p]):.2f}-{max(times[p]):.2f}]".rjust(22)
                        for p in PHASES)
        print(f"{name:<28}{cells}{base_total / statistics.median(times['total']):>9.2f}x")
    print(f"(seconds per step: median [min-max] over {len(results[0][1]['total'])} steps)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    for name in ("compare", "worker"):
        command = sub.add_parser(name)
        command.add_argument("--config", default=DEFAULT_CONFIG)
        command.add_argument("--steps", type=int, default=12)
        command.add_argument("--warmup", type=int, default=3)
        command.add_argument("--threads", type=int, default=2)
        if name == "compare":
            command.add_argument("--variant", action="append", default=[], metavar="NAME: KEY=VALUE ...",
                                 help="a named set of overrides (repeatable); default: the recipe as it is")
        else:
            command.add_argument("overrides", nargs="*")
    args = parser.parse_args(sys.argv[1:] if len(sys.argv) > 1 and sys.argv[1] in ("compare", "worker")
                             else ["compare", *sys.argv[1:]])
    if args.command == "worker":
        print(json.dumps(time_steps(args.config, args.overrides, args.steps, args.warmup, args.threads)))
        return
    variants = args.variant or ["recipe:"]
    results = []
    for text in variants:
        name, _, overrides = text.partition(":")
        results.append((name.strip(), run_variant(args, overrides.split())))
    print(f"config {args.config}, {args.threads} threads, {args.steps} timed steps after {args.warmup}")
    print_table(results)


if __name__ == "__main__":
    main()
