"""Building systems: from names (bench/systems/names.py) and `-r key=value` / `-r stage.key=value` pairs to built
stages with a canonical name — the one way in for every command that takes `--retriever` and `-r`.

    names + --expand/--fusion/--rerank ──▶ SystemSpec ──route -r pairs──▶ SystemSpec ──build──▶ System (canonical name)

A parameter pair goes to the stage it addresses: `amer.steps=100` (or `retriever.steps=100`) to the stage named amer
(or of that kind); a plain `steps=100` to the one stage of the system whose parameters have that key, the retriever
first when several do. A pair no system of a command takes is an error naming the stage it was meant for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.data.task import TaskData
from bench.errors import BenchError
from bench.params import Pairs, field_alias, field_names, items_of, params_dict, parse_params
from bench.registry import EXPANDERS, FUSERS, REGISTRIES, RERANKERS, RETRIEVERS, STAGE_KINDS, PluginMeta
from bench.systems.names import (
    DEFAULT_FUSER,
    StageRef,
    SystemSpec,
    format_system,
    identity_params,
    parse_system,
    split_systems,
)
from bench.systems.retriever import RankingRetriever, Retriever, VectorRetriever, build_retriever
from bench.systems.stages import Expander, Fuser, Reranker

LLM_OPTIONS = ("base_url", "model", "api_key_env")  # the LLM expanders' endpoint options (--llm-*)


@dataclass
class System:
    """A built system: its stages with their params, and its canonical name (computed once, when built)."""

    spec: SystemSpec  # canonical: only non-default, result-changing params
    retriever: Retriever
    retriever_meta: PluginMeta
    expander: Expander | None = None
    fuser: Fuser | None = None  # None = the default (round-robin) wherever a query has several lists
    rerankers: list[Reranker] = field(default_factory=list)
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or format_system(self.spec)

    def stages_record(self) -> list[dict[str, Any]]:
        """kind, name and every parameter (defaults included) of each stage: stored in the result."""
        out: list[dict[str, Any]] = [{"kind": "retriever", "name": self.retriever.name,
                                      "params": params_dict(self.retriever.params)}]
        for kind, stage in (("expander", self.expander), ("fuser", self.fuser)):
            if stage is not None:
                out.append({"kind": kind, "name": stage.name, "params": params_dict(stage.params)})
        out += [{"kind": "reranker", "name": r.name, "params": params_dict(r.params)} for r in self.rerankers]
        return out


# ------------------------------------------------------------------------------------------------------- routing
def _stage_meta(kind: str, ref: StageRef) -> PluginMeta:
    return REGISTRIES[kind].get(ref.name)[0]


def _names_a_stage(prefix: str) -> bool:
    """Whether `prefix` in `prefix.key=value` is a stage kind or the name of a registered stage."""
    return prefix in STAGE_KINDS or any(REGISTRIES[kind].has(prefix) for kind in STAGE_KINDS)


def _addresses(prefix: str, kind: str, ref: StageRef) -> bool:
    """Whether `prefix.` addresses this stage: its kind, its name, or another name (an alias) of its plugin."""
    if prefix in (ref.name, kind):
        return True
    registry = REGISTRIES[kind]
    return registry.has(prefix) and registry.canonical(prefix) == registry.canonical(ref.name)


def route_params(spec: SystemSpec, pairs: Pairs) -> tuple[SystemSpec, set[str]]:
    """Give every pair to the stage(s) of `spec` it addresses (module docstring). Returns the new spec and the pairs
    used, so a command with several systems can report the pairs that none took; a qualified key that the named stage
    does not know raises a BenchError naming that stage and its known keys."""
    stages = spec.stages()
    added: dict[int, dict[str, Any]] = {}
    used: set[str] = set()
    for key, value in items_of(pairs, "-r"):
        pair = f"{key}={value}"
        targets: list[int] = []
        prefix, _, sub = key.rpartition(".")
        if prefix and _names_a_stage(prefix):
            for i, (kind, ref) in enumerate(stages):
                if _addresses(prefix, kind, ref):
                    cls = _stage_meta(kind, ref).params
                    if field_alias(cls, sub) not in field_names(cls):
                        known = ", ".join(sorted(field_names(cls))) or "none"
                        raise BenchError(f"{kind} {ref.name}: unknown parameter {sub!r} (from -r {pair}); known: "
                                         f"{known}")
                    targets.append(i)
            key = sub
        else:
            targets = [i for i, (kind, ref) in enumerate(stages)
                       if field_alias(_stage_meta(kind, ref).params, key) in field_names(_stage_meta(kind, ref).params)]
            if len(targets) > 1:
                if stages[targets[0]][0] != "retriever":
                    options = ", ".join(f"{stages[i][1].name}.{key}" for i in targets)
                    raise BenchError(f"parameter {key!r} is ambiguous in system {format_system(spec)}: write "
                                     f"{options}")
                targets = targets[:1]
        for i in targets:
            added.setdefault(i, {})[key] = value
            used.add(pair)
    new = [(kind, ref.with_params(added[i]) if i in added else ref) for i, (kind, ref) in enumerate(stages)]
    return SystemSpec.from_stages(new), used


def unused_params(pairs: Pairs, used: set[str], systems: Sequence[str]) -> None:
    """Raise a BenchError for a pair that no system of the command took, naming the stage it was meant for."""
    for key, value in items_of(pairs, "-r"):
        pair = f"{key}={value}"
        if pair in used:
            continue
        prefix, _, _ = key.rpartition(".")
        if prefix and _names_a_stage(prefix):
            raise BenchError(f"-r {pair}: no system of this run has a stage {prefix!r} (systems: "
                             f"{', '.join(systems)})")
        raise BenchError(f"-r {pair}: unknown parameter {key!r}: no stage of {', '.join(systems)} has it; "
                         "address a stage as stage.key=value (see `bench list stages`)")


# ------------------------------------------------------------------------------------------------------ building
def system_spec(name: str, expand: str | None = None, fusion: str | None = None,
                rerank: Sequence[str] = ()) -> SystemSpec:
    """The spec of `name` (a retriever or a full system name) with the stages of --expand / --fusion / --rerank
    added (one that conflicts with the name's own is an error)."""
    spec = parse_system(name)
    expander, fuser, rerankers = spec.expander, spec.fuser, list(spec.rerankers)
    if expand:
        if expander is not None and expander.name != expand:
            raise BenchError(f"--expand {expand}: system {name!r} already has expander {expander.name!r}")
        expander = expander or StageRef(EXPANDERS.canonical(expand))
    if fusion:
        if fuser is not None and FUSERS.canonical(fuser.name) != FUSERS.canonical(fusion):
            raise BenchError(f"--fusion {fusion}: system {name!r} already fuses with {fuser.name!r}")
        fuser = fuser or StageRef(FUSERS.canonical(fusion))
    rerankers += [StageRef(RERANKERS.canonical(r)) for r in rerank]
    return SystemSpec(spec.retriever, expander, fuser, tuple(rerankers))


def build_system(spec: SystemSpec | str, params: Pairs = ()) -> System:
    """Build every stage of a system (after routing `params` to them) and canonicalise its name."""
    if isinstance(spec, str):
        spec = parse_system(spec)
    if params:
        spec, used = route_params(spec, params)
        unused_params(params, used, [format_system(spec)])
    retriever = build_retriever(spec.retriever.name, spec.retriever.params)

    def stage(kind: str, ref: StageRef | None, base: type) -> tuple[Any, StageRef | None]:
        if ref is None:
            return None, None
        meta = _stage_meta(kind, ref)
        p = parse_params(meta.params, f"{kind} {meta.name}", ref.params)
        obj = meta.factory(p, meta.name)
        if not isinstance(obj, base):
            raise BenchError(f"{kind} {meta.name!r} does not build a {base.__module__}.{base.__name__}")
        return obj, StageRef(meta.name, identity_params(p))

    expander, e_ref = stage("expander", spec.expander, Expander)
    fuser, f_ref = stage("fuser", spec.fuser, Fuser)
    if f_ref is not None and f_ref.name == DEFAULT_FUSER and not f_ref.params:
        f_ref = None  # the default fuser is not part of the name
    rerankers: list[Reranker] = []
    r_refs: list[StageRef] = []
    for ref in spec.rerankers:
        obj, canon = stage("reranker", ref, Reranker)
        rerankers.append(obj)
        r_refs.append(canon)  # type: ignore[arg-type]
    canonical = SystemSpec(StageRef(spec.retriever.name, identity_params(retriever.params)), e_ref, f_ref,
                           tuple(r_refs))
    return System(canonical, retriever, RETRIEVERS.get(spec.retriever.name)[0], expander, fuser, rerankers)


def canonical_name(name: str, params: Pairs = ()) -> str:
    """The canonical name of a system name (+ `-r` pairs), without running it."""
    return build_system(name, params).name


def build_systems(names: str | Sequence[str], params: Pairs = (), *, expand: str | None = None,
                  fusion: str | None = None, rerank: Sequence[str] = (), llm: Mapping[str, str | None] | None = None,
                  trust_remote_code: bool = False) -> list[System]:
    """The systems a command names (`--retriever a,b[x=1]+mmr`), with the stages of --expand / --fusion / --rerank,
    the `-r` pairs routed to them, the LLM endpoint options (--llm-base-url / --llm-model / --llm-api-key-env: `llm`,
    keyed base_url / model / api_key_env) given to the expanders that take them, and --trust-remote-code to the
    retrievers that take it. One BenchError for a name, pair or option that no system can use."""
    listed = split_systems(names) if isinstance(names, str) else [n for n in names if n.strip()]
    if not listed:
        raise BenchError(f"--retriever {names!r} names no retriever; give one or more, e.g. --retriever minilm "
                         "(see `bench list retrievers`)")
    given_llm = {k: v for k, v in (llm or {}).items() if v}
    pairs = items_of(params, "-r")
    specs = [system_spec(name, expand, fusion, rerank) for name in listed]
    routed: list[SystemSpec] = []
    used: set[str] = set()
    llm_taken = False
    for spec in specs:
        extra: list[tuple[str, Any]] = []
        if spec.expander is not None:
            fields = set(EXPANDERS.get(spec.expander.name)[0].param_defaults())
            extra += [(f"expander.{k}", v) for k, v in given_llm.items() if k in fields]
            llm_taken |= bool(fields & set(LLM_OPTIONS))
        if trust_remote_code and "trust_remote_code" in RETRIEVERS.get(spec.retriever.name)[0].param_defaults():
            extra.append(("retriever.trust_remote_code", True))
        spec, took = route_params(spec, [*pairs, *extra])
        used |= took
        routed.append(spec)
    unused_params(pairs, used, [format_system(s) for s in specs])
    if given_llm and not llm_taken:
        flags = ", ".join(f"--llm-{k.replace('_', '-')}" for k in given_llm)
        raise BenchError(f"{flags} set options of an LLM expander, but no system uses one; add --expand llm or "
                         "--expand subqueries")
    return [build_system(spec) for spec in routed]


def check_system(system: System, data: TaskData) -> None:
    """Refuse, before any work, a system whose stages do not fit each other or the task (one clear BenchError)."""
    retriever = system.retriever
    for r in system.rerankers:
        if r.needs_vectors and isinstance(retriever, RankingRetriever):
            raise BenchError(f"system {system.name}: re-ranker {r.name!r} needs document embeddings, and retriever "
                             f"{retriever.name!r} ranks by its own scores with none (try a dense retriever such as "
                             "minilm)")
    if system.expander is not None and data.modality != "text":
        raise BenchError(f"system {system.name}: expander {system.expander.name!r} rewrites query texts; task "
                         f"{data.name!r} has vector queries")
    if isinstance(retriever, VectorRetriever) and data.corpus.vectors is None \
            and retriever.document_encoder(data) is None:
        raise BenchError(f"system {system.name}: retriever {retriever.name!r} has no document encoder, and task "
                         f"{data.name!r} is a text task")
