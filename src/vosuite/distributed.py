"""Multi-process runs: ``torchrun --nproc_per_node N -m vosuite train ...`` and ``... infer ...``
run unchanged (across machines too, as torchrun allows).

With ``WORLD_SIZE`` > 1 in the environment (set by torchrun) the process group is initialised
from the environment variables (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``): NCCL on GPUs, gloo
on CPU. Training: every rank draws its own shard of each global batch; only rank 0 writes files.
Inference: every rank takes its share of the videos (:func:`shard`) and writes their masks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from vosuite.errors import InputError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # init_distributed joined the process group (not a caller before it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SUPPORTED_DEVICES = ("cpu", "cuda", "mps")


def resolve_device(name: str, local_rank: int = 0, option: str = "--device") -> torch.device:
    """The device ``name`` stands for, checked against this torch build: ``auto`` -> this rank's GPU
    when CUDA is available, else the CPU; ``cuda`` -> this rank's GPU; an unknown name or a device
    this build or machine lacks is an InputError naming ``option``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise InputError(f"{option} {name!r}: not a device (cpu, cuda, cuda:N, mps)") from None
    if device.type not in SUPPORTED_DEVICES:
        raise InputError(f"{option} {name!r}: vosuite runs on {', '.join(SUPPORTED_DEVICES)}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"{option} {name}: no MPS device here; use cpu")
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise InputError(f"{option} {name}: this PyTorch build ({torch.__version__}) sees no CUDA device; use cpu")
    if device.index is None:
        device = torch.device("cuda", local_rank)
    if device.index >= torch.cuda.device_count():
        raise InputError(f"{option} {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def init_distributed(device: str = "auto") -> DistContext:
    """The context of this process; joins the process group when ``WORLD_SIZE`` > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    target = resolve_device(device, local_rank)
    joins = world > 1 and not dist.is_initialized()
    if joins:
        backend = "nccl" if target.type == "cuda" else "gloo"
        if target.type == "cuda":
            torch.cuda.set_device(target)
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=target, owns_group=joins)


def shutdown(context: DistContext) -> None:
    """Leave the process group if :func:`init_distributed` joined it (a caller's own group stays
    theirs). Call it before the process exits: gloo's threads torn down at interpreter exit can
    abort the process ("terminate called without an active exception")."""
    if context.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(values: Mapping[str, float], context: DistContext) -> dict[str, float]:
    """Each value averaged over the ranks (the same dict on every rank)."""
    if not context.enabled or not values:
        return dict(values)
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor)
    tensor /= context.world_size
    return dict(zip(keys, tensor.tolist(), strict=True))


def sum_over_ranks(values: list[float], context: DistContext) -> list[float]:
    """Each value summed over the ranks (the same list on every rank)."""
    if not context.enabled:
        return list(values)
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def shard(items: list, context: DistContext) -> list:
    """This rank's share of ``items``: every ``world_size``-th one from its rank (round robin, so
    long and short videos spread over the ranks)."""
    return items[context.rank::context.world_size]


def broadcast_float(value: float, context: DistContext) -> float:
    """Rank 0's ``value`` on every rank."""
    if not context.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=context.device)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def barrier(context: DistContext) -> None:
    """Wait for every rank."""
    if context.enabled:
        dist.barrier()
