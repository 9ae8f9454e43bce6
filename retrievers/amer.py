"""AMER, the autoregressive multi-embedding retriever (DESIGN §4), and the base of trained query encoders.

`prepare` trains the query encoder against the frozen document embeddings, or loads the checkpoint that the same
config already produced (`--retrain` forces training); `encode_queries` then runs the model alone: AMER emits m_pred
vectors, each generated from the previous ones. Single-Query (retrievers/single_query.py) shares all of it with one
output vector and one randomly drawn target per example and step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.diversity import mean_pairwise_cosine, target_diversity
from bench.errors import BenchError
from bench.models.backbone import BackboneConfig, count_parameters
from bench.models.query_encoder import QueryEncoder
from bench.params import params_dict, positive
from bench.registry import register_retriever
from bench.retriever import Retriever, RunContext
from bench.task import Split
from bench.train.checkpoint import checkpoint_key, checkpoint_path, load_checkpoint, save_checkpoint
from bench.train.loop import TrainConfig, Trainer, TrainingExamples, resolve_device, torch_threads
from bench.train.schedule import SAMPLING_MODES

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Parameters that change how a model is run, not what it learns: left out of the checkpoint key.
INFERENCE_ONLY = ("device", "m_pred", "threads")
_ENCODE_BATCH = 1024


@dataclass(frozen=True)
class QueryEncoderParams:
    """Model and training settings shared by AMER and Single-Query; the defaults reach the synthetic headline."""

    width: int = 128
    layers: int = 2
    heads: int = 4
    ffn: int = 0  # MLP inner width, 0 = 2 × width
    arch: str = "llama"  # random-init backbone family: llama | qwen2
    backbone: str | None = None  # a pretrained causal LM (folder or cached id) instead of a random one
    steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    tau: float = 0.05
    warmup: float = 0.05
    clip: float = 1.0
    weight_decay: float = 0.01
    val_fraction: float = 0.1
    eval_every: int = 100
    input_scale: float = 0.0  # factor on vector queries; 0 = 1/√d
    device: str = "auto"  # auto = the run's --device
    threads: int = 1  # torch CPU threads while training / encoding; 0 = torch's own setting
    precision: str = "auto"  # GPU autocast: auto (bf16 if supported, else fp16) | bf16 | fp16 | fp32

    def __post_init__(self) -> None:
        positive(self, steps=self.steps, batch_size=self.batch_size, lr=self.lr, tau=self.tau, clip=self.clip,
                 eval_every=self.eval_every)
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be in [0, 1), got {self.warmup}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.weight_decay < 0 or self.input_scale < 0 or self.threads < 0:
            raise ValueError("weight_decay, input_scale and threads must be ≥ 0")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        self.backbone_config()  # validates width / layers / heads / arch

    def backbone_config(self) -> BackboneConfig:
        return BackboneConfig(self.arch, self.width, self.layers, self.heads, self.ffn, self.backbone)


@dataclass(frozen=True)
class AmerParams(QueryEncoderParams):
    """AMER adds: how many vectors to emit, and the scheduled-sampling mode (with its ablations)."""

    m_pred: int = 0  # vectors per query at inference; 0 = the most answers of a training query
    sampling: str = "scheduled"  # scheduled (p = min(cap, step/total)) | predicted (p = 1) | teacher (p = 0)
    sampling_cap: float = 0.8

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.m_pred < 0:
            raise ValueError(f"m_pred must be ≥ 0, got {self.m_pred}")
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, got {self.sampling!r}")
        if not 0 <= self.sampling_cap <= 1:
            raise ValueError(f"sampling_cap must be in [0, 1], got {self.sampling_cap}")


class TrainedQueryEncoder(Retriever):
    """A query encoder trained on the task's train split against the frozen corpus embeddings."""

    objective = "amer"

    def __init__(self, params: QueryEncoderParams, name: str, spec: str | None = None) -> None:
        super().__init__(params, name, spec)
        self.model: QueryEncoder | None = None
        self.checkpoint: Path | None = None
        self.meta: dict[str, Any] = {}
        self.trained_now = False

    # -- training / loading -------------------------------------------------------------------------------------
    def key_config(self, ctx: RunContext) -> dict[str, Any]:
        """Everything that shapes the trained weights; its hash names the checkpoint."""
        params = {k: v for k, v in params_dict(self.params).items() if k not in INFERENCE_ONLY}
        return {"retriever": self.name, "objective": self.objective, "params": params, "task": ctx.task.name,
                "task_info": ctx.task.info, "data_hash": ctx.task.data_hash(), "seed": ctx.seed}

    def checkpoint_for(self, ctx: RunContext) -> tuple[Path, dict[str, Any]]:
        config = self.key_config(ctx)
        return checkpoint_path(self.name, checkpoint_key(config)), config

    def prepare(self, ctx: RunContext) -> None:
        """Load the checkpoint this config produced before, or train one (always when ctx.retrain)."""
        path, _ = self.checkpoint_for(ctx)
        if path.exists() and not ctx.retrain:
            self.load_checkpoint(path)
            ctx.console.print(f"[dim]{self.name}: using checkpoint {path}[/]", highlight=False)
            return
        self.train(ctx)

    def train(self, ctx: RunContext) -> Path:
        """Train on ctx.task's train split, keep the weights with the lowest validation loss, save a checkpoint."""
        p = self.params
        path, key_config = self.checkpoint_for(ctx)
        examples = TrainingExamples.from_split(ctx.task.split("train"))
        d_query, d_doc = examples.inputs.shape[1], ctx.corpus_embeddings.shape[1]
        if p.backbone is None and p.width < d_doc:
            ctx.console.print(f"[yellow]warning:[/] width {p.width} < embedding size {d_doc}: a backbone narrower "
                              "than the embeddings is known to fail the linear synthetic task", highlight=False)
        torch.manual_seed(ctx.seed)
        np.random.seed(ctx.seed % 2**32)
        scale = p.input_scale or 1.0 / math.sqrt(d_query)
        model = QueryEncoder(p.backbone_config(), d_query, d_doc, scale)
        cfg = TrainConfig(
            objective="amer" if self.objective == "amer" else "single", steps=p.steps, batch_size=p.batch_size,
            lr=p.lr, weight_decay=p.weight_decay, warmup=p.warmup, clip=p.clip, tau=p.tau,
            sampling=getattr(p, "sampling", "scheduled"), sampling_cap=getattr(p, "sampling_cap", 0.8),
            val_fraction=p.val_fraction, eval_every=p.eval_every, seed=ctx.seed, device=self._device(ctx),
            precision=p.precision,
        )
        with torch_threads(p.threads):
            result = Trainer(model, examples, ctx.corpus_embeddings, cfg, ctx.console).run()
        meta = {
            "retriever": self.name, "objective": self.objective, "model": model.config(),
            "n_targets": examples.n_targets, "n_parameters": count_parameters(model), "key_config": key_config,
            "train": result.record(),
        }
        save_checkpoint(path, result.state_dict, meta)
        self._use(model, meta, path)
        self.trained_now = True
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Load weights and model config from a checkpoint file: enough for inference, no training data needed."""
        ckpt = load_checkpoint(path)
        if ckpt.meta.get("objective") != self.objective:
            raise BenchError(f"checkpoint {path} holds a {ckpt.meta.get('objective')!r} model, not {self.objective!r}")
        try:
            model = QueryEncoder.from_config(ckpt.meta["model"])
            model.load_state_dict(ckpt.state_dict)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise BenchError(f"checkpoint {path}: weights do not fit the stored model config ({exc})") from None
        self._use(model, ckpt.meta, Path(path))
        self.trained_now = False

    def _use(self, model: QueryEncoder, meta: dict[str, Any], path: Path) -> None:
        self.model = model.eval()
        self.meta = meta
        self.checkpoint = path

    def _device(self, ctx: RunContext | None) -> str:
        if self.params.device != "auto" or ctx is None:
            return self.params.device
        return ctx.device

    # -- inference ----------------------------------------------------------------------------------------------
    def m_pred(self) -> int:
        if self.objective != "amer":
            return 1
        return int(getattr(self.params, "m_pred", 0) or self.meta.get("n_targets", 1))

    @torch.no_grad()
    def encode_queries(self, split: Split, ctx: RunContext) -> np.ndarray:
        if self.model is None:
            raise BenchError(f"retriever {self.name!r} has no model: train it or load a checkpoint first")
        if split.vectors is None:
            raise BenchError(f"retriever {self.name!r} takes vector queries for now; split {split.name!r} has texts")
        if split.vectors.shape[1] != self.model.d_query:
            raise BenchError(f"split {split.name!r} has {split.vectors.shape[1]}-dim queries, the checkpoint "
                             f"{self.checkpoint} expects {self.model.d_query}")
        device = resolve_device(self._device(ctx))
        model = self.model.to(device).eval()
        m = self.m_pred()
        out = []
        with torch_threads(self.params.threads):
            for start in range(0, len(split), _ENCODE_BATCH):
                x = torch.from_numpy(np.asarray(split.vectors[start:start + _ENCODE_BATCH], dtype=np.float32))
                out.append(model.generate(x.to(device), m).float().cpu().numpy())
        vecs = np.concatenate(out) if out else np.zeros((0, m, self.model.d_doc), dtype=np.float32)
        self.record_diversity(vecs, split, ctx)
        return vecs.astype(np.float32)

    def record_diversity(self, vecs: np.ndarray, split: Split, ctx: RunContext) -> None:
        """The paper's Figure 5: mean pairwise cosine among each query's predictions and among its targets."""
        if self.objective != "amer":
            return
        targets = target_diversity(split.targets, ctx.corpus_embeddings, mode="representative")
        ctx.extra["output_diversity"] = {
            "pred_mean_pairwise_cos": [float(v) for v in mean_pairwise_cosine(vecs)],
            "target_mean_pairwise_cos": [float(v) for v in targets.cos_sim],
        }

    def info(self) -> dict[str, Any]:
        train = self.meta.get("train", {})
        return {
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "trained_now": self.trained_now,
            "m_pred": self.m_pred() if self.model is not None else None,
            "n_parameters": self.meta.get("n_parameters"),
            "best_step": train.get("best_step"),
            "best_val_loss": train.get("best_val_loss"),
            "train_seconds": train.get("train_seconds"),
        }


@register_retriever(
    "amer",
    description="AMER: a causal transformer emitting m query vectors autoregressively, trained with matched "
                "InfoNCE and scheduled sampling (trains on first use, then reuses its checkpoint)",
    kind="trained",
    params=AmerParams,
)
class AmerRetriever(TrainedQueryEncoder):
    objective = "amer"
