"""How training is spread over processes: one process, or PyTorch DDP under `torchrun`.

Every process draws the same global batch from identically seeded generators and takes its own contiguous slice
(`local`); the loss gathers the candidates (targets and negatives) of every slice, so in-batch negatives span the
global batch, and normalises by the global count, so the per-process losses sum to the single-process loss of the
same global batch. DDP averages gradients over processes, hence `backward_scale` = world size. Progress output and
checkpoint writes happen on rank 0 only (`is_main`).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from typing import Any

import torch
from torch import nn

from bench.errors import BenchError


class SingleProcess:
    """Training in this process alone."""

    rank = 0
    world_size = 1
    is_main = True
    backward_scale = 1.0

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def local(self, n: int) -> slice:
        return slice(0, n)

    def collective(self) -> Any:
        return None

    def no_sync(self, model: nn.Module) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def sum_floats(self, *values: float) -> list[float]:
        return list(values)

    def barrier(self) -> None:
        pass

    def close(self) -> None:
        pass


class _AllGather(torch.autograd.Function):
    """all_gather that keeps the gradient of this process's own part: backward sums the gradient of the gathered
    tensor over processes (every process's loss may use this part) and returns this process's slice of it. (AMER's
    candidates are frozen document embeddings, so no gradient flows here today; a trainable document side would.)"""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        import torch.distributed as dist

        parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, local.contiguous())
        ctx.rank, ctx.n = dist.get_rank(), local.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


class DistributedDataParallel:
    """torch.distributed DDP: gloo on CPU, NCCL on CUDA; one process per device, launched by torchrun."""

    def __init__(self, device: torch.device, backend: str | None = None) -> None:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = backend or ("nccl" if device.type == "cuda" else "gloo")
            dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
            self._owns_group = True
        else:
            self._owns_group = False
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.is_main = self.rank == 0
        self.backward_scale = float(self.world_size)
        self.device = device

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index or 0] if self.device.type == "cuda" else None
        # find_unused_parameters: a vector-query model never uses the backbone's token table, a text one the
        # vector projection.
        return DDP(model, device_ids=ids, find_unused_parameters=True)

    def local(self, n: int) -> slice:
        if n % self.world_size:
            raise BenchError(f"the global batch ({n}) must be a multiple of the number of processes "
                             f"({self.world_size}) × grad_accum")
        per = n // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)

    def collective(self) -> DistributedDataParallel:
        return self

    # -- what a loss needs (bench.train.loss.Collective) ---------------------------------------------------------
    def gather(self, local: torch.Tensor) -> tuple[torch.Tensor, int]:
        if local.dtype == torch.bool:
            return _AllGather.apply(local.to(torch.uint8)).bool(), self.rank * local.shape[0]
        return _AllGather.apply(local), self.rank * local.shape[0]

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        out = value.detach().clone()
        dist.all_reduce(out)
        return out

    def no_sync(self, model: nn.Module) -> contextlib.AbstractContextManager[Any]:
        return model.no_sync()  # type: ignore[operator]

    def sum_floats(self, *values: float) -> list[float]:
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()


Strategy = SingleProcess | DistributedDataParallel


def under_torchrun() -> bool:
    """True in a process started by torchrun with more than one process in the job."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def make_strategy(device: torch.device) -> Strategy:
    """DDP when launched by torchrun with WORLD_SIZE > 1, else a single process."""
    return DistributedDataParallel(device) if under_torchrun() else SingleProcess()
