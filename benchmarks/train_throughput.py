"""Training throughput (examples/s) of the query-encoder trainer against a bare loop doing the same work, on this
machine's CPU (or a GPU with --device cuda).

Two settings:
- synthetic: the default random 2-layer Llama-design backbone (`tiny`) of width 128, batch 128, m = 5 targets,
  d = 128 (the synthetic tasks), 4,000 queries against 100,000 corpus vectors;
- smollm2-lora: SmolLM2-135M-Instruct (offline, bench.models.offline_lm) with LoRA r 64 on q,k,v,o,gate,up,down,
  text queries of limit-small in the chat template, m = 2, against MiniLM-sized (384-d) random unit corpus vectors.

Each prints the harness's examples/s — `Trainer.run` with its default per-step work (batch sampler, scheduled
sampling schedule, objective, strategy, hooks; no validation split, no checkpoints) — and, in the same run, the
examples/s of `bare_step`: the same model, loss, matching and sampling written as one plain loop, as someone would
write it from the paper with the same libraries (numpy sampling, the model's rollout, log-softmax over the batch's
candidates, `scipy.optimize.linear_sum_assignment` per example, backward, clipping, AdamW). Both time steps 3 … N+2
of a fresh model (the first two warm up allocators and caches), alternating which goes first over `--rounds`;
the best round of each counts. The ratio harness ÷ bare is what the harness costs (or saves) over the bare loop.

    python benchmarks/train_throughput.py [--steps 20] [--rounds 2] [--only synthetic|smollm2-lora] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from bench.data.task import Split, Targets
from bench.models import BackboneConfig, QueryEncoder
from bench.train.config import TrainConfig
from bench.train.data import TrainingExamples
from bench.train.hooks import Hook, Logging
from bench.train.loop import Trainer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
WARMUP = 2


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _examples(n: int, m: int, n_corpus: int, vectors: np.ndarray | None, texts: list[str] | None,
              tokenize: object = None) -> TrainingExamples:
    rng = np.random.default_rng(1)
    nested = [[[int(d)] for d in rng.choice(n_corpus, m, replace=False)] for _ in range(n)]
    split = Split("train", [str(i) for i in range(n)], Targets.from_nested(nested), vectors=vectors, texts=texts)
    return TrainingExamples.from_split(split, tokenize=tokenize)


class _Clock(Hook):
    """Notes the time when step WARMUP is done and when the last one is."""

    def __init__(self) -> None:
        self.start = self.end = 0.0

    def after_step(self, trainer: Any, rec: Any) -> None:
        if rec.step == WARMUP:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def harness_rate(make_model: Any, ex: TrainingExamples, corpus: np.ndarray, batch: int, steps: int,
                 device: str) -> float:
    """examples/s of `Trainer.run` (steps WARMUP+1 … WARMUP+steps)."""
    cfg = TrainConfig(steps=steps + WARMUP, batch_size=batch, val_fraction=0.0, eval_every=10**6,
                      checkpoint_every=0, device=device, lr=1e-4)
    clock = _Clock()
    Trainer(make_model(), ex, corpus, cfg, hooks=[Logging(), clock]).run()
    return steps * batch / (clock.end - clock.start)


def bare_step(model: QueryEncoder, opt: torch.optim.Optimizer, ex: TrainingExamples, corpus: np.ndarray,
              batch: int, m: int, p: float, tau: float, rng: np.random.Generator, dev: torch.device) -> float:
    """One training step written plainly: sample, roll out, matched InfoNCE, backward, clip, AdamW."""
    idx = rng.choice(len(ex), batch, replace=False)
    starts, counts = ex.starts[idx], ex.counts[idx]
    mask = counts > 0
    pick = starts + np.minimum((rng.random(starts.shape) * counts).astype(np.int64), np.maximum(counts - 1, 0))
    gold = np.where(mask, ex.docs[np.where(mask, pick, 0)], -1)  # one gold doc per answer (one each here)
    order = np.argsort(rng.random(starts.shape) + ~mask, axis=1)  # answers in random order, padding last
    rows, mask = np.take_along_axis(gold, order, 1), np.take_along_axis(mask, order, 1)
    neg = rng.integers(0, len(corpus), rows.shape)
    while (bad := (neg[:, :, None] == gold[:, None, :]).any(axis=2)).any():  # never an own gold document
        neg[bad] = rng.integers(0, len(corpus), int(bad.sum()))
    use_pred = torch.from_numpy(rng.random((batch, m - 1)) < p).to(dev)
    inputs = {k: v.to(dev) for k, v in ex.inputs.batch(idx).items()}
    pos = torch.from_numpy(corpus[np.maximum(rows, 0)]).to(dev)
    negs = torch.from_numpy(corpus[neg]).to(dev)
    tmask = torch.from_numpy(mask).to(dev)

    preds = model(inputs, m, teacher=pos, teacher_mask=tmask, use_pred=use_pred)  # (B, m, d)
    cands = torch.cat([pos[tmask], negs[tmask]])  # the batch's real positives, then their negatives
    logp = torch.log_softmax(preds.reshape(batch * m, -1) @ cands.T / tau, dim=-1).reshape(batch, m, -1)
    counts = mask.sum(1)
    own = np.concatenate([[0], np.cumsum(counts)[:-1]])[:, None] + np.arange(mask.shape[1])  # own positives' columns
    own = torch.from_numpy(np.minimum(own, len(cands) - 1)).to(dev)
    cost = -logp.gather(2, own[:, None, :].expand(batch, m, -1))  # (B, m, T): −log p(own target j | prediction i)
    cost_np = cost.detach().cpu().numpy()
    picked = []
    for e in range(batch):  # the Hungarian algorithm per example, on its real targets
        pi, tj = linear_sum_assignment(cost_np[e][:, : counts[e]])
        picked += [(e, i, j) for i, j in zip(pi, tj, strict=True)]
    sel_b, sel_i, sel_j = (torch.tensor(x, device=dev) for x in zip(*picked, strict=True))
    loss = (cost[sel_b, sel_i, sel_j] / torch.from_numpy(counts).to(dev)[sel_b]).sum() / batch
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([q for q in model.parameters() if q.requires_grad], 1.0)
    opt.step()
    return float(loss.detach())


def bare_rate(make_model: Any, ex: TrainingExamples, corpus: np.ndarray, batch: int, m: int, steps: int,
              device: str) -> float:
    dev = torch.device(device)
    model = make_model().to(dev).train()
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4, betas=(0.9, 0.98),
                            weight_decay=0.01)
    rng = np.random.default_rng(0)
    for _ in range(WARMUP):
        bare_step(model, opt, ex, corpus, batch, m, 0.5, 0.05, rng, dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        bare_step(model, opt, ex, corpus, batch, m, 0.5, 0.05, rng, dev)
    return steps * batch / (time.perf_counter() - t0)


def compare(make_model: Any, ex: TrainingExamples, corpus: np.ndarray, batch: int, m: int, steps: int,
            device: str, rounds: int) -> tuple[float, float]:
    """Best examples/s of the harness and of the bare loop over `rounds`, alternating which goes first."""
    harness, bare = [], []
    for r in range(rounds):
        for side in (("harness", "bare") if r % 2 == 0 else ("bare", "harness")):
            if side == "harness":
                harness.append(harness_rate(make_model, ex, corpus, batch, steps, device))
            else:
                bare.append(bare_rate(make_model, ex, corpus, batch, m, steps, device))
    return max(harness), max(bare)


def synthetic(steps: int, device: str, rounds: int) -> dict[str, object]:
    d, m, batch = 128, 5, 128

    def make_model() -> QueryEncoder:
        torch.manual_seed(0)
        return QueryEncoder(BackboneConfig(), d, d, d ** -0.5)

    corpus = _unit(100_000, d, 0)
    ex = _examples(4000, m, len(corpus), _unit(4000, d, 2), None)
    ours, plain = compare(make_model, ex, corpus, batch, m, steps, device, rounds)
    return {"setting": "synthetic (tiny width 128 × 2 layers, m=5, batch 128)", "examples_per_s": round(ours, 1),
            "bare_examples_per_s": round(plain, 1), "ratio": round(ours / plain, 3)}


def smollm2(steps: int, device: str, batch: int, rounds: int) -> dict[str, object]:
    from bench.models.lora import LoraSettings
    from bench.models.offline_lm import smollm2_folder
    from bench.models.text import Prompter, load_tokenizer, weights_hash

    folder = smollm2_folder()
    texts = [json.loads(line)["text"] for line in (SHARED / "limit-small" / "queries.jsonl").open()][:400]
    m, d = 2, 384
    base_hash = weights_hash(folder)

    def make_model() -> QueryEncoder:
        torch.manual_seed(0)
        return QueryEncoder(BackboneConfig(pretrained=str(folder)), 0, d, 1.0, finetune="lora",
                            lora=LoraSettings(), base_hash=base_hash)

    prompter = Prompter(load_tokenizer(folder))
    corpus = _unit(5000, d, 0)
    ex = _examples(len(texts), m, len(corpus), None, texts, prompter)
    prefix = int(np.mean([len(i) for i in ex.inputs.ids]))  # type: ignore[attr-defined]
    ours, plain = compare(make_model, ex, corpus, batch, m, steps, device, rounds)
    return {"setting": f"SmolLM2-135M + LoRA r64 (m=2, batch {batch}, mean prompt {prefix} tokens)",
            "examples_per_s": round(ours, 2), "bare_examples_per_s": round(plain, 2), "ratio": round(ours / plain, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lm-steps", type=int, default=5)
    ap.add_argument("--lm-batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per side; the best counts")
    ap.add_argument("--only", choices=["synthetic", "smollm2-lora"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    rows = []
    if args.only in (None, "synthetic"):
        rows.append(synthetic(args.steps, args.device, args.rounds))
        print(json.dumps(rows[-1]), flush=True)
    if args.only in (None, "smollm2-lora"):
        rows.append(smollm2(args.lm_steps, args.device, args.lm_batch, args.rounds))
        print(json.dumps(rows[-1]), flush=True)
    print(f"device {args.device}, torch threads {args.threads}, torch {torch.__version__}; load average at the end: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for r in rows:
        print(f"{r['setting']}: harness {r['examples_per_s']} examples/s; bare loop (same model, loss, matching, "
              f"sampling) {r['bare_examples_per_s']} examples/s; harness ÷ bare {r['ratio']}")


if __name__ == "__main__":
    main()
