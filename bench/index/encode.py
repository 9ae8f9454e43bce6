"""Encoding text corpora: device and precision choice, model fingerprints, and sharded, resumable embedding caches.

A corpus is encoded shard by shard (`shard_size` documents): the texts of one shard are read from the streaming
reader, encoded (the encoder sorts them by length so batches carry little padding), and the shard's L2-normalised
embeddings (float32, or float16 on request) are written atomically to `<cache>/embeddings/<key>/shard-NNNNN.npy`
before the next shard starts. So memory holds one shard of texts and one of embeddings; a killed encode loses at
most the shard in flight, and a rerun skips every shard already on disk. The shards are the one copy of the corpus
embeddings on disk: the exact index searches them memory-mapped, shard after shard (bench/index/ `MappedStore`).
Shards written before normalisation moved here (meta.json without `normalised`) stay as they are and are
normalised when read. Shard boundaries are fixed by the key's
`meta.json`, so a resumed encode batches every shard exactly as an uninterrupted one would and gives identical
embeddings.

The cache key is (model id + revision or weights hash, prompt and everything else that changes the vectors, corpus
content hash): the same corpus and encoder never encode twice.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape

from bench.data.corpus import document_text
from bench.distributed import World, set_phase
from bench.errors import BenchError
from bench.progress import STDERR, make_progress
from bench.storage.cache import (
    Recipe,
    cache_root,
    report_and_quarantine,
    stable_hash,
    verify_entry,
    write_entry,
    write_record,
)
from bench.storage.preflight import check_free_space

SHARD_FORMAT = 1  # part of every embedding key: bumping it re-encodes every cached corpus
DEFAULT_SHARD_SIZE = 8192
STORAGES = ("float32", "float16")

EncodeTexts = Callable[[list[str], Callable[[int], None]], np.ndarray]
"""encode(texts, advance) → float32 (len(texts), d); calls advance(n) after each batch of n texts."""


# ---------------------------------------------------------------------------------------------------- devices
# Device and precision are resolved once, in bench/device.py (`resolve`, `Placement`); encoders take a Placement.


# ---------------------------------------------------------------------------------------------------- models

_SNAPSHOT = re.compile(r"^[0-9a-f]{40}$")
_SKIP_DOWNLOAD = ["*.onnx", "onnx/*", "openvino/*", "*.h5", "*.msgpack", "*.ot", "flax_model*", "tf_model*",
                  "rust_model*", "coreml/*"]


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are and what identifies them: the hub revision (a commit) or a hash of the files."""

    model_id: str
    path: Path
    revision: str | None = None
    weights_sha256: str | None = None

    @property
    def identity(self) -> str:
        return f"rev:{self.revision}" if self.revision else f"sha256:{self.weights_sha256}"

    def record(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "revision": self.revision, "weights_sha256": self.weights_sha256,
                "model_path": str(self.path)}


def hub_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return True
    return os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def resolve_model(name_or_path: str, revision: str | None = None, model_id: str | None = None) -> ModelSource:
    """A local folder, or a hub model id found in the Hugging Face cache (downloaded first unless offline).

    `model_id` names a local folder in records (e.g. the hub id a preset stands for).
    """
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        local = local.resolve()
        snap = local.name if local.parent.name == "snapshots" and _SNAPSHOT.match(local.name) else None
        return ModelSource(model_id or str(local), local, revision=snap,
                           weights_sha256=None if snap else folder_sha256(local))
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise BenchError(f"model folder {name_or_path!r} does not exist")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        raise BenchError("loading hub models needs huggingface_hub (the project's `text` extra)") from None
    try:
        folder = snapshot_download(name_or_path, revision=revision, local_files_only=True)
    except Exception:
        if hub_offline():
            raise BenchError(
                f"model {name_or_path!r}{f' at revision {revision}' if revision else ''} is not in the local "
                f"Hugging Face cache and the hub is offline (HF_HUB_OFFLINE=1): download it on a machine with "
                f"access (huggingface-cli download {name_or_path}) or point -r model_path=FOLDER at its files"
            ) from None
        try:
            folder = snapshot_download(name_or_path, revision=revision, ignore_patterns=_skip_patterns(name_or_path,
                                                                                                      revision))
        except Exception as exc:
            raise BenchError(f"could not download model {name_or_path!r} from the hub: {exc}") from None
    path = Path(folder).resolve()
    return ModelSource(name_or_path, path, revision=path.name if _SNAPSHOT.match(path.name) else revision)


