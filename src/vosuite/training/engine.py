"""The method-agnostic training loop: ``Trainer(config, method).fit()``.

One step: draw this rank's shard of the global batch (sample ``step * world * B + rank * B + i``,
a pure function of the seed and the step, so a resumed run sees the same data), set the learning
rates (warm-up + poly), forward through the method's ``training_step`` (DDP-wrapped under
torchrun), backward, clip the gradient norm, AdamW step, the method's ``after_step``, EMA update. Rank 0 appends to
``metrics.jsonl``, writes ``last.pt`` every ``checkpoint_every`` steps, validates every
``val.every`` steps and keeps the best EMA weights as ``best.pt`` (a vosuite checkpoint usable by
``vosuite segment --checkpoint``); ``final.pt`` holds the EMA weights at the end.

Run folder: ``config.yaml`` (the resolved config), ``metrics.jsonl``, ``last.pt``, ``best.pt``,
``final.pt``. Validation runs in memory (:mod:`vosuite.training.validation`): nothing is written.

The method (:mod:`vosuite.training.methods`) builds the model, the data and any frozen auxiliary
networks; those stay outside DDP, the EMA and the checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler

from vosuite.checkpoints.resume import (
    BEST,
    LAST,
    load_training_checkpoint,
    rng_state,
    save_training_checkpoint,
    set_rng_state,
)
from vosuite.distributed import (
    DistContext,
    barrier,
    broadcast_float,
    init_distributed,
    mean_over_ranks,
    shutdown,
)
from vosuite.errors import InputError
from vosuite.factory import save_model
from vosuite.io.folder_lock import FolderLock
from vosuite.io.output import record_files
from vosuite.nn.frozen_bn import freeze_batch_norm
from vosuite.progress import progress_bar
from vosuite.training.config import (
    TrainConfig,
    apply_overrides,
    config_from_data,
    config_to_dict,
    load_config,
    parse_duration,
    read_yaml,
    save_config,
)
from vosuite.training.data.clips import loader_options
from vosuite.training.ema import ExponentialMovingAverage, ema_decay
from vosuite.training.methods import method_class
from vosuite.training.methods.base import Method, TrainingData
from vosuite.training.run_log import METRICS, MetricsLog
from vosuite.training.schedule import Schedule, param_groups

CONFIG_FILE = "config.yaml"
FINAL = "final.pt"
#: EMA weights written when a run stops at its time budget (a vosuite checkpoint, like final.pt).
LATEST = "latest.pt"
#: the files a run writes in its folder (besides tb/): vosuite may replace them there
RUN_FILES = (CONFIG_FILE, METRICS, LAST, BEST, FINAL, LATEST, "curves.png")
VAL_METRIC = "J&F-Mean"


# ---------------------------------------------------------------------------------------------
# Data: a deterministic stream of global sample indices
# ---------------------------------------------------------------------------------------------

class StepBatchSampler(Sampler[list[int]]):
    """Yields, for steps ``start .. total-1``, this rank's indices ``step * world * B + rank * B + i``."""

    def __init__(self, start: int, total: int, per_rank: int, world_size: int = 1, rank: int = 0) -> None:
        self.start, self.total, self.per_rank = start, total, per_rank
        self.world_size, self.rank = world_size, rank

    def __len__(self) -> int:
        return max(self.total - self.start, 0)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.total):
            first = step * self.world_size * self.per_rank + self.rank * self.per_rank
            yield list(range(first, first + self.per_rank))


class GlobalIndexDataset(Dataset):
    """Sample ``g`` of an endless stream over a :class:`~vosuite.training.data.ClipDataset`: epoch
    ``g // len``, item ``g % len``; the sample dict gains ``"index": g``."""

    def __init__(self, clips: Any) -> None:
        self.clips = clips

    def __len__(self) -> int:  # the stream is endless; the sampler decides
        return 2**62

    def __getitem__(self, index: int) -> dict[str, object]:
        epoch, item = divmod(int(index), len(self.clips))
        self.clips.set_epoch(epoch)
        return {**self.clips[item], "index": int(index)}


