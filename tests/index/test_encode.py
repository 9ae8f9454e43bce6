"""Sharded, cached, resumable corpus encoding; devices and precision; model fingerprints."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bench.data.task import Corpus
from bench.errors import BenchError
from bench.index import FlatIndex, MappedStore, l2_normalise
from bench.index.encode import CorpusEncoder, ShardStore, encode_in_shards, folder_sha256, resolve_model
from bench.storage.cache import cache_root, verify_entry
from tests.support import REPO


def vec(text: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


class FakeEncoder:
    """Embeds each text from its hash; counts what it encodes; can fail after a number of calls."""

    def __init__(self, dim: int = 8, fail_after: int | None = None) -> None:
        self.dim, self.fail_after, self.calls, self.texts = dim, fail_after, 0, 0

    def __call__(self, texts: list[str], advance: Callable[[int], None]) -> np.ndarray:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("killed mid-encode")
        self.calls += 1
        self.texts += len(texts)
        advance(len(texts))
        return np.stack([vec(t, self.dim) for t in texts])


TEXTS = [f"passage number {i}" for i in range(23)]


def run(key: str, encoder: FakeEncoder, shard_size: int = 5, texts: list[str] = TEXTS) -> np.ndarray:
    return np.concatenate(list(encode_in_shards(key, iter(texts), len(texts), encoder, shard_size=shard_size)))


def test_shards_are_written_and_a_rerun_encodes_nothing(cache: Path) -> None:
    first = FakeEncoder()
    out = run("k", first)
    assert out.shape == (23, 8) and first.texts == 23 and first.calls == 5
    assert np.array_equal(out, expected_embeddings())
    store = ShardStore("k")
    assert store.complete() and sorted(p.name for p in store.root.glob("shard-*.npy")) == [
        f"shard-{i:05d}.npy" for i in range(5)]
    again = FakeEncoder()
    assert np.array_equal(run("k", again), out)
    assert again.texts == 0


def test_interrupted_encode_resumes_with_identical_embeddings(cache: Path) -> None:
    uninterrupted = run("whole", FakeEncoder())
    with pytest.raises(KeyboardInterrupt):
        run("resumed", FakeEncoder(fail_after=2))
    store = ShardStore("resumed")
    assert not store.complete()
    assert sorted(p.name for p in store.root.glob("shard-*.npy")) == ["shard-00000.npy", "shard-00001.npy"]
    rest = FakeEncoder()
    resumed = run("resumed", rest)
    assert rest.texts == 23 - 10  # only the shards that were missing
    assert np.array_equal(resumed, uninterrupted)
    assert store.complete()


def test_resume_keeps_the_shard_boundaries_it_started_with(cache: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        run("k", FakeEncoder(fail_after=1), shard_size=5)
    rest = FakeEncoder()
    out = run("k", rest, shard_size=7)
    assert rest.calls == 4  # shards 2..5 of size 5 (the first was on disk), not shards of 7
    assert json.loads(ShardStore("k").meta_path.read_text())["shard_size"] == 5
    assert np.array_equal(out, expected_embeddings())


def test_encoder_dimension_that_does_not_match_the_shards_on_disk(cache: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        run("k", FakeEncoder(dim=8, fail_after=1))
    with pytest.raises(BenchError) as err:
        run("k", FakeEncoder(dim=16))
    store = ShardStore("k")
    assert str(err.value).startswith(f"{store.shard_path(1)}: rows 5–9, field 'dim': the encoder produced 16-dim")
    assert "hold 8-dim ones" in str(err.value)


def test_shard_on_disk_with_a_wrong_dimension(cache: Path) -> None:
    run("k", FakeEncoder(dim=8))
    store = ShardStore("k")
    np.save(store.shard_path(2), np.zeros((5, 12), dtype=np.float32))
    store.shard_path(2).with_name("shard-00002.npy.manifest.json").unlink()  # else its manifest flags it: re-encoded
    with pytest.raises(BenchError) as err:
        run("k", FakeEncoder(dim=8))
    assert str(err.value) == (
        f"{store.shard_path(2)}: rows 10–14, field 'dim': the shard holds 12-dim embeddings, but the index being "
        f"built from {store.meta_path} holds 8-dim vectors"
    )


def test_corpus_size_change_is_detected(cache: Path) -> None:
    run("k", FakeEncoder())
    with pytest.raises(BenchError, match=r"field 'n_docs' is 23, but the corpus has 22"):
        run("k", FakeEncoder(), texts=TEXTS[:22])
    with pytest.raises(BenchError, match="yielded 22 documents, but its scan counted 23"):
        list(encode_in_shards("other", iter(TEXTS[:22]), 23, FakeEncoder(), shard_size=5))


def test_stray_temp_file_of_a_killed_write_is_ignored(cache: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        run("k", FakeEncoder(fail_after=1))
    store = ShardStore("k")
    (store.root / ".shard-00001.npy.abc123.tmp").write_bytes(b"partial")
    assert np.array_equal(run("k", FakeEncoder()), expected_embeddings())


class Reader:
    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def iter_documents(self):  # noqa: ANN201
        for i, t in enumerate(self.texts):
            yield f"d{i}", "", t


def expected_embeddings() -> np.ndarray:
    """What the shards hold: the fake encoder's vectors, L2-normalised at encode time."""
    return l2_normalise(np.stack([vec(t, 8) for t in TEXTS]))


def corpus_of(texts: list[str], fingerprint: str = "fp") -> Corpus:
    return Corpus(ids=[f"d{i}" for i in range(len(texts))], fingerprint=fingerprint, source=Reader(texts))


