"""Training defaults are declared once (bench/train/config.py) and reach every retriever and the trainer."""

from __future__ import annotations

import dataclasses

import pytest

from bench.errors import BenchError
from bench.models.backbone import BackboneConfig
from bench.systems.retriever import build_retriever
from bench.train.config import RECIPES, SamplingParams, TrainConfig, TrainParams, resolve_recipe
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


def test_a_recipe_sets_its_parameters_and_an_explicit_value_wins() -> None:
    assert resolve_recipe(AmerParams()) == {"recipe": "harness", **RECIPES["harness"]}
    assert resolve_recipe(AmerParams(recipe="reference")) == {"recipe": "reference", **RECIPES["reference"]}
    mixed = resolve_recipe(AmerParams(recipe="reference", srm=1.0, one_label=False, clip=1.0))
    assert (mixed["srm"], mixed["one_label"], mixed["clip"], mixed["feedback"]) == (1.0, False, 1.0, "raw")
    single = resolve_recipe(SingleQueryParams(recipe="reference"))
    assert set(single) == {"recipe", "clip", "eps", "positive", "negatives", "batching"}  # AMER's own ones: not here
    assert resolve_recipe(AmerParams(positive="first"))["positive"] == "first"
    assert RECIPES["reference"] == {"srm": 10.0, "one_label": True, "feedback": "raw", "clip": 5.0,
                                    "positive": "first", "negatives": "fixed", "batching": "majority", "eps": 1e-6}


def test_bad_recipe_values_are_refused() -> None:
    for params, message in ((["recipe=paper"], "recipe"), (["positive=last"], "positive"), (["srm=0"], "srm"),
                            (["negatives=never"], "negatives"), (["batching=sorted"], "batching"),
                            (["clip=0"], "clip"), (["feedback=unit"], "feedback"), (["eps=-1"], "eps")):
        with pytest.raises(BenchError, match=message):
            build_retriever("amer", params)
    with pytest.raises(BenchError, match="unknown parameter 'srm'"):
        build_retriever("single-query", ["srm=10"])