def batch_stream(config: TrainConfig, data: TrainingData, start: int, context: DistContext
                 ) -> Iterator[dict[str, object]]:
    """This rank's batches from step ``start`` on."""
    world = context.world_size
    if config.train.batch_size % world:
        raise InputError(f"train.batch_size {config.train.batch_size} is not a multiple of the {world} processes")
    sampler = StepBatchSampler(start, config.train.total_steps, config.train.batch_size // world, world, context.rank)
    workers = config.data.workers
    loader = DataLoader(GlobalIndexDataset(data.dataset), batch_sampler=sampler, collate_fn=data.collate,
                        persistent_workers=False, **loader_options(workers))
    return iter(loader)


# ---------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------

def freeze_auxiliary(modules: Mapping[str, nn.Module], device: torch.device) -> dict[str, nn.Module]:
    """A method's auxiliary networks, frozen in place: on ``device``, eval mode, no gradients. They
    stay outside the :class:`TrainingModule` (so outside DDP, the EMA and every checkpoint)."""
    for module in modules.values():
        module.to(device).eval().requires_grad_(False)
    return dict(modules)


class TrainingModule(nn.Module):
    """``forward(batch, step) -> (loss, logs)`` through the method, so DDP can wrap it."""

    def __init__(self, model: nn.Module, method: Method) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, batch: Mapping[str, object], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        return self.method.training_step(self.model, batch, step)


@dataclass
class BestScore:
    """The best validation score so far."""

    score: float = -math.inf
    step: int = -1


def new_run_dir(out: str | os.PathLike, name: str, create: bool = True) -> Path:
    """A new folder ``<out>/<name>-<YYYYmmdd-HHMMSS>`` (suffixed when it exists), created here, so two
    runs started in the same second never share one (``create=False``: only the name, for the
    ranks that write nothing)."""
    base = Path(out) / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if not create:
        return base
    base.parent.mkdir(parents=True, exist_ok=True)
    path, n = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")


def resume_config(run_dir: str | os.PathLike, overrides: list[str] = ()) -> TrainConfig:
    """The saved config of a run with ``key=value`` overrides (e.g. more total steps)."""
    path = Path(run_dir) / CONFIG_FILE
    return config_from_data(apply_overrides(read_yaml(path), overrides))


@contextlib.contextmanager
def preserved_rng_and_threads() -> Iterator[None]:
    """Restore the RNG states and torch's thread count after the block (validation reseeds torch)."""
    state, threads = rng_state(), torch.get_num_threads()
    try:
        yield
    finally:
        set_rng_state(state)
        torch.set_num_threads(threads)


class Trainer:
    """Trains ``method``'s model with ``config``; ``resume`` continues ``run_dir/last.pt``.

    Attributes after :meth:`fit`: ``history`` (this process's per-step logs), ``step``, ``best``.
    """

    def __init__(self, config: TrainConfig, method: Method | None = None, run_dir: str | os.PathLike | None = None,
                 resume: bool = False, out: str | os.PathLike = "runs") -> None:
        self.config = config
        self.method = method or method_class(config.method)(config)
        self.context = init_distributed(config.train.device)
        self.run_dir = (Path(run_dir) if run_dir is not None
                        else new_run_dir(out, config.name, create=self.context.is_main))
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        self._seed(config.train.seed)
        self.model = self.method.build_model().to(self.context.device)
        if config.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.auxiliary = freeze_auxiliary(self.method.auxiliary_modules(), self.context.device)
        self.ema = ExponentialMovingAverage(self.model, ema_decay(config.train.total_steps, config.optim.ema_ratio))
        optim = config.optim
        groups = param_groups(self.model, optim.weight_decay, optim.no_decay_keys, self.method.freezable_keys())
        self.optimizer = torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)
        self.schedule = Schedule(optim.lr, optim.min_lr, config.train.total_steps, optim.warmup_ratio, optim.power,
                                 optim.cosine, optim.encoder_lr_ratio)
        self.step, self.best, self.history = 0, BestScore(), []
        self.budget_seconds = parse_duration(config.train.time_budget)
        self.stopped_by_budget = False
        self._clock = self._last_save = time.monotonic()
        if resume:
            self._load(self.run_dir / LAST)
        self.wrapped = self._wrap()

    # -- set-up ---------------------------------------------------------------------------------
    @staticmethod
    def _seed(seed: int) -> None:
        import random

        import numpy as np

        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)

    def _wrap(self) -> nn.Module:
        module = TrainingModule(self.model, self.method)
        if not self.context.enabled:
            return module
        ids = [self.context.device.index] if self.context.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids,
                                       find_unused_parameters=self.config.train.find_unused_parameters)

    def _load(self, path: Path) -> None:
        # on the CPU: RNG states must be CPU tensors; load_state_dict moves the rest to the model's device
        state = load_training_checkpoint(path, map_location="cpu")
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"], self.model)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.best = BestScore(float(state["best"]["score"]), int(state["best"]["step"]))
        set_rng_state(state["rng"])

    def _save(self) -> None:
        self._last_save = time.monotonic()
        self._write_last()

    def _write_last(self) -> None:
        payload = {"step": self.step, "model": self.model.state_dict(), "ema": self.ema.state_dict(),
                   "optimizer": self.optimizer.state_dict(), "scheduler": {"step": self.step},
                   "best": {"score": self.best.score, "step": self.best.step}, "config": config_to_dict(self.config)}
        save_training_checkpoint(self.run_dir / LAST, payload)

    def ema_model(self) -> nn.Module:
        """A copy of the model holding the EMA weights, in eval mode and inference layout."""
        return self.inference_copy(use_ema=True)

    def inference_copy(self, use_ema: bool) -> nn.Module:
        """A copy of the model (EMA or live weights) in eval mode, trainable batch norms frozen
        into their running statistics (the layout inference loads). EMA weights come with the
        averaged running statistics (:mod:`vosuite.training.ema`)."""
        model = copy.deepcopy(self.model)
        if use_ema:
            self.ema.copy_to(model)
        freeze_batch_norm(model)
        return model.eval()

    # -- one step -------------------------------------------------------------------------------
    def _to_device(self, batch: dict[str, object]) -> dict[str, object]:
        return {k: v.to(self.context.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def train_step(self, batch: dict[str, object]) -> dict[str, float]:
        """One optimisation step on ``batch`` at ``self.step``; returns the logs (mean over ranks)."""
        started = time.perf_counter()
        freeze = self.method.freeze_active(self.step)
        lr = self.schedule.apply(self.optimizer, self.step, freeze, self.config.optim.weight_decay)
        device_type = self.context.device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.config.train.amp):
            loss, logs = self.wrapped(self._to_device(batch), self.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.config.optim.clip_grad_norm)
        self.optimizer.step()
        self.method.after_step(self.model, self.step)
        self.ema.update(self.model)
        self.step += 1
        logs = mean_over_ranks(logs, self.context)
        logs.update(lr=lr, grad_norm=float(grad_norm), seconds=time.perf_counter() - started)
        return logs

    # -- the loop -------------------------------------------------------------------------------
    def fit(self, stop_after: int | None = None) -> list[dict[str, float]]:
        """Train to ``total_steps`` (or for ``stop_after`` steps, without a final checkpoint: a
        simulated kill for tests). Returns this call's per-step logs."""
        main = self.context.is_main
        lock = self._claim_run_dir() if main else None
        try:
            return self._fit(stop_after)
        finally:
            if lock is not None:
                lock.release()

    def _claim_run_dir(self) -> FolderLock:
        """Lock the run folder for this process (a second run into it stops at once) and list the
        files a run writes in its manifest (``vosuite.io.output``)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(self.run_dir, "run folder")
        record_files(self.run_dir, RUN_FILES)
        return lock

    def _fit(self, stop_after: int | None) -> list[dict[str, float]]:
        main = self.context.is_main
        if main:
            save_config(self.config, self.run_dir / CONFIG_FILE)
        log = MetricsLog(self.run_dir, resume_step=self.step) if main else None
        total = self.config.train.total_steps
        self._clock = self._last_save = time.monotonic()
        batches = batch_stream(self.config, self.method.build_data(self.model), self.step, self.context)
        history: list[dict[str, float]] = []
        try:
            with progress_bar("train", self.config.train.progress and main) as update:
                for batch in batches:
                    logs = self.train_step(batch)
                    history.append(logs)
                    update(self.step, total, f"loss {logs['loss']:.4f} {logs['seconds']:.2f} s/step")
                    if stop_after is not None and len(history) >= stop_after:
                        return history
                    self._after_step(logs, log)
                    if self._out_of_time(logs["seconds"]):
                        self._stop_for_budget(log)
                        return history
            if main:
                self.ema_model_save(self.run_dir / FINAL)
        finally:
            self.history.extend(history)
            if log is not None:
                log.close()
        return history

    def _after_step(self, logs: dict[str, float], log: MetricsLog | None) -> None:
        train, last = self.config.train, self.step == self.config.train.total_steps
        if log is not None and (self.step % train.log_every == 0 or last or self.step == 1):
            log.write("train", self.step, logs)
        if self.config.val.every and (self.step % self.config.val.every == 0 or last):
            self._validate(log)
        minutes = train.checkpoint_minutes
        timed = minutes is not None and time.monotonic() - self._last_save >= 60 * minutes
        if self.context.is_main and (self.step % train.checkpoint_every == 0 or last or timed):
            self._save()
        barrier(self.context)

    def _out_of_time(self, step_seconds: float) -> bool:
        """Whether another step would pass this process's time budget (rank 0 decides for all)."""
        if self.budget_seconds is None or self.step >= self.config.train.total_steps:
            return False
        elapsed = time.monotonic() - self._clock
        return broadcast_float(float(elapsed + step_seconds >= self.budget_seconds), self.context) > 0.5

    def _stop_for_budget(self, log: MetricsLog | None) -> None:
        """Checkpoint (last.pt to resume, latest.pt with the EMA weights) and note the stop."""
        self.stopped_by_budget = True
        if self.context.is_main:
            self._save()
            self.ema_model_save(self.run_dir / LATEST)
            if log is not None:
                log.write("stop", self.step, {"reason_time_budget_s": float(self.budget_seconds),
                                              "elapsed_s": time.monotonic() - self._clock})
        barrier(self.context)

    def _validate(self, log: MetricsLog | None) -> None:
        score = math.nan
        if self.context.is_main:
            scores = self.validate()
            score = scores.get(VAL_METRIC, math.nan)
            if score > self.best.score:
                self.best = BestScore(score, self.step)
                self.ema_model_save(self.run_dir / BEST)
            if log is not None:
                log.write("val", self.step, {**scores, "best": self.best.score, "best_step": self.best.step})
        score = broadcast_float(score, self.context)
        if score > self.best.score:  # other ranks mirror rank 0's best
            self.best = BestScore(score, self.step)

    def validate(self) -> dict[str, float]:
        """The method's validation task on the (EMA) model, in memory; RNG and threads are left as
        they were."""
        from vosuite.training.validation import validate

        model = self.inference_copy(self.config.val.use_ema)
        with preserved_rng_and_threads(), torch.no_grad():
            return validate(self.method, model, self.config.val, self.context.device)

    def ema_model_save(self, path: Path) -> Path:
        """Write the EMA weights as a vosuite checkpoint (``vosuite segment --checkpoint``)."""
        return save_model(self.ema_model(), path, inference_size=self.config.val.size)

    def close(self) -> None:
        """Leave the process group."""
        shutdown(self.context)


def train(config_path: str | os.PathLike | None, overrides: list[str] = (), resume: str | os.PathLike | None = None,
          out: str | os.PathLike = "runs") -> Trainer:
    """``vosuite train``: a new run from a YAML config (+ overrides) or ``resume`` a run folder."""
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / LAST).is_file():
            raise InputError(f"{run_dir}: no {LAST} to resume from")
        config = resume_config(run_dir, list(overrides))
        trainer = Trainer(config, run_dir=run_dir, resume=True)
    else:
        config = load_config(config_path, overrides)
        trainer = Trainer(config, out=out)
    try:
        trainer.fit()
    finally:
        trainer.close()
    return trainer


__all__ = ["Trainer", "TrainingModule", "StepBatchSampler", "GlobalIndexDataset", "train", "load_config"]
