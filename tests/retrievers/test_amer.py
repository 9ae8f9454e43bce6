"""AMER and Single-Query end to end on a tiny synthetic task: training, checkpoints, determinism, diversity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data.task import TaskData, build_task
from bench.errors import BenchError
from bench.evaluate import evaluate_named
from bench.metrics.diversity import mean_pairwise_cosine
from bench.systems.context import RunContext
from bench.systems.retriever import build_retriever
from bench.systems.session import Session
from bench.train.checkpoint import load_checkpoint
from bench.train.loop import Trainer
from retrievers.amer import AmerRetriever

TASK = "synthetic-linear-single"
TP = ["d=16", "n_train=300", "n_test=40", "n_negatives=500"]
SMALL = ["width=32", "layers=1", "heads=2", "batch_size=32"]
RP = [*SMALL, "steps=400", "eval_every=25", "lr=5e-3"]
QUICK = [*SMALL, "steps=20", "eval_every=10", "lr=3e-3"]


def _ctx(seed: int = 0, retrain: bool = False, retriever: str = "amer", params: list[str] = RP):
    session = Session(device="cpu")
    data = session.task_data(build_task(TASK, TP))
    retr = build_retriever(retriever, params)
    emb, index, _ = session.corpus_index(data, retr)
    ctx = RunContext(task=data, corpus_embeddings=emb, index=index, seed=seed, device="cpu", retrain=retrain)
    return retr, ctx


def _forbid_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self):  # noqa: ANN001
        raise AssertionError("training code was called")

    monkeypatch.setattr(Trainer, "run", boom)


def _train_both(results, params: list[str]) -> dict:
    session = Session(device="cpu")
    out = {}
    for name in ("amer", "single-query"):
        out[name], _ = evaluate_named(TASK, name, (10, 100), TP, params, seed=0, retrain=True, results_dir=results,
                           session=session)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """AMER and Single-Query trained for 400 steps (~10 s of CPU) and evaluated through the pipeline."""
    return _train_both(tmp_path_factory.mktemp("results"), RP)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory):
    """Both trained for 20 steps: enough for everything but quality."""
    return _train_both(tmp_path_factory.mktemp("results"), QUICK)


@pytest.mark.slow
def test_amer_beats_single_query_on_a_tiny_task(trained) -> None:
    amer, single = trained["amer"].summary, trained["single-query"].summary
    assert trained["amer"].retriever_info["m"] == 5 and trained["single-query"].retriever_info["m"] == 1
    assert amer["Recall@10"] >= single["Recall@10"] + 0.25
    assert amer["MRECALL@100"] >= single["MRECALL@100"] + 0.3
    assert trained["amer"].retriever_info["trained_now"] is True


@pytest.mark.slow
def test_training_lowers_the_loss(trained) -> None:
    ckpt = load_checkpoint(trained["amer"].retriever_info["checkpoint"])
    hist = ckpt.meta["train"]["history"]
    assert len(hist) == 400 // 25
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] - 1.0
    assert ckpt.meta["train"]["best_val_loss"] < hist[0]["val_loss"] - 2.0
    assert ckpt.meta["train"]["best_val_loss"] == min(h["val_loss"] for h in hist)


def test_a_few_steps_lower_the_validation_loss() -> None:
    retr, ctx = _ctx(params=QUICK)
    from bench.models import QueryEncoder
    from bench.train.loop import TrainConfig, TrainingExamples

    torch.manual_seed(0)
    model = QueryEncoder(retr.params.backbone_config(), 16, 16, 0.25)
    trainer = Trainer(model, TrainingExamples.from_split(ctx.task.split("train")), ctx.corpus_embeddings,
                      TrainConfig(steps=40, batch_size=32, lr=3e-3, eval_every=20))
    before = trainer.validation_loss()
    result = trainer.run()
    assert result.best_val_loss < before - 1.0


def test_output_diversity_is_recorded_per_test_query(quick) -> None:
    div = quick["amer"].extra["output_diversity"]
    assert set(div) == {"pred_mean_pairwise_cos", "target_mean_pairwise_cos"}
    assert len(div["pred_mean_pairwise_cos"]) == len(div["target_mean_pairwise_cos"]) == 40
    assert all(-1.0 <= v <= 1.0 for v in div["pred_mean_pairwise_cos"])
    # linear targets x, Ma·x, Mb·x, −Ma·x, −Mb·x sum to x: the 10 pairwise cosines average (1 − 5) / 2 / 10 = −0.2
    np.testing.assert_allclose(div["target_mean_pairwise_cos"], -0.2, atol=1e-5)
    assert "output_diversity" not in quick["single-query"].extra


def test_mean_pairwise_cosine() -> None:
    v = np.array([[[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]]])
    assert mean_pairwise_cosine(v)[0] == pytest.approx((0.0 - 1.0 + 0.0) / 3)
    assert np.isnan(mean_pairwise_cosine(v[:, :1])[0])


def test_run_reuses_the_checkpoint_and_reproduces_the_metrics(quick, tmp_path, monkeypatch) -> None:
    _forbid_training(monkeypatch)
    again, _ = evaluate_named(TASK, "amer", (10, 100), TP, QUICK, seed=0, results_dir=tmp_path)
    assert again.retriever_info["trained_now"] is False
    assert again.retriever_info["checkpoint"] == quick["amer"].retriever_info["checkpoint"]
    assert again.per_query == quick["amer"].per_query


def test_m_pred_changes_inference_only(quick, tmp_path, monkeypatch) -> None:
    _forbid_training(monkeypatch)
    more, _ = evaluate_named(TASK, "amer", (10, 100), TP, [*QUICK, "m_pred=8"], seed=0, results_dir=tmp_path)
    assert more.retriever_info["m"] == 8
    assert more.retriever_info["checkpoint"] == quick["amer"].retriever_info["checkpoint"]


def test_checkpoint_reloads_to_identical_outputs() -> None:
    retr, ctx = _ctx(params=QUICK, retrain=True)
    retr.prepare(ctx)
    test = ctx.task.split("test")
    before = retr.encode_queries(test, ctx)
    fresh = build_retriever("amer", QUICK)
    fresh.load_checkpoint(retr.checkpoint)
    after = fresh.encode_queries(test, ctx)
    assert before.shape == (40, 5, 16) and before.dtype == np.float32
    assert np.array_equal(before, after)


def test_inference_from_a_checkpoint_needs_no_training_data(monkeypatch) -> None:
    retr, ctx = _ctx(params=QUICK)
    retr.prepare(ctx)
    expected = retr.encode_queries(ctx.task.split("test"), ctx)
    _forbid_training(monkeypatch)
    test_only = TaskData(ctx.task.name, ctx.task.corpus, {"test": ctx.task.split("test")}, ctx.task.modality)
    bare = RunContext(task=test_only, corpus_embeddings=ctx.corpus_embeddings, index=ctx.index, device="cpu")
    fresh = build_retriever("amer", QUICK)
    fresh.load_checkpoint(retr.checkpoint)
    first = fresh.encode_queries(test_only.split("test"), bare)
    second = fresh.encode_queries(test_only.split("test"), bare)
    assert np.array_equal(first, second)
    assert np.array_equal(first, expected)


@pytest.mark.parametrize("retriever", ["amer", "single-query"])
def test_same_seed_gives_identical_metrics_and_weights(retriever: str, tmp_path) -> None:
    res, weights = [], []
    for _ in range(2):
        result, _ = evaluate_named(TASK, retriever, (10, 100), TP, QUICK, seed=3, retrain=True, results_dir=tmp_path)
        res.append(result)
        weights.append(load_checkpoint(result.retriever_info["checkpoint"]).state_dict)
    assert res[0].per_query == res[1].per_query
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    other, _ = evaluate_named(TASK, retriever, (10, 100), TP, QUICK, seed=4, retrain=True, results_dir=tmp_path)
    other_w = load_checkpoint(other.retriever_info["checkpoint"]).state_dict
    assert other.retriever_info["checkpoint"] != res[0].retriever_info["checkpoint"]
    assert not all(torch.equal(weights[0][k], other_w[k]) for k in other_w)


def test_checkpoint_key_follows_the_training_config() -> None:
    retr, ctx = _ctx(params=QUICK)
    base, _ = retr.checkpoint_for(ctx)
    for extra in (["sampling=teacher"], ["tau=0.1"], ["steps=21"]):
        other, _ = build_retriever("amer", [*QUICK, *extra]).checkpoint_for(ctx)
        assert other != base
    same, _ = build_retriever("amer", [*QUICK, "m_pred=3", "device=cpu"]).checkpoint_for(ctx)
    assert same == base
    single, _ = build_retriever("single-query", QUICK).checkpoint_for(ctx)
    assert single != base and single.parent == base.parent
    # the stop's training settings shape only a learned stop; its threshold is applied at inference
    fixed, _ = build_retriever("amer", [*QUICK, "stop_weight=1", "stop_miss_weight=2"]).checkpoint_for(ctx)
    assert fixed == base
    learned, _ = build_retriever("amer", [*QUICK, "stop=learned"]).checkpoint_for(ctx)
    assert learned != base
    for extra in (["stop_weight=1"], ["stop_miss_weight=2"]):
        other, _ = build_retriever("amer", [*QUICK, "stop=learned", *extra]).checkpoint_for(ctx)
        assert other != learned
    same, _ = build_retriever("amer", [*QUICK, "stop=learned", "stop_threshold=0.2"]).checkpoint_for(ctx)
    assert same == learned


@pytest.mark.parametrize(("params", "message"), [
    (["sampling=sometimes"], "sampling"),
    (["width=30", "heads=4"], "multiple of heads"),
    (["m_pred=-1"], "m_pred"),
    (["stop_miss_weight=0"], "stop_miss_weight"),
    (["stop_weight=-1"], "stop_weight"),
    (["steps=0"], "steps"),
    (["arch=gpt9"], "arch"),
    (["device=tpu"], "device"),
])
def test_bad_parameters_are_one_clear_error(params: list[str], message: str) -> None:
    with pytest.raises(BenchError, match=message):
        build_retriever("amer", params)


def test_damaged_checkpoints_are_one_clear_error(tmp_path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(BenchError, match="bad.safetensors"):
        AmerRetriever(build_retriever("amer").params, "amer").load_checkpoint(bad)
    with pytest.raises(BenchError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(BenchError, match="metadata"):
        load_checkpoint(plain)


def test_single_query_checkpoint_is_not_an_amer_model(quick) -> None:
    with pytest.raises(BenchError, match="single"):
        build_retriever("amer").load_checkpoint(quick["single-query"].retriever_info["checkpoint"])


def test_encode_before_prepare_is_an_error() -> None:
    retr, ctx = _ctx(params=QUICK)
    with pytest.raises(BenchError, match="no model"):
        retr.encode_queries(ctx.task.split("test"), ctx)


@pytest.mark.parametrize(("mode", "expected"), [("teacher", [0.0, 0.0]), ("predicted", [1.0, 1.0]),
                                                ("scheduled", [0.45, 0.8])])
def test_sampling_ablations_reach_the_training_loop(mode: str, expected: list[float]) -> None:
    retr, ctx = _ctx(params=[*QUICK, f"sampling={mode}"], retrain=True)
    retr.prepare(ctx)
    hist = load_checkpoint(retr.checkpoint).meta["train"]["history"]
    assert [h["p_predicted"] for h in hist] == pytest.approx(expected)  # p at steps 10 and 20 of 20


HARNESS_SPELLED = ["srm=1", "one_label=false", "feedback=normalised", "clip=1", "positive=random", "negatives=fresh",
                   "batching=padded", "eps=1e-8"]
REFERENCE_SPELLED = ["srm=10", "one_label=true", "feedback=raw", "clip=5", "positive=first", "negatives=fixed",
                     "batching=majority", "eps=1e-6"]


def test_the_training_recipe_shapes_the_checkpoint_key() -> None:
    """A recipe keys by the values it resolves to: `recipe=reference` is its parameters spelled out, the harness
    recipe is today's key, and each parameter on its own moves the key."""
    retr, ctx = _ctx(params=QUICK)
    base, _ = retr.checkpoint_for(ctx)
    for same in (["recipe=harness"], ["clip=1"], HARNESS_SPELLED):
        assert build_retriever("amer", [*QUICK, *same]).checkpoint_for(ctx)[0] == base
    reference, _ = build_retriever("amer", [*QUICK, "recipe=reference"]).checkpoint_for(ctx)
    assert reference != base
    assert build_retriever("amer", [*QUICK, *REFERENCE_SPELLED]).checkpoint_for(ctx)[0] == reference
    assert build_retriever("amer", [*QUICK, "recipe=reference", *HARNESS_SPELLED]).checkpoint_for(ctx)[0] == base
    keys = {build_retriever("amer", [*QUICK, flag]).checkpoint_for(ctx)[0] for flag in REFERENCE_SPELLED}
    assert len(keys) == len(REFERENCE_SPELLED) and base not in keys


