"""FAISS on GPUs: how an index is cloned onto the placement's GPUs (sharded when there are several, float16 on
request), and the note recorded when it cannot be."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.device import Placement, faiss_gpu_count

if TYPE_CHECKING:
    import faiss  # imported where used: `bench list` and `--help` load no FAISS


def gpu_available() -> bool:
    return faiss_gpu_count() > 0


@dataclass(frozen=True)
class GpuPlan:
    """How an index goes to the GPU(s): which ordinals, sharded or replicated, float16 storage."""

    gpus: tuple[int, ...]
    shard: bool
    float16: bool

    def record(self) -> dict[str, Any]:
        return {"gpus": list(self.gpus), "shard": self.shard, "float16": self.float16}


def gpu_plan(placement: Placement, fp16: bool) -> GpuPlan | None:
    """None on the CPU; else the placement's GPUs, sharded across them when there are several."""
    if not placement.on_gpu or not placement.gpus:
        return None
    return GpuPlan(tuple(placement.gpus), shard=len(placement.gpus) > 1, float16=fp16)


def cloner_options(plan: GpuPlan, lib: Any = None) -> Any:
    """FAISS's GpuMultipleClonerOptions for a plan (float16 storage and coarse quantizer on request, sharding);
    `lib` is the faiss module (default: the installed one)."""
    if lib is None:
        import faiss as lib
    co = lib.GpuMultipleClonerOptions()
    co.shard = plan.shard
    co.useFloat16 = plan.float16
    co.useFloat16CoarseQuantizer = plan.float16
    return co


def to_gpu(index: faiss.Index, plan: GpuPlan, lib: Any = None) -> tuple[Any, list[Any]]:
    """Clone a CPU index onto the plan's GPUs; returns (GPU index, the resources that must outlive it)."""
    if lib is None:
        import faiss as lib
    resources = [lib.StandardGpuResources() for _ in plan.gpus]
    co = cloner_options(plan, lib)
    return lib.index_cpu_to_gpu_multiple_py(resources, index, co, list(plan.gpus)), resources


def gpu_note(placement: Placement, what: str) -> str | None:
    if not placement.on_gpu:
        return None
    if faiss_gpu_count() == 0:
        return f"{what} on the CPU: this faiss has no GPU support (install faiss-gpu-cu12)"
    return None

