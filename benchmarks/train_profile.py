"""Where an AMER training step goes: CPU milliseconds per phase, operations per phase, and the matrix products.

The step is the trainer's own (`Trainer.train_step` pieces, in order): draw the batch (targets, negatives, feeding
decisions), gather its vectors, the scheduled-sampling rollout (m positions through the key/value cache), matched
InfoNCE (with the matching itself timed apart), backward, gradient clipping and the AdamW step. Synthetic defaults:
the tiny backbone of width 128 × 2 layers, batch 128, m = 5, d = 128, 3,600 training queries against 100,000 corpus
vectors, one thread. Then one torch profile of `--profiled` steps: operator calls per phase, and the time in matrix
products (`aten::mm`, `addmm`, `bmm`; with their FLOPs, the rate they run at), in the other operators (elementwise,
reductions, copies: mostly per-call cost at these sizes), in autograd's nodes, and in Python between the calls.

    python benchmarks/train_profile.py [--steps 100] [--profiled 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import _examples, _unit  # noqa: E402

from bench.models import BackboneConfig, QueryEncoder  # noqa: E402
from bench.train import loss as loss_module  # noqa: E402
from bench.train.config import TrainConfig  # noqa: E402
from bench.train.data import BatchSampler, draw_batch  # noqa: E402
from bench.train.loop import Trainer  # noqa: E402

PHASES = ("draw", "gather", "rollout", "loss", "backward", "clip+AdamW")
GEMMS = ("aten::mm", "aten::addmm", "aten::bmm")


class Step:
    def __init__(self, threads: int) -> None:
        torch.set_num_threads(threads)
        d, self.m, batch = 128, 5, 128
        torch.manual_seed(0)
        self.model = QueryEncoder(BackboneConfig(), d, d, d ** -0.5).train()
        corpus = _unit(100_000, d, 0)
        ex = _examples(4000, self.m, len(corpus), _unit(4000, d, 2), None)
        self.cfg = TrainConfig(steps=1500, checkpoint_every=0)
        self.t = Trainer(self.model, ex, corpus, self.cfg, hooks=[])
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=self.cfg.lr, betas=self.cfg.betas,
                                     weight_decay=self.cfg.weight_decay, fused=True)
        self.sampler = BatchSampler(len(self.t.train_ex), batch, np.random.default_rng(0))
        self.matching = 0.0
        match = getattr(loss_module, "match", None)  # the batched matching (absent in older trees: scipy per row)
        name = "match" if match is not None else "linear_sum_assignment"
        inner = getattr(loss_module, name)

        def timed(*a: object, **k: object) -> object:
            c = time.process_time()
            out = inner(*a, **k)
            self.matching += time.process_time() - c
            return out

        setattr(loss_module, name, timed)

    def run(self, phases: dict[str, float], labels: bool = False) -> None:
        from torch.profiler import record_function

        clock = time.process_time
        c = clock()

        def mark(name: str) -> None:
            nonlocal c
            now = clock()
            phases[name] += now - c
            c = now

        def scope(name: str) -> object:
            return record_function(f"P:{name}") if labels else _null()

        t = self.t
        with scope("draw"):
            idx = self.sampler.next()
            batch = draw_batch(t.train_ex, idx, t.n_corpus, 0.5, self.sampler.rng, t.objective.select)
        mark("draw")
        with scope("gather"):
            inputs, pos, neg, mask, use_pred = t._inputs(t.train_ex, batch)
        mark("gather")
        with scope("rollout"):
            preds = self.model(inputs, self.m, teacher=pos, teacher_mask=mask, use_pred=use_pred)
        mark("rollout")
        with scope("loss"):
            loss, _ = loss_module.matched_infonce(preds, pos, neg, self.cfg.tau, mask)
        mark("loss")
        with scope("backward"):
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
        mark("backward")
        with scope("clip+AdamW"):
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.clip)
            self.opt.step()
        mark("clip+AdamW")


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--profiled", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    step = Step(args.threads)
    warm = {p: 0.0 for p in PHASES}
    for _ in range(5):
        step.run(warm)
    phases = {p: 0.0 for p in PHASES}
    step.matching = 0.0
    wall = time.perf_counter()
    for _ in range(args.steps):
        step.run(phases)
    wall = time.perf_counter() - wall
    n = args.steps
    total = sum(phases.values())
    print(f"AMER training step (tiny 128 × 2, batch 128, m 5, d 128), {args.threads} thread(s), {n} steps; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"CPU ms per step: {total / n * 1e3:.2f} (wall {wall / n * 1e3:.2f})")
    for p in PHASES:
        print(f"  {p:<11} {phases[p] / n * 1e3:7.2f} ms  {phases[p] / total:6.1%}")
    print(f"  of which matching (in loss) {step.matching / n * 1e3:.2f} ms")

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        for _ in range(args.profiled):
            step.run({p: 0.0 for p in PHASES}, labels=True)
    k = args.profiled
    events = prof.events()
    scopes = [e for e in events if e.name.startswith("P:")]
    ops: collections.Counter[str] = collections.Counter()
    for e in events:
        if not e.name.startswith("aten::") or (e.cpu_parent is not None and e.cpu_parent.name.startswith("aten::")):
            continue  # top-level operator calls only
        owner = next((s.name[2:] for s in scopes if s.time_range.start <= e.time_range.start
                      and e.time_range.end <= s.time_range.end), "backward (autograd thread)")
        ops[owner] += 1
    averages = prof.key_averages()
    gemm_us = sum(a.self_cpu_time_total for a in averages if a.key in GEMMS)
    aten_us = sum(a.self_cpu_time_total for a in averages if a.key.startswith("aten::") and a.key not in GEMMS)
    autograd_us = sum(a.self_cpu_time_total for a in averages if a.key.startswith("autograd::")
                      or a.key.endswith("Backward0") or a.key.endswith("Backward1"))
    python_us = sum(a.self_cpu_time_total for a in averages if a.key.startswith("P:"))  # between operator calls
    flops = sum(a.flops for a in averages if a.flops)
    print(f"operator calls per step: {sum(ops.values()) / k:.0f} ("
          + ", ".join(f"{name} {count / k:.0f}" for name, count in ops.most_common()) + ")")
    print(f"profiled ms per step (the profiler adds its own cost): matrix products {gemm_us / k / 1e3:.2f} "
          f"({flops / k / 1e9:.2f} GFLOP at {flops / (gemm_us * 1e-6) / 1e9:.0f} GFLOP/s); other operators "
          f"{aten_us / k / 1e3:.2f}; autograd nodes {autograd_us / k / 1e3:.2f}; Python between the calls "
          f"{python_us / k / 1e3:.2f}")

if __name__ == "__main__":
    main()
