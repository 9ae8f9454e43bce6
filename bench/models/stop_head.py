"""A learned stop for AMER: after each emitted vector, the probability that another answer remains.

AMER emits q_1, q_2, … autoregressively (bench/models/query_encoder.py), q_i = normalise(W_out · h_i) with h_i the
backbone's last hidden state at step i. The stop head reads the same h_i:

    p_i = σ(w₂ · gelu(W₁ · h_i + b₁) + b₂)    = P(the query has more than i answers)

Training (objective `matched-stop`, bench/train/objectives/stop.py) adds to matched InfoNCE the binary
cross-entropy of p_i against 1[i < T_b] for every emitted position i = 1..M, T_b the example's number of sampled
targets (one per answer cluster): the head learns the count, position by position, from the same states that emit
the vectors. At inference the model emits q_1 (always) and continues past q_i only while p_i ≥ `threshold`, at most
m_max vectors: count = min(m_max, 1 + #{leading i with p_i ≥ threshold}).

`StopQueryEncoder` is a QueryEncoder with this head: `forward` also leaves the (B, m) stop logits of the pass in
`stop_logits` (captured from the inputs of the output projection, so the rollout code is shared unchanged), and
`generate` zeroes the vectors after each query's stop — outputs are L2-normalised, so a zero row means "not
emitted" (`emitted_mask`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.models.backbone import hidden_size
from bench.models.query_encoder import QueryEncoder

# Go on unless the head is 90% sure no answer remains: stopping early loses an answer, going on costs one search.
# On the synthetic varying-m development runs (issue 14) 0.1 instead of 0.5 removed every undercount in two of three
# settings, for 0.02–0.03 more vectors searched per query.
STOP_THRESHOLD = 0.1


class StopHead(nn.Module):
    """(…, width) hidden states → (…,) logits of "another answer remains": a two-layer MLP."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(hidden))).squeeze(-1)


class StopQueryEncoder(QueryEncoder):
    """QueryEncoder + StopHead (module docstring). Same constructor; its config says `stop_head: True`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stop_head = StopHead(hidden_size(self.backbone))
        self.stop_logits: torch.Tensor | None = None
        self.threshold = STOP_THRESHOLD  # inference: go on while P(another answer) ≥ threshold

    def config(self) -> dict[str, Any]:
        return {**super().config(), "stop_head": True}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> QueryEncoder:
        return super().from_config({k: v for k, v in config.items() if k != "stop_head"})

    def forward(self, inputs: dict[str, torch.Tensor], m: int, teacher: torch.Tensor | None = None,
                teacher_mask: torch.Tensor | None = None, use_pred: torch.Tensor | None = None) -> torch.Tensor:
        hidden: list[torch.Tensor] = []
        handle = self.out_proj.register_forward_pre_hook(lambda _mod, args: hidden.append(args[0]))
        try:
            preds = super().forward(inputs, m, teacher=teacher, teacher_mask=teacher_mask, use_pred=use_pred)
        finally:
            handle.remove()
        h = torch.stack(hidden, dim=1)
        self.stop_logits = self.stop_head(h.to(self.stop_head.fc1.weight.dtype)).float()  # (B, m)
        return preds

    @torch.no_grad()
    def generate(self, x: torch.Tensor | dict[str, torch.Tensor], m: int,
                 threshold: float | None = None) -> torch.Tensor:
        """(B, m, d_doc): each query's vectors up to its predicted stop, zero rows after it (m = m_max)."""
        vecs = super().generate(x, m)
        assert self.stop_logits is not None
        counts = stop_counts(self.stop_logits, self.threshold if threshold is None else threshold)
        keep = torch.arange(m, device=vecs.device)[None, :] < counts[:, None]
        return vecs * keep[..., None].to(vecs.dtype)


def stop_counts(stop_logits: torch.Tensor, threshold: float = STOP_THRESHOLD) -> torch.Tensor:
    """Vectors emitted per query from (B, m) stop logits: 1 + the number of leading positions i < m whose
    P(another answer) ≥ threshold (the last position's own prediction cannot add a vector beyond m)."""
    m = stop_logits.shape[1]
    go_on = torch.sigmoid(stop_logits[:, : m - 1]) >= threshold
    return 1 + torch.cumprod(go_on.to(torch.int64), dim=1).sum(dim=1)


def stop_targets(target_mask: torch.Tensor, m: int) -> torch.Tensor:
    """(B, m) BCE labels: 1 where the example has more than i + 1 targets (position i, 0-based)."""
    counts = target_mask.sum(dim=1)
    return (torch.arange(m, device=target_mask.device)[None, :] + 1 < counts[:, None]).float()


def emitted_mask(vectors: np.ndarray) -> np.ndarray:
    """(n, m) True where a vector was emitted (non-zero row; emitted vectors have norm 1)."""
    return np.linalg.norm(np.asarray(vectors), axis=-1) > 0


def record_emitted(vecs: np.ndarray, split: Any, ctx: Any, learned: bool) -> Any:
    """What AMER returns to the pipeline, and `extra.vectors_per_query` of the result: per query the number of
    vectors emitted (= searched), their mean and histogram, and — a diagnostic only, the counts are predicted from
    the query alone — the share of queries whose count equals their number of answer clusters.

    With a learned stop the (n, m_max, d) array has zero rows after each stop: returned as QueryVectors with that
    mask, and Figure 5's mean pairwise cosine of the outputs is recomputed over the emitted vectors only."""
    from bench.metrics.diversity import mean_pairwise_cosine
    from bench.systems.records import QueryVectors

    mask = emitted_mask(vecs) if learned else np.ones(vecs.shape[:2], dtype=bool)
    counts = mask.sum(axis=1)
    true = np.asarray(split.targets.n_clusters)
    ctx.extra["vectors_per_query"] = {
        "stop": "learned" if learned else "fixed", "m_max": int(vecs.shape[1]),
        "mean_emitted": round(float(counts.mean()), 4) if len(counts) else None,
        "mean_searched": round(float(counts.mean()), 4) if len(counts) else None,
        "histogram": {int(c): int(n) for c, n in zip(*np.unique(counts, return_counts=True), strict=True)},
        "count_equals_answers": round(float(np.mean(counts == true)), 4) if len(counts) else None,
        "per_query": counts.astype(int).tolist(),
    }
    if not learned:
        return vecs
    diversity = ctx.extra.get("output_diversity")
    if diversity is not None:
        pred = np.full(len(vecs), np.nan)
        for c in np.unique(counts):
            rows = np.flatnonzero(counts == c)
            if c >= 2:
                pred[rows] = mean_pairwise_cosine(vecs[rows, :c])
        diversity["pred_mean_pairwise_cos"] = [float(v) if np.isfinite(v) else None for v in pred]
    return QueryVectors(np.asarray(vecs, dtype=np.float32), mask)