def _skip_patterns(repo_id: str, revision: str | None) -> list[str]:
    """Skip other frameworks' weights, and PyTorch .bin files when safetensors are there too."""
    patterns = list(_SKIP_DOWNLOAD)
    try:
        from huggingface_hub import list_repo_files

        files = list_repo_files(repo_id, revision=revision)
        if any(f.endswith(".safetensors") for f in files):
            patterns.append("*.bin")
    except Exception:
        pass
    return patterns


def folder_sha256(folder: Path) -> str:
    """sha256 over every file (relative path and content) of a model folder, memoised by (size, mtime) per file."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    stats = {str(p.relative_to(folder)): [p.stat().st_size, p.stat().st_mtime_ns] for p in files}
    memo = cache_root() / "fingerprints" / f"{stable_hash(str(folder))}.json"
    try:
        saved = json.loads(memo.read_text(encoding="utf-8"))
        if saved.get("files") == stats and saved.get("path") == str(folder):
            return str(saved["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    import hashlib

    total = hashlib.sha256()
    for p in files:
        total.update(str(p.relative_to(folder)).encode() + b"\0")
        with open(p, "rb") as fh:
            while block := fh.read(1 << 20):
                total.update(block)
    digest = total.hexdigest()
    try:  # a cache entry rewritten in place when the folder's files change: judged by its content
        write_record(memo, {"path": str(folder), "files": stats, "sha256": digest}, "path", "files", "sha256")
    except OSError:  # a memo only (a read-only or full cache): the hash is recomputed next time
        pass
    return digest


# ---------------------------------------------------------------------------------------------------- shards


@dataclass
class ShardStore:
    """The embedding shards of one (encoder, corpus) key: `meta.json` plus `shard-NNNNN.npy` files."""

    key: str
    root: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = cache_root() / "embeddings" / self.key

    @property
    def meta_path(self) -> Path:
        return self.root / "meta.json"

    def shard_path(self, i: int) -> Path:
        return self.root / f"shard-{i:05d}.npy"

    def read_meta(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError:  # a damaged meta.json: moved aside (bench/storage/cache.py), the encode starts afresh
            report_and_quarantine(self.meta_path, "not valid JSON", "starting the encode afresh")
            return None

    def write_meta(self, meta: dict[str, Any]) -> None:
        """meta.json is rewritten as the encode goes on (its dim, then complete): a cache entry whose manifest is
        written with it, under its lock, and which is judged by its content."""
        write_record(self.meta_path, meta, "format", "n_docs", "shard_size")

    def complete(self) -> bool:
        meta = self.read_meta()
        return bool(meta and meta.get("complete"))

    def load_shard(self, i: int, start: int, rows: int, dim: int | None, dtype: str = "float32"
                   ) -> np.ndarray | None:
        """Shard i as a read-only memory map, None when absent; a wrong shape is one clear error."""
        path = self.shard_path(i)
        if not path.exists():
            return None
        problem = verify_entry(path, require_manifest=False)  # a shard is a cache entry with a manifest
        if problem:
            report_and_quarantine(path, problem, "re-encoding it")
            return None
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            report_and_quarantine(path, f"unreadable ({exc})", "re-encoding it")
            return None
        if arr.ndim != 2 or arr.shape[0] != rows or arr.dtype != np.dtype(dtype):
            raise BenchError(
                f"{path}: rows {start}–{start + rows - 1}: expected a {dtype} array of {rows} rows, found "
                f"{arr.dtype} {arr.shape}; remove it to re-encode it"
            )
        if dim is not None and arr.shape[1] != dim:
            raise BenchError(
                f"{path}: rows {start}–{start + rows - 1}, field 'dim': the shard holds {arr.shape[1]}-dim embeddings, "
                f"but the index being built from {self.meta_path} holds {dim}-dim vectors"
            )
        return arr

    def save_shard(self, i: int, arr: np.ndarray, recipe: Recipe | None = None,
                   info: dict[str, Any] | None = None) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)

        # atomic, with a manifest (size, checksum, and `info`: which rank of how many wrote it) verified on read
        write_entry(self.shard_path(i), write, recipe=recipe, info=info, need=arr.nbytes + 128)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("*") if p.is_file())


def encode_in_shards(
    key: str,
    texts: Iterator[str],
    n_docs: int,
    encode: EncodeTexts,
    shard_size: int = DEFAULT_SHARD_SIZE,
    describe: dict[str, Any] | None = None,
    console: Console | None = None,
    label: str = "encode corpus",
    storage: str = "float32",
    recipe: Recipe | None = None,
    world: World | None = None,
) -> Iterator[np.ndarray]:
    """Yield the L2-normalised embeddings of `texts` shard by shard (as stored: float32 or float16), reading finished
    shards from disk (memory-mapped), encoding the rest.

    `texts` must yield exactly `n_docs` strings in corpus order. A shard is written before it is yielded, so an
    interrupted run (exception, SIGINT, SIGKILL) resumes at the first missing shard.

    With a `world` (torchrun, bench/distributed.py) every rank reads the corpus stream but encodes only the shards it
    owns (shard i belongs to rank i mod world size), then all meet at a barrier; rank 0 marks the encode complete and
    every rank yields every shard, memory-mapped. Each shard's manifest records the rank that wrote it.
    """
    if shard_size <= 0:
        raise BenchError(f"shard_size must be > 0, got {shard_size}")
    if storage not in STORAGES:
        raise BenchError(f"embedding storage must be float32 or float16, got {storage!r}")
    store = ShardStore(key)
    if world is None:
        meta = _open_meta(store, key, n_docs, shard_size, storage, describe)
    else:  # rank 0 creates (or checks) meta.json; the others read the shard boundaries it fixed
        set_phase(world, f"encoding the corpus into {store.root}")
        with world.rank_zero_first(f"encode-meta/{key}", "opening the embedding shards"):
            meta = _open_meta(store, key, n_docs, shard_size, storage, describe, create=world.is_main)
    shard_size = int(meta["shard_size"])  # boundaries of a resumed encode are those it started with
    n_shards = (n_docs + shard_size - 1) // shard_size
    dim = meta.get("dim")
    dtype = str(meta.get("dtype") or "float32")
    normalise = bool(meta.get("normalised"))  # False only when resuming an encode begun before normalised shards
    mine = [i for i in range(n_shards) if world is None or world.owns(i)]
    on_disk = [i for i in mine if store.shard_path(i).exists()]

    def check_space(after: int) -> None:
        """Disk for this rank's shards from `after` on not yet written, once their width is known (before the first
        shard when resuming, after it otherwise)."""
        missing = [i for i in mine if i >= after and i not in on_disk]
        rows_left = sum(min(shard_size, n_docs - i * shard_size) for i in missing)
        if dim and rows_left:
            check_free_space(store.root, rows_left * int(dim) * np.dtype(dtype).itemsize,
                             f"{label}: the embedding shards still to write in {store.root}")

    check_space(0)
    console = console or STDERR
    if world is not None and not world.is_main:
        console = Console(quiet=True)  # one progress bar: rank 0's
    share = "" if world is None else f" (rank {world.rank} of {world.size}: shards i with i mod {world.size} = " \
                                     f"{world.rank})"
    if on_disk and not meta.get("complete"):
        console.print(f"[dim]{escape(label)}: resuming, {len(on_disk)} of {len(mine)} shards{share} already on disk "
                      f"({escape(str(store.root))})[/]", highlight=False)
    info = {"rank": 0 if world is None else world.rank, "world_size": 1 if world is None else world.size}
    seen = 0
    with make_progress(console) as progress:
        total = sum(min(shard_size, n_docs - i * shard_size) for i in mine)
        bar = progress.add_task(label + share, total=total, status=f"{len(mine)} shard(s) of ≤{shard_size}")
        for i in range(n_shards):
            rows = min(shard_size, n_docs - i * shard_size)
            chunk = _take(texts, rows)
            seen += len(chunk)
            if len(chunk) != rows:
                raise BenchError(f"the corpus yielded {seen} documents, but its scan counted {n_docs}: did the file "
                                 f"change while encoding?")
            if world is not None and not world.owns(i):
                continue
            arr = store.load_shard(i, i * shard_size, rows, dim, dtype)
            if arr is None:
                progress.update(bar, status=f"shard {i + 1}/{n_shards}")
                arr = _encode_shard(store, i, chunk, encode, dim, normalise, dtype, shard_size, recipe, info,
                                    lambda n: progress.advance(bar, n))
                if dim is None:
                    dim = int(arr.shape[1])
                    if world is None:
                        meta["dim"] = dim
                        store.write_meta(meta)
                    check_space(i + 1)
            else:
                progress.advance(bar, rows)
            if world is None:
                yield arr
        if next(texts, None) is not None:
            raise BenchError(f"the corpus yielded more than the {n_docs} documents its scan counted: did the file "
                             f"change while encoding?")
    if world is not None:
        world.barrier(f"encode/{key}", f"encoding its embedding shards into {store.root}")
        if world.is_main:
            _finish_distributed(store, meta, shard_size, n_shards)
        world.barrier(f"encode-done/{key}", "waiting for rank 0 to check the embedding shards")
        for i in range(n_shards):  # every shard was verified (or written) by its rank in this encode
            yield np.load(store.shard_path(i), mmap_mode="r", allow_pickle=False)
        return
    if not meta.get("complete"):
        meta["complete"] = True
        meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        store.write_meta(meta)


def _open_meta(store: ShardStore, key: str, n_docs: int, shard_size: int, storage: str,
               describe: dict[str, Any] | None, create: bool = True) -> dict[str, Any]:
    """The key's meta.json, written afresh (`create`) when it is missing or of another format; its `n_docs` must be the
    corpus's."""
    meta = store.read_meta()
    if meta is None or meta.get("format") != SHARD_FORMAT:
        if not create:
            raise BenchError(f"{store.meta_path}: missing or of another format; rank 0 should have written it")
        meta = {"format": SHARD_FORMAT, "key": key, "n_docs": n_docs, "shard_size": shard_size, "dim": None,
                "dtype": storage, "normalised": True, "complete": False,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "describe": describe or {}}
        store.write_meta(meta)
    elif meta.get("n_docs") != n_docs:
        raise BenchError(
            f"{store.meta_path}: field 'n_docs' is {meta.get('n_docs')}, but the corpus has {n_docs} documents; "
            f"remove the folder with `bench cache clear embeddings`"
        )
    return meta


