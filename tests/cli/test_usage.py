"""The first things a new user meets: usage errors, an unwritable results folder, a cutoff larger than the corpus,
a YAML file in the wrong encoding, a damaged cache, files only their owner can read — each one clear message and exit
code 2 (or a healed cache), never a traceback (issue 13).

The tests of the issue's seven cases import, at module level, only what the code before the fix had, so that this
file runs against that code too (each of them failed there; see the README's Reliability section)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import BenchError
from tests.support import REPO

SMALL = ["-t", "d=16", "-t", "n_train=30", "-t", "n_test=20", "-t", "n_negatives=500"]
robust = pytest.mark.robustness


# root writes anywhere through CAP_DAC_OVERRIDE: without it (and without DAC_READ_SEARCH) root is held to the mode
# bits like any user, yet still reads the checkout it owns wherever that lies (another user could not, under a 0700
# temporary folder)
NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]


def bench(*args: str, env: dict[str, str] | None = None, drop_dac: bool = False) -> subprocess.CompletedProcess:
    """`python -m bench` in a fresh process (what a user's shell runs), optionally as root without DAC override."""
    prefix = NO_DAC if drop_dac else []
    return subprocess.run([*prefix, sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


USAGE = [
    (["--task"], "bench run --task (no value)", "Option '--task' requires an argument."),
    (["run"], "bench run (no --task)", "Missing option '--task'."),
    (["run", "--task", "synthetic-linear-single", "--bogus"], "bench run --bogus (unknown option)",
     "No such option: --bogus"),
    (["foo"], "bench foo (unknown command)", "No such command 'foo'."),
    (["lst"], "bench lst (mistyped command)", "No such command 'lst'. Did you mean 'list'?"),
    (["cache", "verfy"], "bench cache verfy (mistyped subcommand)", "Did you mean 'verify'?"),
]


@robust(case="usage errors: `bench run` without --task, `--task` without a value, `--bogus`, `bench foo`, "
        "`bench lst`", outcome="typer's usage message (with close matches for a mistyped command), exit 2, "
        "no traceback", issue=1)
@pytest.mark.parametrize(("args", "what", "message"), USAGE, ids=[u[1] for u in USAGE])
def test_usage_errors_are_typer_messages_and_exit_2(args: list[str], what: str, message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    if args == ["--task"]:
        args = ["run", "--task"]
    code = main(args)  # the entry point in this process: the same parsing and messages as a fresh `bench`
    stderr = capsys.readouterr().err
    err = " ".join(stderr.replace("│", " ").split())
    assert code == 2, stderr
    assert message in err
    assert "Traceback" not in stderr
    if args != ["run", "--task"]:  # click gives this one no usage line (no command context yet)
        assert "Usage: " in err and "--help' for help." in err


@robust(case="`bench` with no arguments", outcome="the help text, exit 2, no traceback", issue=1)
def test_bench_alone_prints_help_and_exits_2() -> None:
    res = bench()  # a real process: what a user's shell runs, exit status included
    assert res.returncode == 2
    assert "Usage: " in res.stdout + res.stderr and "run" in res.stdout + res.stderr
    assert "Traceback" not in res.stderr


@robust(case="--results-dir under a regular file", outcome="`error:` naming the file, exit 2, before the task "
        "is generated (no cache written)", issue=3)
def test_results_dir_under_a_file_fails_before_the_work(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "plain").write_text("x")
    code = main(["run", "--task", "synthetic-linear-single", "--retriever", "oracle", *SMALL,
                 "--results-dir", str(tmp_path / "plain" / "results")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"error: results folder {tmp_path / 'plain' / 'results'}: {tmp_path / 'plain'} is a file, " \
                          "not a folder"
    assert not (tmp_path / "cache" / "synthetic").exists()  # refused before generating anything


@robust(case="--results-dir read-only (checked as an unprivileged user)",
        outcome="`error: results folder … is not writable`, exit 2, before any training or encoding", issue=3)
def test_read_only_results_dir_fails_before_the_work() -> None:
    base = Path(tempfile.mkdtemp(prefix="h13-ro-"))
    try:
        os.chmod(base, 0o777)
        ro, cache = base / "ro", base / "cache"
        ro.mkdir(mode=0o555)
        cache.mkdir(mode=0o777)
        os.chmod(ro, 0o555)
        os.chmod(cache, 0o777)
        as_root = os.geteuid() == 0  # root writes anywhere: check as root without CAP_DAC_OVERRIDE
        if as_root and shutil.which("setpriv") is None:
            pytest.fail("running as root without setpriv: cannot make a folder read-only to this test")
        res = bench("run", "--task", "synthetic-linear-single", "--retriever", "amer", *SMALL,
                    "--results-dir", str(ro), env={"BENCH_CACHE_DIR": str(cache), "HOME": str(base)}, drop_dac=as_root)
        assert res.returncode == 2, res.stderr
        assert res.stderr.strip().splitlines()[-1] == f"error: results folder {ro} is not writable (Permission denied)"
        assert "Traceback" not in res.stderr
        assert not list(cache.rglob("*.npz")) and not list(cache.rglob("*.safetensors"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_check_writable_creates_missing_folders_and_free_space(tmp_path: Path) -> None:
    from bench.storage.preflight import check_free_space, check_writable

    assert check_writable(tmp_path / "a" / "b").is_dir()
    with pytest.raises(BenchError, match=r"needs about 1024.0 TB on .*, plus the margin of 64 MiB .*; only .* free"):
        check_free_space(tmp_path, 1 << 50, "the cache")
    check_free_space(tmp_path, 1, "the cache")


def test_planned_cache_bytes_of_a_synthetic_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.data.task import build_task

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    task = build_task("synthetic-linear-single", ["d=16", "n_train=30", "n_test=20", "n_negatives=500"])
    # by hand: 750 docs; task file 4·16·(750 + 30 + 20) floats + 8·5·50 target ids; the index 4·16·750
    assert task.planned_cache_bytes() == 4 * 16 * 800 + 8 * 5 * 50 + 4 * 16 * 750
    task.load()
    assert task.planned_cache_bytes() == 0


@robust(case="--k larger than the corpus (--k 5000 on a 750-vector corpus)",
        outcome="refused: `error: k=5000 is larger than the corpus …`, exit 2, no result written", issue=4)
def test_k_larger_than_the_corpus_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["run", "--task", "synthetic-linear-single", "--retriever", "oracle", *SMALL, "--k", "10,5000",
                 "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == ("error: k=5000 is larger than the corpus of synthetic-linear-single (750 documents): every "
                           "document would be retrieved and every recall would be 1.0; use k ≤ 750")
    assert not list(tmp_path.rglob("*.json"))


@robust(case="limit-small's default cutoffs", outcome="@2, @10, @20 as the LIMIT paper (no @100 on 46 documents)",
        issue=4)
def test_limit_small_defaults_are_the_papers(shared_data: Path) -> None:
    from bench.data.task import build_task

    task = build_task("limit-small")
    assert task.default_ks == (2, 10, 20)
    assert max(task.default_ks) <= len(task.load().corpus) == 46


@robust(case="non-UTF-8 YAML given to `bench check`", outcome="`error: FILE:LINE: not UTF-8 text (byte N …)`, exit 2",
        issue=5)
def test_non_utf8_yaml_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("entries:\n  - task: synthetic-linear-single\n    retriever: caf\xe9\n".encode("latin-1"))
    code = main(["check", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    # 9 + 34 + 18 bytes precede the é (counted by hand); Latin-1 é followed by a newline is not valid UTF-8
    assert err.strip() == f"error: {path}:3: not UTF-8 text (byte 61: invalid continuation byte)"


GOOD = {
    "corpus.jsonl": b'{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "b"}\n',
    "queries.jsonl": b'{"_id": "q1", "text": "x"}\n{"_id": "q2", "text": "y"}\n',
    "qrels.jsonl": b'{"query-id": "q1", "corpus-id": "d1", "score": 1}\n',
}
BAD_FILES = [
    ("corpus.jsonl", b'{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "caf\xe9"}\n',
     "corpus.jsonl, line 2: not valid UTF-8 (invalid continuation byte)"),
    ("corpus.jsonl", b'{"_id": "d1", "text": "a"}\n{"_id": "d2", "te',
     "corpus.jsonl, line 2: not valid JSON (Unterminated string starting at, column 15)"),
    ("queries.jsonl", b'{"_id": "q1", "text": "x"}\n{"_id": "q2"}\n', "queries.jsonl, line 2: missing field 'text'"),
    ("queries.jsonl", b'{"_id": "q1", "text": "x"}\n{"_id": ["q2"], "text": "y"}\n',
     "queries.jsonl, line 2: field '_id'"),
    ("qrels.jsonl", b'{"query-id": "q1", "corpus-id": "d1", "score": NaN}\n',
     "qrels.jsonl, line 1: field 'score' must be a finite number, got nan"),
]


@robust(case="a BEIR folder with one bad file: corpus not UTF-8, corpus truncated mid-record, a query without "
        "text, an id of the wrong type, a qrels score NaN", outcome="one `error:` line naming file, line and "
        "field; exit 2")
@pytest.mark.parametrize(("name", "payload", "message"), BAD_FILES,
                         ids=["corpus-latin1", "corpus-truncated", "query-missing-field", "query-id-type", "qrels-nan"])
def test_bad_task_files_are_one_error_line(name: str, payload: bytes, message: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "beir"
    folder.mkdir()
    for file, content in {**GOOD, name: payload}.items():
        (folder / file).write_bytes(content)
    code = main(["run", "--task", "beir", "-t", f"data_dir={folder}", "--retriever", "minilm", "--k", "1",
                 "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(f"error: {folder / name.split(',')[0]}") and message in err, err
    assert len(err.splitlines()) == 1


@robust(case="a results file with a field of the wrong type, or not UTF-8, read by `bench compare` (given with --run, "
        "or the only run of the task under --results-dir)",
        outcome="one `error:` line naming the file and the field; exit 2 (in a results folder: a `warning:` naming "
        "them, the file skipped, then `error: no runs of task …`)")
@pytest.mark.parametrize(("payload", "message"), [
    (b'{"run_id": "x", "task": 5}', "field 'task' must be a string, got 5"),
    (b"\xff\xfe", "not UTF-8 text (byte 0: invalid start byte)"),
])
def test_bad_results_file_is_one_error_line(payload: bytes, message: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    run_file = tmp_path / "synthetic-linear-single" / "input" / "r.json"
    run_file.parent.mkdir(parents=True)
    run_file.write_bytes(payload)
    code = main(["compare", "--run", str(run_file)])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: {run_file}: {message}"
    code = main(["compare", "--task", "synthetic-linear-single", "--results-dir", str(tmp_path)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert err.startswith(f"warning: skipped {run_file}: {message}; each system's newest valid run is used")
    assert err.endswith(f"error: no runs of task 'synthetic-linear-single' under {tmp_path}; make some with `bench run "
                        "--task synthetic-linear-single ...`"), err


@robust(case="results and cache files written by `bench run` under umask 022 and 027",
        outcome="mode 0644 / 0640, as `open()` gives (not mkstemp's 0600): a shared results folder is readable",
        issue=7)
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_run_outputs_respect_the_umask(umask: int, mode: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    old = os.umask(umask)
    try:
        assert main(["run", "--task", "synthetic-linear-single", "--retriever", "input", *SMALL,
                     "--results-dir", str(tmp_path / "r")]) == 0
    finally:
        os.umask(old)
    written = [*(tmp_path / "r").rglob("*.json"), *(tmp_path / "r").rglob("*.trec"),
               *(tmp_path / "cache").rglob("*.npz")]
    assert len(written) == 3
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(mode)}


@robust(case="a truncated or empty synthetic task file (.npz) in the cache, met by `bench run`",
        outcome="one `warning:` line; the file is moved to <cache>/quarantine/ and regenerated; this run and every "
        "later one succeed with the same figures", issue=2)
@pytest.mark.parametrize("size", [0, 100])
def test_truncated_task_file_heals(size: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    args = ["run", "--task", "synthetic-linear-single", "--retriever", "input", *SMALL]
    assert main([*args, "--results-dir", str(tmp_path / "r1")]) == 0
    (task_file,) = (tmp_path / "cache" / "synthetic").glob("*.npz")
    with open(task_file, "r+b") as fh:
        fh.truncate(size)
    capsys.readouterr()
    for n in (2, 3):
        assert main([*args, "--results-dir", str(tmp_path / f"r{n}")]) == 0
    err = capsys.readouterr().err
    assert [line.split(":")[0] for line in err.splitlines() if "cache entry" in line] == ["warning"]
    summaries = [json.loads(next((tmp_path / f"r{n}").rglob("*.json")).read_text())["summary"] for n in (1, 2, 3)]
    assert summaries[0] == summaries[1] == summaries[2]


@robust(case="a truncated or empty FAISS index file in the cache (FlatIndex.cached)",
        outcome="one `warning:` line; moved to quarantine and rebuilt from the embeddings; the same search results",
        issue=2)
@pytest.mark.parametrize("size", [0, 50])
def test_truncated_index_file_heals(size: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture) -> None:
    import numpy as np

    from bench.index import FlatIndex

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    emb = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    first = FlatIndex.cached("k", lambda: emb, device="cpu")
    want = first.search(emb[:5], 3)
    (index_file,) = (tmp_path / "cache" / "indexes").glob("*.faiss")
    with open(index_file, "r+b") as fh:
        fh.truncate(size)
    capsys.readouterr()
    again = FlatIndex.cached("k", lambda: emb, device="cpu")
    got = again.search(emb[:5], 3)
    assert all(np.array_equal(a, b) for a, b in zip(want, got, strict=True))
    assert capsys.readouterr().err.startswith("warning: cache entry")
