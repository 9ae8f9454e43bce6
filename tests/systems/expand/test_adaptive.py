"""Adaptive expansion (bench/systems/expand/adaptive.py): the gate's logistic regression, the stage's wiring, and a
planted task where expansion helps exactly the queries that carry a marker."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench.errors import BenchError
from bench.registry import EXPANDERS
from bench.systems.build import build_system, system_spec
from bench.systems.expand.adaptive import GateParams, fit_gate
from tests.support.openai_server import OpenAIServer, question_of

NOUNS = ("anchor banjo cactus dagger easel falcon glacier harp igloo jaguar kettle lantern mango needle oyster parrot "
         "quill raft saddle tuba umbrella violin walrus yacht zebra acorn bison candle dolphin emerald fossil goblet "
         "hammock iris jukebox kayak lobster meteor nutmeg orchid pelican quartz rhubarb sphinx trombone unicorn "
         "volcano windmill").split()


# ------------------------------------------------------------------------------------------------------ the gate
def _loop_loss(w: np.ndarray, z: np.ndarray, y: np.ndarray, l2: float) -> float:
    n = len(y)
    total = 0.0
    for i in range(n):
        t = sum(w[j] * z[i, j] for j in range(z.shape[1])) + w[-1]
        p = 1 / (1 + math.exp(-t))
        total += -(y[i] * math.log(p) + (1 - y[i]) * math.log(1 - p))
    return total / n + 0.5 * l2 / n * sum(v * v for v in w[:-1])


def test_fit_gate_minimises_the_regularised_log_loss() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(int)
    gate = fit_gate(x, y, l2=2.0)
    z = (x - x.mean(0)) / x.std(0)
    best = _loop_loss(gate.weights, z, y, 2.0)
    for k in range(4):  # a local minimum of the convex loss: every small step makes it worse
        for eps in (1e-3, -1e-3):
            w = gate.weights.copy()
            w[k] += eps
            assert _loop_loss(w, z, y, 2.0) > best
    p = gate.probability(x)
    assert np.mean((p >= 0.5) == (y == 1)) > 0.8
    assert np.allclose(p, 1 / (1 + np.exp(-(z @ gate.weights[:-1] + gate.weights[-1]))))


def test_fit_gate_one_class_and_determinism() -> None:
    x = np.random.default_rng(1).normal(size=(10, 4))
    assert (fit_gate(x, np.zeros(10)).probability(x) < 0.01).all()
    assert (fit_gate(x, np.ones(10)).probability(x) > 0.99).all()
    y = np.arange(10) % 2
    assert np.array_equal(fit_gate(x, y).weights, fit_gate(x, y).weights)


def test_stage_names_params_and_validation() -> None:
    for wrapped in ("llm", "subqueries", "prf"):
        meta, _ = EXPANDERS.get(f"adaptive:{wrapped}")
        defaults = meta.param_defaults()
        assert {"judge", "features", "recall_k", "train_queries", "l2", "threshold"} <= set(defaults)
        assert set(EXPANDERS.get(wrapped)[0].param_defaults()) <= set(defaults)  # the wrapped stage's own
    system = build_system(system_spec("minilm", "adaptive:prf"), ["recall_k=5", "fb_docs=3"])
    assert system.name == "minilm+adaptive:prf(fb_docs=3,recall_k=5)"
    assert system.expander.inner.params.fb_docs == 3
    assert build_system(system.name).name == system.name  # the canonical name re-parses
    with pytest.raises(BenchError):
        build_system("minilm+adaptive:prf(threshold=1.5)")
    with pytest.raises(ValueError):
        GateParams(train_queries=1)


# ---------------------------------------------------------------------------------------------- a planted task
def _planted(folder: Path, n: int = 200, seed: int = 0) -> dict[str, tuple[bool, str, str]]:
    """A BEIR folder: one document per noun; each query has two of them as answers. A query with the marker
    ('Riddle') names neither answer, so only an expansion that names them finds them; a plain query names both and
    is solved without help. Returns question → (marked, noun a, noun b)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as f:
        for i, noun in enumerate(NOUNS):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": f"The {noun} is kept in hall {i} of the "
                                f"museum, next to the other {noun} exhibits."}) + "\n")
    out: dict[str, tuple[bool, str, str]] = {}
    with (folder / "queries.jsonl").open("w") as fq, (folder / "qrels.jsonl").open("w") as fr:
        for q in range(n):
            a, b = rng.choice(len(NOUNS), 2, replace=False)
            marked = bool(rng.random() < 0.4)
            text = (f"Riddle {q}: which two exhibits did the curator hide together?" if marked
                    else f"Where are the {NOUNS[a]} and the {NOUNS[b]} kept?")
            out[text] = (marked, NOUNS[a], NOUNS[b])
            fq.write(json.dumps({"_id": f"q{q}", "text": text}) + "\n")
            for d in (a, b):
                fr.write(json.dumps({"query-id": f"q{q}", "corpus-id": f"d{d}", "score": 1}) + "\n")
    return out


