"""Learned stop for AMER (bench/models/stop_head.py, objective matched-stop) and the varying-m synthetic setting
(tasks/synthetic.py, `-t m=lo..hi`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.data.task import build_task
from bench.evaluate import evaluate_named
from bench.models.backbone import BackboneConfig
from bench.models.query_encoder import QueryEncoder
from bench.models.stop_head import StopQueryEncoder, emitted_mask, stop_counts, stop_targets
from bench.systems.build import build_system
from bench.systems.records import QueryVectors
from bench.systems.session import Session
from bench.train.config import StopParams, TrainConfig
from bench.train.loss import matched_infonce
from bench.train.objectives import LossInputs, get_objective
from tasks.synthetic import SyntheticParams, generate, target_counts, target_range

TASK = "synthetic-linear-single"
TP = ["d=8", "n_train=800", "n_test=200", "n_negatives=400", "m=2..5"]


# --------------------------------------------------------------------------------------------- varying-m synthetic
def test_target_range_parses_and_refuses() -> None:
    assert target_range("5") == (5, 5)
    assert target_range("2..5") == (2, 5)
    assert target_range(" 3..3 ") == (3, 3)
    for bad in ("0..3", "4..2", "2..6", "x", "3", "2..", ""):
        with pytest.raises(ValueError):
            target_range(bad)


def test_counts_are_the_planted_function_of_the_signs() -> None:
    x = np.array([[-1.0, -1.0, 5.0], [1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [1.0, 1.0, -3.0]])
    assert target_counts(x, 2, 5).tolist() == [2, 3, 4, 5]
    assert target_counts(x, 1, 3).tolist() == [1, 2, 3, 1]  # (bits mod 3)
    assert target_counts(x, 4, 4).tolist() == [4, 4, 4, 4]


def test_varying_task_keeps_the_first_c_targets_and_only_those_in_the_corpus() -> None:
    data = build_task(TASK, TP).load()
    fixed = generate("linear", "single", SyntheticParams(d=8, n_train=800, n_test=200, n_negatives=400))
    assert data.info["m"] == "2..5"
    for name in ("train", "test"):
        split = data.split(name)
        c = split.targets.n_clusters
        assert np.array_equal(c, target_counts(split.vectors, 2, 5))
        assert set(np.unique(c)) == {2, 3, 4, 5}
        # cluster j of query q is target T_j(x): the same vector as in the fixed-m task
        rows = fixed[f"{name}_targets"]
        vec = data.corpus.vectors[split.targets.doc]
        ref = fixed["corpus"][rows[split.targets.query, split.targets.cluster]]
        assert np.allclose(vec, ref)
    n_targets = sum(int(data.split(s).targets.n_clusters.sum()) for s in ("train", "test"))
    assert len(data.corpus) == n_targets + 400
    again = build_task(TASK, TP).load()
    assert np.array_equal(again.corpus.vectors, data.corpus.vectors)


def test_default_m_keeps_the_cache_key_and_arrays() -> None:
    """`m` defaults to 5 and then changes neither the generated arrays nor the task's cache key."""
    task = build_task(TASK, ["d=8", "n_train=20", "n_test=5", "n_negatives=10"])
    explicit = build_task(TASK, ["d=8", "n_train=20", "n_test=5", "n_negatives=10", "m=5"])
    assert task.cache_key() == explicit.cache_key()
    from bench.storage.cache import stable_hash

    legacy = {"d": 8, "n_train": 20, "n_test": 5, "n_negatives": 10, "seed": 0, "mlp_variant": "negated"}
    assert task.cache_key() == stable_hash(["synthetic", 1, "linear", "single", legacy])
    assert build_task(TASK, ["d=8", "n_train=20", "n_test=5", "n_negatives=10", "m=2..5"]).cache_key() \
        != task.cache_key()


# ------------------------------------------------------------------------------------------------- head and loss
def test_stop_counts_and_targets() -> None:
    p = torch.tensor([[0.9, 0.9, 0.1, 0.9], [0.1, 0.9, 0.9, 0.9], [0.9, 0.9, 0.9, 0.9], [0.6, 0.4, 0.9, 0.2]])
    logits = torch.logit(p)
    assert stop_counts(logits, threshold=0.5).tolist() == [3, 1, 4, 2]  # capped at m = 4, first stop wins
    assert stop_counts(logits, threshold=0.35).tolist() == [3, 1, 4, 4]  # a lower threshold goes on longer
    assert stop_counts(logits, threshold=0.95).tolist() == [1, 1, 1, 1]
    # the default (0.1) goes on unless the head is 90% sure that no answer remains
    unsure = torch.logit(torch.tensor([[0.15, 0.15, 0.05, 0.9], [0.05, 0.9, 0.9, 0.9], [0.3, 0.2, 0.12, 0.01]]))
    assert stop_counts(unsure).tolist() == [3, 1, 4]
    mask = torch.tensor([[True, True, False, False], [True, False, False, False], [True] * 4])
    assert stop_targets(mask, 4).tolist() == [[1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]]