def test_corpus_encoder_keys_by_space_and_corpus(cache: Path) -> None:
    fake = FakeEncoder()
    encoder = CorpusEncoder("space-a", fake, shard_size=4)
    full = encoder.encode_corpus(corpus_of(TEXTS))
    assert np.array_equal(full, expected_embeddings())
    assert encoder.embedding_key(corpus_of(TEXTS)) != encoder.embedding_key(corpus_of(TEXTS, "other"))
    assert encoder.embedding_key(corpus_of(TEXTS)) != CorpusEncoder("space-b", fake).embedding_key(corpus_of(TEXTS))
    before = fake.texts
    assert np.array_equal(CorpusEncoder("space-a", fake, shard_size=4).encode_corpus(corpus_of(TEXTS)), full)
    assert fake.texts == before


def test_the_index_searches_the_shards_in_place(cache: Path) -> None:
    encoder = CorpusEncoder("s", FakeEncoder(), shard_size=4)
    for _ in encoder.encode_corpus_shards(corpus_of(TEXTS)):
        pass
    store = MappedStore.from_shard_store(encoder.shard_store(corpus_of(TEXTS)))
    assert store.n_blocks == 6 and store.ntotal == 23 and store.storage == "float32"
    assert np.array_equal(np.asarray(store), expected_embeddings())
    index = FlatIndex(store, "cpu")
    q = np.stack([vec(t, 8) for t in TEXTS[:5]])
    _, rows = index.search(q, 3)
    assert rows[:, 0].tolist() == [0, 1, 2, 3, 4]
    assert not (cache_root() / "indexes").exists()  # no second copy of the embeddings


def test_float16_shards_halve_the_store(cache: Path) -> None:
    encoder = CorpusEncoder("s", FakeEncoder(), shard_size=4)
    encoder.storage = "float16"
    half = encoder.encode_corpus(corpus_of(TEXTS))
    store = MappedStore.from_shard_store(encoder.shard_store(corpus_of(TEXTS)))
    assert store.storage == "float16" and encoder.embedding_key(corpus_of(TEXTS)) != CorpusEncoder(
        "s", FakeEncoder()).embedding_key(corpus_of(TEXTS))
    np.testing.assert_allclose(half, expected_embeddings(), atol=1e-3)
    assert np.array_equal(store.gather([3, 0]), half[[3, 0]])


def test_index_blocks_of_different_dimension() -> None:
    blocks = [np.ones((3, 4), np.float32), np.ones((2, 6), np.float32)]
    with pytest.raises(BenchError, match=r"embedding rows 3–4, field 'dim': 6-dim vectors, but the index being "
                                         r"built holds 4-dim vectors"):
        FlatIndex.from_blocks(blocks, device="cpu")


def test_folder_fingerprint_follows_the_files(cache: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "weights.bin").write_bytes(b"\x00" * 100)
    first = folder_sha256(model)
    assert folder_sha256(model) == first
    (memo,) = [p for p in (cache / "fingerprints").glob("*.json") if not p.name.endswith(".manifest.json")]
    assert verify_entry(memo) is None  # a cache entry with its manifest
    (model / "weights.bin").write_bytes(b"\x01" * 100)
    assert folder_sha256(model) != first
    source = resolve_model(str(model), model_id="org/name")
    assert source.model_id == "org/name" and source.revision is None and source.weights_sha256
    assert source.identity == f"sha256:{source.weights_sha256}"


def test_hub_snapshot_folder_is_identified_by_its_revision(cache: Path, tmp_path: Path) -> None:
    rev = "a" * 40
    snap = tmp_path / "models--org--name" / "snapshots" / rev
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    source = resolve_model(str(snap))
    assert source.revision == rev and source.weights_sha256 is None


def test_unknown_model_offline_is_one_clear_error(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(cache / "hf"))
    with pytest.raises(BenchError, match=r"not in the local Hugging Face cache and the hub is offline"):
        resolve_model("some-org/not-downloaded-model")
    with pytest.raises(BenchError, match="does not exist"):
        resolve_model("./no/such/folder")


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    from bench.data.task import build_task
    from bench.systems.retriever import build_retriever
    from bench.systems.session import Session
    data = build_task("limit-small").load()
    retriever = build_retriever("minilm", {"shard_size": 6, "batch_size": 4, "device": "cpu"})
    emb, index, space = Session(device="cpu").corpus_index(data, retriever)
    print(index.ntotal)
    """
)


@pytest.mark.slow
def test_killed_encode_resumes_to_identical_embeddings(tmp_path: Path, shared_data: Path) -> None:
    """A real encode (MiniLM on LIMIT small) killed with SIGKILL mid-way, then rerun, equals an uninterrupted one."""

    def start(cache: Path) -> subprocess.Popen[bytes]:
        env = {**os.environ, "BENCH_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
        return subprocess.Popen([sys.executable, "-c", KILL_SCRIPT], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def shards(cache: Path) -> list[Path]:
        return sorted((cache / "embeddings").glob("*/shard-*.npy"))

    killed = tmp_path / "killed"
    proc = start(killed)
    deadline = time.monotonic() + 300
    while len(shards(killed)) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else "process ended"
        assert time.monotonic() < deadline, "no shard written within 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = {p: p.stat().st_mtime_ns for p in shards(killed)}
    assert 2 <= len(kept) < 8  # 46 docs in shards of 6: killed before the end
    meta = json.loads(next((killed / "embeddings").glob("*/meta.json")).read_text())
    assert meta["complete"] is False

    for cache in (killed, tmp_path / "whole"):
        proc = start(cache)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert out.decode().strip().splitlines()[-1] == "46"
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # the shards on disk were reused, not redone
    resumed = np.concatenate([np.load(p) for p in shards(killed)])
    whole = np.concatenate([np.load(p) for p in shards(tmp_path / "whole")])
    assert resumed.shape == (46, 384)
    assert np.array_equal(resumed, whole)
