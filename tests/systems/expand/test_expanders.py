"""Query expanders (bench/systems/expand/*.py): reply parsers, RM3 on a hand-computed corpus, and runs of `llm`,
`subqueries` and `prf` on LIMIT-small through the pipeline and the CLI, the LLM ones against a real HTTP server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.index.bm25 import BM25Index, BM25Params
from bench.params import parse_params
from bench.systems.expand.llm import KeywordParams, clean_item, expanded_query, parse_keywords, reference_query
from bench.systems.expand.prf import PRFParams, SurfaceForms, expansion_text, repetitions, rm3
from bench.systems.expand.subqueries import SubqueryParams, parse_subqueries
from tests.support.openai_server import OpenAIServer, question_of

# --------------------------------------------------------------------------------------------------- parsers


def test_keywords_from_a_comma_list() -> None:
    assert parse_keywords("Paris, Lyon ,  Marseille.") == ["Paris", "Lyon", "Marseille"]


def test_keywords_from_a_numbered_list_with_preamble_markup_and_repeats() -> None:
    reply = ("Here are some keywords for your question:\n1. **Paris**\n2) Lyon, marseille\n3. paris\n"
             "- \"Nice\"\n* Which cities are in France?\n4. This line is a whole sentence rather than a keyword.")
    assert parse_keywords(reply, "Which cities are in France?") == ["Paris", "Lyon", "marseille", "Nice"]


def test_keywords_label_limit_and_empty() -> None:
    assert parse_keywords("Keywords: a1, b2, c3, d4", limit=3) == ["a1", "b2", "c3"]
    assert parse_keywords("") == [] and parse_keywords("1.\n2.\n, ,") == []
    assert clean_item("  3. **Keyword:** Eiffel Tower;") == "Eiffel Tower"


def test_expanded_query() -> None:
    assert expanded_query("Who sang it?", ["a", "b c"]) == "Who sang it? a, b c"
    assert expanded_query("Who sang it?", []) == "Who sang it?"
    # the reference implementation's format: a space before the line break, the reply unparsed
    assert reference_query("Who sang it?", "1. a\n2. b c") == "Question: Who sang it? \nRelevant Keywords: 1. a\n2. b c"
    with pytest.raises(BenchError, match="query_format must be one of harness, reference"):
        parse_params(KeywordParams, "expander llm", ["query_format=json"])


def test_subqueries_numbered_labelled_and_several_per_line() -> None:
    reply = ("Sure! Here are 3 questions:\n1. Who wrote Hamlet? 2. Who wrote Macbeth?\n"
             "Sub-question 3: Who directed Hamlet in 1948?\n4. One more question here?")
    assert parse_subqueries(reply, 3) == ["Who wrote Hamlet?", "Who wrote Macbeth?", "Who directed Hamlet in 1948?"]


def test_subqueries_drop_duplicates_short_lines_and_the_question() -> None:
    reply = "- Who likes apples?\n- who likes apples?\n- Apples?\n- Who likes pears\n\n- Who likes quinces?"
    assert parse_subqueries(reply, 5, question="Who likes quinces?") == ["Who likes apples?", "Who likes pears"]
    assert parse_subqueries("", 3) == []


def test_llm_params_validate() -> None:
    assert parse_params(SubqueryParams, "expander subqueries", ["m=5", "timeout=2.5"]).m == 5
    for bad in (["m=0"], ["concurrency=0"], ["timeout=0"], ["max_retries=-1"]):
        with pytest.raises(BenchError):
            parse_params(SubqueryParams, "expander subqueries", bad)
    with pytest.raises(BenchError):
        parse_params(KeywordParams, "expander llm", ["max_keywords=0"])


# --------------------------------------------------------------------------------------------------------- RM3

TINY = ["apple banana", "apple cherry cherry", "durian"]
RAW = BM25Params(stopwords="none", stemmer="none")


def test_rm3_weights_hand_computed() -> None:
    """Query 'apple' hits d0 (|d| = 2) and d1 (|d| = 3); avgdl = 2, k1 = 0.9, b = 0.4 (Lucene BM25):
    s0 = idf/(1 + 0.9·1) = idf/1.9, s1 = idf/(1 + 0.9·1.2) = idf/2.08, so P(d0|Q) = 2.08/3.98, P(d1|Q) = 1.9/3.98.
    RM1: apple = P0·1/2 + P1·1/3, banana = P0·1/2, cherry = P1·2/3; RM3 = 0.5·P(w|Q) + 0.5·RM1."""
    idx = BM25Index.from_texts(TINY, RAW)
    model = rm3(idx, "apple", fb_docs=10, fb_terms=10, orig_weight=0.5)
    p0, p1 = 2.08 / 3.98, 1.9 / 3.98
    rm1 = {idx.term(t): v for t, v in model.rm1.items()}
    assert rm1 == pytest.approx({"apple": p0 / 2 + p1 / 3, "banana": p0 / 2, "cherry": 2 * p1 / 3}, rel=1e-6)
    weights = {idx.term(t): v for t, v in model.weights.items()}
    assert weights == pytest.approx({"apple": 0.5 + 0.5 * (p0 / 2 + p1 / 3), "banana": 0.5 * p0 / 2,
                                     "cherry": 0.5 * 2 * p1 / 3}, rel=1e-6)
    assert sum(model.weights.values()) == pytest.approx(1.0)
    assert model.feedback_rows == [0, 1]  # durian shares no term: not feedback


def test_rm3_fb_terms_truncates_and_renormalises() -> None:
    idx = BM25Index.from_texts(TINY, RAW)
    model = rm3(idx, "apple", fb_terms=2, orig_weight=0.5)
    p0, p1 = 2.08 / 3.98, 1.9 / 3.98
    apple, cherry = p0 / 2 + p1 / 3, 2 * p1 / 3  # banana (p0/2 ≈ 0.261) is the smallest of the three
    rm1 = {idx.term(t): v for t, v in model.rm1.items()}
    assert rm1 == pytest.approx({"apple": apple / (apple + cherry), "cherry": cherry / (apple + cherry)}, rel=1e-6)


def test_rm3_fb_docs_one() -> None:
    idx = BM25Index.from_texts(TINY, RAW)
    model = rm3(idx, "apple", fb_docs=1, orig_weight=0.5)
    assert model.feedback_rows == [0]
    assert {idx.term(t): v for t, v in model.rm1.items()} == pytest.approx({"apple": 0.5, "banana": 0.5})


def test_rm3_text_repeats_terms_in_units_of_a_question_token() -> None:
    """α = 0.2, |Q| = 1, unit 0.2: apple 0.2 + 0.8·0.4204 = 0.536 → 3 (cap 3) → 2 more; cherry 0.8·0.3183 = 0.255
    → 1; banana 0.8·0.2613 = 0.209 → 1; written by descending weight."""
    idx = BM25Index.from_texts(TINY, RAW)
    model = rm3(idx, "apple", orig_weight=0.2)
    extra = repetitions(model, 0.2, max_repeat=3)
    assert {idx.term(t): v for t, v in extra.items()} == {"apple": 2, "cherry": 1, "banana": 1}
    forms = SurfaceForms(RAW)
    for t in TINY[:2]:
        forms.add(t)
    assert expansion_text("Apple", model, extra, idx, forms) == "Apple apple apple cherry banana"
    once = repetitions(model, 0.2, max_repeat=1)
    assert {idx.term(t): v for t, v in once.items()} == {"cherry": 1, "banana": 1}
    # α = 1 is the original query: nothing is added
    assert repetitions(rm3(idx, "apple", orig_weight=1.0), 1.0, 3) == {}


def test_rm3_unknown_words_and_surface_forms_of_stems() -> None:
    idx = BM25Index.from_texts(["The runners were running fast", "running shoes for runners", "a quiet library"],
                               BM25Params())
    assert rm3(idx, "zzzz qqqq").weights == {}
    model = rm3(idx, "running", orig_weight=0.3)
    extra = repetitions(model, 0.3, 3)
    forms = SurfaceForms(BM25Params())
    for r in model.feedback_rows:
        forms.add(["The runners were running fast", "running shoes for runners", "a quiet library"][r])
    text = expansion_text("running", model, extra, idx, forms)
    words = text.split()[1:]
    assert words and all(w in {"running", "runners", "fast", "shoes"} for w in words)  # spellings, not stems
    assert idx.query_term_ids("runners") == idx.query_term_ids("runner")  # the stem the index matches


def test_prf_params_validate() -> None:
    for bad in (["fb_docs=0"], ["fb_terms=0"], ["orig_weight=0"], ["orig_weight=1.5"], ["max_repeat=0"]):
        with pytest.raises(BenchError):
            parse_params(PRFParams, "expander prf", bad)


# --------------------------------------------------------------------------------------- runs on LIMIT-small

SUBSET = ["-t", "train_fraction=0.98"]  # 20 of LIMIT-small's 1,000 queries (seeded), to keep the runs short


def keyword_reply(messages: list[dict]) -> str:
    q = question_of(messages)
    if "questions" in messages[-1]["content"]:
        return f"1. Who exactly likes {len(q)}?\n2. Which person likes things?\n3. Who likes {q.split()[-1]}"
    return f"Here are the keywords:\n1. kw{len(q)}\n2. hobby, hobby"


def _limit(shared_data: Path) -> list[str]:
    return ["-t", f"data_dir={shared_data / 'limit-small'}", *SUBSET]


def _cli(args: list[str]) -> int:
    from bench.cli import main

    return main(args)


def _result(results: Path) -> dict:
    files = sorted(results.rglob("*.json"))
    assert files, f"no result under {results}"
    return json.loads(files[-1].read_text())


def test_llm_expansion_run_caches_and_records(shared_data: Path, tmp_path: Path) -> None:
    from bench.data.task import build_task
    from bench.systems.build import build_system
    from bench.systems.context import RunContext
    from bench.systems.session import Session

    with OpenAIServer(reply=keyword_reply) as server:
        args = ["run", "--task", "limit-small", *_limit(shared_data), "--retriever", "minilm", "--expand", "llm",
                "--llm-base-url", server.base_url, "--llm-model", "test-model", "--results-dir", str(tmp_path / "r1")]
        assert _cli(args) == 0
        assert server.requests == 20
        rec = _result(tmp_path / "r1")
        assert rec["system"] == "minilm+llm(model=test-model)"
        exp = rec["extra"]["expander"]
        assert exp["model"] == "test-model" and exp["base_url"] == server.base_url and len(exp["prompt_hash"]) == 16
        assert exp["requests"] == 20 and exp["cache_hits"] == 0 and exp["by_split"]["test"]["mean_keywords"] == 2
        # second run: every reply from the cache, not one request
        args[-1] = str(tmp_path / "r2")
        assert _cli(args) == 0
        assert server.requests == 20
        rec2 = _result(tmp_path / "r2")
        assert rec2["extra"]["expander"]["cache_hits"] == 20 and rec2["extra"]["expander"]["requests"] == 0
        assert rec2["summary"] == rec["summary"]
        # the texts the retriever encodes: question, then the parsed keywords
        data = Session().task_data(build_task("limit-small", [f"data_dir={shared_data / 'limit-small'}",
                                                              "train_fraction=0.98"]))
        system = build_system("minilm+llm(model=test-model)", [f"llm.base_url={server.base_url}"])
        q = data.split("test").texts[0]
        ctx = RunContext(task=data, corpus_embeddings=None, index=None)
        assert system.expander.expand([q], data.split("test"), ctx) == [[f"{q} kw{len(q)}, hobby"]]
        # -r llm.query_format=reference: the reference implementation's query around the same (cached) reply
        ref = build_system("minilm+llm(model=test-model)", [f"llm.base_url={server.base_url}",
                                                            "llm.query_format=reference"])
        assert ref.name == "minilm+llm(model=test-model,query_format=reference)"
        assert ref.expander.expand([q], data.split("test"), ctx) == [
            [f"Question: {q} \nRelevant Keywords: {keyword_reply([{'content': 'Question: ' + q}])}"]]


def test_subqueries_run_fuses_m_lists(shared_data: Path, tmp_path: Path) -> None:
    with OpenAIServer(reply=keyword_reply) as server:
        args = ["run", "--task", "limit-small", *_limit(shared_data), "--retriever", "minilm", "--expand",
                "subqueries", "--llm-base-url", server.base_url, "--llm-model", "test-model", "-r", "m=2",
                "--results-dir", str(tmp_path)]
        assert _cli(args) == 0
        assert server.requests == 20
        body = server.bodies[0]["messages"][-1]["content"]
        assert "Write 2 distinct" in body
    rec = _result(tmp_path)
    assert rec["system"] == "minilm+subqueries(model=test-model,m=2)"
    assert rec["retriever_info"]["m"] == 2 and rec["extra"]["expander"]["by_split"]["test"]["mean_texts"] == 2


def test_key_is_in_no_file_the_run_wrote(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-H9b-secret-0123456789"
    monkeypatch.setenv("MY_LLM_KEY", secret)
    cache = Path(os.environ["BENCH_CACHE_DIR"])
    with OpenAIServer(reply=keyword_reply, api_key=secret) as server:
        args = ["run", "--task", "limit-small", *_limit(shared_data), "--retriever", "minilm", "--expand", "llm",
                "--llm-base-url", server.base_url, "--llm-model", "keyed-model", "-r", "llm.api_key_env=MY_LLM_KEY",
                "--results-dir", str(tmp_path)]
        assert _cli(args) == 0
        assert server.requests == 20 and set(server.auth_headers) == {f"Bearer {secret}"}
    written = [p for root in (tmp_path, cache) for p in root.rglob("*") if p.is_file()]
    assert any("llm" in p.parts for p in written)  # the reply cache was written...
    leaks = [p for p in written if secret.encode() in p.read_bytes()]
    assert leaks == []  # ...and no file holds the key
    assert _result(tmp_path)["extra"]["expander"]["api_key_env"] == "MY_LLM_KEY"


def test_401_through_the_cli_is_one_error_line(shared_data: Path, tmp_path: Path, capfd: pytest.CaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-401")
    with OpenAIServer(reply=keyword_reply, api_key="sk-right") as server:
        args = ["run", "--task", "limit-small", *_limit(shared_data), "--retriever", "minilm", "--expand", "llm",
                "--llm-base-url", server.base_url, "--llm-model", "other-model", "--results-dir", str(tmp_path)]
        assert _cli(args) == 2
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and server.base_url in lines[0] and "401" in lines[0]
    assert "Traceback" not in err and "sk-wrong-key-401" not in err
    assert not list(tmp_path.rglob("*.json"))


def test_unreachable_endpoint_through_the_cli(shared_data: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    args = ["run", "--task", "limit-small", *_limit(shared_data), "--retriever", "minilm", "--expand", "llm",
            "--llm-base-url", url, "--llm-model", "m", "-r", "max_retries=0", "--results-dir", str(tmp_path)]
    assert _cli(args) == 2
    err = capfd.readouterr().err
    assert f"error: cannot connect to LLM endpoint {url}" in " ".join(err.split()) and "Traceback" not in err


def test_prf_run_records_rm3(shared_data: Path, tmp_path: Path) -> None:
    args = ["run", "--task", "limit-small", *_limit(shared_data), "--retriever", "minilm", "--expand", "prf",
            "--results-dir", str(tmp_path)]
    assert _cli(args) == 0
    rec = _result(tmp_path)
    assert rec["system"] == "minilm+prf"
    exp = rec["extra"]["expander"]
    assert exp["method"] == "rm3" and exp["bm25"]["library"] == "bm25s"
    assert exp["by_split"]["test"]["mean_added_tokens"] > 0 and exp["by_split"]["test"]["queries_without_feedback"] == 0