def _model(d: int = 6) -> StopQueryEncoder:
    torch.manual_seed(0)
    return StopQueryEncoder(BackboneConfig(arch="tiny", width=16, layers=1, heads=2), d, d, 1.0)


def test_forward_leaves_one_logit_per_emitted_vector_and_generate_zeroes_after_stop() -> None:
    model = _model().eval()
    x = torch.randn(5, 6)
    preds = model({"vectors": x}, 4)
    assert preds.shape == (5, 4, 6) and model.stop_logits is not None and model.stop_logits.shape == (5, 4)
    plain = QueryEncoder.forward(model, {"vectors": x}, 4)  # the head does not change the vectors
    assert torch.allclose(plain, preds)
    with torch.no_grad():
        model.stop_head.fc2.bias.fill_(-50.0)  # always stop → one vector
    out = model.generate(x, 4)
    assert emitted_mask(out.numpy()).sum(axis=1).tolist() == [1] * 5
    assert torch.allclose(out[:, 0], preds[:, 0], atol=1e-6)
    with torch.no_grad():
        model.stop_head.fc2.bias.fill_(50.0)  # never stop → capped at m
    assert emitted_mask(model.generate(x, 4).numpy()).sum(axis=1).tolist() == [4] * 5


def test_config_round_trip_keeps_the_head() -> None:
    model = _model()
    again = StopQueryEncoder.from_config(model.config())
    again.load_trainable_state_dict(model.trainable_state_dict())
    assert isinstance(again, StopQueryEncoder) and model.config()["stop_head"] is True
    x = torch.randn(3, 6)
    model.eval(), again.eval()
    assert torch.allclose(model.generate(x, 3), again.generate(x, 3))


def _prefix_matched_loop(preds: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, mask: torch.Tensor,
                         tau: float) -> float:
    """Matched InfoNCE with each example's T_b targets assigned to its first T_b predictions, by brute force."""
    import itertools

    b, t, _ = pos.shape
    cands = [pos[e, j] for e in range(b) for j in range(t) if mask[e, j]]
    cands += [neg[e, j] for e in range(b) for j in range(t) if mask[e, j]]
    total = 0.0
    for e in range(b):
        n = int(mask[e].sum())

        def ell(i: int, j: int, e: int = e) -> float:
            z = sum(math.exp(float(preds[e, i] @ c) / tau) for c in cands)
            return -math.log(math.exp(float(preds[e, i] @ pos[e, j]) / tau) / z)

        best = min(sum(ell(perm[j], j) for j in range(n)) for perm in itertools.permutations(range(n)))
        total += best / n
    return total / b


@pytest.mark.parametrize("cfg", [None, TrainConfig(objective="matched-stop", stop_weight=1.5, stop_miss_weight=2.5)],
                         ids=["defaults", "set"])
def test_matched_stop_loss_is_prefix_matched_infonce_plus_bce(cfg: TrainConfig | None) -> None:
    g = torch.Generator().manual_seed(1)
    b, t, d = 4, 3, 5
    preds = F.normalize(torch.randn(b, t, d, generator=g, dtype=torch.float64), dim=-1)
    pos = F.normalize(torch.randn(b, t, d, generator=g, dtype=torch.float64), dim=-1)
    neg = F.normalize(torch.randn(b, t, d, generator=g, dtype=torch.float64), dim=-1)
    mask = torch.tensor([[True, True, True], [True, False, False], [True, True, False], [True, True, True]])
    logits = torch.randn(b, t, generator=g, dtype=torch.float64, requires_grad=True)
    objective = get_objective("matched-stop", cfg)
    loss = objective.loss(LossInputs(preds, pos, neg, mask, 0.1, "example", stop_logits=logits))
    settings = cfg or StopParams()
    w = settings.stop_miss_weight
    bce = 0.0
    for e in range(b):
        n = int(mask[e].sum())
        for i in range(t):
            y = 1.0 if i + 1 < n else 0.0
            p = float(torch.sigmoid(logits[e, i].detach()))
            bce += -(w * y * math.log(p) + (1 - y) * math.log(1 - p)) / t
    expected = _prefix_matched_loop(preds, pos, neg, mask, 0.1) + settings.stop_weight * bce / b
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-7)
    # the prefix restriction matters: plain matching may use later predictions and is never larger
    plain, _ = matched_infonce(preds, pos, neg, 0.1, mask)
    assert float(plain) <= _prefix_matched_loop(preds, pos, neg, mask, 0.1) + 1e-12
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match="stop logits"):
        get_objective("matched-stop").loss(LossInputs(preds, pos, neg, mask, 0.1, "example"))


