"""AMER, the autoregressive multi-embedding retriever (docs/architecture.md §6), and the base of trained query encoders.

`prepare` trains the query encoder against the frozen document embeddings, or loads the checkpoint that the same
config already produced (`--retrain` forces training); `encode_queries` then runs the model alone: AMER emits m_pred
vectors, each generated from the previous ones. Single-Query (retrievers/single_query.py) shares all of it with one
output vector and one randomly drawn target per example and step.

Vector tasks (synthetic) train a small random causal transformer. Text tasks train a pretrained causal LM
(`-r backbone=NAME_OR_PATH`, default the offline SmolLM2-135M-Instruct) with LoRA, its queries wrapped in the
model's own chat template, against the corpus embeddings of a frozen document encoder (`-r doc_encoder=minilm`).
With `-r finetune=frozen` a text task trains the small random transformer instead, conditioned on the cached token
states of a frozen reader (`-r backbone=`, default the document encoder; bench/models/reader.py): training then
costs what synthetic training costs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.markup import escape

from bench.data.task import Split, TaskData
from bench.errors import BenchError, DamagedEntry
from bench.metrics.diversity import mean_pairwise_cosine, target_diversity
from bench.models.backbone import BackboneConfig, count_parameters
from bench.models.lora import FINETUNE_MODES, LoraSettings
from bench.models.query_encoder import QueryEncoder
from bench.models.reader import FeatureQueries
from bench.models.stop_head import STOP_THRESHOLD
from bench.models.text import DEFAULT_INSTRUCTION, DEFAULT_MAX_LENGTH
from bench.params import params_dict
from bench.registry import register_retriever
from bench.storage.cache import load_or_build, write_entry
from bench.systems.context import RunContext
from bench.systems.retriever import VectorRetriever, build_retriever
from bench.train.checkpoint import checkpoint_key, checkpoint_path, load_checkpoint, save_checkpoint
from bench.train.config import RECIPES, SamplingParams, StopParams, TrainConfig, TrainParams, resolve_recipe
from bench.train.data import TrainingExamples, VectorQueries
from bench.train.loop import Trainer
from bench.train.placement import resolve_device, torch_threads
from bench.train.strategy import make_strategy

# Parameters that change how a model is run, not what it learns: left out of the checkpoint key. `backbone` is
# replaced in the key by the sha256 of the base model's files (same weights at another path: same checkpoint).
INFERENCE_ONLY = ("device", "m_pred", "threads", "checkpoint_every", "backbone")
_ENCODE_BATCH = 1024
_TEXT_ENCODE_BATCH = 32


@dataclass(frozen=True)
class QueryEncoderParams(TrainParams):
    """Model and training settings shared by AMER and Single-Query (training defaults: bench.train.config)."""

    width: int = BackboneConfig.width
    layers: int = BackboneConfig.layers
    heads: int = BackboneConfig.heads
    ffn: int = BackboneConfig.ffn  # MLP inner width, 0 = 2 × width
    arch: str = BackboneConfig.arch  # random-init backbone family (vector tasks)
    backbone: str | None = None  # a pretrained causal LM (folder or cached hub id); text tasks default to SmolLM2;
    # with finetune=frozen the reader (a dense retriever name or a model folder), default the doc_encoder
    finetune: str = "lora"  # pretrained backbone: lora (adapters only) | full (every weight) | frozen (its cached
    # token states feed a small random transformer that trains: bench/models/reader.py)
    lora_r: int = LoraSettings.r
    lora_alpha: int = LoraSettings.alpha
    lora_dropout: float = LoraSettings.dropout
    instruction: str = DEFAULT_INSTRUCTION  # text queries: the system message of the chat template
    max_length: int = DEFAULT_MAX_LENGTH  # text queries: query tokens kept
    doc_encoder: str = "minilm"  # text tasks: the frozen document encoder (a dense retriever name)
    residual: bool | None = None  # finetune=frozen: add the reader's own query embedding to every output (each
    # vector learns a move away from it); None = when the reader embeds in the document encoder's space
    input_scale: float = 0.0  # factor on vector queries; 0 = 1/√d
    device: str = "auto"  # auto = the run's --device
    threads: int = 1  # torch CPU threads while training / encoding; 0 = torch's own setting

    def __post_init__(self) -> None:
        TrainParams.__post_init__(self)
        if self.input_scale < 0 or self.threads < 0 or self.max_length <= 0:
            raise ValueError("input_scale and threads must be ≥ 0, max_length > 0")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.finetune not in (*FINETUNE_MODES, "frozen"):
            raise ValueError(f"finetune must be one of {', '.join(FINETUNE_MODES)}, frozen; got {self.finetune!r}")
        self.lora_settings()
        self.backbone_config()  # validates width / layers / heads / arch

    def backbone_config(self, pretrained: str | None = None) -> BackboneConfig:
        return BackboneConfig(self.arch, self.width, self.layers, self.heads, self.ffn, pretrained or self.backbone)

    def lora_settings(self) -> LoraSettings:
        return LoraSettings(self.lora_r, self.lora_alpha, self.lora_dropout)


@dataclass(frozen=True)
class AmerParams(QueryEncoderParams, SamplingParams):
    """AMER adds: how many vectors to emit (fixed, or a learned stop and how it is trained), and the
    scheduled-sampling mode (with its ablations)."""

    m_pred: int = 0  # vectors per query at inference; 0 = the task's m_pred, else the most answers of a train query
    stop: str = "fixed"  # fixed: m_pred vectors | learned: a stop head ends each query's vectors (≤ m_pred; H14)
    stop_threshold: float = STOP_THRESHOLD  # learned stop: go on while P(another answer) ≥ this (lower: fewer misses)
    stop_weight: float = StopParams.stop_weight  # learned stop, training: λ on the stop loss (StopParams)
    stop_miss_weight: float = StopParams.stop_miss_weight  # learned stop, training: cost of a missed answer

    def __post_init__(self) -> None:
        QueryEncoderParams.__post_init__(self)
        SamplingParams.__post_init__(self)
        StopParams(self.stop_weight, self.stop_miss_weight)  # validates them
        if self.m_pred < 0:
            raise ValueError(f"m_pred must be ≥ 0, got {self.m_pred}")
        if self.stop not in ("fixed", "learned"):
            raise ValueError(f"stop must be 'fixed' or 'learned', got {self.stop!r}")
        if not 0 < self.stop_threshold < 1:
            raise ValueError(f"stop_threshold must be in (0, 1), got {self.stop_threshold}")


class TrainedQueryEncoder(VectorRetriever):
    """A query encoder trained on the task's train split against the frozen corpus embeddings."""

    objective = "matched"
    model_class: type[QueryEncoder] = QueryEncoder

    def __init__(self, params: QueryEncoderParams, name: str, spec: str | None = None) -> None:
        super().__init__(params, name, spec)
        self.model: QueryEncoder | None = None
        self.checkpoint: Path | None = None
        self.meta: dict[str, Any] = {}
        self.trained_now = False
        self._lm: tuple[str, str] | None = None  # (folder, weights sha256) of the pretrained backbone
        self._reader: Any = None  # finetune=frozen: the FrozenReader of text queries
        self._prompter: Any = None
        self._m_pred: tuple[int, str] | None = None

    @property
    def autoregressive(self) -> bool:
        from bench.train.objectives import get_objective

        return get_objective(self.objective).autoregressive

    # -- the pretrained backbone (text tasks) --------------------------------------------------------------------
    def pretrained(self, task: TaskData | None) -> tuple[str, str] | None:
        """(folder, sha256 of its files) of the pretrained LM: `backbone`, or SmolLM2 offline for text tasks. None
        for a random backbone: vector tasks, and `finetune=frozen` (whose pretrained model is the reader)."""
        if self.frozen:
            return None
        if self._lm is None:
            name = self.params.backbone
            if name is None and task is not None and task.modality == "text":
                from bench.models.offline_lm import smollm2_folder

                name = str(smollm2_folder())
            if name is None:
                return None
            from bench.models.text import resolve_lm, weights_hash

            folder = resolve_lm(name)
            self._lm = (str(folder), weights_hash(folder))
        return self._lm

    @property
    def frozen(self) -> bool:
        return self.params.finetune == "frozen"

    def reader(self) -> Any:
        """finetune=frozen: the frozen reader of the questions — `backbone`, else the document encoder — with the
        `max_length` of the checkpoint when one is loaded."""
        if self._reader is None:
            from bench.models.reader import frozen_reader

            stored = self.meta.get("reader") or {}
            name = stored.get("name") or self.params.backbone or self.params.doc_encoder
            self._reader = frozen_reader(name, int(stored.get("max_length") or self.params.max_length))
            if stored and stored.get("identity") != self._reader.identity:
                raise BenchError(f"checkpoint {self.checkpoint}: its reader {name} had identity "
                                 f"{stored.get('identity')}, it now has {self._reader.identity} (other weights or "
                                 "settings); train again (--retrain)")
        return self._reader

    def residual(self) -> bool:
        """finetune=frozen: whether outputs start from the reader's query embedding (`residual`; by default when
        the reader embeds in the document encoder's space, as minilm reading for minilm does)."""
        reader = self.reader()
        doc = build_retriever(self.params.doc_encoder)
        same = bool(reader.space) and reader.space == getattr(doc, "space", lambda: None)()
        if self.params.residual and not same:
            raise BenchError(f"retriever {self.name!r}: residual=true needs a reader that embeds in the document "
                             f"encoder's space; {reader.name} does not ({reader.space or 'no pooled embedding'})")
        return same if self.params.residual is None else bool(self.params.residual)

    def document_encoder(self, task: TaskData) -> Any:
        if task.modality != "text":
            return None
        return build_retriever(self.params.doc_encoder).document_encoder(task)

    # -- training / loading -------------------------------------------------------------------------------------
    def key_config(self, ctx: RunContext) -> dict[str, Any]:
        """Everything that shapes the trained weights; its hash names the checkpoint.

        The recipe's parameters enter with their resolved values (the recipe's name itself does not: the same values
        train the same weights), those at the harness's own value left out, so the harness's checkpoints keep the
        keys they had before recipes existed (`clip`, older than recipes, is always in)."""
        params = {k: v for k, v in params_dict(self.params).items() if k not in INFERENCE_ONLY}
        params.pop("recipe", None)
        for name, value in resolve_recipe(self.params).items():
            if name == "recipe":
                continue
            if name != "clip" and value == RECIPES["harness"][name]:
                params.pop(name, None)
            else:
                params[name] = value
        lm = self.pretrained(ctx.task)
        # where the data lives and how its fingerprint was obtained (a full hash, or reused while size and mtime are
        # unchanged) do not shape the weights: the content is in data_hash, so those records stay out of the key
        info = {k: v for k, v in ctx.task.info.items() if k not in ("corpus", "prepared")}
        config = {"retriever": self.name, "objective": self.objective, "params": params, "task": ctx.task.name,
                  "task_info": info, "data_hash": ctx.task.data_hash(), "seed": ctx.seed,
                  "base_weights_sha256": lm[1] if lm else None}
        if self.frozen and ctx.task.modality == "text":
            config["reader"] = self.reader().identity
        return config

    def checkpoint_for(self, ctx: RunContext) -> tuple[Path, dict[str, Any]]:
        config = self.key_config(ctx)
        return checkpoint_path(self.name, checkpoint_key(config)), config

    def prepare(self, ctx: RunContext) -> None:
        """Load the checkpoint this config produced before, or train one (always when ctx.retrain)."""
        path, _ = self.checkpoint_for(ctx)
        self.trained_now = False
        self._resolve_m_pred(ctx)
        strategy = make_strategy(resolve_device(self._device(ctx)))
        if strategy.world_size > 1:  # every process trains (or loads) together; rank 0 alone writes
            if path.exists() and not ctx.retrain:
                self.load_checkpoint(path)
            else:
                self.train(ctx, strategy=strategy)
            strategy.close()
            return

        def load(p: Path) -> None:
            # a verified cache entry (bench/storage/cache.py): a damaged file is moved aside, retrained
            if not self.trained_now:
                try:
                    self.load_checkpoint(p)
                except BenchError as exc:
                    raise DamagedEntry(str(exc)) from None

        # Under the entry's file lock: a second process on the same checkpoint waits, then loads what this one trained.
        load_or_build(path, lambda tmp: self.train(ctx, dest=tmp), load, rebuild=ctx.retrain,
                      packages=("torch", "safetensors", "transformers", "peft"), recipe=ctx.recipe)
        if not self.trained_now:
            ctx.console.print(f"[dim]{escape(self.name)}: using checkpoint {escape(str(path))}[/]", highlight=False)

    def build_model(self, ctx: RunContext, d_query: int, d_doc: int) -> QueryEncoder:
        """A freshly initialised query encoder for this task (seeded by the run's seed)."""
        p = self.params
        lm = self.pretrained(ctx.task)
        torch.manual_seed(ctx.seed)
        np.random.seed(ctx.seed % 2**32)
        sequence = self.frozen and d_query > 0 and ctx.task.modality == "text"
        if lm is None and p.width < d_doc and not sequence:
            ctx.console.print(f"[yellow]warning:[/] width {p.width} < embedding size {d_doc}: a backbone narrower "
                              "than the embeddings is known to fail the linear synthetic task", highlight=False)
        # vector queries ~N(0, I) come scaled by 1/√d; a reader's token states are L2-normalised by the model
        scale = (p.input_scale or (1.0 if sequence else 1.0 / math.sqrt(d_query))) if d_query else 1.0
        feedback = str(resolve_recipe(p).get("feedback", "normalised"))
        return self.model_class(p.backbone_config(lm[0] if lm else None), d_query, d_doc, scale,
                                finetune="full" if self.frozen else p.finetune, lora=p.lora_settings(),
                                base_hash=lm[1] if lm else None, feedback=feedback,
                                query_input="sequence" if sequence else "vector",
                                residual=sequence and self.residual())

    def training_examples(self, split: Split, ctx: RunContext) -> TrainingExamples:
        if split.vectors is not None:
            return TrainingExamples.from_split(split)
        if self.frozen:
            return TrainingExamples.from_split(split, tokenize=lambda texts: self.reader().token_states(
                texts, ctx.console))
        return TrainingExamples.from_split(split, tokenize=self.prompter(ctx.task))

    def train(self, ctx: RunContext, dest: Path | None = None, strategy: Any = None) -> Path:
        """Train on ctx.task's train split, keep the weights with the lowest validation loss, save a checkpoint
        (to `dest` when given: the temp file of bench.storage.cache.load_or_build, renamed to the checkpoint path
        after).

        A training state is saved every `checkpoint_every` steps beside the checkpoint; an interrupted run resumes
        from it and ends with the weights an uninterrupted one would have."""
        p = self.params
        path, key_config = self.checkpoint_for(ctx)
        if ctx.corpus_embeddings is None:
            raise BenchError(f"retriever {self.name!r} needs the corpus embeddings of task {ctx.task.name!r}")
        examples = self.training_examples(ctx.task.split("train"), ctx)
        d_query = (examples.inputs.vectors.shape[1] if isinstance(examples.inputs, VectorQueries)
                   else examples.inputs.width if isinstance(examples.inputs, FeatureQueries) else 0)
        d_doc = int(ctx.corpus_embeddings.shape[1])
        model = self.build_model(ctx, d_query, d_doc)
        cfg = TrainConfig.from_params(p, objective=self.objective, seed=ctx.seed, device=self._device(ctx))
        state_path = path.with_name(path.stem + ".train-state.pt")
        with torch_threads(p.threads):
            trainer = Trainer(model, examples, ctx.corpus_embeddings, cfg, ctx.console, strategy=strategy,
                              state_path=state_path)
            result = trainer.run()
        meta = {
            "retriever": self.name, "objective": self.objective, "model": model.config(),
            "n_targets": examples.n_targets, "n_parameters": count_parameters(model),
            "n_trainable": sum(t.numel() for t in model.parameters() if t.requires_grad), "key_config": key_config,
            "train": {**result.record(), "processes": trainer.strategy.world_size},
            "prompt": {"instruction": p.instruction, "max_length": p.max_length} if d_query == 0 else None,
        }
        if isinstance(examples.inputs, FeatureQueries):
            meta["reader"] = self.reader().record()
        if trainer.strategy.is_main:
            if dest is not None:
                save_checkpoint(dest, result.state_dict, meta)
            else:
                write_entry(path, lambda tmp: save_checkpoint(tmp, result.state_dict, meta),
                            packages=("torch", "safetensors", "transformers", "peft"), recipe=ctx.recipe)
        trainer.strategy.barrier()
        self._use(model, meta, path)
        self.trained_now = True
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Load weights and model config from a checkpoint file: enough for inference, no training data needed.

        A checkpoint of a pretrained backbone holds adapters and projections; the base is loaded from the folder
        it names and must have the weights it was trained on (sha256), else this is an error."""
        ckpt = load_checkpoint(path)
        if ckpt.meta.get("objective") != self.objective:
            raise BenchError(f"checkpoint {path} holds a {ckpt.meta.get('objective')!r} model, not {self.objective!r}")
        config = ckpt.meta["model"]
        base = config.get("backbone", {}).get("pretrained")
        if base is not None:
            from bench.models.text import resolve_lm, weights_hash

            now = weights_hash(resolve_lm(base))
            if now != config.get("base_hash"):
                raise BenchError(f"checkpoint {path}: trained on base weights sha256 {config.get('base_hash')}, but "
                                 f"{base} now holds {now}; train again (--retrain)")
        try:
            model = self.model_class.from_config(config)
            model.load_trainable_state_dict(ckpt.state_dict)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise BenchError(f"checkpoint {path}: weights do not fit the stored model config ({exc})") from None
        self._use(model, ckpt.meta, Path(path))
        self.trained_now = False

    def _use(self, model: QueryEncoder, meta: dict[str, Any], path: Path) -> None:
        self.model = model.eval()
        self.meta = meta
        self.checkpoint = path
        stored = meta.get("reader")
        if stored and (self._reader is None or self._reader.identity != stored.get("identity")):
            self._reader = None  # rebuilt from the checkpoint's record (and checked) when queries are read

    def _device(self, ctx: RunContext | None) -> str:
        if self.params.device != "auto" or ctx is None:
            return self.params.device
        return ctx.device

    # -- inference ----------------------------------------------------------------------------------------------
    def _resolve_m_pred(self, ctx: RunContext) -> None:
        """m_pred: the `m_pred` parameter, else the task's (TaskData.info['m_pred'], e.g. 2 for AmbigQA), else the
        most answers of a training query — never a count taken from the test questions."""
        if not self.autoregressive:
            self._m_pred = (1, "single vector")
        elif getattr(self.params, "m_pred", 0):
            self._m_pred = (int(self.params.m_pred), "parameter")
        elif ctx.task.info.get("m_pred"):
            self._m_pred = (int(ctx.task.info["m_pred"]), "task")
        elif "train" in ctx.task.splits:
            self._m_pred = (int(ctx.task.split("train").targets.n_clusters.max()), "most answers of a train query")

    def m_pred(self) -> int:
        if not self.autoregressive:
            return 1
        if self._m_pred is not None:
            return self._m_pred[0]
        return int(getattr(self.params, "m_pred", 0) or self.meta.get("n_targets", 1))

    def prompter(self, task: TaskData | None) -> Any:
        if self._prompter is None:
            from bench.models.text import Prompter, load_tokenizer

            prompt = self.meta.get("prompt") or {}
            lm = self.pretrained(task)
            base = (self.model.backbone_cfg.pretrained if self.model is not None else None) or (lm[0] if lm else None)
            if base is None:
                raise BenchError(f"retriever {self.name!r}: text queries need a pretrained backbone (-r backbone=)")
            self._prompter = Prompter(load_tokenizer(Path(base)), prompt.get("instruction", self.params.instruction),
                                      int(prompt.get("max_length", self.params.max_length)))
        return self._prompter

    @torch.no_grad()
    def encode_queries(self, split: Split, ctx: RunContext) -> np.ndarray:
        if self.model is None:
            raise BenchError(f"retriever {self.name!r} has no model: train it or load a checkpoint first")
        query_input = getattr(self.model, "query_input", "vector")  # tokens | sequence (a frozen reader) | vector
        text_model = query_input in ("tokens", "sequence")
        if split.vectors is None and not text_model:
            raise BenchError(f"retriever {self.name!r}: this checkpoint takes vector queries; split {split.name!r} "
                             "has texts")
        if text_model and split.texts is None:
            raise BenchError(f"retriever {self.name!r}: this checkpoint takes text queries; split {split.name!r} "
                             "has vectors")
        if not text_model and split.vectors.shape[1] != self.model.d_query:  # type: ignore[union-attr]
            raise BenchError(f"split {split.name!r} has {split.vectors.shape[1]}-dim queries, the checkpoint "  # type: ignore[union-attr]
                             f"{self.checkpoint} expects {self.model.d_query}")
        device = resolve_device(self._device(ctx))
        model = self.model.to(device).eval()
        m = self.m_pred()
        out = []
        with torch_threads(self.params.threads):
            if text_model:
                texts = list(split.texts)  # type: ignore[arg-type]
                batches: Any = (self.reader().token_states(texts, ctx.console) if query_input == "sequence"
                                else self.prompter(ctx.task)(texts))
                for start in range(0, len(batches), _TEXT_ENCODE_BATCH):
                    idx = np.arange(start, min(len(batches), start + _TEXT_ENCODE_BATCH))
                    inputs = {k: v.to(device) for k, v in batches.batch(idx).items()}
                    out.append(model.generate(inputs, m).float().cpu().numpy())
            else:
                for start in range(0, len(split), _ENCODE_BATCH):
                    x = torch.from_numpy(np.asarray(split.vectors[start:start + _ENCODE_BATCH], dtype=np.float32))  # type: ignore[index]
                    out.append(model.generate(x.to(device), m).float().cpu().numpy())
        vecs = np.concatenate(out) if out else np.zeros((0, m, self.model.d_doc), dtype=np.float32)
        self.record_diversity(vecs, split, ctx)
        return vecs.astype(np.float32)

    def record_diversity(self, vecs: np.ndarray, split: Split, ctx: RunContext) -> None:
        """The paper's Figure 5: mean pairwise cosine among each query's predictions and among its targets (null
        where undefined: one vector, or one target)."""
        if not self.autoregressive or ctx.corpus_embeddings is None:
            return
        targets = target_diversity(split.targets, ctx.corpus_embeddings, mode="representative")
        ctx.extra["output_diversity"] = {
            "pred_mean_pairwise_cos": _finite_or_none(mean_pairwise_cosine(vecs)),
            "target_mean_pairwise_cos": _finite_or_none(targets.cos_sim),
        }

    def info(self) -> dict[str, Any]:
        train = self.meta.get("train", {})
        model = self.meta.get("model", {})
        return {
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "trained_now": self.trained_now,
            "objective": self.objective,
            "m_pred": self.m_pred() if self.model is not None else None,
            "m_pred_source": self._m_pred[1] if self._m_pred else "checkpoint",
            "n_parameters": self.meta.get("n_parameters"),
            "n_trainable": self.meta.get("n_trainable"),
            "backbone": model.get("backbone", {}).get("pretrained") or "random",
            **({"reader": self.meta["reader"]} if self.meta.get("reader") else {}),  # finetune=frozen
            "base_weights_sha256": model.get("base_hash"),
            "finetune": "frozen" if self.meta.get("reader") else model.get("finetune"),
            "best_step": train.get("best_step"),
            "best_val_loss": train.get("best_val_loss"),
            "train_seconds": train.get("train_seconds"),
            "resumed_from_step": train.get("resumed_from_step"),
            "processes": train.get("processes"),
            # the training recipe and the value each of its parameters took (explicit, or the recipe's)
            "training_recipe": resolve_recipe(self.params),
        }


def _finite_or_none(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


@register_retriever(
    "amer",
    description="AMER: a causal transformer (random for vector tasks, a pretrained LM with LoRA for text tasks) "
                "emitting m query vectors autoregressively, trained with matched InfoNCE and scheduled sampling "
                "(trains on first use, then reuses its checkpoint)",
    kind="trained",
    params=AmerParams,
)
class AmerRetriever(TrainedQueryEncoder):
    """`-r stop=learned` adds a stop head (bench/models/stop_head.py, objective `matched-stop`): each query gets
    as many vectors as the head predicts answers, at most m_pred."""

    @property
    def objective(self) -> str:  # type: ignore[override]
        return "matched-stop" if self.params.stop == "learned" else "matched"

    @property
    def model_class(self) -> type[QueryEncoder]:  # type: ignore[override]
        from bench.models.stop_head import StopQueryEncoder

        return StopQueryEncoder if self.params.stop == "learned" else QueryEncoder

    def key_config(self, ctx: RunContext) -> dict[str, Any]:
        config = super().key_config(ctx)
        # the objective names the stop; the threshold is inference only; a fixed-m model has no stop head to train
        dropped = ("stop", "stop_threshold") + (() if self.params.stop == "learned" else tuple(
            f.name for f in dataclasses.fields(StopParams)))
        for key in dropped:
            config["params"].pop(key, None)
        return config

    def encode_queries(self, split: Split, ctx: RunContext) -> Any:
        """Fixed m: (n, m_pred, d). Learned stop: QueryVectors whose mask marks the vectors each query emitted;
        both record `extra.vectors_per_query` (emitted = searched)."""
        from bench.models.stop_head import record_emitted

        if self.model is not None and hasattr(self.model, "threshold"):
            self.model.threshold = self.params.stop_threshold
        vecs = super().encode_queries(split, ctx)
        return record_emitted(vecs, split, ctx, learned=self.params.stop == "learned")
