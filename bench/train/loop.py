"""The training loop shared by AMER and Single-Query.

Per step: a batch of training queries; for each, one gold doc per answer cluster (drawn at random when a cluster has
several) in a random order, and one random corpus doc per positive as its negative; the frozen document embeddings
of both; the query encoder's predictions; the loss (matched InfoNCE for AMER, InfoNCE on one randomly drawn target
for Single-Query); AdamW with β = (0.9, 0.98), linear warm-up then linear decay, gradient clipping. 10% of the
training queries (seeded) are held out; the weights with the lowest validation loss are kept. Validation runs the
model as at inference — AMER feeds its own predictions at every step — with fixed targets and negatives, so losses
from different steps compare.

Everything that samples draws from generators seeded by `TrainConfig.seed`: the same seed gives the same weights.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from rich.console import Console

from bench.errors import BenchError
from bench.models.query_encoder import QueryEncoder
from bench.progress import STDERR, make_progress
from bench.task import Split
from bench.train.loss import matched_infonce
from bench.train.schedule import SAMPLING_MODES, linear_warmup_decay, sampling_probability

OBJECTIVES = ("amer", "single")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. `objective` is `amer` (m predictions, matched loss) or `single` (one prediction)."""

    objective: str = "amer"
    steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.01
    warmup: float = 0.05
    clip: float = 1.0
    tau: float = 0.05
    sampling: str = "scheduled"
    sampling_cap: float = 0.8
    val_fraction: float = 0.1
    eval_every: int = 100
    seed: int = 0
    device: str = "cpu"
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, got {self.sampling!r}")


