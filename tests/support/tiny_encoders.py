"""Tiny random text encoders in the layouts of published embedding models, saved to a folder (no download): a BERT
with MiniLM's tokenizer, Qwen2 / Mistral decoders with a byte-level BPE trained on a few strings, and
sentence-transformers folders around them (modules.json, pooling, Dense, Normalize, prompts). For testing code paths:
their vectors mean nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from retrievers.dense import PRESETS, minilm_path

SAMPLES = ["Who likes Joshua Trees?", "a much longer passage about quokkas river otters and tapirs", "short"]


def _corpus() -> list[str]:
    return [p.query_prompt for p in PRESETS.values()] + SAMPLES + ["q: d: query document"]


def tiny_tokenizer(folder: Path) -> None:
    """A byte-level BPE trained on the test strings, with pad / eos / unk tokens (decoder-style, no specials).

    Byte-level BPE because transformers loads the tokenizer class of the model type (Qwen2Tokenizer for a qwen2
    config), which rebuilds a byte-level BPE from the saved vocabulary and merges: the same tokens as trained here.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")
    fast.save_pretrained(folder)


def tiny_bert(folder: Path) -> Path:
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True)
    src = Path(minilm_path())
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, folder / name)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    return folder


def tiny_decoder(folder: Path, family: str) -> Path:
    from transformers import MistralConfig, MistralModel, Qwen2Config, Qwen2Model

    folder.mkdir(parents=True)
    tiny_tokenizer(folder)
    vocab = len(json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"])
    kwargs = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    model = Qwen2Model(Qwen2Config(**kwargs)) if family == "qwen2" else MistralModel(MistralConfig(**kwargs))
    model.save_pretrained(folder)
    return folder


def st_folder(folder: Path, base: Path, pooling: str = "mean", dense_out: int | None = None,
              prompts: dict[str, str] | None = None, normalize: bool = False, identity_dense: bool = False,
              exact_prompts: bool = False) -> Path:
    """A sentence-transformers folder (modules.json, prompts) around a tiny base model; `identity_dense` gives the
    Dense layer no activation, as stella's 2_Dense_1024 has; `exact_prompts` writes only the given prompts, as a
    published config lists them (sentence-transformers 6 adds empty "query" and "document" ones)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

    torch.manual_seed(1)
    encoder = Transformer(str(base))
    modules = [encoder, Pooling(encoder.get_embedding_dimension(), pooling_mode=pooling)]
    if dense_out:
        act = torch.nn.Identity() if identity_dense else torch.nn.Tanh()
        modules.append(Dense(encoder.get_embedding_dimension(), dense_out, activation_function=act))
    if normalize:
        modules.append(Normalize())
    SentenceTransformer(modules=modules, prompts=prompts, device="cpu").save(str(folder))
    if exact_prompts:
        cfg_path = folder / "config_sentence_transformers.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["prompts"] = dict(prompts or {})
        cfg_path.write_text(json.dumps(cfg, indent=2))
    return folder
