"""The trained query encoder shared by AMER (m vectors) and Single-Query (one vector).

Sequence fed to the causal backbone: the query prefix, then one input per emitted vector:

    [prefix] → q1,   [prefix, e(z1)] → q2,   …,   [prefix, e(z1), …, e(z_{m−1})] → q_m

with q_i = normalise(W_out · h_i) (h_i the last hidden state), e(z) = W_in · z, and z_i either the model's own
previous prediction q_i (always at inference) or a training target (teacher forcing), chosen per example and step.
The backbone runs one position at a time with a key/value cache, so feeding predictions costs no more than
teacher forcing.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.models.backbone import BackboneConfig, build_backbone, hidden_size


class QueryEncoder(nn.Module):
    """Input projection(s), causal backbone, output projection; outputs are L2-normalised d_doc vectors.

    `d_query` is the size of a vector query (synthetic tasks), projected to one prefix position after scaling by
    `input_scale`; a text query (later) enters as its token embeddings through `forward_prefix`'s `prefix` argument.
    """

    def __init__(self, backbone_cfg: BackboneConfig, d_query: int, d_doc: int, input_scale: float) -> None:
        super().__init__()
        self.backbone_cfg = backbone_cfg
        self.backbone = build_backbone(backbone_cfg)
        width = hidden_size(self.backbone)
        self.d_query = d_query
        self.d_doc = d_doc
        self.input_scale = float(input_scale)
        self.query_proj = nn.Linear(d_query, width)
        self.target_proj = nn.Linear(d_doc, width)
        self.out_proj = nn.Linear(width, d_doc)

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this module before loading its weights."""
        return {"backbone": self.backbone_cfg.to_dict(), "d_query": self.d_query, "d_doc": self.d_doc,
                "input_scale": self.input_scale}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> QueryEncoder:
        return cls(BackboneConfig(**config["backbone"]), int(config["d_query"]), int(config["d_doc"]),
                   float(config["input_scale"]))

    def vector_prefix(self, x: torch.Tensor) -> torch.Tensor:
        """(B, d_query) query vectors → (B, 1, width) prefix embeddings."""
        return self.query_proj(x * self.input_scale).unsqueeze(1)

    def rollout(
        self,
        prefix: torch.Tensor,
        m: int,
        teacher: torch.Tensor | None = None,
        teacher_mask: torch.Tensor | None = None,
        p_predicted: float = 1.0,
        generator: torch.Generator | None = None,
        prefix_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Emit m vectors per query: (B, m, d_doc), L2-normalised.

        After emitting q_i, the next input is q_i itself with probability `p_predicted` and `teacher[:, i]`
        otherwise (drawn per example from `generator`); without `teacher` (inference) it is always q_i. Examples
        whose `teacher_mask[:, i]` is False (fewer targets than m) feed their prediction. `prefix_mask` (B, P)
        marks real prefix positions of a left-padded text prefix; None means every position is real.
        """
        from transformers.cache_utils import DynamicCache

        b, p_len, _ = prefix.shape
        cache = DynamicCache()
        mask = prefix_mask
        positions = None
        if mask is not None:
            positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        inputs = prefix
        outs: list[torch.Tensor] = []
        for i in range(m):
            kwargs: dict[str, Any] = {}
            if mask is not None:
                kwargs = {"attention_mask": mask, "position_ids": positions}
            hidden = self.backbone(inputs_embeds=inputs, past_key_values=cache, use_cache=True, **kwargs)
            q = F.normalize(self.out_proj(hidden.last_hidden_state[:, -1]).float(), dim=-1)
            outs.append(q)
            if i == m - 1:
                break
            fed = q
            if teacher is not None:
                draw = torch.rand(b, generator=generator, device="cpu").to(q.device)
                use_pred = draw < p_predicted
                if teacher_mask is not None:
                    use_pred = use_pred | ~teacher_mask[:, i]
                fed = torch.where(use_pred[:, None], q, teacher[:, i].to(q.dtype))
            inputs = self.target_proj(fed).unsqueeze(1)
            if mask is not None:
                assert positions is not None
                mask = torch.cat([mask, mask.new_ones(b, 1)], dim=1)
                positions = positions[:, -1:] + 1
        return torch.stack(outs, dim=1)

    @torch.no_grad()
    def generate(self, x: torch.Tensor, m: int) -> torch.Tensor:
        """Inference: m vectors per vector query, each step fed the model's own previous output."""
        return self.rollout(self.vector_prefix(x), m)
