"""Milliseconds per AMER training step: the transformers Llama backbone against the plain-torch one (tiny.py).

One step is what the trainer does per batch: the scheduled-sampling rollout (m positions, one at a time through
a key/value cache, each example fed its own prediction or its target), matched InfoNCE against the batch's
positives and one negative each, backward, gradient clipping and an AdamW step. Both backbones are measured in the
same run, interleaved round by round on the same batch and config, so the ratio holds under a shared CPU's load.
The same for one inference rollout (`generate`, what `encode_queries` runs per batch).

    python benchmarks/train_speed.py [--batch 128] [--m 5] [--width 128] [--layers 2] [--rounds 5] [--steps 20]
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from bench.models import BackboneConfig, QueryEncoder, count_parameters
from bench.train.loss import matched_infonce

# Rows: (label, backbone, AdamW implementation). The last row is a proposal for the trainer (bench/train/loop.py
# builds AdamW with torch's default, a per-parameter loop on CPU): `fused=True`, one kernel for all parameters.
ROWS = (("llama", "llama", False), ("tiny", "tiny", False), ("tiny+fused", "tiny", True))


def _rollout_fn(model: QueryEncoder) -> Callable[..., torch.Tensor]:
    """The training rollout with a fixed share p of fed predictions, whichever way the encoder takes the draw."""
    params = inspect.signature(model.rollout).parameters

    def run(x: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
        m = pos.shape[1]
        if "use_pred" in params:
            use_pred = torch.rand(x.shape[0], m, generator=gen) < p
            return model.rollout(model.vector_prefix(x), m, teacher=pos, teacher_mask=mask, use_pred=use_pred)
        older: dict[str, Any] = {"p_predicted": p, "generator": gen}  # older rollout signature
        return model.rollout(model.vector_prefix(x), m, teacher=pos, teacher_mask=mask, **older)

    return run


class Bench:
    """One model, its optimiser and a fixed batch; `step()` is one timed training step split into its phases."""

    def __init__(self, arch: str, fused: bool, args: argparse.Namespace) -> None:
        torch.manual_seed(0)
        cfg = BackboneConfig(arch=arch, width=args.width, layers=args.layers, heads=args.heads)
        self.model = QueryEncoder(cfg, args.d, args.d, args.d**-0.5).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01,
                                     fused=fused or None)
        g = torch.Generator().manual_seed(1)
        b, m, d = args.batch, args.m, args.d
        self.x = torch.randn(b, d, generator=g)
        self.pos = F.normalize(torch.randn(b, m, d, generator=g), dim=-1)
        self.neg = F.normalize(torch.randn(b, m, d, generator=g), dim=-1)
        self.mask = torch.ones(b, m, dtype=torch.bool)
        self.gen = torch.Generator().manual_seed(2)
        self.rollout = _rollout_fn(self.model)
        self.m = m

    def step(self) -> tuple[list[float], float]:
        """CPU seconds of each phase (rollout, loss, backward, clip + optimiser) and the step's wall seconds."""
        wall = time.perf_counter()
        t = [time.process_time()]
        preds = self.rollout(self.x, self.pos, self.mask, 0.5, self.gen)
        t.append(time.process_time())
        loss, _ = matched_infonce(preds, self.pos, self.neg, 0.05, self.mask)
        t.append(time.process_time())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t.append(time.process_time())
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        t.append(time.process_time())
        return [b - a for a, b in zip(t, t[1:], strict=False)], time.perf_counter() - wall

    @torch.no_grad()
    def generate(self) -> float:
        self.model.eval()
        t = time.process_time()
        self.model.generate(self.x, self.m)
        dt = time.process_time() - t
        self.model.train()
        return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--m", type=int, default=5, help="vectors per query (the synthetic tasks have 5 targets)")
    ap.add_argument("--d", type=int, default=128, help="query and document vector size")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median round counts")
    ap.add_argument("--steps", type=int, default=20, help="training steps per backbone per round")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the trainer's default is 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    benches = {label: Bench(arch, fused, args) for label, arch, fused in ROWS}
    for b in benches.values():  # warm-up: allocator, first-call paths
        for _ in range(3):
            b.step()
            b.generate()
    phases: dict[str, list[list[float]]] = {a: [] for a in benches}
    cpu: dict[str, list[float]] = {a: [] for a in benches}
    wall: dict[str, list[float]] = {a: [] for a in benches}
    gen: dict[str, list[float]] = {a: [] for a in benches}
    for _ in range(args.rounds):
        for label, b in benches.items():
            steps = [b.step() for _ in range(args.steps)]
            phases[label] += [p for p, _ in steps]
            cpu[label].append(sum(sum(p) for p, _ in steps) / args.steps)
            wall[label].append(sum(w for _, w in steps) / args.steps)
            gen[label].append(min(b.generate() for _ in range(5)))
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    n_params = count_parameters(benches["tiny"].model)
    print(f"AMER training step: batch {args.batch}, m {args.m}, width {args.width}, {args.layers} layers, "
          f"{args.heads} heads ({n_params / 1e6:.2f}M parameters), {args.threads} thread(s); "
          f"{args.rounds} rounds × {args.steps} steps each, medians; load average {load}")
    print("CPU ms of this process (robust to a shared CPU's load); wall ms for reference")
    print(f"{'backbone':11s} {'cpu/step':>8s} {'rollout':>8s} {'loss':>8s} {'backward':>9s} {'optim':>8s} "
          f"{'generate':>9s} {'wall/step':>10s}")
    med: dict[str, float] = {}
    for label in benches:
        med[label] = statistics.median(cpu[label]) * 1e3
        cols = [statistics.median(s[i] for s in phases[label]) * 1e3 for i in range(4)]
        g = statistics.median(gen[label]) * 1e3
        w = statistics.median(wall[label]) * 1e3
        print(f"{label:11s} {med[label]:8.1f} {cols[0]:8.1f} {cols[1]:8.1f} {cols[2]:9.1f} {cols[3]:8.1f} "
              f"{g:9.1f} {w:10.1f}")
    print(f"tiny / llama: {med['tiny'] / med['llama']:.2f}× the CPU time per step "
          f"({med['llama'] / med['tiny']:.2f}× faster); inference rollout "
          f"{statistics.median(gen['llama']) / statistics.median(gen['tiny']):.2f}× faster; "
          f"tiny with fused AdamW {med['llama'] / med['tiny+fused']:.2f}× faster than llama")

if __name__ == "__main__":
    main()