def _encode_shard(store: ShardStore, i: int, chunk: list[str], encode: EncodeTexts, dim: int | None, normalise: bool,
                  dtype: str, shard_size: int, recipe: Recipe | None, info: dict[str, Any],
                  advance: Callable[[int], None]) -> np.ndarray:
    """Encode one shard's texts, check and normalise the vectors, write the shard atomically; returns it."""
    rows = len(chunk)
    out = np.asarray(encode(chunk, advance), dtype=np.float32)
    if out.ndim != 2 or out.shape[0] != rows:
        raise BenchError(f"the encoder returned shape {out.shape} for {rows} texts")
    if dim is not None and out.shape[1] != dim:
        raise BenchError(
            f"{store.shard_path(i)}: rows {i * shard_size}–{i * shard_size + rows - 1}, field 'dim': the "
            f"encoder produced {out.shape[1]}-dim embeddings, but the shards already in {store.root} "
            f"(see {store.meta_path}) hold {dim}-dim ones"
        )
    if not np.isfinite(out).all():
        raise BenchError(f"the encoder produced NaN/inf embeddings in shard {i} (rows from "
                         f"{i * shard_size}); try dtype=float32")
    if normalise:
        out = _normalise_rows(out)
    out = np.ascontiguousarray(out, dtype=dtype)
    store.save_shard(i, out, recipe, info)
    return out


