"""BEIR-format tasks: loading, one cluster per relevant doc, splits, default data folder, and bad-input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.data.task import build_task
from bench.errors import BenchError
from bench.registry import TASKS
from tests.support.beir import make_beir


@pytest.mark.parametrize("tsv", [False, True])
def test_every_relevant_doc_is_a_cluster(tmp_path: Path, tsv: bool) -> None:
    folder = make_beir(tmp_path / "t", tsv=tsv)
    data = build_task("beir", [f"data_dir={folder}"]).load()
    test = data.split("test")
    assert data.modality == "text"
    assert data.corpus.ids == ["d0", "d1", "d2"]
    # q1's only judgement has score 0: not relevant, so q1 has no target and is dropped
    assert test.query_ids == ["q0", "q2"]
    assert test.texts == ["zero?", "two?"]
    assert test.targets.nested() == [[[2], [0]], [[1]]]
    assert data.info["queries_without_relevant_docs"] == {"test": 1}
    assert [t for _, _, t in data.corpus.iter_texts()] == ["first", "second", "third"]


def test_qrel_naming_unknown_doc_is_one_clear_error(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "t", qrels=[("q0", "d0", 1), ("q1", "nope", 1)])
    with pytest.raises(BenchError) as err:
        build_task("beir", [f"data_dir={folder}"]).load()
    assert str(err.value) == (
        f"{folder / 'qrels.jsonl'}, line 2: field 'corpus-id': 'nope' is not a document of {folder / 'corpus.jsonl'}"
    )


def test_qrel_naming_unknown_query(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "t", qrels=[("q9", "d0", 1)], tsv=True)
    with pytest.raises(BenchError, match=r"test.tsv, line 2: field 'query-id': 'q9' is not a query"):
        build_task("beir", [f"data_dir={folder}"]).load()


def test_bad_corpus_line_surfaces_through_the_task(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "t")
    with open(folder / "corpus.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"title": "no id", "text": "x"}\n')
    with pytest.raises(BenchError, match=r"corpus.jsonl, line 4: missing field '_id'"):
        build_task("beir", [f"data_dir={folder}"]).load()


def test_generic_task_needs_a_folder(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="data_dir=PATH"):
        build_task("beir").load()
    with pytest.raises(BenchError, match="is not a folder"):
        build_task("beir", [f"data_dir={tmp_path / 'missing'}"]).load()


def test_limit_small_from_the_shared_folder(shared_data: Path) -> None:
    task = build_task("limit-small")
    assert task.default_ks == (2, 10, 20)  # LIMIT paper's cutoffs on the small set; @100 > 46 docs is refused
    data = task.load()
    test = data.split("test")
    assert len(data.corpus) == 46 and len(test) == 1000
    assert np.all(test.targets.n_clusters == 2)
    assert data.info["source"] == str((shared_data / "limit-small").resolve())
    assert test.texts[0] == "Who likes Joshua Trees?"
    # an explicit folder gives the same data
    again = build_task("limit-small", [f"data_dir={shared_data / 'limit-small'}"]).load()
    assert again.corpus.fingerprint == data.corpus.fingerprint


def test_limit_small_relative_data_dir(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(shared_data)
    data = build_task("limit-small", ["data_dir=limit-small"]).load()
    assert len(data.corpus) == 46


def test_registered_with_their_kind() -> None:
    names = TASKS.all()
    for name in ("beir", "limit-small", "limit"):
        assert names[name].kind == "beir"
    assert names["limit-small"].param_defaults() == {
        "data_dir": None, "train_fraction": 0.0, "val_fraction": 0.1, "split_seed": 0, "corpus_full_hash": False}