def test_results_record_the_recipe_and_every_resolved_value(quick, tmp_path) -> None:
    for result in quick.values():
        assert result.retriever_params["recipe"] == "harness"
        assert result.retriever_info["training_recipe"]["recipe"] == "harness"
    assert quick["amer"].retriever_info["training_recipe"] == {
        "recipe": "harness", "srm": 1.0, "one_label": False, "feedback": "normalised", "clip": 1.0,
        "positive": "random", "negatives": "fresh", "batching": "padded", "eps": 1e-8}
    ref, _ = evaluate_named(TASK, "amer", (10,), TP, [*QUICK, "recipe=reference", "srm=4"], seed=0, retrain=True,
                            results_dir=tmp_path)
    assert ref.retriever_params["recipe"] == "reference" and ref.retriever_params["srm"] == 4.0
    assert ref.retriever_info["training_recipe"] == {
        "recipe": "reference", "srm": 4.0, "one_label": True, "feedback": "raw", "clip": 5.0, "positive": "first",
        "negatives": "fixed", "batching": "majority", "eps": 1e-6}
    ckpt = load_checkpoint(ref.retriever_info["checkpoint"])
    assert ckpt.meta["model"]["feedback"] == "raw"  # inference feeds back as training did
    assert [h["p_predicted"] for h in ckpt.meta["train"]["history"]] == pytest.approx([0.8, 0.8])  # 4·9/20 ≥ 0.8
