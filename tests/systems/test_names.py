"""The stage seam (bench/systems/stages.py) and system names (bench/systems/names.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.errors import BenchError
from bench.registry import EXPANDERS, FUSERS, RERANKERS
from bench.systems.build import build_system, canonical_name, route_params, system_spec
from bench.systems.names import StageRef, SystemSpec, format_system, parse_system, split_systems
from bench.systems.records import ArrayDocuments, Candidates, PerVectorLists, QueryVectors

NEG = -np.inf


# ------------------------------------------------------------------------------------------------------ candidates
def test_from_unsorted_orders_by_score_then_row_and_pads() -> None:
    c = Candidates.from_unsorted(np.array([[5, 2, 9, -1]]), np.array([[0.5, 0.7, 0.5, 3.0]]), 5)
    assert c.rows.tolist() == [[2, 5, 9, -1, -1]]
    assert c.scores[0, :3].tolist() == pytest.approx([0.7, 0.5, 0.5]) and np.all(c.scores[0, 3:] == NEG)
    c.check()


@pytest.mark.parametrize("rows,scores,what", [
    ([[1, 2]], [[0.1, 0.2]], "increase"),
    ([[2, 1]], [[0.5, 0.5]], "lower corpus row"),
    ([[1, 1]], [[0.5, 0.4]], "twice"),
    ([[-1, 1]], [[NEG, 0.4]], "padding"),
    ([[1, -1]], [[0.5, 0.4]], "finite score"),
])
def test_check_rejects_broken_lists(rows, scores, what) -> None:
    with pytest.raises(BenchError, match=what):
        Candidates(np.array(rows), np.array(scores)).check()


def test_per_vector_lists_from_flat_groups_a_varying_number_per_query() -> None:
    flat = Candidates(np.array([[1, 2], [3, 4], [5, 6], [7, 8]]), np.array([[0.9, 0.8]] * 4))
    lists = PerVectorLists.from_flat(flat, np.array([0, 2, 0, 2]), 3)  # query 1 has no list, queries 0 and 2 two
    assert lists.shape == (3, 2, 2)
    assert lists.mask.tolist() == [[True, True], [False, False], [True, True]]
    assert lists.rows[0].tolist() == [[1, 2], [5, 6]] and lists.rows[2].tolist() == [[3, 4], [7, 8]]
    assert np.all(lists.rows[1] == -1) and np.all(lists.scores[1] == NEG)


def test_query_vectors_from_flat_and_masked_lists_are_padding() -> None:
    qv = QueryVectors.from_flat(np.eye(3, dtype=np.float32), np.array([1, 0, 1]), 2)
    assert qv.mask.tolist() == [[True, False], [True, True]]
    assert qv.vectors[1, 1].tolist() == [0, 0, 1]
    lists = PerVectorLists(np.ones((1, 2, 2)), np.ones((1, 2, 2)), np.array([[True, False]]))
    assert lists.rows[0, 1].tolist() == [-1, -1]


def test_array_documents_gather_zeroes_padding() -> None:
    docs = ArrayDocuments(np.arange(6, dtype=np.float32).reshape(3, 2))
    out = docs.gather(np.array([[2, -1]]))
    assert out.shape == (1, 2, 2) and out[0, 0].tolist() == [4, 5] and out[0, 1].tolist() == [0, 0]


# ---------------------------------------------------------------------------------------------------- system names
@pytest.mark.parametrize("name", [
    "minilm", "amer[sampling=teacher]", "amer@rrf(k=60)", "minilm+mmr(λ=0.75)", "oracle@combsum(norm=minmax)+mmr",
    "amer[steps=300,sampling=teacher]@rrf", '"st:/a path/x+y"', "minilm+mmr(grid=(0.5,0.9))",
])
def test_parse_print_round_trip(name: str) -> None:
    assert format_system(parse_system(name)) == name


def test_parse_classifies_stages() -> None:
    spec = parse_system("amer[steps=5]@rrf(k=10)+mmr(λ=0.5)")
    assert spec.retriever == StageRef("amer", (("steps", "5"),))
    assert spec.fuser == StageRef("rrf", (("k", "10"),))
    assert spec.rerankers == (StageRef("mmr", (("λ", "0.5"),)),)


@pytest.mark.parametrize("bad,msg", [
    ("", "empty"), ("amer@rrf@rrf", "at most one fuser"), ("amer+mmr@rrf", "before any re-ranker"),
    ("amer+nosuch", "neither an expander nor a re-ranker"), ("amer[steps]", "expected '='"),
    ("amer(k=1)", "expected '\\+' or '@'"), ('amer[x="unterminated]', "quoted"),
])
def test_parse_errors(bad: str, msg: str) -> None:
    with pytest.raises(BenchError, match=msg):
        parse_system(bad)


def test_split_systems_respects_brackets_and_quotes() -> None:
    assert split_systems("a,b[x=1,y=2],c@rrf(k=60),'d'") == ["a", "b[x=1,y=2]", "c@rrf(k=60)", "'d'"]
    assert split_systems('"st:x,y",z') == ['"st:x,y"', "z"]
    assert split_systems(",") == [] and split_systems(" , ,") == []


def test_canonical_names_drop_defaults_and_run_settings() -> None:
    assert canonical_name("amer[steps=1500,device=cpu,threads=2]") == "amer"
    assert canonical_name("amer@round-robin") == "amer"
    assert canonical_name("amer@rrf") == "amer@rrf"
    assert canonical_name("amer@rrf(k=60)") == "amer@rrf"
    assert canonical_name("amer@rrf(k=10)") == "amer@rrf(k=10)"
    assert canonical_name("amer@max") == "amer@combmax"
    assert canonical_name("amer", ["sampling=teacher"]) == "amer[sampling=teacher]"
    assert canonical_name("minilm+mmr(lam=0.75)") == "minilm+mmr(λ=0.75)"
    assert canonical_name("minilm+mmr(λ=0.75)") == "minilm+mmr(λ=0.75)"
    with pytest.raises(BenchError, match="no system of this run has a stage 'mmr'"):
        canonical_name("minilm", ["mmr.lam=0.5"])
    assert canonical_name("minilm+mmr", ["mmr.grid=0.5,0.9"]) == "minilm+mmr(grid=(0.5,0.9))"


def test_every_canonical_name_rebuilds_to_itself() -> None:
    for name in ["amer[sampling=teacher]", "amer@rrf(k=10)", "minilm+mmr(λ=0.75)", "oracle@combsum(norm=zscore)",
                 "amer[steps=300]@combmax+mmr(grid=(0.5,0.9))"]:
        first = canonical_name(name)
        assert canonical_name(first) == first


def test_param_routing_per_stage() -> None:
    spec = system_spec("amer", fusion="rrf", rerank=["mmr"])
    routed, used = route_params(spec, ["amer.steps=100", "k=30", "mmr.λ=0.5", "sampling=teacher"])
    assert dict(routed.retriever.params) == {"steps": "100", "sampling": "teacher"}
    assert dict(routed.fuser.params) == {"k": "30"}
    assert dict(routed.rerankers[0].params) == {"λ": "0.5"}
    assert len(used) == 4
    name = build_system(routed).name  # parameters in the params dataclass's field order
    assert name in ("amer[steps=100,sampling=teacher]@rrf(k=30)+mmr(λ=0.5)",
                    "amer[sampling=teacher,steps=100]@rrf(k=30)+mmr(λ=0.5)")
    assert canonical_name(name) == name


def test_param_routing_errors_name_the_stage() -> None:
    with pytest.raises(BenchError, match=r"retriever amer: unknown parameter 'stepz'.*known: .*steps"):
        route_params(system_spec("amer"), ["amer.stepz=1"])
    with pytest.raises(BenchError, match=r"reranker mmr: unknown parameter 'k'"):
        route_params(system_spec("minilm", rerank=["mmr"]), ["mmr.k=1"])
    with pytest.raises(BenchError, match=r"unknown parameter 'nosuch'.*no stage of amer"):
        build_system("amer", ["nosuch=1"])
    with pytest.raises(BenchError, match="not a valid int"):
        build_system("amer", ["steps=many"])


def test_several_systems_share_pairs_each_takes_its_own() -> None:
    used: set[str] = set()
    names = []
    for name in ("amer", "minilm"):
        spec, took = route_params(system_spec(name), ["steps=100", "minilm.batch_size=8"])
        used |= took
        names.append(build_system(spec).name)
    assert names == ["amer[steps=100]", "minilm"] and used == {"steps=100", "minilm.batch_size=8"}


def test_cli_flags_compose_and_conflict() -> None:
    assert format_system(system_spec("amer", fusion="sum")) == "amer@combsum"
    with pytest.raises(BenchError, match="already fuses"):
        system_spec("amer@rrf", fusion="max")
    with pytest.raises(BenchError, match="unknown fuser"):
        system_spec("amer", fusion="median")


def test_stage_registries_list_the_builtins() -> None:
    assert "mmr" in RERANKERS.all()
    assert {"round-robin", "rrf", "combmax", "combsum"} <= set(FUSERS.all())
    assert isinstance(EXPANDERS.all(), dict)


# ------------------------------------------------------------------------------------------ hypothesis round trip
_key = st.from_regex(r"[a-z][a-z_]{0,6}", fullmatch=True)
_scalar = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False, width=32),
                    st.booleans(), st.text(min_size=1, max_size=8))
_value = st.one_of(_scalar, st.lists(_scalar, max_size=3).map(tuple))
_params = st.lists(st.tuples(_key, _value), max_size=3, unique_by=lambda kv: kv[0]).map(tuple)


@settings(max_examples=200, deadline=None)
@given(retriever=st.sampled_from(["amer", "minilm", "st:some/model", "st:/a b/c+d"]), rparams=_params,
       fuser=st.one_of(st.none(), st.sampled_from(["rrf", "combsum"])), fparams=_params,
       rerank=st.lists(_params, max_size=2))
def test_format_then_parse_is_identity(retriever, rparams, fuser, fparams, rerank) -> None:
    spec = SystemSpec(StageRef(retriever, rparams), None, StageRef(fuser, fparams) if fuser else None,
                      tuple(StageRef("mmr", p) for p in rerank))
    text = format_system(spec)
    again = parse_system(text)
    assert format_system(again) == text
    assert again.retriever.name == retriever and len(again.rerankers) == len(rerank)


def test_bench_list_shows_the_composable_stages(capsys) -> None:
    from bench.cli import main

    assert main(["list", "retrievers"]) == 0
    out = capsys.readouterr().out
    assert "bm25" in out and "system names" in out and "bench list stages" in out
    assert main(["list", "stages"]) == 0
    out = capsys.readouterr().out
    for text in ("mmr", "rrf", "combmax", "round-robin", "prf", "fusers", "re-rankers"):
        assert text in out, text
    assert main(["list", "fusers"]) == 0
    out = capsys.readouterr().out
    assert "rrf" in out and "mmr" not in out
    assert main(["list", "fusers", "rrf"]) == 0  # one plugin: its parameters with their defaults
    assert re.search(r"\bk\b.*\b60\b", capsys.readouterr().out)
    assert main(["list", "rerankers", "mmr"]) == 0
    assert re.search(r"λ.*None", capsys.readouterr().out)  # the display alias of MMR's lam


def test_typed_params_from_a_mapping_route_like_pairs() -> None:
    """Config files and stored runs give typed values (tuples, None): they reach the stages unconverted."""
    assert build_system("minilm+mmr", {"grid": (0.5, 0.9), "batch_size": 8}).name == "minilm+mmr(grid=(0.5,0.9))"
    assert build_system("amer", {"steps": 100, "backbone": None}).name == "amer[steps=100]"
    with pytest.raises(BenchError, match="unknown parameter 'nosuch'"):
        build_system("amer", {"nosuch": 1})


def test_a_trained_retrievers_batch_size_is_part_of_its_name() -> None:
    """batch_size is a run setting for an encoder (same vectors at any batch) but shapes a trained model's in-batch
    negatives, so it names a different AMER / Single-Query system."""
    assert canonical_name("minilm", ["batch_size=8"]) == "minilm"
    assert canonical_name("amer", ["batch_size=64"]) == "amer[batch_size=64]"
    assert canonical_name("single-query", ["batch_size=128"]) == "single-query"  # the default stays out
