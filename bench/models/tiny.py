"""A small causal transformer in plain torch: the Llama design without the per-call cost of `transformers`.

Same computation as a `transformers` Llama base model of the same shape (`load_llama_weights` maps one onto the
other, and the tests check the outputs agree): pre-norm blocks

    h = x + W_o · attention(rope(W_q · n(x)), rope(W_k · n(x)), W_v · n(x))        n = RMSNorm
    y = h + W_down · (silu(W_gate · n(h)) ⊙ W_up · n(h))                           (SwiGLU)

with a final RMSNorm, rotary position embeddings (θ = 10,000, rotate-half layout), causal attention through
`F.scaled_dot_product_attention`, no biases, weights drawn from N(0, 0.02²) like Llama's initialiser. What differs
is only how it runs: Q, K and V come from one fused matrix, gate and up from another, rotary tables are cached per
position, and no mask is built when none is needed (a one-position step with a cache attends to everything before
it). For a 0.4M-parameter model the `transformers` module stack (mask factories, output capturing, keyword
plumbing) costs more than the arithmetic; this one exists for random-weight backbones on vector tasks
(`BackboneConfig(arch="tiny")`), pretrained models still load through `transformers`.

It takes the call a `transformers` base model takes from the query encoder:
`model(inputs_embeds=..., past_key_values=cache, use_cache=True, attention_mask=..., position_ids=...)`,
with `cache` a `transformers` `DynamicCache` (or None, or anything with `update(k, v, layer)` and
`get_seq_length()`), and returns an object with `.last_hidden_state` and `.past_key_values`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TinyConfig:
    """Shape of a TinyModel; attribute names follow `transformers` configs (`hidden_size` is what callers read)."""

    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    initializer_range: float = 0.02
    vocab_size: int = 1  # inputs arrive as embeddings; the token table exists for `get_input_embeddings`

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                             f"({self.num_attention_heads})")
        if (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError("the head size must be even for rotary position embeddings")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


@dataclass
class TinyOutput:
    """What the query encoder reads from a base model's output."""

    last_hidden_state: torch.Tensor
    past_key_values: Any = None


class TinyCache:
    """Keys and values per layer, grown by concatenation (what `DynamicCache` does, without its machinery)."""

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def update(self, k: torch.Tensor, v: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        if layer == len(self.keys):
            self.keys.append(k)
            self.values.append(v)
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=-2)
            self.values[layer] = torch.cat([self.values[layer], v], dim=-2)
        return self.keys[layer], self.values[layer]

    def get_seq_length(self, layer: int = 0) -> int:
        return int(self.keys[layer].shape[-2]) if layer < len(self.keys) else 0


