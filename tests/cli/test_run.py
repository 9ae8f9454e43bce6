"""The command line: a results table, one clear error line for bad input, and SIGINT leaves no partial file."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.storage.atomic import atomic_open

SMALL = ["-t", "d=16", "-t", "n_train=30", "-t", "n_test=20", "-t", "n_negatives=500"]


def test_run_prints_a_table_and_writes_results(tmp_path, capsys) -> None:
    code = main(["run", "--task", "synthetic-linear-single", "--retriever", "oracle,input", "--k", "10,100",
                 "--results-dir", str(tmp_path), *SMALL])
    assert code == 0
    out = capsys.readouterr().out
    oracle = next(line for line in out.splitlines() if line.startswith("│ oracle"))
    assert oracle.split("│")[2].strip() == "MRECALL" and oracle.split("│")[3].strip() == "1.0000"  # @10
    assert "@10" in out and "@100" in out and "Recall" in out and "input" in out
    files = sorted(tmp_path.glob("synthetic-linear-single/*/*.json"))
    assert [f.parent.name for f in files] == ["input", "oracle"]
    assert json.loads(files[1].read_text())["summary"]["MRECALL@10"] == 1.0


def test_list(capsys) -> None:
    assert main(["list", "tasks"]) == 0
    assert "synthetic-mlp-ood" in capsys.readouterr().out
    assert main(["list", "retrievers"]) == 0
    assert "oracle" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "synthetic-linar-single", "--retriever", "oracle"],
         "unknown task 'synthetic-linar-single'; did you mean synthetic-linear-single"),
        (["--task", "synthetic-linear-single", "--retriever", "orcle"], "did you mean oracle"),
        (["--task", "synthetic-linear-single", "--retriever", "oracle", "--k", "0"], "k must be > 0"),
        (["--task", "synthetic-linear-single", "--retriever", "oracle", "--k", "10,-5"], "k must be > 0"),
        (["--task", "synthetic-linear-single", "--retriever", "oracle", "-t", "d=0"], "d must be > 0"),
        (["--task", "synthetic-linear-single", "--retriever", "oracle", "-t", "dim=3"], "unknown parameter 'dim'"),
    ],
)
def test_bad_input_is_one_error_line(args: list[str], message: str, tmp_path, capsys) -> None:
    code = main(["run", *args, "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in " ".join(err.split())
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("*.json"))


def test_error_from_the_installed_command_has_no_traceback(tmp_path) -> None:
    res = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--task", "nope", "--retriever", "oracle",
                          "--results-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "error: unknown task 'nope'" in res.stderr and "Traceback" not in res.stderr


def test_interrupted_write_leaves_nothing(tmp_path) -> None:
    target = tmp_path / "r.json"
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(target) as fh:
            fh.write('{"half": ')
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write("new but broken")
            raise RuntimeError
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.slow
def test_sigint_mid_run_leaves_no_results_file(tmp_path) -> None:
    """A run big enough to take seconds, interrupted with SIGINT once it is inside the harness's own work."""
    results, cache = tmp_path / "results", tmp_path / "cache"
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", "--task", "synthetic-linear-single", "--retriever", "oracle,input",
         "--results-dir", str(results), "-t", "d=64", "-t", "n_negatives=1500000"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A job started in the background by a non-interactive shell (as CI may start us) inherits SIGINT ignored,
        # and Python then installs no Ctrl-C handler: give the child the default disposition a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # The cache folder appears when the generated data starts being written; writing it, building and caching the
    # index and searching 1.5M vectors twice still lie ahead.
    deadline = time.monotonic() + 300
    while not (cache / "synthetic").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "finished before the interrupt: " + proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, f"stdout: {out[-1500:]}\nstderr: {err[-1500:]}"
    assert "interrupted" in err and "Traceback" not in err
    leftovers = [p for p in Path(tmp_path).rglob("*") if p.is_file() and p.suffix in (".json", ".trec", ".tmp")]
    assert leftovers == []


