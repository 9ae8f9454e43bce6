"""Integrity, as a hostile new user would try it: no secret stored, no valid cache entry quarantined, no impossible
number accepted, every resource limit one line — each case a `bench` command (or two) and what it must do.

The cases import, at module level, only what the code before their fixes had, so that this file runs against that
code too: each test failed there. A full disk is a real one, a small tmpfs in a private mount namespace
(tests/support/small_disk.py); BENCH_FAULT_FILL fills it at the moment a given file is written, as another program
might, after every check made before the work has passed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.storage.cache import manifest_path
from tests.support import REPO, SHARED_DATA
from tests.support.beir import make_beir
from tests.support.openai_server import OpenAIServer
from tests.support.small_disk import Step, on_small_disks

SYNTH = ["--task", "synthetic-linear-single", "-t", "d=16", "-t", "n_train=30", "-t", "n_test=20", "-t",
         "n_negatives=500"]
robust = pytest.mark.robustness


def bench(*args: str, env: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`python -m bench ARGS` in a fresh process; `drop` removes variables from its environment."""
    full = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in drop}
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True, env=full,
                          timeout=600)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def one_error(stderr: str) -> str:
    """The single `error:` line of a failed command (joined when rich wrapped it), after checking there is one."""
    assert "Traceback" not in stderr, stderr
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    return " ".join(stderr[stderr.index("error:"):].split())


def results_of(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("*.json"))]


