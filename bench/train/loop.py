"""The trainer shared by AMER and Single-Query, assembled from parts a reader can see:

- data (bench/train/data.py): examples, the global batch sampler, targets and negatives (never an example's own
  gold), corpus rows gathered per batch from the embedding store (`gather_rows`; no corpus copy on the device);
- the objective (bench/train/objectives/, one file each, chosen by `TrainConfig.objective`): how many vectors the
  model emits, which targets it trains on, the loss;
- the distribution strategy (bench/train/strategy.py): one process, or DDP under torchrun — every process draws the
  same global batch and trains on its slice, candidates gathered across processes;
- hooks (bench/train/hooks.py): validation with best-weights keeping, logging, resumable checkpoints.

Per step: the global batch (one gold doc per answer cluster in random order, one random negative per positive, and
per example and position whether AMER feeds its own prediction, with p from the scheduled-sampling schedule),
`grad_accum` micro-batches of it, each split across processes; AdamW with β = (0.9, 0.98), linear warm-up then
linear decay, gradient clipping. The recipe (bench/train/config.py, `RECIPES`) may take each cluster's first gold
document, negatives fixed per example, batches of one answer count, and after every AMER step one more optimiser
step on one random target per query (the learning-rate schedule not stepped for it). 10% of the training queries
(seeded) are held out; the weights with the lowest validation loss are kept. Validation runs the model as at
inference with fixed targets and negatives.

Everything that samples draws from generators seeded by `TrainConfig.seed`, and their states go into the resumable
checkpoint: the same seed gives the same weights, interrupted or not.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from bench.errors import BenchError
from bench.models.query_encoder import QueryEncoder
from bench.train.config import TrainConfig
from bench.train.data import (
    Batch,
    BatchSampler,
    TrainingExamples,
    corpus_size,
    draw_batch,
    fixed_negatives,
    gather_rows,
)
from bench.train.hooks import Checkpointing, Hook, Logging, StepRecord, Validation, load_training_state
from bench.train.objectives import LossInputs, Objective, get_objective
from bench.train.placement import autocast, resolve_device, torch_threads
from bench.train.schedule import linear_warmup_decay, sampling_probability
from bench.train.strategy import SingleProcess, Strategy

__all__ = ["TrainConfig", "TrainResult", "Trainer", "TrainingExamples", "resolve_device", "torch_threads"]


@dataclass
class TrainResult:
    """The kept weights and how training went (stored in the checkpoint's metadata)."""

    state_dict: dict[str, torch.Tensor]
    best_step: int
    best_val_loss: float
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0

    def record(self) -> dict[str, Any]:
        best = self.best_val_loss if math.isfinite(self.best_val_loss) else None
        return {"best_step": self.best_step, "best_val_loss": best, "train_seconds": round(self.seconds, 2),
                "history": self.history, "resumed_from_step": self.resumed_from}


class Diverged(Exception):
    """Training went numerically wrong (a non-finite loss or model output); the loop turns it into one error line
    naming the step and the setting to change."""


class Trainer:
    """Trains one QueryEncoder on TrainingExamples against frozen corpus embeddings (an array-like store)."""

    def __init__(self, model: QueryEncoder, examples: TrainingExamples, corpus: Any, cfg: TrainConfig,
                 console: Console | None = None, strategy: Strategy | None = None, state_path: Path | None = None,
                 hooks: list[Hook] | None = None) -> None:
        if len(examples) < 2 and cfg.val_fraction > 0:
            raise BenchError("training needs at least 2 queries (one is held out for validation)")
        self.model = model
        self.cfg = cfg
        self.console = console
        self.objective = get_objective(cfg.objective, cfg)
        self.strategy = strategy or SingleProcess()
        self.device = resolve_device(cfg.device, cfg.precision)
        self.corpus = corpus
        self.n_corpus = corpus_size(corpus)
        split_rng = np.random.default_rng([cfg.seed, 1])
        perm = split_rng.permutation(len(examples))
        n_val = 0 if cfg.val_fraction <= 0 else max(1, round(cfg.val_fraction * len(examples)))
        self.train_ex = examples.subset(np.sort(perm[n_val:]))
        self.val_ex = examples.subset(np.sort(perm[:n_val])) if n_val else None
        self.n_targets = examples.n_targets
        self.recipe = cfg.recipe_values()  # the recipe's parameters, resolved (explicit values win)
        self.first = self.recipe["positive"] == "first"
        # the reference's negatives: drawn once per training example (one per answer slot) and kept every epoch
        self.fixed_neg = (fixed_negatives(self.train_ex, self.n_corpus, np.random.default_rng([cfg.seed, 4]))
                          if self.recipe["negatives"] == "fixed" else None)
        # one-label steps (AMER only; Single-Query's own steps are already one-label)
        self.one_label: Objective | None = (get_objective("rand1", cfg) if self.recipe["one_label"] and
                                            self.objective.autoregressive else None)
        self.one_label_sampler: BatchSampler | None = None
        self.val_batch: Batch | None = None
        if self.val_ex is not None:  # fixed targets and negatives: validation losses of different steps compare
            val_rng = np.random.default_rng([cfg.seed, 3])
            self.val_batch = draw_batch(self.val_ex, np.arange(len(self.val_ex)), self.n_corpus, 1.0, val_rng,
                                        self.objective.select, self.first)
        self.hooks = hooks if hooks is not None else [Validation(), Logging()]
        if state_path is not None and cfg.checkpoint_every > 0:
            self.hooks.append(Checkpointing(state_path, cfg.checkpoint_every))
        self.state_path = state_path
        self.start_step = 0
        self.autocast, use_scaler = autocast(self.device, cfg.precision)
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    # -- parts ----------------------------------------------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        """A copy of what trains (for LoRA: adapters and projections, not the frozen base)."""
        return {k: v.detach().clone() for k, v in self.model.trainable_state_dict().items()}

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_trainable_state_dict(state)

    def validation_hook(self) -> Validation | None:
        return next((h for h in self.hooks if isinstance(h, Validation)), None)

    def _inputs(self, ex: TrainingExamples, batch: Batch
                ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Model inputs, positives, negatives, target mask and feeding decisions of a batch, on the device."""
        inputs = {k: v.to(self.device) for k, v in ex.inputs.batch(batch.idx).items()}
        pos = torch.from_numpy(gather_rows(self.corpus, batch.rows)).to(self.device)
        neg = torch.from_numpy(gather_rows(self.corpus, batch.neg)).to(self.device)
        mask = torch.from_numpy(batch.mask).to(self.device)
        use_pred = torch.from_numpy(batch.use_pred).to(self.device)
        return inputs, pos, neg, mask, use_pred

    def batch_loss(self, model: Any, ex: TrainingExamples, batch: Batch, teacher: bool, dist: Any,
                   objective: Objective | None = None) -> torch.Tensor:
        """The objective's loss of a (local) batch: predictions from `model` (the DDP wrapper while training);
        `objective` another than the run's (the one-label steps)."""
        objective = objective or self.objective
        inputs, pos, neg, mask, use_pred = self._inputs(ex, batch)
        m = objective.n_predictions(pos.shape[1])
        with self.autocast():
            preds = model(inputs, m, teacher=pos if teacher else None, teacher_mask=mask, use_pred=use_pred)
            if not bool(torch.isfinite(preds).all()):  # weights blown up by too large a step: no loss can follow
                raise Diverged("the model's outputs are no longer finite numbers")
            stop = getattr(self.model, "stop_logits", None)  # set by this forward when the model has a stop head
            return objective.loss(LossInputs(preds, pos, neg, mask, self.cfg.tau, self.cfg.reduction, dist,
                                             stop_logits=stop))

    @torch.no_grad()
    def validation_loss(self) -> float:
        """Mean loss over the held-out queries, predictions generated as at inference (each process computes all
        of it: the same value everywhere, so every process keeps the same best weights)."""
        assert self.val_ex is not None and self.val_batch is not None
        was_training = self.model.training
        self.model.eval()
        total, weight = 0.0, 0.0
        n = len(self.val_ex)
        for start in range(0, n, self.cfg.batch_size):
            part = self.val_batch.slice(slice(start, min(n, start + self.cfg.batch_size)))
            loss = self.batch_loss(self.model, self.val_ex, part, teacher=False, dist=None)
            w = float(len(part.idx)) if self.cfg.reduction == "example" else float(part.mask.sum())
            total += float(loss) * w
            weight += w
        self.model.train(was_training)
        return total / weight

    def training_state(self, step: int) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly as an uninterrupted one."""
        return {
            "step": step,
            "model": self.weights(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "sampler": self.sampler.state_dict(),
            "one_label_sampler": self.one_label_sampler.state_dict() if self.one_label_sampler is not None else None,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "hooks": [h.state_dict() for h in self.hooks],
            "config": self._resume_config(),
        }

    def _resume_config(self) -> dict[str, Any]:
        """What a saved state must match to be resumed: the config, less what does not change the weights."""
        return {k: v for k, v in vars(self.cfg).items() if k not in ("checkpoint_every", "device")}

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("config") != self._resume_config():
            raise BenchError(f"{self.state_path}: the saved training state belongs to another config; remove it")
        self.load_weights(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        if self.one_label_sampler is not None:
            self.one_label_sampler.load_state_dict(state["one_label_sampler"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        for hook, hs in zip(self.hooks, state["hooks"], strict=False):
            hook.load_state_dict(hs)
        self.start_step = int(state["step"])

    # -- one step -------------------------------------------------------------------------------------------------
    def train_step(self, step: int, wrapped: Any) -> tuple[float, float]:
        """One optimiser step on the next global batch; returns (loss of the global batch, p). With one-label steps
        on (`one_label`), one more optimiser step follows on one random target per query of another batch, the
        learning-rate schedule not stepped for it (the reference's `mix_one_label_shuffled`)."""
        cfg = self.cfg
        p = sampling_probability(step, cfg.steps, cfg.sampling, cfg.sampling_cap, float(self.recipe["srm"]))
        batch = self.draw(self.sampler, p, self.objective)
        local_total = self.optimise(wrapped, batch, self.objective)
        self.sched.step()
        if self.one_label is not None and self.one_label_sampler is not None:
            self.optimise(wrapped, self.draw(self.one_label_sampler, 0.0, self.one_label), self.one_label)
        (value,) = self.strategy.sum_floats(local_total)
        if not math.isfinite(value):
            raise Diverged(f"the loss is {value}")
        return value, p

    def draw(self, sampler: BatchSampler, p: float, objective: Objective) -> Batch:
        """The next global batch of `sampler` for `objective` (under majority batching, its modal count only)."""
        batch = draw_batch(self.train_ex, sampler.next(), self.n_corpus, p, sampler.rng, objective.select,
                           self.first, self.fixed_neg)
        return batch.majority() if self.recipe["batching"] == "majority" else batch

    def optimise(self, wrapped: Any, batch: Batch, objective: Objective) -> float:
        """Forward and backward over `grad_accum` micro-batches of `batch`, clip, one optimiser step; this
        process's loss of the batch."""
        cfg = self.cfg
        self.opt.zero_grad(set_to_none=True)
        micro = [m for m in np.array_split(np.arange(len(batch.idx)), cfg.grad_accum) if len(m)]
        local_total = 0.0
        for a, part in enumerate(micro):
            sub = batch.slice(slice(int(part[0]), int(part[-1]) + 1))
            local = sub.slice(self.strategy.local(len(sub.idx)))
            sync = a == len(micro) - 1
            with (self.strategy.no_sync(wrapped) if not sync else _null()):
                loss = self.batch_loss(wrapped, self.train_ex, local, teacher=True, dist=self.strategy.collective(),
                                       objective=objective)
                scaled = loss * (self.strategy.backward_scale / len(micro))
                if self.scaler is not None:
                    self.scaler.scale(scaled).backward()
                else:
                    scaled.backward()
            local_total += float(loss.detach()) / len(micro)
        if self.scaler is not None:
            self.scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_(self.trainable, float(self.recipe["clip"]))
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        return local_total

    # -- the run --------------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg = self.cfg
        model = self.model.to(self.device)
        model.train()
        per_step = self.strategy.world_size * cfg.grad_accum
        batch = min(cfg.batch_size, len(self.train_ex))
        batch -= batch % per_step
        if batch <= 0:
            raise BenchError(f"batch_size {cfg.batch_size} is too small for {self.strategy.world_size} process(es) × "
                             f"grad_accum {cfg.grad_accum} (or the training split too small)")
        if self.recipe["batching"] == "majority" and self.strategy.world_size > 1:
            raise BenchError("batching=majority drops examples per batch, which one process alone can do; train "
                             "without torchrun or with -r batching=padded")
        wrapped = self.strategy.wrap(model)
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        # fused: one kernel for every parameter (1.9 → 1.1 ms a step on CPU)
        self.opt = torch.optim.AdamW(self.trainable, lr=cfg.lr, betas=cfg.betas, eps=float(self.recipe["eps"]),
                                     weight_decay=cfg.weight_decay, fused=True)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt,
                                                       lambda s: linear_warmup_decay(s, cfg.steps, cfg.warmup))
        by_count = self.train_ex.n_answers() if self.recipe["batching"] == "majority" else None
        self.sampler = BatchSampler(len(self.train_ex), batch, np.random.default_rng([cfg.seed, 2]), by_count)
        self.one_label_sampler = (BatchSampler(len(self.train_ex), batch, np.random.default_rng([cfg.seed, 5]),
                                               by_count) if self.one_label is not None else None)
        saved = load_training_state(self.state_path) if self.state_path is not None else None
        if saved is not None:
            self._restore(saved)
            if self.strategy.is_main:
                (self.console or Console(stderr=True)).print(
                    f"[dim]resuming training from step {self.start_step} ({self.state_path})[/]", highlight=False)
        t0 = time.perf_counter()
        for hook in self.hooks:
            hook.on_start(self)
        try:
            for step in range(self.start_step, cfg.steps):
                try:
                    value, p = self.train_step(step, wrapped)
                    done = step + 1
                    rec = StepRecord(done, value, p, self.opt.param_groups[0]["lr"],
                                     is_eval=done % cfg.eval_every == 0 or done == cfg.steps)
                    for hook in self.hooks:
                        hook.after_step(self, rec)
                except Diverged as exc:
                    raise BenchError(f"training diverged at step {step + 1} of {cfg.steps}: {exc}; lower the learning "
                                     f"rate (-r lr=, now {cfg.lr:g})") from None
        finally:
            for hook in self.hooks:
                if isinstance(hook, Logging):
                    hook.on_end(self)
        for hook in self.hooks:
            if not isinstance(hook, Logging):
                hook.on_end(self)
        val = self.validation_hook()
        best_state = val.best_state if val is not None else None
        best_step, best_val = (val.best_step, val.best_val) if val is not None else (-1, math.inf)
        if best_state is None:  # no validation split: keep the final weights
            best_state = self.weights()
            best_step = cfg.steps
        self.load_weights(best_state)
        model.eval()
        log = next((h for h in self.hooks if isinstance(h, Logging)), None)
        return TrainResult(model.trainable_state_dict(), best_step, best_val, time.perf_counter() - t0,
                           log.history if log else [], self.start_step)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