def _piped_80(args: list[str]) -> subprocess.CompletedProcess[str]:
    """A command as a newcomer pipes it (`| less`, a CI log) on an 80-column terminal."""
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_at_80_columns_piped_no_path_or_number_is_broken(tmp_path: Path) -> None:
    deep = tmp_path / "a-results-folder-with-a-long-name" / "and-another-level-below-it"
    res = _piped_80(["run", "--task", "synthetic-linear-single", "--retriever", "oracle,input+mmr",
                     "--results-dir", str(deep), *SMALL])
    assert res.returncode == 0, res.stderr
    paths = sorted(deep.rglob("*.json"))
    assert len(paths) == 2 and len(str(paths[0])) > 80
    lines = res.stdout.splitlines()
    for path in paths:  # each path whole on the line that names its system
        assert any(line.endswith(f": {path}") for line in lines), res.stdout
    rows = [line for line in lines if line.startswith("│")]
    assert all(re.fullmatch(r"[│ ]*[\w+()=.]*[│ ]+(MRECALL|Recall)[│ ]+(\d\.\d{4}[│ ]+){2}[\d.]*[│ ]*", row)
               for row in rows), rows  # a row per system and measure: whole numbers
    assert any(line.startswith("search: ") for line in res.stderr.splitlines())  # progress: a line per phase


def test_list_retrievers_is_one_line_each_at_80_columns() -> None:
    from bench.registry import RETRIEVERS

    res = _piped_80(["list", "retrievers"])
    assert res.returncode == 0
    items = RETRIEVERS.all()  # built-ins, plus any a test of this session registered (not in the subprocess)
    lines = [line for line in res.stdout.splitlines() if line.startswith("  ") and line.split()[0] in items]
    names = [line.split()[0] for line in lines]
    assert names == sorted(set(names)) and {"amer", "bm25", "minilm", "oracle", "st:", "mteb:"} <= set(names)
    assert len(lines) == len(res.stdout.splitlines()) - 4  # one line per retriever: a title, three lines of help
    for line in lines:
        meta = items[line.split()[0]]
        shown = line.split(None, 1)[1]
        full = (f"[{meta.kind}] " if meta.kind != "retriever" else "") + meta.description
        assert len(line) <= 80, line
        assert shown == full or (shown.endswith(" …") and full.startswith(shown[:-2])
                                 and full[len(shown) - 2] in " ,;:(-"), (shown, full)  # cut between words
    res = _piped_80(["list", "retrievers", "st:"])  # a prefix retriever by itself, with its parameters
    assert res.returncode == 0 and "st:<hub id or folder>" in res.stdout and "model_path" in res.stdout
def test_encode_writes_the_corpus_shards_only(tmp_path, capsys, shared_data) -> None:
    """`bench encode`: the embedding shards a later `bench run` reuses, and nothing else (no results)."""
    from bench.index.encode import ShardStore

    args = ["--task", "limit-small", "--retriever", "minilm,bm25", "--device", "cpu", "-r", "minilm.shard_size=20"]
    assert main(["encode", *args]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "minilm: 46 × 384 embeddings" in out and "bm25: no corpus embeddings" in out
    folder = Path(out.split(" in ")[1].split()[0])
    meta = ShardStore(folder.name).read_meta()
    assert meta is not None and meta["complete"] and len(list(folder.glob("shard-*.npy"))) == 3
    stamps = {p: p.stat().st_mtime_ns for p in folder.glob("shard-*.npy")}
    assert main(["run", "--task", "limit-small", "--retriever", "minilm", "-r", "shard_size=20", "--device", "cpu",
                 "--results-dir", str(tmp_path)]) == 0
    assert {p: p.stat().st_mtime_ns for p in folder.glob("shard-*.npy")} == stamps  # reused, not encoded again
    assert "limit-small on corpus limit-small/corpus.jsonl (46 passages)" in " ".join(capsys.readouterr().out.split())


def test_list_shows_what_each_training_recipe_sets(capsys) -> None:
    assert main(["list", "retrievers", "amer"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"recipe\s+│?\s*'harness'", out), out
    for key, shown in (("srm", "harness 1.0, reference 10.0"), ("one_label", "harness False, reference True"),
                       ("feedback", "harness 'normalised', reference 'raw'"), ("clip", "harness 1.0, reference 5.0"),
                       ("negatives", "harness 'fresh', reference 'fixed'")):
        assert re.search(rf"{key}\s+│?\s*None = the recipe's: {re.escape(shown)}", out), (key, out)
