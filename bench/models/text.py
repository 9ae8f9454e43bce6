"""Text queries for a causal-LM query encoder: the model's own chat template around an instruction and the query.

A pretrained causal LM is named by a local folder or a Hugging Face id already in the local cache; nothing is
downloaded (`local_files_only`). Its identity for checkpoint keys is a sha256 of the folder's files (weights,
config, tokenizer), never its path: other weights saved at the same path train anew.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError

DEFAULT_INSTRUCTION = ("Given a question, retrieve Wikipedia passages that answer it; when it has several distinct "
                       "answers, cover each one.")
DEFAULT_MAX_LENGTH = 64  # query tokens kept (the question; the template and instruction come on top)


def resolve_lm(name_or_path: str) -> Path:
    """The local folder of a causal LM: a folder path, or a hub id found in the local Hugging Face cache."""
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        return local.resolve()
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise BenchError(f"backbone {name_or_path!r}: no such model folder")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_path, local_files_only=True)).resolve()
    except Exception:
        raise BenchError(f"backbone {name_or_path!r}: not a folder and not in the local Hugging Face cache "
                         "(nothing is downloaded at run time; download it first or pass its folder)") from None


def weights_hash(folder: Path) -> str:
    """sha256 over every file of the model folder (memoised by size and mtime in the cache): the base's identity."""
    from bench.index.encode import folder_sha256

    return folder_sha256(folder)


def load_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise BenchError(f"backbone {folder}: cannot load its tokenizer offline ({exc})") from None


@dataclass
class Prompter:
    """Turns query texts into token ids: chat template (system = instruction, user = query, generation prompt)."""

    tokenizer: Any
    instruction: str = DEFAULT_INSTRUCTION
    max_length: int = DEFAULT_MAX_LENGTH

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        for cand in (tok.pad_token_id, tok.eos_token_id, 0):
            if cand is not None:
                return int(cand)
        return 0

    def prompt_ids(self, query: str) -> list[int]:
        tok = self.tokenizer
        q_ids = tok(query, add_special_tokens=False)["input_ids"][: self.max_length]
        query = tok.decode(q_ids)
        if getattr(tok, "chat_template", None):
            messages = [{"role": "system", "content": self.instruction}, {"role": "user", "content": query}]
            out = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            ids = out["input_ids"] if hasattr(out, "keys") else out
            return [int(i) for i in ids]
        return [int(i) for i in tok(f"{self.instruction}\n{query}")["input_ids"]]

    def __call__(self, texts: list[str]) -> Any:
        """`bench.train.data.TokenQueries` of the texts."""
        from bench.train.data import TokenQueries

        return TokenQueries([np.asarray(self.prompt_ids(t), dtype=np.int64) for t in texts], self.pad_id)
