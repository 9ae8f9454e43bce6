"""Training throughput (examples/s) of the query-encoder trainer on this machine's CPU (or GPU with --device cuda).

Two settings:
- synthetic: the default random 2-layer Llama of width 128, batch 128, m = 5 targets, d = 128 (the synthetic tasks);
- smollm2-lora: SmolLM2-135M-Instruct (offline, bench.models.offline_lm) with LoRA r 64 on q,k,v,o,gate,up,down,
  text queries of limit-small in the chat template, m = 2, against MiniLM-sized (384-d) random unit corpus vectors.

Each prints the trainer's examples/s and, measured in the same run, the plain library call it is built on: one
teacher-forced forward + backward of the same backbone over the same sequence lengths plus an AdamW step (no
sampling, no Hungarian matching, no step-by-step rollout) — the ratio is the trainer's overhead.

    python benchmarks/train_throughput.py [--steps 20] [--only synthetic|smollm2-lora] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.data.task import Split, Targets
from bench.models import BackboneConfig, QueryEncoder
from bench.train.config import TrainConfig
from bench.train.data import TrainingExamples
from bench.train.loop import Trainer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _examples(n: int, m: int, n_corpus: int, vectors: np.ndarray | None, texts: list[str] | None,
              tokenize: object = None) -> TrainingExamples:
    rng = np.random.default_rng(1)
    nested = [[[int(d)] for d in rng.choice(n_corpus, m, replace=False)] for _ in range(n)]
    split = Split("train", [str(i) for i in range(n)], Targets.from_nested(nested), vectors=vectors, texts=texts)
    return TrainingExamples.from_split(split, tokenize=tokenize)


def trainer_rate(model: QueryEncoder, ex: TrainingExamples, corpus: np.ndarray, batch: int, steps: int,
                 device: str) -> float:
    cfg = TrainConfig(steps=steps + 2, batch_size=batch, val_fraction=0.0, eval_every=10**6, checkpoint_every=0,
                      device=device, lr=1e-4)
    t = Trainer(model, ex, corpus, cfg, hooks=[])
    # time steps 3.. (the first two warm up allocators and caches)
    model.to(t.device).train()
    t.trainable = [p for p in model.parameters() if p.requires_grad]
    t.opt = torch.optim.AdamW(t.trainable, lr=1e-4)
    t.sched = torch.optim.lr_scheduler.LambdaLR(t.opt, lambda s: 1.0)
    from bench.train.data import BatchSampler

    t.sampler = BatchSampler(len(t.train_ex), batch, np.random.default_rng(0))
    for s in range(2):
        t.train_step(s, model)
    t0 = time.perf_counter()
    for s in range(2, steps + 2):
        t.train_step(s, model)
    return steps * batch / (time.perf_counter() - t0)


def plain_rate(model: QueryEncoder, prefix_len: int, m: int, batch: int, steps: int, device: str) -> float:
    """Teacher-forced single pass of the backbone over prefix + (m − 1) positions, backward, AdamW."""
    dev = torch.device(device)
    backbone = model.backbone.to(dev).train()
    params = [p for p in backbone.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    width = model.target_proj.out_features
    x = torch.randn(batch, prefix_len + m - 1, width, device=dev)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        h = backbone(inputs_embeds=x).last_hidden_state
        h[:, prefix_len - 1:].pow(2).mean().backward()
        opt.step()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def synthetic(steps: int, device: str) -> dict[str, object]:
    d, m, batch = 128, 5, 128
    torch.manual_seed(0)
    model = QueryEncoder(BackboneConfig(), d, d, d ** -0.5)
    corpus = _unit(20_000, d, 0)
    ex = _examples(2000, m, len(corpus), _unit(2000, d, 2), None)
    ours = trainer_rate(model, ex, corpus, batch, steps, device)
    plain = plain_rate(model, 1, m, batch, steps, device)
    return {"setting": "synthetic (llama width 128 × 2 layers, m=5, batch 128)", "examples_per_s": round(ours, 1),
            "plain_examples_per_s": round(plain, 1), "ratio": round(ours / plain, 3)}


def smollm2(steps: int, device: str, batch: int) -> dict[str, object]:
    from bench.models.lora import LoraSettings
    from bench.models.offline_lm import smollm2_folder
    from bench.models.text import Prompter, load_tokenizer, weights_hash

    folder = smollm2_folder()
    texts = [json.loads(line)["text"] for line in (SHARED / "limit-small" / "queries.jsonl").open()][:400]
    m, d = 2, 384
    torch.manual_seed(0)
    model = QueryEncoder(BackboneConfig(pretrained=str(folder)), 0, d, 1.0, finetune="lora", lora=LoraSettings(),
                         base_hash=weights_hash(folder))
    prompter = Prompter(load_tokenizer(folder))
    corpus = _unit(5000, d, 0)
    ex = _examples(len(texts), m, len(corpus), None, texts, prompter)
    prefix = int(np.mean([len(i) for i in ex.inputs.ids]))  # type: ignore[attr-defined]
    ours = trainer_rate(model, ex, corpus, batch, steps, device)
    plain = plain_rate(model, prefix, m, batch, steps, device)
    return {"setting": f"SmolLM2-135M + LoRA r64 (m=2, batch {batch}, mean prompt {prefix} tokens)",
            "examples_per_s": round(ours, 2), "plain_examples_per_s": round(plain, 2), "ratio": round(ours / plain, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lm-steps", type=int, default=5)
    ap.add_argument("--lm-batch", type=int, default=8)
    ap.add_argument("--only", choices=["synthetic", "smollm2-lora"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    if args.only in (None, "synthetic"):
        rows.append(synthetic(args.steps, args.device))
        print(json.dumps(rows[-1]), flush=True)
    if args.only in (None, "smollm2-lora"):
        rows.append(smollm2(args.lm_steps, args.device, args.lm_batch))
        print(json.dumps(rows[-1]), flush=True)
    print(f"device {args.device}, torch threads {args.threads}, torch {torch.__version__}")
    for r in rows:
        print(f"{r['setting']}: trainer {r['examples_per_s']} examples/s; plain forward+backward+AdamW "
              f"{r['plain_examples_per_s']} examples/s; ratio {r['ratio']}")


if __name__ == "__main__":
    main()
