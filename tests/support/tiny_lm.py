"""A tiny randomly initialised causal LM folder (Llama architecture) with a word-level tokenizer and a chat template:
exercises the text-backbone code paths in seconds. Never a stand-in for a real result."""

from __future__ import annotations

import json
import re
from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|> assistant{% endif %}")


def vocabulary(texts: list[str]) -> list[str]:
    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t)})
    return SPECIAL + ["system", "user", "assistant"] + [w for w in words if w not in SPECIAL]


def write_tiny_lm(folder: Path, texts: list[str], seed: int = 0, width: int = 32, layers: int = 2) -> Path:
    """Save model (random weights from `seed`) and tokenizer to `folder`; returns it."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = vocabulary(texts)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>",
                                   eos_token="</s>", additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(words), hidden_size=width, intermediate_size=2 * width,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    (folder / "made_by.json").write_text(json.dumps({"seed": seed, "what": "tests/tiny_lm.py"}), encoding="utf-8")
    return folder
