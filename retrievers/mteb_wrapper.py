"""`mteb:<model-name>`: any model in mteb's registry, loaded by mteb's own loader with its published prompts.

mteb is an optional extra (`pip install 'multitarget-bench[mteb]'`, about 125 MB of wheels, 530 MB installed:
pyarrow, polars, pandas, datasets). The registry's metadata (revision, loader, similarity, instructions) is part of
the mteb package and works offline; loading weights fetches them from the Hugging Face hub unless `-r
model_path=FOLDER` points at local files (the loader is then called on that folder with the registry's settings).

mteb chooses prompts per task: a query of the harness is encoded as a query of the mteb task named by
`-r mteb_task=` (default `NQ`: "Given a question, retrieve Wikipedia passages that answer the question", the closest
mteb task to the harness's question-answering tasks), documents as that task's documents. Models whose registry
entry needs remote code load only with `-r trust_remote_code=true`.

`-r prompt_name=NAME` makes a model loaded as a sentence-transformers model encode queries with its own prompt of
that name instead. When such a model names several query prompts and mteb picks none of them for the task, it is
refused (nothing is guessed silently); the first query encoding prints one line naming the prompt or instruction
used, and the result records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.markup import escape

from bench.device import Placement, combine
from bench.errors import BenchError
from bench.index.encode import DEFAULT_SHARD_SIZE, resolve_model
from bench.params import positive
from bench.progress import STDERR
from bench.registry import register_retriever
from bench.storage.cache import stable_hash
from bench.systems.retriever import TextEncoderRetriever

if TYPE_CHECKING:
    from bench.data.task import Split
    from bench.systems.context import RunContext

WRAPPER_VERSION = 1


@dataclass(frozen=True)
class MtebParams:
    model_path: str | None = None  # local weights for the registry entry (default: download from the hub)
    mteb_task: str = "NQ"  # the mteb task whose query/document prompts are used
    trust_remote_code: bool = False
    device: str = "auto"
    batch_size: int = 32
    shard_size: int = DEFAULT_SHARD_SIZE
    prompt_name: str | None = None  # a query prompt of the model's own config, used instead of mteb's choice

    def __post_init__(self) -> None:
        positive(self, batch_size=self.batch_size, shard_size=self.shard_size)


def import_mteb() -> Any:
    try:
        import mteb
    except ImportError:
        raise BenchError(
            "mteb:<model> retrievers need the optional mteb package: pip install 'mteb>=2.26,<3' (the project's "
            "`mteb` extra)"
        ) from None
    return mteb


@register_retriever(
    "mteb:",
    description="any model in mteb's registry, loaded by mteb with its published prompts: mteb:<model-name> "
                "(optional extra `mteb`)",
    kind="dense",
    params=MtebParams,
)
class MtebRetriever(TextEncoderRetriever):
    """One mteb-registered model for documents and queries; one query vector per query."""

    def __init__(self, params: MtebParams | None, name: str, spec: str | None = None) -> None:
        params = params or MtebParams()
        super().__init__(params, name, spec)
        if not spec:
            raise BenchError("give the model after the prefix: mteb:<model-name>, e.g. "
                             "mteb:facebook/contriever-msmarco")
        self.mteb = import_mteb()
        try:
            self.meta = self.mteb.get_model_meta(spec)
        except Exception as exc:
            raise BenchError(f"mteb has no model {spec!r}: {exc}") from None
        if self.meta.loader is None:
            raise BenchError(f"mteb knows {spec!r} but has no loader for it (results only)")
        self.loader_kwargs = dict(self.meta.loader_kwargs or {})
        if self.loader_kwargs.get("trust_remote_code") and not params.trust_remote_code:
            raise BenchError(f"mteb loads {spec!r} with its own Python code; allow it with -r trust_remote_code=true")
        try:
            self.task_meta = self.mteb.get_task(params.mteb_task).metadata
        except Exception as exc:
            raise BenchError(f"mteb has no task {params.mteb_task!r} (-r mteb_task=): {exc}") from None
        self.source = resolve_model(params.model_path, model_id=self.meta.name) if params.model_path else None
        self._placement: Placement | None = None
        self._model: Any = None
        self.model_label = self.meta.name
        self.query_prompt: str | None = None  # what mteb puts before a query, once the model is loaded
        self.query_prompt_source = ""
        self._said = False  # whether the query prompt line was printed

    # ---------------------------------------------------------------- placement

    def place(self, placement: Placement | None) -> None:
        """The run's placement (`bench run --device`); `-r device=` wins over it. Takes effect before loading."""
        if self._model is None:
            self._placement = combine(self.params.device, "auto", placement)

    @property
    def placement(self) -> Placement:
        if self._placement is None:
            self._placement = combine(self.params.device, "auto", None)
        return self._placement

    @property
    def device(self) -> str:
        return self.placement.torch_device

    # ---------------------------------------------------------------- identity

    def space(self) -> str:
        settings = {
            "encoder": f"mteb/{WRAPPER_VERSION}", "mteb": getattr(self.mteb, "__version__", "?"),
            "model": self.meta.name, "revision": self.meta.revision,
            "weights": self.source.identity if self.source else None, "task": self.params.mteb_task,
            "loader": _loader_name(self.meta.loader),
            "loader_kwargs": {k: repr(v) for k, v in sorted(self.loader_kwargs.items())},
            "document_format": "title text",
        }
        return f"mteb:{self.meta.name}@{stable_hash(settings)}"

    def info(self) -> dict[str, Any]:
        return {
            "model_id": self.meta.name, "revision": self.meta.revision, "mteb_version": self.mteb.__version__,
            "mteb_task": self.params.mteb_task, "loader": _loader_name(self.meta.loader),
            "query_prompt": self.query_prompt, "query_prompt_source": self.query_prompt_source,
            "similarity": str(getattr(self.meta.similarity_fn_name, "value", self.meta.similarity_fn_name)),
            "harness_similarity": "cosine", "device": self.device, "placement": self.placement.record(),
            **({"model_path": str(self.source.path), "weights_sha256": self.source.weights_sha256,
                "weights_revision": self.source.revision} if self.source else {}),
        }

    # ---------------------------------------------------------------- model

    def model(self) -> Any:
        if self._model is None:
            kwargs = {k: v for k, v in self.loader_kwargs.items() if k != "trust_remote_code"}
            if "trust_remote_code" in self.loader_kwargs:
                kwargs["trust_remote_code"] = self.params.trust_remote_code
            try:
                if self.source is None:
                    self._model = self.meta.load_model(device=self.device)
                else:
                    self._model = self.meta.loader(str(self.source.path), revision=None, device=self.device, **kwargs)
                    self._model.mteb_model_meta = self.meta
            except Exception as exc:
                raise BenchError(f"mteb could not load {self.meta.name}: {exc}") from None
            self.query_prompt, self.query_prompt_source = self._query_prompt(self._model)
        return self._model

    def _query_prompt(self, model: Any) -> tuple[str, str]:
        """The text mteb puts before a query of the task, and where it comes from; applies `prompt_name`; refuses a
        model with several query prompts of which mteb picks none."""
        from mteb.models.abs_encoder import get_prompt_name
        from mteb.types import PromptType

        query = PromptType.query
        task = self.task_meta.name
        prompts = dict(getattr(getattr(model, "model", None), "prompts", None) or {})
        if hasattr(model, "model_prompts"):  # a sentence-transformers wrapper: prompts by task / type names
            chosen = self.params.prompt_name
            if chosen is not None:
                if chosen not in prompts:
                    known = ", ".join(sorted(prompts)) or "none"
                    raise BenchError(f"mteb:{self.meta.name}: the model has no prompt named {chosen!r} (its prompts: "
                                     f"{known})")
                # "<task>-query" is the key mteb looks up first for a query of that task
                model.model_prompts = {**(model.model_prompts or {}), f"{task}-{query.value}": prompts[chosen]}
                return prompts[chosen], f"model config ({chosen}, parameter prompt_name)"
            name = get_prompt_name(model.model_prompts, self.task_meta, query)
            text = str(model.model_prompts[name]) if name else ""
            if text:
                return text, f"mteb's choice for task {task} ({name})"
            queries = sorted(k for k, v in prompts.items() if v and not any(
                w in k.lower() for w in ("document", "passage", "corpus")))
            if queries:  # the model has query prompts and mteb would use none of them: not silently
                raise BenchError(f"mteb:{self.meta.name}: the model names query prompts ({', '.join(queries)}) and "
                                 f"mteb picks none of them for task {task}: choose one with -r prompt_name=NAME")
            return "", f"none (mteb picks no prompt for task {task})"
        if self.params.prompt_name is not None:
            raise BenchError(f"mteb:{self.meta.name}: mteb builds its query prompt from the task's instruction "
                             "(-r mteb_task= chooses the task); -r prompt_name applies to sentence-transformers models")
        if hasattr(model, "get_task_instruction"):
            return str(model.get_task_instruction(self.task_meta, query)), f"mteb's instruction for task {task}"
        return "", "the model's own (mteb's wrapper does not say)"

    def encode_queries(self, split: Split, ctx: RunContext) -> np.ndarray:
        """One line naming the query prompt (after loading the model), then the queries."""
        self.model()
        if not self._said:
            (ctx.console or STDERR).print(escape(f"mteb:{self.meta.name}: query prompt {self.query_prompt!r} from "
                                                 f"{self.query_prompt_source}"), highlight=False, soft_wrap=True)
            self._said = True
        return super().encode_queries(split, ctx)

    def encode(self, texts: list[str], role: str, advance: Any = None) -> np.ndarray:
        from mteb.types import PromptType
        from torch.utils.data import DataLoader

        model = self.model()
        loader: Any = DataLoader(_Texts(texts), batch_size=self.params.batch_size)  # type: ignore[arg-type]
        inner = getattr(model, "model", None)
        handle = None
        if advance is not None and inner is not None and hasattr(inner, "register_forward_hook"):
            def hook(_m: Any, _a: Any, out: Any) -> None:
                emb = out.get("sentence_embedding") if hasattr(out, "get") else None  # a dict or BatchEncoding
                if emb is not None:
                    advance(int(emb.shape[0]))

            handle = inner.register_forward_hook(hook)
        try:
            emb = model.encode(loader, task_metadata=self.task_meta, hf_split="test", hf_subset="default",
                               prompt_type=PromptType(role), batch_size=self.params.batch_size,
                               show_progress_bar=False)
        finally:
            if handle is not None:
                handle.remove()
        if hasattr(emb, "detach"):
            emb = emb.detach().cpu().float().numpy()
        return np.asarray(emb, dtype=np.float32)

    def encoder_record(self) -> dict[str, Any]:
        return {"model_id": self.meta.name, "mteb_task": self.params.mteb_task}


class _Texts:
    """The texts as the map-style dataset mteb's encoders read (`batch["text"]`, `dataset.features`).

    A plain class rather than a `datasets.Dataset`: building one fingerprints it with dill, which fails with
    datasets 5.2 + pyarrow 26 + dill 0.4.1 (PicklingError on pyarrow's MonthDayNano), and nothing here needs it.
    """

    features = {"text": "string"}

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> dict[str, str]:
        return {"text": self.texts[i]}


def _loader_name(loader: Any) -> str:
    return f"{getattr(loader, '__module__', '')}.{getattr(loader, '__qualname__', repr(loader))}"
