"""Run by tests/train/test_strategy.py under torchrun (2 CPU processes, gloo): the gathered-negatives loss of one global
batch, then a short DDP training run; each rank saves what it saw to OUT/rank<r>.pt."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from bench.data.task import Split, Targets
from bench.models import BackboneConfig, QueryEncoder
from bench.train.config import TrainConfig
from bench.train.data import TrainingExamples, draw_batch
from bench.train.loop import Trainer
from bench.train.strategy import SingleProcess, make_strategy

CONFIG = dict(steps=6, batch_size=16, lr=5e-3, eval_every=3, val_fraction=0.2, checkpoint_every=0)


def data() -> tuple[TrainingExamples, np.ndarray]:
    """40 vector queries with 1–3 answers each (padding and masks across ranks) over a 300-row corpus."""
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((300, 8)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    nested = [[[int(d)] for d in rng.choice(300, 1 + i % 3, replace=False)] for i in range(40)]
    x = rng.standard_normal((40, 6)).astype(np.float32)
    split = Split("train", [str(i) for i in range(40)], Targets.from_nested(nested), vectors=x)
    return TrainingExamples.from_split(split), corpus


def model() -> QueryEncoder:
    torch.manual_seed(0)
    return QueryEncoder(BackboneConfig(width=16, layers=1, heads=2), 6, 8, 0.5)


def trainer(strategy: object, objective: str = "matched") -> Trainer:
    ex, corpus = data()
    return Trainer(model(), ex, corpus, TrainConfig(objective=objective, **CONFIG), strategy=strategy)  # type: ignore[arg-type]


def global_batch_losses(strategy: object) -> dict[str, float]:
    """The loss of one fixed global batch of 16: each rank's part with candidates gathered, summed over ranks; and
    the single-process loss of the same batch (no gathering) computed on every rank."""
    out = {}
    for objective in ("matched", "rand1"):
        t = trainer(strategy, objective)
        batch = draw_batch(t.train_ex, np.arange(16), t.n_corpus, 0.5, np.random.default_rng(7), t.objective.select)
        local = batch.slice(strategy.local(16))  # type: ignore[attr-defined]
        loss = t.batch_loss(t.model, t.train_ex, local, teacher=True, dist=strategy.collective())  # type: ignore[attr-defined]
        (summed,) = strategy.sum_floats(float(loss))  # type: ignore[attr-defined]
        single = t.batch_loss(t.model, t.train_ex, batch, teacher=True, dist=None)
        out[f"{objective}_gathered"] = summed
        out[f"{objective}_single"] = float(single)
    return out


def main(out: Path) -> None:
    torch.set_num_threads(1)
    strategy = make_strategy(torch.device("cpu"))
    assert not isinstance(strategy, SingleProcess), "run me under torchrun with 2 processes"
    losses = global_batch_losses(strategy)
    # gradient through the gather: d(Σ_r loss_r)/d(local part), with loss_r = (r + 1) · Σ w ⊙ gathered
    x = torch.full((2, 3), float(strategy.rank + 1), requires_grad=True)
    gathered, offset = strategy.gather(x)
    w = torch.arange(12.0).reshape(4, 3)
    ((gathered * w).sum() * (strategy.rank + 1)).backward()
    t = trainer(strategy)
    result = t.run()
    torch.save({"losses": losses, "weights": t.model.state_dict(), "best_step": result.best_step,
                "gathered": gathered.detach(), "offset": offset, "grad": x.grad,
                "world_size": strategy.world_size}, out / f"rank{strategy.rank}.pt")
    strategy.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
