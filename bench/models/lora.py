"""LoRA adapters on a pretrained backbone (peft), and which weights a checkpoint must hold.

Defaults are the paper's real-data setting (docs/architecture.md §6): rank 64, α 16, dropout 0.1 on the attention
and MLP projections q, k, v, o, gate, up, down. Only the adapters (and the query encoder's own projections) train; the
base weights stay untouched, and a checkpoint holds the trainable tensors only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from torch import nn

FINETUNE_MODES = ("lora", "full")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraSettings:
    r: int = 64
    alpha: int = 16
    dropout: float = 0.1
    targets: tuple[str, ...] = LORA_TARGETS

    def __post_init__(self) -> None:
        if self.r <= 0 or self.alpha <= 0 or not 0 <= self.dropout < 1 or not self.targets:
            raise ValueError(f"LoRA needs r > 0, alpha > 0, dropout in [0, 1) and target modules; got {self}")


def apply_lora(backbone: nn.Module, settings: LoraSettings) -> nn.Module:
    """Wrap a transformers base model with LoRA adapters; its own weights are frozen by peft."""
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in backbone.named_modules()}
    targets = [t for t in settings.targets if t in present]
    if not targets:
        raise ValueError(f"none of the LoRA target modules {', '.join(settings.targets)} exist in the backbone")
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=targets, bias="none")
    with warnings.catch_warnings():
        # peft reads transformers' deprecated `is_gradient_checkpointing` property while it wraps the model: a
        # FutureWarning that peft's call causes, not ours, and that no argument of ours avoids
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(backbone, config)
