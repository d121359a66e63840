"""DDP through torchrun: process group, SyncBN, wrapping, rank-0-only I/O."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    enabled: bool = False
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        if not self.enabled:
            return model
        if device.type == "cuda":
            # timm's converter keeps BatchNormAct2d's activation (torch's would drop it); the root
            # is not a BN, so submodules are replaced in place and state_dict keys stay the same.
            from edgemtl._compat import ensure_torchvision_importable

            ensure_torchvision_importable()
            from timm.layers import convert_sync_batchnorm

            convert_sync_batchnorm(model)
        # DDP rejects torch's SyncBatchNorm on CPU; per-task BN (ASTMT) is ours on every device.
        from edgemtl.train.syncbn import sync_batchnorm

        sync_batchnorm(model, plain=device.type != "cuda")
        # Task-conditional and single-tasking steps leave other tasks' heads unused.
        ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    def broadcast_params(self, params: list[torch.Tensor]) -> None:
        """Start trained parameters DDP does not own (discriminator, balancer weights) from rank 0's
        values, as DDP does for the model's."""
        if self.enabled:
            with torch.no_grad():
                for p in params:
                    dist.broadcast(p.data, src=0)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast_object(self, obj):
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_path(self, path: Path | None) -> Path:
        if not self.enabled:
            return path
        obj = [str(path) if path is not None else None]
        dist.broadcast_object_list(obj, src=0)
        return Path(obj[0])


def distributed() -> bool:
    """Whether this process is one of several DDP processes (a process group of more than one)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def any_process(flag: bool, device: torch.device) -> bool:
    """``flag`` or'ed over the DDP processes (itself when not distributed)."""
    if not distributed():
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def average_gradients(params: list[torch.Tensor]) -> None:
    """Average ``params``' gradients over the DDP processes (nothing when not distributed). A
    parameter without a gradient on a process (its module unused in that step) takes part with
    zeros, so every process calls the same collectives and ends with the same gradients; when no
    process has any gradient, nothing changes."""
    if not params or not distributed():
        return
    if not any_process(any(p.grad is not None for p in params), params[0].device):
        return
    world = dist.get_world_size()
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= world


def setup_distributed() -> DistInfo:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    return DistInfo(True, dist.get_rank(), dist.get_world_size(), local)