def temp_files(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*.tmp")]


# ------------------------------------------------------------------------------------------------ secrets


@robust(case="credentials inside `--llm-base-url` (`http://user:password@host/v1`, `?api_key=…`)",
        outcome="the requests use them; the results record the endpoint without them, and no results file, cache "
        "file, output or error line holds them", issue=8)
def test_credentials_in_the_llm_url_are_stored_and_printed_nowhere(tmp_path: Path, cache: Path,
                                                                  capfd: pytest.CaptureFixture) -> None:
    folder = make_beir(tmp_path / "beir")
    password, token = "pw-S3cr3t-1", "tok-S3cr3t-2"
    with OpenAIServer() as server:
        url = server.base_url.replace("http://", f"http://alice:{password}@")
        assert main(["run", "--task", "beir", "-t", f"data_dir={folder}", "--retriever", "bm25", "--expand", "llm",
                     "--llm-base-url", url, "--llm-model", "m", "--k", "2", "--results-dir", str(tmp_path / "r")]) == 0
        assert server.requests == 2 and all(h.startswith("Basic ") for h in server.auth_headers)  # they were used
    out = capfd.readouterr()
    (rec,) = results_of(tmp_path / "r")
    stage = next(s for s in rec["stages"] if s["kind"] == "expander")
    assert stage["params"]["base_url"] == server.base_url  # the endpoint, without its credentials
    assert rec["extra"]["expander"]["base_url"] == server.base_url
    written = [p for root in (tmp_path / "r", cache) for p in root.rglob("*") if p.is_file()]
    assert [p for p in written if password.encode() in p.read_bytes() or b"alice" in p.read_bytes()] == []
    assert password not in out.out + out.err

    # an error line names the endpoint without its userinfo or secret query parameters
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bad = f"http://alice:{password}@127.0.0.1:{port}/v1?api_key={token}&api-version=2"
    code = main(["run", "--task", "beir", "-t", f"data_dir={folder}", "--retriever", "bm25", "--expand", "llm",
                 "--llm-base-url", bad, "--llm-model", "other", "-r", "max_retries=0", "--k", "2",
                 "--results-dir", str(tmp_path / "r2")])
    line = one_error(capfd.readouterr().err)
    assert code == 2 and f"cannot connect to LLM endpoint http://127.0.0.1:{port}/v1?api-version=2" in line
    assert password not in line and token not in line and "alice" not in line


# ------------------------------------------------------------------------------------------------ the cache's verdicts


@robust(case="`bench cache verify` on a fresh text-retriever cache; then `verify --fix`, the corpus file touched, the "
        "run repeated, `verify` again; a stat-keyed record rewritten under an older manifest",
        outcome="every entry has a manifest (corpus scan, model fingerprint, the encode's meta.json included); the "
        "rewritten scan record is re-validated by its content: exit 0, nothing damaged, nothing quarantined", issue=9)
@pytest.mark.slow
def test_verify_trusts_entries_that_legitimately_change(tmp_path: Path, cache: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    folder = make_beir(tmp_path / "beir")
    run = ["run", "--task", "beir", "-t", f"data_dir={folder}", "--retriever", "minilm", "--k", "2"]
    assert main([*run, "--results-dir", str(tmp_path / "r1")]) == 0
    capsys.readouterr()
    assert main(["cache", "verify"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "0 damaged, 0 without a manifest" in out, out

    assert main(["cache", "verify", "--fix"]) == 0
    stat = (folder / "corpus.jsonl").stat()
    os.utime(folder / "corpus.jsonl", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: rescanned
    assert main([*run, "--results-dir", str(tmp_path / "r2")]) == 0
    capsys.readouterr()
    assert main(["cache", "verify"]) == 0
    assert "0 damaged" in " ".join(capsys.readouterr().out.split())

    # a scan record rewritten in place after its manifest was taken (as a writer without manifests did)
    (record,) = (p for p in (cache / "corpus-scan").glob("*.json") if not p.name.endswith(".manifest.json"))
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "mtime_ns": data["mtime_ns"] + 1}))
    assert main(["cache", "verify", "--fix"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "0 damaged" in out and record.exists()
    assert not (cache / "quarantine").exists() or not list((cache / "quarantine").rglob("*"))


_HOLDER = """
import json, sys
from pathlib import Path
import numpy as np
from bench.storage.cache import adopt_entry, entry_lock
entry = Path(sys.argv[1])
with entry_lock(entry):  # a writer between renaming the new entry into place and writing its manifest
    if entry.suffix == ".json":
        data = json.loads(entry.read_text())
        entry.write_text(json.dumps({**data, "complete": not data.get("complete")}))
    else:
        np.save(entry, np.load(entry) + 1, allow_pickle=False)
    print("holding", flush=True)
    sys.stdin.readline()
    adopt_entry(entry)  # done: the manifest of the new content
"""


@robust(case="`bench cache verify --fix` while another process holds an entry's lock in the middle of rewriting it "
        "(new content, old manifest: an encode's meta.json, an embedding shard)",
        outcome="the entry is not moved: meta.json is judged by its content (intact), a shard is `in use … left "
        "alone`; exit 0; once the writer is done everything verifies", issue=10)
@pytest.mark.slow
@pytest.mark.parametrize("which", ["meta.json", "shard-00000.npy"])
def test_verify_fix_leaves_an_entry_a_live_process_holds(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture,
                                                        which: str) -> None:
    folder = make_beir(tmp_path / "beir")
    assert main(["run", "--task", "beir", "-t", f"data_dir={folder}", "--retriever", "minilm", "--k", "2",
                 "--results-dir", str(tmp_path / "r")]) == 0
    (entry,) = (cache / "embeddings").glob(f"*/{which}")
    if not manifest_path(entry).exists():  # as an earlier `verify --fix` would have given it one
        assert main(["cache", "verify", "--fix"]) == 0
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(entry)], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        capsys.readouterr()
        assert main(["cache", "verify", "--fix"]) == 0
        out = " ".join(capsys.readouterr().out.split())
        if which.endswith(".npy"):
            assert f"in use {entry}" in out and "left alone" in out, out
        assert "0 damaged" in out and f"damaged {entry}" not in out, out
        assert entry.exists() and not list(cache.glob(f"quarantine/**/{which}*"))
    finally:
        assert holder.stdin is not None
        holder.stdin.write("done\n")
        holder.stdin.flush()
        holder.wait(timeout=60)
    assert main(["cache", "verify"]) == 0


# ------------------------------------------------------------------------------------------------ impossible numbers


def _oracle_run(results: Path, capsys: pytest.CaptureFixture | None = None) -> Path:
    assert main(["run", *SYNTH, "--retriever", "oracle", "--results-dir", str(results)]) == 0
    if capsys is not None:
        capsys.readouterr()
    return sorted(results.rglob("*.json"))[-1]


@robust(case="a results file whose per-query MRECALL@10 values are 5.0 (or Recall −0.5, or MRECALL 0.5), given to "
        "`bench compare`", outcome="one `error:` line naming the file, the field and the measure's range; exit 2; no "
        "table", issue=11)
@pytest.mark.parametrize(("metric", "value", "says"), [("MRECALL@10", 5.0, "outside the measure's range [0, 1]"),
                                                       ("Recall@10", -0.5, "outside the measure's range [0, 1]"),
                                                       ("MRECALL@10", 0.5, "whole numbers")])
def test_impossible_metric_values_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture, metric: str,
                                              value: float, says: str) -> None:
    path = _oracle_run(tmp_path / "r", capsys)
    rec = json.loads(path.read_text())
    rec["per_query"][metric] = [value] * len(rec["query_ids"])
    rec["summary"][metric] = value
    bad = tmp_path / "doctored.json"
    bad.write_text(json.dumps(rec))
    code = main(["compare", "--run", str(bad), "--format", "csv"])
    captured = capsys.readouterr()
    line = one_error(captured.err)
    assert code == 2 and str(bad) in line and f"'per_query.{metric}'" in line and says in line, line
    assert "500" not in captured.out and captured.out.strip() == ""


@robust(case="a BEIR corpus whose every document is empty (no title, no text), run with minilm",
        outcome="a `warning:` that every document is empty, and a warning (also stored in the result's "
        "`extra.warnings`) that every query's scores tie, so the figures measure corpus order", issue=12)
@pytest.mark.slow
def test_an_all_empty_corpus_and_tied_scores_warn(tmp_path: Path, cache: Path, capfd: pytest.CaptureFixture) -> None:
    folder = make_beir(tmp_path / "beir")
    docs = [{"_id": f"d{i}", "title": "", "text": " "} for i in range(6)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    qrels = [("q0", "d0"), ("q0", "d1"), ("q1", "d2"), ("q2", "d1")]
    (folder / "qrels.jsonl").write_text("".join(json.dumps({"query-id": q, "corpus-id": d, "score": 1}) + "\n"
                                                for q, d in qrels))
    assert main(["run", "--task", "beir", "-t", f"data_dir={folder}", "--retriever", "minilm", "--k", "2,5",
                 "--results-dir", str(tmp_path / "r")]) == 0
    err = " ".join(capfd.readouterr().err.split())
    assert f"warning: {folder / 'corpus.jsonl'}: every one of its 6 documents is empty" in err, err
    assert "warning: system minilm: on every query of beir (test) all retrieved documents have the same score" in err
    (rec,) = results_of(tmp_path / "r")
    assert any("same score" in w for w in rec["extra"]["warnings"])


@robust(case="`bench compare --task` with one broken results file of a system beside a valid one (the broken one "
        "older, or newer)", outcome="each system's newest valid run is compared; one `warning:` line names the "
        "broken file and what is wrong with it; exit 0", issue=13)
@pytest.mark.parametrize("broken", ["older", "newer"])
def test_compare_uses_the_newest_valid_run(tmp_path: Path, capsys: pytest.CaptureFixture, broken: str) -> None:
    results = tmp_path / "r"
    first = _oracle_run(results, capsys)
    second = _oracle_run(results, capsys)
    valid, bad = (second, first) if broken == "older" else (first, second)
    rec = json.loads(bad.read_text())
    rec["per_query"]["MRECALL@10"][0] = 5.0
    bad.write_text(json.dumps(rec))
    code = main(["compare", "--task", "synthetic-linear-single", "--results-dir", str(results), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err
    warning = " ".join(captured.err.split())
    assert f"warning: skipped {bad}: field 'per_query.MRECALL@10' holds 5.0" in warning, warning
    doc = json.loads(captured.out)
    assert doc["run_ids"] == {"oracle": json.loads(valid.read_text())["run_id"]}


# ------------------------------------------------------------------------------------------------ resource limits


def _no_partial(files: dict[str, int]) -> None:
    partial = [f for f in files if f.endswith(".tmp")]
    assert partial == [], partial


@robust(case="a full disk: the results folder with 1 MB free; the results disk filling while the .trec is written; "
        "the cache disk filling while training saves its state (torch.save) and while an encode writes a shard",
        outcome="the results disk is refused before any work, naming the folder, the space and the 64 MiB margin; "
        "a disk that fills anyway is one `error:` line naming the folder, the file and the space it needs (never "
        "`basic_ios::clear`, never a traceback); nothing partial is left; with space again the rerun succeeds and "
        "its results equal an uninterrupted run's", issue=14)
@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_rerun_heals(tmp_path: Path) -> None:
    amer = ["run", *SYNTH, "--retriever", "amer", "-r", "steps=6", "-r", "checkpoint_every=2", "-r", "eval_every=3"]
    small, disk = tmp_path / "small", tmp_path / "disk"
    cache, results = disk / "cache", disk / "results"

    # the results folder on a full disk: refused before the task is generated
    (refused,) = on_small_disks({small: 1 << 20}, [Step([*amer, "--results-dir", str(small)],
                                                        env={"BENCH_CACHE_DIR": str(tmp_path / "c0")})], tmp_path)
    line = one_error(refused.stderr)
    assert refused.returncode == 2 and str(small) in line and "64 MiB" in line and "free" in line, line
    assert not (tmp_path / "c0" / "synthetic").exists() and refused.files == {}

    # the cache filling while the training state is written, then the results disk while the .trec is written
    env = {"BENCH_CACHE_DIR": str(cache)}
    train_full, trec_full, healed, verified = on_small_disks({disk: 100 << 20}, [
        Step([*amer, "--results-dir", str(results)], env={**env, "BENCH_FAULT_FILL": "*.train-state.pt"}),
        Step([*amer, "--results-dir", str(results)], env={**env, "BENCH_FAULT_FILL": "*.trec"},
             remove=[str(disk / "**" / ".bench-fault-fill")]),
        Step([*amer, "--results-dir", str(results)], env=env, remove=[str(disk / "**" / ".bench-fault-fill")],
             read=[str(results / "**" / "*Z-*.json")]),
        Step(["cache", "verify"], env=env),
    ], tmp_path)
    for outcome, name in ((train_full, "train-state.pt"), (trec_full, ".trec")):
        line = one_error(outcome.stderr)
        assert outcome.returncode == 2, outcome.stderr
        assert re.search(rf"no space left on the disk holding {re.escape(str(disk))}\S*: writing \S*{re.escape(name)} "
                         r"needs (about|more than) [\d.]+ [KMG]?B", line), line
        assert "basic_ios" not in outcome.stderr and "iostream" not in outcome.stderr
        _no_partial(outcome.files)
        assert not [f for f in outcome.files if f.endswith(".json") and "/results/" in f]  # no results yet
    assert healed.returncode == 0, healed.stderr
    _no_partial(healed.files)
    assert verified.returncode == 0 and "0 damaged" in " ".join(verified.stdout.split())

    # the same run on a roomy disk gives the same figures
    assert main([*amer, "--results-dir", str(tmp_path / "plain")]) == 0
    plain = results_of(tmp_path / "plain")[0]["summary"]
    (rerun,) = [json.loads(text) for text in healed.texts.values()]
    assert rerun["summary"] == plain


@robust(case="the cache disk filling while a text encoder writes its embedding shards (minilm)",
        outcome="one `error:` line naming the folder, the shard and the space it needs; no partial shard; with space "
        "again the rerun encodes and succeeds", issue=14)
@pytest.mark.slow
def test_a_disk_full_while_encoding_is_one_line(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "beir")
    disk = tmp_path / "disk"
    run = ["run", "--task", "beir", "-t", f"data_dir={folder}", "--retriever", "minilm", "--k", "2",
           "--results-dir", str(disk / "results")]
    env = {"BENCH_CACHE_DIR": str(disk / "cache")}
    full, healed = on_small_disks({disk: 100 << 20}, [
        Step(run, env={**env, "BENCH_FAULT_FILL": "shard-*.npy"}),
        Step(run, env=env, remove=[str(disk / "**" / ".bench-fault-fill")]),
    ], tmp_path)
    line = one_error(full.stderr)
    assert full.returncode == 2 and re.search(r"no space left on the disk holding \S*/embeddings/\S*: writing "
                                              r"shard-00000\.npy needs about [\d.]+ [KM]?B", line), line
    _no_partial(full.files)
    assert not [f for f in full.files if f.endswith("shard-00000.npy")]
    assert healed.returncode == 0, healed.stderr
    _no_partial(healed.files)
    assert [f for f in healed.files if f.endswith("shard-00000.npy")]


@robust(case="a system name of 5,000 portable characters (`amer[steps=3,instruction=xxxx…]`)",
        outcome="trains and writes its results under a folder named by an 80-character slug plus 8 hex digits of "
        "the name's sha256; the JSON holds the full name; `bench compare` and `bench export` find it", issue=15)
def test_a_very_long_system_name_folds_into_a_bounded_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    name = "amer[steps=3,instruction=" + "x" * 4975 + "]"
    assert len(name) >= 5000
    assert main(["run", *SYNTH, "--retriever", name, "--results-dir", str(tmp_path / "r")]) == 0
    (path,) = (tmp_path / "r").rglob("*.json")
    assert len(path.parent.name) <= 100 and re.fullmatch(r"amer\[steps=3,instruction=x+-[0-9a-f]{8}", path.parent.name)
    assert json.loads(path.read_text())["system"] == name
    capsys.readouterr()
    assert main(["compare", "--task", "synthetic-linear-single", "--results-dir", str(tmp_path / "r"),
                 "--format", "csv"]) == 0
    assert name in capsys.readouterr().out
    assert main(["export", "--task", "synthetic-linear-single", "--results-dir", str(tmp_path / "r"),
                 "--out-dir", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / f"{path.parent.name}.trec").is_file()


@robust(case="`--index ivfpq` on limit-small (46 documents); `--index 'IVF99999,Flat'` on a 750-vector synthetic "
        "task", outcome="refused before any encoding or index build: one `error:` line saying what the index trains "
        "and the smallest corpus it needs (256; 99,999), suggesting flat or hnsw; exit 2", issue=16)
def test_an_untrainable_approximate_index_is_refused_before_the_work(tmp_path: Path, cache: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    code = main(["run", "--task", "limit-small", "-t", f"data_dir={SHARED_DATA / 'limit-small'}", "--retriever",
                 "minilm", "--index", "ivfpq", "--results-dir", str(tmp_path / "r")])
    line = one_error(capsys.readouterr().err)
    assert code == 2 and "--index ivfpq cannot be trained here" in line and "at least 256 training vectors" in line
    assert "46 documents" in line and "--index flat" in line
    assert not (cache / "embeddings").exists() and not (cache / "indexes").exists()

    code = main(["run", *SYNTH, "--retriever", "oracle", "--index", "IVF99999,Flat", "--results-dir",
                 str(tmp_path / "r")])
    line = one_error(capsys.readouterr().err)
    assert code == 2 and "at least 99,999 training vectors" in line and "750 documents" in line, line
    assert not (cache / "indexes").exists() and not list((tmp_path / "r").rglob("*.json"))


@robust(case="`--seed -1`, `-t seed=-1`, `-r lr=nan` (also NaN from a config mapping), `-r lr=1e6` (amer)",
        outcome="the seeds and the NaN are refused where they are parsed (exit 2, no traceback); lr=1e6 trains until "
        "the loss or the outputs stop being finite, then one `error:` line: `training diverged at step N …; lower "
        "the learning rate (-r lr=, now 1e+06)`", issue=17)
def test_bad_seeds_and_learning_rates_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    r = str(tmp_path / "r")
    code = main(["run", *SYNTH, "--retriever", "amer", "--seed", "-1", "--results-dir", r])
    err = " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert code == 2 and "Invalid value for '--seed'" in err and "greater than or equal to 0" in err, err
    assert "Traceback" not in err
    code = main(["run", *SYNTH, "-t", "seed=-1", "--retriever", "oracle", "--results-dir", r])
    line = one_error(capsys.readouterr().err)
    assert code == 2 and "parameter seed=-1 must be ≥ 0" in line, line
    code = main(["run", *SYNTH, "--retriever", "amer", "-r", "lr=nan", "--results-dir", r])
    assert code == 2 and "parameter lr='nan' must be a finite number" in one_error(capsys.readouterr().err)
    from bench.systems.build import build_system

    with pytest.raises(BenchError, match="lr=nan must be a finite number"):
        build_system("amer", {"lr": float("nan")})
    code = main(["run", *SYNTH, "--retriever", "amer", "-r", "lr=1e6", "-r", "steps=20", "--results-dir", r])
    line = one_error(capsys.readouterr().err)
    assert code == 2 and re.search(r"training diverged at step \d+ of 20: .*; lower the learning rate \(-r lr=, "
                                   r"now 1e\+06\)", line), line
    assert not list(Path(r).rglob("*.json"))


@robust(case="`bench run` and a failing `bench run --k 5000` under LC_ALL=C PYTHONUTF8=0 (an ASCII terminal)",
        outcome="the table and messages print with `?` for what ASCII lacks (`—`, `≤`) and ASCII borders; exit 0 "
        "(resp. one `error:` line, exit 2); never a UnicodeEncodeError", issue=18)
def test_output_encodes_under_an_ascii_locale(tmp_path: Path) -> None:
    env = {"LC_ALL": "C", "PYTHONUTF8": "0", "BENCH_CACHE_DIR": str(tmp_path / "c")}
    res = bench("run", *SYNTH, "--retriever", "oracle", "--results-dir", str(tmp_path / "r"), env=env,
                drop=("PYTHONIOENCODING", "LANG", "LC_CTYPE"))
    assert res.returncode == 0 and "UnicodeEncodeError" not in res.stderr, res.stderr
    assert "synthetic-linear-single on its 750 corpus vectors ? test split" in " ".join(res.stdout.split())
    assert "oracle" in res.stdout
    res = bench("run", *SYNTH, "--retriever", "oracle", "--k", "5000", "--results-dir", str(tmp_path / "r"), env=env,
                drop=("PYTHONIOENCODING", "LANG", "LC_CTYPE"))
    line = one_error(res.stderr)
    assert res.returncode == 2 and "use k ? 750" in line, line


@robust(case="the cache on a disk with 2 MB free (the synthetic task needs about 431.6 KB)",
        outcome="refused before any work: `needs about 431.6 KB on …, plus the margin of 64 MiB a run keeps free "
        "(64.4 MB in all); only 2.0 MB free`", issue=19)
@pytest.mark.slow
def test_the_disk_check_states_its_margin(tmp_path: Path) -> None:
    small = tmp_path / "small"
    (refused,) = on_small_disks({small: 2 << 20}, [Step(["run", "--task", "synthetic-linear-single", "--retriever",
                                                         "oracle", "-t", "d=16", "-t", "n_train=300", "-t",
                                                         "n_test=100", "-t", "n_negatives=5000", "--results-dir",
                                                         str(tmp_path / "r")], env={"BENCH_CACHE_DIR": str(small)})],
                                tmp_path)
    line = one_error(refused.stderr)
    assert refused.returncode == 2, refused.stderr
    assert re.search(rf"the cache for task synthetic-linear-single: needs about [\d.]+ KB on {re.escape(str(small))}, "
                     r"plus the margin of 64 MiB a run keeps free \(64\.\d MB in all\); only 2\.0 MB free", line), line


@robust(case="`bench run --retriever 'amer[steps=3]'`, then `bench export` and `bench compare` of it",
        outcome="every line that names the system or a path shows its brackets: `wrote …/amer[steps=3].trec`, "
        "`amer[steps=3]: …/amer[steps=3]/….json`", issue=20)
def test_brackets_in_a_system_name_are_printed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    r, x = tmp_path / "r", tmp_path / "x"
    assert main(["run", *SYNTH, "--retriever", "amer[steps=3]", "--results-dir", str(r)]) == 0
    (path,) = r.rglob("*.json")
    out = " ".join(capsys.readouterr().out.split())
    assert f"amer[steps=3]: {path}" in out, out
    assert main(["export", "--task", "synthetic-linear-single", "--results-dir", str(r), "--out-dir", str(x)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {x / 'amer[steps=3].trec'}" in " ".join(out.split()), out
    path.write_text("{}")
    assert main(["compare", "--task", "synthetic-linear-single", "--results-dir", str(r)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{path}" in err  # the path in the warning and the error keeps its brackets


@robust(case="a BEIR qrels/test.tsv whose header is `corpus-id,query-id,score` (commas), or names the columns in "
        "another order", outcome="one `error:` line: the file is not tab-separated (resp. the header's order), "
        "naming file and line; exit 2", issue=21)
@pytest.mark.parametrize(("header", "says"), [("corpus-id,query-id,score", "not tab-separated"),
                                              ("corpus-id\tquery-id\tscore", "in that order")])
def test_a_qrels_tsv_header_with_commas_says_so(tmp_path: Path, capsys: pytest.CaptureFixture, header: str,
                                               says: str) -> None:
    folder = make_beir(tmp_path / "beir", tsv=True)
    qrels = folder / "qrels" / "test.tsv"
    lines = qrels.read_text().splitlines()
    qrels.write_text("\n".join([header, *lines[1:]]) + "\n")
    code = main(["run", "--task", "beir", "-t", f"data_dir={folder}", "--retriever", "bm25", "--k", "2",
                 "--results-dir", str(tmp_path / "r")])
    line = one_error(capsys.readouterr().err)
    assert code == 2 and f"{qrels}, line 1" in line and says in line, line
    assert "field 'score' must be a number" not in line


@robust(case="HOME a regular file (unusable) and no $BENCH_CACHE_DIR or $XDG_CACHE_HOME",
        outcome="one `error:` line naming the cache folder under $HOME and why, and how to choose another; "
        "exit 2, before any work", issue=22)
def test_an_unusable_home_is_named(tmp_path: Path) -> None:
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    res = bench("run", *SYNTH, "--retriever", "oracle", "--results-dir", str(tmp_path / "r"),
                env={"HOME": str(home)}, drop=("BENCH_CACHE_DIR", "XDG_CACHE_HOME"))
    line = one_error(res.stderr)
    assert res.returncode == 2 and f"$HOME={home}" in line and f"{home} is a file, not a folder" in line, line
    assert "($BENCH_CACHE_DIR)" not in line
    shutil.rmtree(tmp_path / "r", ignore_errors=True)