def _reply(planted: dict[str, tuple[bool, str, str]]):  # type: ignore[no-untyped-def]
    def reply(messages: list[dict]) -> str:
        marked, a, b = planted[question_of(messages)]
        return f"{a}, {b}" if marked else "museum, hall"  # helps a riddle; changes nothing for a plain query

    return reply


def _run(args: list[str], cache: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    from bench.cli import main

    monkeypatch.setenv("BENCH_CACHE_DIR", str(cache))
    results = cache / "results"
    assert main([*args, "--results-dir", str(results)]) == 0
    files = sorted(results.rglob("*.json"))
    return json.loads(files[-1].read_text())


@pytest.mark.slow
def test_gate_learns_to_expand_the_marked_queries_and_saves_requests(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    planted = _planted(tmp_path / "planted")
    task = ["--task", "beir", "-t", f"data_dir={tmp_path / 'planted'}", "-t", "train_fraction=0.25", "--k", "2,10"]
    with OpenAIServer(reply=_reply(planted)) as server:
        llm = ["--llm-base-url", server.base_url, "--llm-model", "test-model"]
        always = _run(["run", *task, "--retriever", "minilm", "--expand", "llm", *llm], tmp_path / "c1", monkeypatch)
        always_requests = server.requests
        adaptive = _run(["run", *task, "--retriever", "minilm", "--expand", "adaptive:llm", *llm,
                         "-r", "recall_k=2", "-r", "train_queries=40"], tmp_path / "c2", monkeypatch)
        adaptive_requests = server.requests - always_requests
        again = _run(["run", *task, "--retriever", "minilm", "--expand", "adaptive:llm", *llm,
                      "-r", "recall_k=2", "-r", "train_queries=40"], tmp_path / "c2", monkeypatch)
        assert server.requests == always_requests + adaptive_requests  # cached gate and replies: no request
    exp = adaptive["extra"]["expander"]
    test = exp["by_split"]["test"]
    n_test = len(adaptive["query_ids"])
    texts = _texts(tmp_path / "planted", adaptive["query_ids"])
    assert always_requests == len(set(texts))  # always-expand: one request per distinct test question
    # the gate was fitted on 40 train queries: riddles helped, plain queries not
    assert exp["gate"]["train_queries"] == 40 and exp["gate"]["llm_requests"] == 40
    marked = np.array([planted[t][0] for t in texts])
    chosen = np.zeros(n_test, dtype=bool)
    chosen[test["expanded_queries"]] = True
    assert np.mean(chosen == marked) >= 0.9
    assert test["expanded"] == int(chosen.sum()) and test["llm_calls_saved"] == n_test - int(chosen.sum())
    # the server saw fewer requests, gate training included; at evaluation exactly one per expanded query
    assert test["llm_requests"] == test["expanded"]
    assert adaptive_requests == 40 + test["expanded"] < always_requests
    assert adaptive["system"] == "minilm+adaptive:llm(model=test-model,recall_k=2,train_queries=40)"
    assert again["summary"] == adaptive["summary"]
    assert again["extra"]["expander"]["by_split"]["test"]["expanded_queries"] == test["expanded_queries"]
    assert again["extra"]["expander"]["gate"]["llm_requests"] == 0
    # the query-side cost `bench compare` reports: LLM calls per query needed, whether sent or cached
    assert always["extra"]["query_cost"] == {"searches_per_query": 1.0,
                                             "llm_calls_per_query": round(len(set(texts)) / n_test, 4)}
    assert adaptive["extra"]["query_cost"]["llm_calls_per_query"] == round(test["expanded"] / n_test, 4) < 1
    assert again["extra"]["query_cost"] == adaptive["extra"]["query_cost"]
    # expanding only the riddles loses nothing against expanding all
    assert adaptive["summary"]["Recall@2"] >= always["summary"]["Recall@2"] - 0.02


def _texts(folder: Path, query_ids: list[str]) -> list[str]:
    by_id = {json.loads(line)["_id"]: json.loads(line)["text"] for line in (folder / "queries.jsonl").open()}
    return [by_id[q] for q in query_ids]
