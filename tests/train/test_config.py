"""Training defaults are declared once (bench/train/config.py) and reach every retriever and the trainer."""

from __future__ import annotations

import dataclasses

from bench.models.backbone import BackboneConfig
from bench.train.config import SamplingParams, TrainConfig, TrainParams
from bench.train.objectives import objective_names
from bench.train.schedule import SAMPLING_CAP, sampling_probability
from retrievers.amer import AmerParams
from retrievers.single_query import SingleQueryParams


def test_retriever_params_carry_the_trainers_defaults() -> None:
    amer, single, cfg = AmerParams(), SingleQueryParams(), TrainConfig()
    for f in dataclasses.fields(TrainParams):
        assert getattr(amer, f.name) == getattr(single, f.name) == getattr(cfg, f.name) == f.default
    assert amer.sampling_cap == cfg.sampling_cap == SAMPLING_CAP == SamplingParams().sampling_cap
    assert sampling_probability(10**6, 10**6) == SAMPLING_CAP
    assert not hasattr(single, "sampling")  # Single-Query takes no scheduled sampling
    for name in ("width", "layers", "heads", "ffn", "arch"):
        assert getattr(amer, name) == getattr(BackboneConfig(), name)


def test_from_params_copies_by_name_and_run_settings_win() -> None:
    p = AmerParams(steps=7, lr=0.5, sampling="teacher", reduction="target", grad_accum=2)
    cfg = TrainConfig.from_params(p, objective="matched", seed=3, device="cpu")
    assert (cfg.steps, cfg.lr, cfg.sampling, cfg.reduction, cfg.grad_accum, cfg.seed) == (7, 0.5, "teacher",
                                                                                          "target", 2, 3)


def test_objectives_are_found_by_name() -> None:
    assert {"matched", "rand1"} <= set(objective_names())
