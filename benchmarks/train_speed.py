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

import torch
import torch.nn.functional as F

from bench.models import BackboneConfig, QueryEncoder, count_parameters
from bench.train.loss import matched_infonce

ARCHS = ("llama", "tiny")


def _rollout_fn(model: QueryEncoder) -> Callable[..., torch.Tensor]:
    """The training rollout with a fixed share p of fed predictions, whichever way the encoder takes the draw."""
    params = inspect.signature(model.rollout).parameters

    def run(x: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
        m = pos.shape[1]
        if "use_pred" in params:
            use_pred = torch.rand(x.shape[0], m, generator=gen) < p
            return model.rollout(model.vector_prefix(x), m, teacher=pos, teacher_mask=mask, use_pred=use_pred)
        return model.rollout(model.vector_prefix(x), m, teacher=pos, teacher_mask=mask, p_predicted=p,
                             generator=gen)

    return run


class Bench:
    """One model, its optimiser and a fixed batch; `step()` is one timed training step split into its phases."""

    def __init__(self, arch: str, args: argparse.Namespace) -> None:
        torch.manual_seed(0)
        cfg = BackboneConfig(arch=arch, width=args.width, layers=args.layers, heads=args.heads)
        self.model = QueryEncoder(cfg, args.d, args.d, args.d**-0.5).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01)
        g = torch.Generator().manual_seed(1)
        b, m, d = args.batch, args.m, args.d
        self.x = torch.randn(b, d, generator=g)
        self.pos = F.normalize(torch.randn(b, m, d, generator=g), dim=-1)
        self.neg = F.normalize(torch.randn(b, m, d, generator=g), dim=-1)
        self.mask = torch.ones(b, m, dtype=torch.bool)
        self.gen = torch.Generator().manual_seed(2)
        self.rollout = _rollout_fn(self.model)
        self.m = m

    def step(self) -> list[float]:
        t = [time.perf_counter()]
        preds = self.rollout(self.x, self.pos, self.mask, 0.5, self.gen)
        t.append(time.perf_counter())
        loss, _ = matched_infonce(preds, self.pos, self.neg, 0.05, self.mask)
        t.append(time.perf_counter())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        t.append(time.perf_counter())
        return [b - a for a, b in zip(t, t[1:], strict=False)]

    @torch.no_grad()
    def generate(self) -> float:
        self.model.eval()
        t = time.perf_counter()
        self.model.generate(self.x, self.m)
        dt = time.perf_counter() - t
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
    benches = {arch: Bench(arch, args) for arch in ARCHS}
    for b in benches.values():  # warm-up: allocator, first-call paths
        for _ in range(3):
            b.step()
            b.generate()
    phases: dict[str, list[list[float]]] = {a: [] for a in ARCHS}
    rounds: dict[str, list[float]] = {a: [] for a in ARCHS}
    gen: dict[str, list[float]] = {a: [] for a in ARCHS}
    for _ in range(args.rounds):
        for arch, b in benches.items():
            steps = [b.step() for _ in range(args.steps)]
            phases[arch] += steps
            rounds[arch].append(sum(map(sum, steps)) / args.steps)
            gen[arch].append(min(b.generate() for _ in range(5)))
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    n_params = count_parameters(benches["tiny"].model)
    print(f"AMER training step: batch {args.batch}, m {args.m}, width {args.width}, {args.layers} layers, "
          f"{args.heads} heads ({n_params / 1e6:.2f}M parameters), {args.threads} thread(s); "
          f"{args.rounds} rounds × {args.steps} steps each; load average {load}")
    print(f"{'backbone':10s} {'ms/step':>8s} {'rollout':>8s} {'loss':>8s} {'backward':>9s} {'optim':>8s} "
          f"{'generate':>9s}")
    med = {}
    for arch in ARCHS:
        med[arch] = statistics.median(rounds[arch]) * 1e3
        cols = [statistics.median(s[i] for s in phases[arch]) * 1e3 for i in range(4)]
        g = statistics.median(gen[arch]) * 1e3
        print(f"{arch:10s} {med[arch]:8.1f} {cols[0]:8.1f} {cols[1]:8.1f} {cols[2]:9.1f} {cols[3]:8.1f} {g:9.1f}")
    print(f"tiny / llama: {med['tiny'] / med['llama']:.2f}× the time per step "
          f"({med['llama'] / med['tiny']:.2f}× faster); inference rollout "
          f"{statistics.median(gen['llama']) / statistics.median(gen['tiny']):.2f}× faster")


if __name__ == "__main__":
    main()