def _finish_distributed(store: ShardStore, meta: dict[str, Any], shard_size: int, n_shards: int) -> None:
    """Rank 0, after every rank wrote its shards: every shard is there, of one width; the encode is complete."""
    dims: set[int] = set()
    for i in range(n_shards):
        path = store.shard_path(i)
        if not path.exists():
            raise BenchError(f"{path}: missing after every rank finished encoding (rows from {i * shard_size}); run "
                             f"the same command again to encode it")
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        dims.add(int(arr.shape[1]))
    if len(dims) != 1 or (meta.get("dim") is not None and meta["dim"] not in dims):
        raise BenchError(f"{store.root}: the shards hold vectors of different widths {sorted(dims)}; remove the "
                         f"folder with `bench cache clear embeddings` and encode again")
    meta["dim"] = dims.pop()
    if not meta.get("complete"):
        meta["complete"] = True
        meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    store.write_meta(meta)


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm in float32 (zero rows stay zero): bench.index.l2_normalise, imported when a shard
    is written so that encoding alone does not load FAISS."""
    from bench.index import l2_normalise

    return l2_normalise(x)


def _take(it: Iterator[str], n: int) -> list[str]:
    out: list[str] = []
    for text in it:
        out.append(text)
        if len(out) == n:
            break
    return out


class CorpusEncoder:
    """A DocumentEncoder (bench.systems.retriever) over any text encoder: sharded, cached, resumable.

    `space` names the embedding space (model + revision/weights hash + document prompt + settings); the shards of a
    corpus are keyed by (space, corpus fingerprint, storage when not float32). The pipeline encodes the shards
    (`encode_corpus_shards`) and searches them in place (`shard_store`); `encode_corpus` returns the whole
    normalised matrix. `storage="float16"` halves the shards on disk and in memory.
    """

    def __init__(self, space: str, encode: EncodeTexts, shard_size: int = DEFAULT_SHARD_SIZE,
                 describe: dict[str, Any] | None = None, console: Console | None = None,
                 text_of: Callable[[str, str], str] | None = None) -> None:
        self.cache_key = space
        self._encode = encode
        self.shard_size = shard_size
        self.describe = describe or {}
        self.console = console
        self._text_of = text_of or document_text
        self.storage = "float32"

    def embedding_key(self, corpus: Any) -> str:
        parts: list[Any] = ["corpus-embeddings", SHARD_FORMAT, self.cache_key, corpus.fingerprint]
        if self.storage != "float32":
            parts.append(self.storage)
        return stable_hash(parts, length=32)

    def shard_store(self, corpus: Any) -> ShardStore:
        return ShardStore(self.embedding_key(corpus))

    def encode_corpus_shards(self, corpus: Any, recipe: Recipe | None = None, world: World | None = None
                             ) -> Iterator[np.ndarray]:
        texts = (self._text_of(title, text) for _, title, text in corpus.iter_texts())
        describe = {**self.describe, "corpus_fingerprint": corpus.fingerprint, "space": self.cache_key}
        source = getattr(corpus, "source", None)
        if source is not None and hasattr(source, "describe"):
            describe["corpus"] = source.describe()
        return encode_in_shards(self.embedding_key(corpus), texts, len(corpus), self._encode,
                                shard_size=self.shard_size, describe=describe, console=self.console,
                                storage=self.storage, recipe=recipe, world=world)

    def encode_corpus(self, corpus: Any) -> np.ndarray:
        out: np.ndarray | None = None
        start = 0
        for block in self.encode_corpus_shards(corpus):
            if out is None:
                out = np.empty((len(corpus), block.shape[1]), dtype=np.float32)  # float16 shards decode to float32
            out[start : start + len(block)] = block
            start += len(block)
        assert out is not None
        return out