@dataclass
class TrainingExamples:
    """Vector queries and their answer clusters as corpus rows, laid out for vectorised sampling.

    Cluster c of query q has `counts[q, c]` gold docs, `docs[starts[q, c] : starts[q, c] + counts[q, c]]`;
    count 0 marks padding (queries with fewer clusters than the most in the split).
    """

    inputs: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    docs: np.ndarray

    @classmethod
    def from_split(cls, split: Split) -> TrainingExamples:
        if split.vectors is None:
            raise BenchError(f"split {split.name!r} has text queries; trained query encoders take vector queries "
                             "for now (text queries need a pretrained backbone and its tokenizer)")
        tg = split.targets
        t_max = int(tg.n_clusters.max())
        order = np.lexsort((tg.cluster, tg.query))
        docs = tg.doc[order]
        pair = tg.query[order] * t_max + tg.cluster[order]
        uniq, first, count = np.unique(pair, return_index=True, return_counts=True)
        starts = np.zeros(len(split) * t_max, dtype=np.int64)
        counts = np.zeros(len(split) * t_max, dtype=np.int64)
        starts[uniq] = first
        counts[uniq] = count
        return cls(np.asarray(split.vectors, dtype=np.float32), starts.reshape(-1, t_max),
                   counts.reshape(-1, t_max), docs.astype(np.int64))

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def n_targets(self) -> int:
        return int(self.starts.shape[1])

    def subset(self, idx: np.ndarray) -> TrainingExamples:
        return TrainingExamples(self.inputs[idx], self.starts[idx], self.counts[idx], self.docs)

    def sample(self, idx: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One gold doc per cluster of each query in `idx`, clusters in random order, padding last.

        Returns rows (B, T) of corpus rows and mask (B, T), True for real targets.
        """
        starts, counts = self.starts[idx], self.counts[idx]
        mask = counts > 0
        pick = starts + np.minimum((rng.random(starts.shape) * counts).astype(np.int64), np.maximum(counts - 1, 0))
        rows = np.where(mask, self.docs[np.where(mask, pick, 0)], 0)
        order = np.argsort(rng.random(starts.shape) + (~mask), axis=1, kind="stable")
        return np.take_along_axis(rows, order, axis=1), np.take_along_axis(mask, order, axis=1)


@dataclass
class TrainResult:
    """The kept weights and how training went (stored in the checkpoint's metadata)."""

    state_dict: dict[str, torch.Tensor]
    best_step: int
    best_val_loss: float
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        best = self.best_val_loss if math.isfinite(self.best_val_loss) else None
        return {"best_step": self.best_step, "best_val_loss": best,
                "train_seconds": round(self.seconds, 2), "history": self.history}


def resolve_device(device: str) -> torch.device:
    """`auto` → CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise BenchError("device=cuda asked for, but torch sees no CUDA device")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise BenchError(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


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


def _autocast(device: torch.device, precision: str) -> tuple[Callable[[], Any], bool]:
    """A context factory for mixed precision on GPU (bf16 when supported, else fp16 with loss scaling); fp32 on CPU."""
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext, False
    if precision == "bf16" or (precision == "auto" and torch.cuda.is_bf16_supported()):
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16), False
    return lambda: torch.autocast("cuda", dtype=torch.float16), True


def _batches(n: int, size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless batches: successive slices of fresh random permutations (each epoch sees every example once)."""
    buf = np.empty(0, dtype=np.int64)
    while True:
        while len(buf) < size:
            buf = np.concatenate([buf, rng.permutation(n)])
        yield buf[:size]
        buf = buf[size:]


class Trainer:
    """Trains one QueryEncoder on TrainingExamples against frozen corpus embeddings."""

    def __init__(self, model: QueryEncoder, examples: TrainingExamples, corpus: np.ndarray, cfg: TrainConfig,
                 console: Console | None = None) -> None:
        if len(examples) < 2 and cfg.val_fraction > 0:
            raise BenchError("training needs at least 2 queries (one is held out for validation)")
        self.model = model
        self.cfg = cfg
        self.console = console
        self.device = resolve_device(cfg.device)
        self.corpus = torch.from_numpy(np.array(corpus, dtype=np.float32)).to(self.device)
        split_rng = np.random.default_rng([cfg.seed, 1])
        perm = split_rng.permutation(len(examples))
        n_val = 0 if cfg.val_fraction <= 0 else max(1, round(cfg.val_fraction * len(examples)))
        self.train_ex = examples.subset(np.sort(perm[n_val:]))
        self.val_ex = examples.subset(np.sort(perm[:n_val])) if n_val else None
        self.m = examples.n_targets if cfg.objective == "amer" else 1
        if self.val_ex is not None:  # fixed targets and negatives: validation losses of different steps compare
            val_rng = np.random.default_rng([cfg.seed, 3])
            self.val_rows, self.val_mask = self.val_ex.sample(np.arange(len(self.val_ex)), val_rng)
            self.val_neg = val_rng.integers(0, len(self.corpus), self.val_rows.shape)

    def _tensors(self, ex: TrainingExamples, idx: np.ndarray, rows: np.ndarray, mask: np.ndarray,
                 neg: np.ndarray) -> tuple[torch.Tensor, ...]:
        if self.cfg.objective == "single":  # one target per query: the first of the shuffled clusters
            rows, mask, neg = rows[:, :1], mask[:, :1], neg[:, :1]
        x = torch.from_numpy(ex.inputs[idx]).to(self.device)
        pos = self.corpus[torch.from_numpy(rows).to(self.device)]
        negs = self.corpus[torch.from_numpy(neg).to(self.device)]
        return x, pos, negs, torch.from_numpy(mask).to(self.device)

    def _loss(self, x: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, mask: torch.Tensor, p: float,
              gen: torch.Generator | None, teacher: bool) -> torch.Tensor:
        prefix = self.model.vector_prefix(x)
        preds = self.model.rollout(prefix, self.m, teacher=pos if teacher else None, teacher_mask=mask,
                                   p_predicted=p, generator=gen)
        loss, _ = matched_infonce(preds, pos, neg, self.cfg.tau, mask)
        return loss

    @torch.no_grad()
    def validation_loss(self) -> float:
        """Mean loss over the held-out queries, predictions generated as at inference."""
        assert self.val_ex is not None
        was_training = self.model.training
        self.model.eval()
        autocast, _ = _autocast(self.device, self.cfg.precision)
        total, weight = 0.0, 0
        n = len(self.val_ex)
        for start in range(0, n, self.cfg.batch_size):
            idx = np.arange(start, min(n, start + self.cfg.batch_size))
            x, pos, neg, mask = self._tensors(self.val_ex, idx, self.val_rows[idx], self.val_mask[idx],
                                              self.val_neg[idx])
            with autocast():
                loss = self._loss(x, pos, neg, mask, 1.0, None, teacher=False)
            w = int(mask.sum())
            total += float(loss) * w
            weight += w
        self.model.train(was_training)
        return total / weight

    def run(self) -> TrainResult:
        cfg = self.cfg
        model = self.model.to(self.device)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: linear_warmup_decay(s, cfg.steps, cfg.warmup))
        autocast, use_scaler = _autocast(self.device, cfg.precision)
        scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        rng = np.random.default_rng([cfg.seed, 2])
        gen = torch.Generator().manual_seed(cfg.seed)
        batches = _batches(len(self.train_ex), min(cfg.batch_size, len(self.train_ex)), rng)
        best_val, best_step, best_state = math.inf, -1, None
        history: list[dict[str, float]] = []
        window: list[float] = []
        ema: float | None = None
        t0 = time.perf_counter()
        label = "train AMER" if cfg.objective == "amer" else "train Single-Query"
        console = self.console or STDERR
        log_every = max(1, cfg.steps // 10)
        with make_progress(console) as progress:
            bar = progress.add_task(label, total=cfg.steps, status="")
            for step in range(cfg.steps):
                p = sampling_probability(step, cfg.steps, cfg.sampling, cfg.sampling_cap)
                idx = next(batches)
                rows, mask = self.train_ex.sample(idx, rng)
                neg = rng.integers(0, len(self.corpus), rows.shape)
                x, pos, negs, mask_t = self._tensors(self.train_ex, idx, rows, mask, neg)
                with autocast():
                    loss = self._loss(x, pos, negs, mask_t, p, gen, teacher=True)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(opt)
                else:
                    loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                sched.step()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise BenchError(f"training diverged at step {step}: loss {value} (try a lower lr)")
                window.append(value)
                ema = value if ema is None else 0.98 * ema + 0.02 * value
                last = step + 1 == cfg.steps
                if (step + 1) % cfg.eval_every == 0 or last:
                    entry = {"step": step + 1, "train_loss": float(np.mean(window)), "p_predicted": p,
                             "lr": opt.param_groups[0]["lr"]}
                    window = []
                    if self.val_ex is not None:
                        val = self.validation_loss()
                        entry["val_loss"] = val
                        if val < best_val:
                            best_val, best_step = val, step + 1
                            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    history.append(entry)
                best = f" · val best {best_val:.3f}@{best_step}" if best_step > 0 else ""
                sampling = f" · p {p:.2f}" if cfg.objective == "amer" else ""
                status = f"loss {ema:.3f}{sampling}{best}"
                progress.update(bar, advance=1, status=status)
                if not console.is_terminal and ((step + 1) % log_every == 0 or last):  # logs get plain lines
                    console.print(f"{label}: step {step + 1}/{cfg.steps} · {status} · "
                                  f"{time.perf_counter() - t0:.0f} s", highlight=False)
        if best_state is None:  # no validation split: keep the final weights
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best_step = cfg.steps
        model.load_state_dict(best_state)
        model.eval()
        return TrainResult(best_state, best_step, best_val, time.perf_counter() - t0, history)
