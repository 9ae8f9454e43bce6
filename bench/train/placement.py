"""Where training runs and in what precision: the trainer asks here, and here asks bench/device.py (one placement)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch


def resolve_device(device: str, precision: str = "auto") -> torch.device:
    """The torch device of a request (`auto` → CUDA when present, under torchrun the LOCAL_RANK GPU; else CPU),
    resolved by the run's one placement (bench/device.py)."""
    from bench.device import resolve

    return torch.device(resolve(device, precision).torch_device)


def autocast(device: torch.device, precision: str) -> tuple[Callable[[], Any], bool]:
    """A context factory for mixed precision on GPU (bf16 when supported, else fp16 with loss scaling); fp32 on CPU.

    Returns the factory and whether fp16 loss scaling (GradScaler) is needed.
    """
    from bench.device import resolve

    amp = resolve(str(device), precision).amp
    if device.type != "cuda" or amp == "fp32":
        return contextlib.nullcontext, False
    if amp == "bf16":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16), False
    return lambda: torch.autocast("cuda", dtype=torch.float16), True


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with n torch CPU threads (0 = leave the setting alone), then restore the previous count.

    Small models gain little from a second thread, and on a CPU shared with other jobs a waiting OpenMP thread
    spins: measured here under load ≈ 6 on 2 cores, one training step took 0.35–0.5 s with 1 thread and 9 s with 2.
    """
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
