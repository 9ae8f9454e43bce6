"""bench/results/page.py: the report page's content without a browser — self-contained, the numbers of
`build_comparison`, both figures inline, and a `bench run` command per system that reproduces its run exactly
(the browser test is tests/e2e/test_report_browser.py)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from bench.cli import main
from bench.results.page import build_report, run_command
from bench.results.record import load_run
from bench.results.runs import collect_runs

TINY = ["-t", "d=16", "-t", "n_train=100", "-t", "n_test=40", "-t", "n_negatives=300"]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("results")
    assert main(["run", "--task", "synthetic-linear-single", "--retriever", "oracle,input,input+mmr", *TINY,
                 "--seed", "3", "--results-dir", str(out)]) == 0
    return out


def test_the_page_is_self_contained_with_tables_figures_and_systems(results: Path) -> None:
    page = build_report(["synthetic-linear-single"], results)
    assert len(page.encode()) < 2 * 1024 * 1024
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)  # nothing fetched, no CDN
    assert "<link" not in page and "<script src" not in page and "@import" not in page
    assert page.count("<svg") == 2 and 'data-figure="bins"' in page and 'data-figure="gold"' in page
    assert page.count('<table class="results sortable"') == 2  # MRECALL and Recall
    for system in ("oracle", "input", "input+mmr"):
        assert f'<details class="system" data-system="{system}"' in page
    assert "bench run --task synthetic-linear-single --retriever input+mmr -t d=16" in page
    assert "searches / query" in page and "LLM calls / query" in page and "95% CI" in page


def test_each_command_reproduces_its_run(results: Path, tmp_path: Path) -> None:
    """Run the printed command: the new record has the config hash (task, parameters, system, seed, cutoffs) and
    the per-query values of the one it was printed for."""
    for label, (rec, _) in collect_runs("synthetic-linear-single", results, None).items():
        command = run_command(rec)
        assert command is not None and command.startswith("bench run ")
        assert "--seed 3" in command
        args = shlex.split(command)[1:] + ["--results-dir", str(tmp_path / label.replace("+", "_"))]
        assert main(args) == 0
        (again,) = (tmp_path / label.replace("+", "_")).rglob("*.json")
        new = load_run(again)
        assert (new.system, new.config_hash, new.per_query) == (rec.system, rec.config_hash, rec.per_query), label


def test_a_task_with_nothing_to_bin_says_why(tmp_path: Path) -> None:
    """bm25-like runs without document embeddings: the figures are notes, not errors."""
    assert main(["run", "--task", "synthetic-linear-single", "--retriever", "input", *TINY,
                 "--results-dir", str(tmp_path)]) == 0
    rec_path = next(tmp_path.rglob("*.json"))
    doc = json.loads(rec_path.read_text())
    doc["extra"].pop("target_diversity")
    rec_path.write_text(json.dumps(doc))
    page = build_report(["synthetic-linear-single"], tmp_path)
    assert "<svg" not in page and page.count("not available:") == 2


def test_the_audit_of_a_real_task_is_spelled_out(results: Path) -> None:
    from bench.results.page import audit_of

    (rec, _), *_ = collect_runs("synthetic-linear-single", results, None).values()
    assert not audit_of(rec).ran  # a synthetic task records none, and the page says so
    rec.task_info["audit"] = {"ran": True, "question_threshold": 0.9, "gold_threshold": 0.9,
                              "duplicate_questions": [], "duplicate_gold_sets": [{"test_id": "q7"}],
                              "repeated_gold": {"test": 12}, "questions_sharing_gold": {"test": 5},
                              "leaked_test_questions": ["q7"], "dropped": []}
    lines = audit_of(rec).lines
    assert "test gold sets ≈ a train gold set: 1" in lines
    assert ("test: 12 (question, passage) pairs where one passage is gold for two or more of the question's answers; "
            "5 questions have such a passage") in lines
    assert "leaked test questions: 1 (q7)" in lines
    assert "dropped from this run's test split: 0 (drop them with -t drop_leaked=true)" in lines
