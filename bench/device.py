"""One placement: where a run computes (CPU, one GPU, several GPUs) and in which precision, resolved once.

Every stage (corpus encoding, the FAISS index, dense and mteb retrievers, training) takes a `Placement` instead of
parsing its own `device` / `dtype` strings. One vocabulary:

- device: `auto` (CUDA when torch sees a GPU, else CPU), `cpu`, `cuda` (every visible GPU; torch works on the
  first, or on `LOCAL_RANK` under torchrun), `cuda:N` (that GPU only);
- precision: `auto` (bfloat16 on a GPU that supports it, else float16 on a GPU, float32 on the CPU), `float32`,
  `float16`, `bfloat16` (aliases fp32, fp16, half, bf16). Half precision on the CPU is refused: most CPU kernels are
  slower in it and the results drift from float32.

Under `torchrun` (the environment holds `LOCAL_RANK`), `auto` and `cuda` mean this process's GPU, `cuda:<LOCAL_RANK>`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.errors import BenchError

PRECISIONS = ("float32", "float16", "bfloat16")
_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16", "float": "float32"}


def cuda_count() -> int:
    """GPUs torch can see (0 without torch or CUDA)."""
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def bf16_supported() -> bool:
    import torch

    return bool(torch.cuda.is_bf16_supported())


def faiss_gpu_count() -> int:
    """GPUs FAISS can use: 0 with faiss-cpu (no GPU support compiled in) or without a GPU."""
    import faiss

    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    return int(faiss.get_num_gpus())


@dataclass(frozen=True)
class Placement:
    """Where and in which precision a run computes.

    `gpus` are the CUDA ordinals this process may use (empty on the CPU): FAISS shards an index across all of
    them and corpus encoding can run one process per GPU; torch modules go to `torch_device`."""

    device: str  # "cpu" or "cuda"
    gpus: tuple[int, ...] = ()
    precision: str = "float32"
    requested: str = "auto"  # what was asked for, recorded with results
    local_rank: int | None = None
    source: str = "default"  # where the request came from: "cli", "parameter", "default"
    notes: tuple[str, ...] = field(default=())

    @property
    def on_gpu(self) -> bool:
        return self.device == "cuda"

    @property
    def torch_device(self) -> str:
        """`cpu` or `cuda:N` (the first of this process's GPUs)."""
        return f"cuda:{self.gpus[0]}" if self.on_gpu else "cpu"

    @property
    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.precision)

    @property
    def amp(self) -> str:
        """The short name training code uses for mixed precision: fp32, fp16 or bf16."""
        return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}[self.precision]

    def record(self) -> dict[str, Any]:
        return {"device": self.torch_device, "gpus": list(self.gpus), "precision": self.precision,
                "requested": self.requested, "source": self.source, "local_rank": self.local_rank}


def normalise_precision(requested: str | None) -> str:
    p = (requested or "auto").strip().lower()
    p = _ALIASES.get(p, p)
    if p != "auto" and p not in PRECISIONS:
        raise BenchError(f"precision/dtype must be auto, float32, float16 or bfloat16 (fp32, fp16, bf16), got "
                         f"{requested!r}")
    return p


def resolve(device: str | None = "auto", precision: str | None = "auto", *, source: str = "default",
            env: Mapping[str, str] | None = None, n_gpus: int | None = None) -> Placement:
    """The placement for a device request and a precision request (see the module docstring).

    `env` (default os.environ) supplies LOCAL_RANK under torchrun; `n_gpus` (default: what torch sees) is a
    parameter so that tests can check the GPU branches on a CPU-only machine."""
    env = os.environ if env is None else env
    requested = (device or "auto").strip().lower()
    count = 0 if requested == "cpu" else cuda_count() if n_gpus is None else n_gpus  # `cpu` never imports torch
    rank_text = env.get("LOCAL_RANK")
    local_rank: int | None = None
    if rank_text not in (None, ""):
        try:
            local_rank = int(rank_text)  # type: ignore[arg-type]
        except ValueError:
            raise BenchError(f"environment variable LOCAL_RANK must be an integer, got {rank_text!r}") from None
    gpus: tuple[int, ...]
    if requested == "cpu":
        kind, gpus = "cpu", ()
    elif requested in ("auto", "cuda"):
        if count == 0:
            if requested == "cuda":
                raise BenchError("device=cuda asked for, but torch sees no CUDA GPU")
            kind, gpus = "cpu", ()
        elif local_rank is not None:
            if local_rank >= count:
                raise BenchError(f"LOCAL_RANK={local_rank}, but torch sees only {count} GPU(s)")
            kind, gpus = "cuda", (local_rank,)
        else:
            kind, gpus = "cuda", tuple(range(count))
    elif requested.startswith("cuda:"):
        try:
            ordinal = int(requested.split(":", 1)[1])
        except ValueError:
            raise BenchError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
        if ordinal >= count:
            raise BenchError(f"device={requested} asked for, but torch sees {count} CUDA GPU(s)")
        kind, gpus = "cuda", (ordinal,)
    else:
        raise BenchError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    p = normalise_precision(precision)
    if p == "auto":
        p = ("bfloat16" if bf16_supported() else "float16") if kind == "cuda" else "float32"
    elif p != "float32" and kind != "cuda":
        raise BenchError(f"precision {p} needs a GPU; on the CPU use float32 (or auto)")
    return Placement(kind, gpus, p, requested=requested, local_rank=local_rank, source=source)


def combine(own_device: str, own_precision: str, run: Placement | None) -> Placement:
    """A stage's own request (e.g. `-r device=`) wins; `auto` defers to the run's placement (`--device`)."""
    own_device = (own_device or "auto").lower()
    if run is not None and own_device == "auto":
        if normalise_precision(own_precision) in ("auto", run.precision):
            return run
        return resolve(run.requested, own_precision, source=run.source)
    return resolve(own_device, own_precision, source="parameter" if own_device != "auto" else "default")
