"""Process-group setup for single-process and `torchrun --nproc_per_node N` runs.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them this is a plain single process. The
backend is NCCL when every rank has its own GPU, gloo otherwise (CPU).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Only the main process writes files, logs and the progress bar."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()

    def mean(self, value: float) -> float:
        """Average a Python float over all processes (for logging)."""
        if not self.is_distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def gather_objects(self, obj) -> list:
        """Every process's `obj`, in rank order (on every rank)."""
        if not self.is_distributed:
            return [obj]
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered


def setup_distributed(device: str | None = None) -> DistributedContext:
    """Initialise the process group from torchrun's environment (no-op for a single process).

    device: "cpu", "cuda" or None (= CUDA when available).
    """
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
    else:
        torch_device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=torch_device)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