def _attend_one(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q·kᵀ/√d)·v for a single query position (B, H, 1, d) over T keys (B, H, T, d), elementwise.

    For one query row the SDPA kernel's fixed cost dominates (measured ≈ 2× slower forward + backward for
    B=128, H=4, T ≤ 5); with one key (the first position) the result is v itself.
    """
    if k.shape[-2] == 1:
        return v
    scores = (q * k).sum(-1, keepdim=True) * q.shape[-1] ** -0.5  # (B, H, T, 1)
    return (scores.softmax(dim=-2) * v).sum(-2, keepdim=True)


class TinyBlock(nn.Module):
    """One pre-norm decoder layer: fused-QKV causal self-attention, then a SwiGLU MLP, each with a residual."""

    def __init__(self, cfg: TinyConfig, index: int) -> None:
        super().__init__()
        w = cfg.hidden_size
        self.index = index
        self.heads = cfg.num_attention_heads
        self.eps = cfg.rms_norm_eps
        self.attn_norm = nn.Parameter(torch.ones(w))
        self.qkv = nn.Linear(w, 3 * w, bias=False)
        self.o = nn.Linear(w, w, bias=False)
        self.mlp_norm = nn.Parameter(torch.ones(w))
        self.gate_up = nn.Linear(w, 2 * cfg.intermediate_size, bias=False)
        self.down = nn.Linear(cfg.intermediate_size, w, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                causal: bool, cache: Any) -> torch.Tensor:
        b, n, w = x.shape
        h = F.rms_norm(x, (w,), self.attn_norm, self.eps)
        qkv = self.qkv(h).view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)  # (3, B, H, N, hd)
        qk = qkv[:2]
        half = qk.shape[-1] // 2
        # rope: x·cos + rotate_half(x)·sin, rotate_half(x) = [−x2, x1] = roll(x, half) · [−1…, 1…] (sign in `sin`)
        qk = qk * cos + qk.roll(half, dims=-1) * sin
        q, k, v = qk[0], qk[1], qkv[2]
        if cache is not None:
            k, v = cache.update(k, v, self.index)
        if n == 1 and mask is None:  # one new position seeing every cached one: a weighted sum, no kernel needed
            a = _attend_one(q, k, v)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        x = x + self.o(a.transpose(1, 2).reshape(b, n, w))
        gate, up = self.gate_up(F.rms_norm(x, (w,), self.mlp_norm, self.eps)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


class TinyModel(nn.Module):
    """The backbone: blocks, a final RMSNorm, rotary tables; driven through `inputs_embeds` (see the module doc)."""

    inv_freq: torch.Tensor

    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(TinyBlock(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = nn.Parameter(torch.ones(cfg.hidden_size))
        hd = cfg.head_dim
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._rope_table: tuple[torch.Tensor, torch.Tensor] | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Llama's initialiser: every matrix N(0, initializer_range²), norms 1 (draws from torch's global RNG)."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=std)
        for name, p in self.named_parameters():
            if name.endswith("norm"):
                nn.init.ones_(p)

    def get_input_embeddings(self) -> nn.Module:
        return self.embed_tokens

    def _rope_tables(self, top: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and signed sin of positions 0 … ≥ top − 1, (n, head_dim) each, built once and grown when needed."""
        table = self._rope_table
        if table is None or table[0].shape[0] < top or table[0].device != device:
            n = max(64, 1 << (top - 1).bit_length())
            freqs = torch.arange(n, device=device, dtype=torch.float32)[:, None] * self.inv_freq.to(device)
            angles = torch.cat([freqs, freqs], -1)  # (n, head_dim), Llama's layout
            sign = torch.cat([-torch.ones_like(freqs), torch.ones_like(freqs)], -1)
            table = (angles.cos(), sign * angles.sin())
            self._rope_table = table
        return table

    def _rope(self, positions: torch.Tensor, top: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and signed sin for integer positions (any shape P, all < top) → (*P, head_dim) each, from a table."""
        cos, sin = self._rope_tables(top, positions.device)
        return cos[positions].to(dtype), sin[positions].to(dtype)

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        past_key_values: Any = None,
        use_cache: bool | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Any = None,
        **unused: Any,
    ) -> TinyOutput:
        """`attention_mask` (B, past + N): 1 for real positions of the whole sequence so far (left padding = 0);
        `position_ids` (B, N) or (1, N), default past + 0…N−1. Padded positions attend to themselves only.
        `cache` is the newer `transformers` name of `past_key_values`; either is accepted."""
        x = inputs_embeds
        b, n, _ = x.shape
        cache = past_key_values if past_key_values is not None else cache
        if cache is None and use_cache:
            cache = TinyCache()
        past = int(cache.get_seq_length()) if cache is not None else 0
        if position_ids is None:  # positions past … past + N − 1: a slice of the tables (a view, no kernel)
            cos, sin = (t[past : past + n].to(x.dtype) for t in self._rope_tables(past + n, x.device))  # (N, hd)
        else:
            top = int(position_ids.max()) + 1 if position_ids.numel() else 1
            cos, sin = self._rope(position_ids, top, x.dtype)  # (B, N, hd)
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        mask, causal = None, False
        if attention_mask is not None:
            keep = attention_mask.to(torch.bool)  # (B, past + N)
            total = past + n
            qpos = torch.arange(past, total, device=x.device)
            kpos = torch.arange(total, device=x.device)
            allowed = (kpos[None, :] <= qpos[:, None])[None] & keep[:, None, :]  # (B, N, total)
            allowed = allowed | (kpos[None, :] == qpos[:, None])[None]  # a padded position sees itself: no NaN
            mask = allowed[:, None]
        elif n > 1 and past == 0:
            causal = True
        elif n > 1:
            total = past + n
            mask = (torch.arange(total, device=x.device)[None, :]
                    <= torch.arange(past, total, device=x.device)[:, None])
        for layer in self.layers:
            x = layer(x, cos, sin, mask, causal, cache)
        x = F.rms_norm(x, (x.shape[-1],), self.norm, self.config.rms_norm_eps)
        return TinyOutput(last_hidden_state=x, past_key_values=cache)

    @torch.no_grad()
    def load_llama_weights(self, llama: nn.Module) -> None:
        """Copy the weights of a `transformers` LlamaModel of the same shape (fusing Q/K/V and gate/up)."""
        sd = llama.state_dict()
        self.embed_tokens.weight.copy_(sd["embed_tokens.weight"])
        self.norm.copy_(sd["norm.weight"])
        for i, module in enumerate(self.layers):
            layer = cast(TinyBlock, module)
            p = f"layers.{i}."
            layer.attn_norm.copy_(sd[p + "input_layernorm.weight"])
            layer.mlp_norm.copy_(sd[p + "post_attention_layernorm.weight"])
            layer.qkv.weight.copy_(torch.cat([sd[p + f"self_attn.{n}_proj.weight"] for n in "qkv"]))
            layer.o.weight.copy_(sd[p + "self_attn.o_proj.weight"])
            layer.gate_up.weight.copy_(torch.cat([sd[p + "mlp.gate_proj.weight"], sd[p + "mlp.up_proj.weight"]]))
            layer.down.weight.copy_(sd[p + "mlp.down_proj.weight"])
