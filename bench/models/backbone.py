"""The causal transformer under a trained query encoder: a small randomly initialised one, or a pretrained LM.

Both are `transformers` base models (no LM head) driven through `inputs_embeds`, so the query encoder never needs
token ids: a synthetic query is one projected vector, a text query (a later issue) is its token embeddings
(`token_embeddings(backbone)` gives the lookup table), and the previous targets follow as projected vectors.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from bench.errors import BenchError
from bench.progress import STDERR, loading

ARCHS = ("llama", "qwen2", "tiny")  # tiny: bench/models/tiny.py, the Llama design in plain torch


@dataclass(frozen=True)
class BackboneConfig:
    """What builds a backbone. `pretrained` (a local folder or an id already in the HF cache) overrides the rest."""

    arch: str = "tiny"  # the Llama design in plain torch (bench/models/tiny.py); llama = transformers' own
    width: int = 128
    layers: int = 2
    heads: int = 4
    ffn: int = 0  # MLP inner width; 0 means 2 × width
    pretrained: str | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        for name in ("width", "layers", "heads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.ffn < 0:
            raise ValueError(f"ffn must be ≥ 0, got {self.ffn}")
        if self.pretrained is None and self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be a multiple of heads ({self.heads})")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _random_config(cfg: BackboneConfig) -> Any:
    from transformers import LlamaConfig, Qwen2Config

    common: dict[str, Any] = dict(
        hidden_size=cfg.width,
        intermediate_size=cfg.ffn or 2 * cfg.width,  # gated MLP: 3 matrices, so 2 × width ≈ a plain 3 × width MLP
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        vocab_size=1,  # inputs arrive as embeddings; the (unused) token table is kept minimal
        max_position_embeddings=512,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        tie_word_embeddings=False,
    )
    config = LlamaConfig(**common) if cfg.arch == "llama" else Qwen2Config(**common)
    config._attn_implementation = "sdpa"
    return config


def build_backbone(cfg: BackboneConfig) -> nn.Module:
    """A transformers base model: random weights from the config (seed torch first), or a pretrained causal LM."""
    if cfg.pretrained is not None:
        return load_pretrained(cfg.pretrained)
    if cfg.arch == "tiny":
        from bench.models.tiny import TinyConfig, TinyModel

        return TinyModel(TinyConfig(hidden_size=cfg.width, intermediate_size=cfg.ffn or 2 * cfg.width,
                                    num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads))
    from transformers import AutoModel

    return AutoModel.from_config(_random_config(cfg))


def load_pretrained(name_or_path: str) -> nn.Module:
    """The base model (no LM head) of a pretrained causal LM, loaded offline: no download happens at run time."""
    from transformers import AutoModel

    local = Path(name_or_path).expanduser()
    try:
        # transformers' own loading bars and load report folded into ours: the report's one expected entry, the LM
        # head the base model leaves out, is no news; anything else it would report is one warning line below
        with loading("backbone", name_or_path), _without_load_report():
            model, info = AutoModel.from_pretrained(str(local) if local.exists() else name_or_path,
                                                    local_files_only=True, output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise BenchError(f"backbone {name_or_path!r}: cannot load a pretrained model offline ({exc})") from None
    odd = {"missing (initialised at random)": list(info.get("missing_keys") or []),
           "unexpected": [k for k in info.get("unexpected_keys") or [] if not k.startswith("lm_head.")],
           "of another shape": [str(k) for k in info.get("mismatched_keys") or []]}
    for what, keys in odd.items():
        if keys:
            STDERR.print(f"[yellow]warning:[/] backbone {name_or_path}: {len(keys)} weights {what}: "
                         f"{', '.join(keys[:5])}{' …' if len(keys) > 5 else ''}", highlight=False, markup=True,
                         soft_wrap=True)
    return model  # type: ignore[no-any-return]


@contextlib.contextmanager
def _without_load_report() -> Iterator[None]:
    """transformers' table of the keys a load skipped or missed (logged as a warning), held back meanwhile."""
    import logging

    class Skip(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "LOAD REPORT" not in record.getMessage()

    logger = logging.getLogger("transformers.modeling_utils")
    skip = Skip()
    logger.addFilter(skip)
    try:
        yield
    finally:
        logger.removeFilter(skip)


def hidden_size(backbone: nn.Module) -> int:
    return int(backbone.config.hidden_size)  # type: ignore[union-attr, arg-type]


def token_embeddings(backbone: nn.Module) -> nn.Module:
    """The token lookup table: how a text query becomes the prefix of input embeddings."""
    return backbone.get_input_embeddings()  # type: ignore[operator]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