def test_one_answer_each_and_all_answers_equal_plain_matching() -> None:
    """When every example has M targets, prefix matching is plain matching."""
    from bench.train.objectives.stop import prefix_matched_infonce

    g = torch.Generator().manual_seed(2)
    preds = F.normalize(torch.randn(3, 3, 4, generator=g, dtype=torch.float64), dim=-1)
    pos = F.normalize(torch.randn(3, 3, 4, generator=g, dtype=torch.float64), dim=-1)
    neg = F.normalize(torch.randn(3, 3, 4, generator=g, dtype=torch.float64), dim=-1)
    full = torch.ones(3, 3, dtype=torch.bool)
    ref, _ = matched_infonce(preds, pos, neg, 0.1, full, reduction="target")
    got = prefix_matched_infonce(preds, pos, neg, 0.1, full, reduction="target")
    assert float(got) == pytest.approx(float(ref), rel=1e-12)


def test_stop_parameter_names_the_system_and_keeps_fixed_checkpoint_keys() -> None:
    learned = build_system("amer", ["stop=learned"])
    fixed = build_system("amer")
    assert learned.name == "amer[stop=learned]" and fixed.name == "amer"
    assert learned.retriever.objective == "matched-stop" and fixed.retriever.objective == "matched"
    with pytest.raises(Exception, match="stop"):
        build_system("amer", ["stop=sometimes"])
    with pytest.raises(Exception, match="stop_threshold"):
        build_system("amer", ["stop=learned", "stop_threshold=1.0"])
    low = build_system("amer", ["stop=learned", "stop_threshold=0.3"])
    assert low.name == "amer[stop=learned,stop_threshold=0.3]"


# ------------------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_stop_head_learns_a_planted_count(tmp_path: Path) -> None:
    """A tiny varying-m task (count = 2 + 2·[x_1 > 0] + [x_0 > 0]): after training, the number of vectors each test
    query emits equals its number of answers for ≥ 90% of queries, and fewer vectors are searched than m_max."""
    # the head's own count is read at its decision point 0.5 (the default 0.1 goes on where unsure, trading exact
    # counts for fewer missed answers)
    params = ["stop=learned", "stop_threshold=0.5", "arch=tiny", "width=32", "layers=1", "heads=2", "batch_size=64",
              "steps=600", "eval_every=50", "lr=5e-3"]
    result, path = evaluate_named(TASK, "amer", (10,), TP, params, seed=0, results_dir=tmp_path,
        session=Session(device="cpu"))
    rec = json.loads(path.read_text())["extra"]["vectors_per_query"]
    counts = np.array(rec["per_query"])
    assert rec["stop"] == "learned" and rec["m_max"] == 5
    assert rec["count_equals_answers"] >= 0.9, rec
    data = build_task(TASK, TP).load()
    share = np.mean(counts == data.split("test").targets.n_clusters)
    assert share == pytest.approx(rec["count_equals_answers"], abs=1e-4)
    assert rec["mean_searched"] < 5
    assert result.extra["query_cost"]["searches_per_query"] == pytest.approx(counts.mean(), abs=1e-4)
    assert "stop=learned" in result.system


def test_record_emitted_returns_masked_query_vectors() -> None:
    from types import SimpleNamespace

    from bench.models.stop_head import record_emitted

    vecs = np.zeros((3, 4, 2), dtype=np.float32)
    vecs[0, :2] = [[1, 0], [0, 1]]
    vecs[1, :1] = [[1, 0]]
    vecs[2, :4] = [[1, 0], [0, 1], [-1, 0], [0, -1]]
    split = SimpleNamespace(targets=SimpleNamespace(n_clusters=np.array([2, 3, 4])))
    ctx = SimpleNamespace(extra={"output_diversity": {"pred_mean_pairwise_cos": [0.0, 0.0, 0.0]}})
    out = record_emitted(vecs, split, ctx, learned=True)
    assert isinstance(out, QueryVectors) and out.mask.sum(axis=1).tolist() == [2, 1, 4]
    rec = ctx.extra["vectors_per_query"]
    assert rec["per_query"] == [2, 1, 4] and rec["count_equals_answers"] == pytest.approx(2 / 3, abs=1e-4)
    assert rec["mean_searched"] == pytest.approx(7 / 3, abs=1e-4) and rec["histogram"] == {1: 1, 2: 1, 4: 1}
    div = ctx.extra["output_diversity"]["pred_mean_pairwise_cos"]
    assert div[0] == pytest.approx(0.0) and div[1] is None and div[2] == pytest.approx(-1 / 3)
    fixed = record_emitted(vecs, split, SimpleNamespace(extra={}), learned=False)
    assert isinstance(fixed, np.ndarray)
