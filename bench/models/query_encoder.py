"""The trained query encoder shared by AMER (m vectors) and Single-Query (one vector).

Sequence fed to the causal backbone: the query prefix, then one input per emitted vector:

    [prefix] → q1,   [prefix, e(z1)] → q2,   …,   [prefix, e(z1), …, e(z_{m−1})] → q_m

with q_i = normalise(W_out · h_i) (h_i the last hidden state), e(z) = W_in · z, and z_i either the model's own
previous prediction (always at inference) or a training target (teacher forcing), chosen per example and step. The
prediction fed back is q_i (`feedback="normalised"`, the default) or the raw projection W_out · h_i
(`feedback="raw"`, as the reference implementation feeds it); the choice is part of the model's config.
The prefix is one projected vector (synthetic tasks, `d_query` > 0), the projected token states of a frozen reader
(`query_input="sequence"`, text tasks with `finetune=frozen`: bench/models/reader.py; each state L2-normalised, so
it enters at the scale of the fed-back unit vectors; left padded with a mask) or the token embeddings of the query's
prompt (text tasks, `d_query` = 0; left padded with a mask). The backbone runs one position at a time with a key/value
cache, so feeding predictions costs no more than teacher forcing.

A pretrained backbone is fine-tuned with LoRA (default) or fully; a checkpoint then holds only what trained
(`trainable_state_dict`) plus the sha256 of the base weights it was trained on.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError
from bench.models.backbone import BackboneConfig, build_backbone, hidden_size
from bench.models.lora import FINETUNE_MODES, LoraSettings, apply_lora


class QueryEncoder(nn.Module):
    """Input projection(s), causal backbone, output projection; outputs are L2-normalised d_doc vectors."""

    def __init__(self, backbone_cfg: BackboneConfig, d_query: int, d_doc: int, input_scale: float,
                 finetune: str = "full", lora: LoraSettings | None = None, base_hash: str | None = None,
                 feedback: str = "normalised", query_input: str = "vector", residual: bool = False) -> None:
        super().__init__()
        if feedback not in ("normalised", "raw"):
            raise ValueError(f"feedback must be 'normalised' or 'raw', got {feedback!r}")
        if query_input not in ("vector", "sequence"):
            raise ValueError(f"query_input must be 'vector' or 'sequence', got {query_input!r}")
        self.feedback = feedback
        self.query_input = query_input if d_query > 0 else "tokens"
        if residual and self.query_input != "sequence":
            raise ValueError("residual needs a frozen reader's pooled embedding (query_input='sequence')")
        self.residual = residual
        if finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune must be one of {', '.join(FINETUNE_MODES)}, got {finetune!r}")
        if backbone_cfg.pretrained is None:
            finetune = "full"  # a random backbone has nothing to keep frozen
        self.backbone_cfg = backbone_cfg
        self.finetune = finetune
        self.lora = lora or LoraSettings()
        self.base_hash = base_hash
        backbone = build_backbone(backbone_cfg)
        width = hidden_size(backbone)
        self.d_query = d_query
        self.d_doc = d_doc
        self.input_scale = float(input_scale)
        if d_query > 0:
            self.query_proj = nn.Linear(d_query, width)
        self.target_proj = nn.Linear(d_doc, width)
        self.out_proj = nn.Linear(width, d_doc)
        if residual:  # start at the reader's own query embedding: each output learns a move away from it
            nn.init.zeros_(self.out_proj.weight)
            nn.init.zeros_(self.out_proj.bias)
        if finetune == "lora":
            backbone = apply_lora(backbone, self.lora)
        self.backbone = backbone

    # -- config and weights -------------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this module before loading its weights."""
        return {"backbone": self.backbone_cfg.to_dict(), "d_query": self.d_query, "d_doc": self.d_doc,
                "input_scale": self.input_scale, "finetune": self.finetune,
                "lora": {**vars(self.lora), "targets": list(self.lora.targets)}, "base_hash": self.base_hash,
                "feedback": self.feedback,
                **({"query_input": self.query_input, "residual": self.residual}
                   if self.query_input == "sequence" else {})}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> QueryEncoder:
        lora = config.get("lora")
        return cls(BackboneConfig(**config["backbone"]), int(config["d_query"]), int(config["d_doc"]),
                   float(config["input_scale"]), finetune=config.get("finetune", "full"),
                   lora=LoraSettings(**{**lora, "targets": tuple(lora["targets"])}) if lora else None,
                   base_hash=config.get("base_hash"), feedback=config.get("feedback", "normalised"),
                   query_input=config.get("query_input", "vector"), residual=bool(config.get("residual", False)))

    def saves_everything(self) -> bool:
        return self.backbone_cfg.pretrained is None or self.finetune == "full"

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint holds: the whole state for a random or fully fine-tuned backbone, else the trainable
        tensors (LoRA adapters and projections) — never the frozen base weights."""
        state = self.state_dict()
        if self.saves_everything():
            return state
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in state.items() if k in names}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if self.saves_everything():
            self.load_state_dict(state)
            return
        missing, unexpected = self.load_state_dict(state, strict=False)
        trainable = {n for n, p in self.named_parameters() if p.requires_grad}
        lacking = sorted(trainable & set(missing))
        if unexpected or lacking:
            raise RuntimeError(f"unexpected keys {unexpected[:3]}, missing trainable keys {lacking[:3]}")

    # -- forward ------------------------------------------------------------------------------------------------
    def prefix(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Prefix embeddings (B, P, width) and mask (B, P) (None: all real) of a batch of queries.

        `inputs` holds `vectors` (B, d_query), `features` (B, P, d_query) or `input_ids` (B, P), the last two with
        an `attention_mask` (B, P), left padded.
        """
        if "features" in inputs:
            if self.query_input != "sequence":
                raise BenchError(f"this query encoder takes {self.query_input} queries, got token states")
            states = F.normalize(inputs["features"].to(self.query_proj.weight.dtype), dim=-1) * self.input_scale
            return self.query_proj(states), inputs["attention_mask"]
        if "vectors" in inputs:
            if self.query_input != "vector":
                raise BenchError(f"this query encoder takes {self.query_input} queries, got vectors")
            return self.query_proj(inputs["vectors"] * self.input_scale).unsqueeze(1), None
        if self.d_query > 0:
            raise BenchError("this query encoder takes vector queries, got token ids")
        embed = self.backbone.get_input_embeddings()  # type: ignore[operator]
        return embed(inputs["input_ids"]), inputs["attention_mask"]

    def vector_prefix(self, x: torch.Tensor) -> torch.Tensor:
        """(B, d_query) query vectors → (B, 1, width) prefix embeddings."""
        return self.prefix({"vectors": x})[0]

    def forward(self, inputs: dict[str, torch.Tensor], m: int, teacher: torch.Tensor | None = None,
                teacher_mask: torch.Tensor | None = None, use_pred: torch.Tensor | None = None) -> torch.Tensor:
        """(B, m, d_doc) L2-normalised query vectors of a batch (see `rollout`); the entry point DDP wraps."""
        prefix, mask = self.prefix(inputs)
        anchor = inputs["pooled"].to(prefix.dtype) if self.residual else None
        return self.rollout(prefix, m, teacher=teacher, teacher_mask=teacher_mask, use_pred=use_pred,
                            prefix_mask=mask, anchor=anchor)

    def _cache_argument(self) -> str:
        """The name the backbone's forward takes its key/value cache by: `cache` in transformers ≥ 5.x (and the tiny
        model), `past_key_values` before (now a deprecated alias that warns)."""
        unwrap = getattr(self.backbone, "get_base_model", None)  # a peft model: the transformers model inside
        base: Any = unwrap() if callable(unwrap) else self.backbone
        return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"

    def rollout(
        self,
        prefix: torch.Tensor,
        m: int,
        teacher: torch.Tensor | None = None,
        teacher_mask: torch.Tensor | None = None,
        use_pred: torch.Tensor | None = None,
        prefix_mask: torch.Tensor | None = None,
        anchor: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Emit m vectors per query: (B, m, d_doc), L2-normalised.

        After emitting q_i, the next input is q_i itself where `use_pred[:, i]` is True and `teacher[:, i]`
        otherwise; without `teacher` (inference) it is always q_i. Examples whose `teacher_mask[:, i]` is False
        (fewer targets than m) feed their prediction. `prefix_mask` (B, P) marks real positions of a left-padded
        prefix; None means every position is real. `anchor` (B, d_doc), with `residual`, is added to every output
        projection before it is normalised: q_i = normalise(W_out · h_i + anchor).
        """
        b = prefix.shape[0]
        cache = self._new_cache()
        mask = prefix_mask
        positions = None
        if mask is not None:
            positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        inputs = prefix
        outs: list[torch.Tensor] = []
        cache_arg = self._cache_argument()
        feed_pred = None  # (B, m − 1, 1): feed the prediction (else the target) after step i; decided once
        if teacher is not None and m > 1:
            feed_pred = (use_pred[:, : m - 1].to(prefix.device) if use_pred is not None
                         else torch.zeros(b, m - 1, dtype=torch.bool, device=prefix.device))
            if teacher_mask is not None:
                feed_pred = feed_pred | ~teacher_mask[:, : m - 1].to(prefix.device)
            feed_pred = feed_pred.unsqueeze(-1)
        for i in range(m):
            kwargs: dict[str, Any] = {}
            if mask is not None:
                kwargs = {"attention_mask": mask, "position_ids": positions}
            kwargs[cache_arg] = cache
            hidden = self.backbone(inputs_embeds=inputs, use_cache=True, **kwargs)
            raw = self.out_proj(hidden.last_hidden_state[:, -1]).float()
            if anchor is not None:
                raw = raw + anchor.float()
            q = F.normalize(raw, dim=-1)
            outs.append(q)
            if i == m - 1:
                break
            fed = raw if self.feedback == "raw" else q
            if teacher is not None and feed_pred is not None:
                fed = torch.where(feed_pred[:, i], fed, teacher[:, i].to(q.dtype))
            inputs = self.target_proj(fed.to(self.target_proj.weight.dtype)).unsqueeze(1)
            if mask is not None:
                assert positions is not None
                mask = torch.cat([mask, mask.new_ones(b, 1)], dim=1)
                positions = positions[:, -1:] + 1
        return torch.stack(outs, dim=1)

    def _new_cache(self) -> Any:
        """An empty key/value cache for the backbone: the plain one of `tiny` (no `transformers` import, none of
        its per-call bookkeeping), else `transformers`' DynamicCache."""
        from bench.models.tiny import TinyCache, TinyModel

        if isinstance(self.backbone, TinyModel):
            return TinyCache()
        from transformers.cache_utils import DynamicCache

        return DynamicCache()

    @torch.no_grad()
    def generate(self, x: torch.Tensor | dict[str, torch.Tensor], m: int) -> torch.Tensor:
        """Inference: m vectors per query (a (B, d_query) tensor or a model-input dict), each step fed the model's
        own previous output."""
        inputs = {"vectors": x} if isinstance(x, torch.Tensor) else x
        return self.forward(inputs, m)
