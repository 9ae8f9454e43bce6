"""Cache entries (bench/storage/cache.py): manifest, verification, quarantine and rebuild, the build lock; file modes
(bench/storage/atomic.py)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.errors import BenchError, DamagedEntry
from bench.storage.atomic import atomic_open, sweep_stale_temps
from bench.storage.cache import (
    FULL_HASH_LIMIT,
    load_or_build,
    load_or_build_arrays,
    manifest_path,
    quarantine_dir,
    verify_entry,
    write_entry,
)
from tests.support import REPO

robust = pytest.mark.robustness


def _text_entry(calls: list[str], text: str = "hello"):
    def build(tmp: Path) -> None:
        calls.append("build")
        tmp.write_text(text, encoding="utf-8")

    return build


def _read(p: Path) -> str:
    return p.read_text(encoding="utf-8")


def test_entry_has_a_manifest_and_is_reused(cache: Path) -> None:
    calls: list[str] = []
    path = cache / "kind" / "a.txt"
    assert load_or_build(path, _text_entry(calls), _read) == "hello"
    assert load_or_build(path, _text_entry(calls), _read) == "hello"
    assert calls == ["build"]
    manifest = json.loads(manifest_path(path).read_text())
    # sha256("hello") computed by hand with hashlib, independent of bench.storage.cache
    import hashlib

    assert manifest["size"] == 5 and manifest["sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert "numpy" in manifest["versions"] and verify_entry(path) is None


@robust(case="cache entry truncated (size differs from its manifest)",
        outcome="one `warning:` line naming the entry and the problem; entry moved to <cache>/quarantine/, rebuilt")
def test_truncated_entry_is_reported_quarantined_and_rebuilt(cache: Path, capsys: pytest.CaptureFixture) -> None:
    calls: list[str] = []
    path = cache / "kind" / "a.txt"
    load_or_build(path, _text_entry(calls), _read)
    path.write_text("hel")
    assert verify_entry(path) == "file has 3 bytes, its manifest says 5 (truncated or partial)"
    assert load_or_build(path, _text_entry(calls), _read) == "hello"
    assert calls == ["build", "build"]
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("warning: cache entry") and "truncated" in err
    assert [p.name.split(".")[0] for p in (quarantine_dir() / "kind").iterdir()] == ["a", "a"]  # entry + manifest


@robust(case="cache entry corrupt, same size (bytes changed)",
        outcome="checksum mismatch: warning, quarantined, rebuilt")
def test_same_size_corruption_is_caught_by_the_checksum(cache: Path, capsys: pytest.CaptureFixture) -> None:
    calls: list[str] = []
    path = cache / "kind" / "a.txt"
    load_or_build(path, _text_entry(calls), _read)
    path.write_text("jello")
    assert "sha256 does not match" in (verify_entry(path) or "")
    assert load_or_build(path, _text_entry(calls), _read) == "hello" and len(calls) == 2
    assert "corrupt" in capsys.readouterr().err


def test_large_files_get_a_sampled_check(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.storage.cache as bc

    monkeypatch.setattr(bc, "FULL_HASH_LIMIT", 1 << 20)
    path = cache / "kind" / "big.bin"
    write_entry(path, lambda tmp: tmp.write_bytes(os.urandom(3 << 20)))
    manifest = json.loads(manifest_path(path).read_text())
    assert "sampled_sha256" in manifest and "sha256" not in manifest and FULL_HASH_LIMIT > (1 << 20)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # the last block is always sampled
    path.write_bytes(bytes(data))
    assert "sampled_sha256 does not match" in (verify_entry(path) or "")


@robust(case="cache entry without a manifest that does not load (written before manifests, damaged)",
        outcome="the reader's failure is the verdict: warning, quarantined, rebuilt; one that loads is adopted")
def test_legacy_entry_without_manifest(cache: Path, capsys: pytest.CaptureFixture) -> None:
    built: list[int] = []

    def build() -> dict[str, np.ndarray]:
        built.append(1)
        return {"a": np.arange(4)}

    path = cache / "synthetic" / "k.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 not really a zip")
    arrays = load_or_build_arrays("synthetic", "k", build, required=("a",))
    assert arrays["a"].tolist() == [0, 1, 2, 3] and built == [1]
    assert "unreadable (BadZipFile" in capsys.readouterr().err
    manifest_path(path).unlink()  # a good legacy entry: adopted, not rebuilt
    assert load_or_build_arrays("synthetic", "k", build, required=("a",))["a"].sum() == 6 and built == [1]
    assert manifest_path(path).exists()


def test_a_load_that_says_damaged_triggers_a_rebuild_and_other_errors_propagate(cache: Path) -> None:
    calls: list[str] = []
    path = cache / "kind" / "a.txt"
    load_or_build(path, _text_entry(calls), _read)

    def picky(p: Path) -> str:
        if len(calls) == 1:
            raise DamagedEntry("wrong content")
        return _read(p)

    assert load_or_build(path, _text_entry(calls), picky) == "hello" and len(calls) == 2

    def user_error(p: Path) -> str:
        raise BenchError("device=cuda asked for, but no GPU")

    with pytest.raises(BenchError, match="no GPU"):
        load_or_build(path, _text_entry(calls), user_error)
    assert path.exists() and len(calls) == 2  # not the entry's fault: left in place


def test_folder_entries(cache: Path) -> None:
    path = cache / "models" / "m"

    def build(tmp: Path) -> None:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "w.bin").write_bytes(b"1234")
        (tmp / "config.json").write_text("{}")

    assert load_or_build(path, build, lambda p: sorted(x.name for x in p.rglob("*")), folder=True) == \
        ["config.json", "sub", "w.bin"]
    assert verify_entry(path) is None
    (path / "sub" / "w.bin").write_bytes(b"12")
    assert verify_entry(path) == "sub/w.bin has 2 bytes, its manifest says 4 (truncated or partial)"


@robust(case="files the harness writes (results, caches) under umask 022 / 027",
        outcome="mode 0644 / 0640 as `open()` would give, not mkstemp's 0600")
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_written_files_respect_the_umask(cache: Path, tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        with atomic_open(tmp_path / "r.json") as fh:
            fh.write("{}")
        write_entry(cache / "kind" / "e.bin", lambda tmp: tmp.write_bytes(b"x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == mode
    assert stat.S_IMODE((cache / "kind" / "e.bin").stat().st_mode) == mode
    assert stat.S_IMODE(manifest_path(cache / "kind" / "e.bin").stat().st_mode) == mode


def test_stale_temp_files_of_dead_writers_are_swept(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".r.json.{pid}.abc123.tmp"
    live = tmp_path / f".r.json.{os.getpid()}.abc123.tmp"
    other = tmp_path / ".unrelated.tmp"
    for p in (stale, live, other):
        p.write_text("partial")
    assert sweep_stale_temps(tmp_path) == [stale]
    assert live.exists() and other.exists() and not stale.exists()


_WORKER = """
import sys, time
from pathlib import Path
from bench.storage.cache import load_or_build
path, log, sleep = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
def build(tmp):
    with open(log, "a") as fh:
        fh.write("build\\n")
    time.sleep(sleep)
    tmp.write_text("built once")
print(load_or_build(path, build, lambda p: p.read_text()), flush=True)
"""


def _worker(path: Path, log: Path, sleep: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _WORKER, str(path), str(log), str(sleep)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@robust(case="two processes want the same cache entry at once",
        outcome="file lock: the second waits and reuses the first's build (built once)")
def test_second_process_waits_and_reuses(cache: Path, tmp_path: Path) -> None:
    path, log = cache / "kind" / "e.txt", tmp_path / "builds.log"
    first = _worker(path, log, 2.0)
    time.sleep(0.5)
    second = _worker(path, log, 0.0)
    outs = [p.communicate(timeout=60)[0].strip() for p in (first, second)]
    assert outs == ["built once", "built once"]
    assert log.read_text().splitlines() == ["build"]


@robust(case="the process building a cache entry is killed (SIGKILL) while holding its lock",
        outcome="the OS releases the flock: the next process builds it, no deadlock, no partial file")
def test_killed_builder_leaves_no_lock_and_no_partial_file(cache: Path, tmp_path: Path) -> None:
    path, log = cache / "kind" / "e.txt", tmp_path / "builds.log"
    first = _worker(path, log, 60.0)
    deadline = time.time() + 30
    while not log.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert log.exists()
    first.send_signal(signal.SIGKILL)
    first.wait()
    t = time.time()
    second = _worker(path, log, 0.0)
    assert second.communicate(timeout=60)[0].strip() == "built once"
    assert time.time() - t < 30
    assert log.read_text().splitlines() == ["build", "build"]
    assert sorted(p.name for p in path.parent.iterdir()) == [".locks", "e.txt", "e.txt.manifest.json"]


def test_a_record_rewritten_in_place_is_judged_by_its_content(cache: Path) -> None:
    """A stat-keyed record (a corpus scan) that changes after its manifest was taken is re-validated, not corrupt; one
    that is no longer the record it was (not JSON, a field gone) is damaged."""
    from bench.storage.cache import write_record

    path = cache / "corpus-scan" / "k.json"
    write_record(path, {"size": 1, "mtime_ns": 2, "sha256": "a", "fingerprint": "f"}, "size", "mtime_ns", "fingerprint")
    assert verify_entry(path) is None
    path.write_text(json.dumps({"size": 10, "mtime_ns": 20, "sha256": "b", "fingerprint": "g"}))  # under the old one
    assert verify_entry(path) is None
    path.write_text(json.dumps({"size": 10, "sha256": "b"}))  # "fingerprint" gone
    assert verify_entry(path) is not None
    path.write_text("{not json")
    assert verify_entry(path) is not None
    write_entry(cache / "plain.json", lambda tmp: tmp.write_text("{}"))  # an ordinary entry keeps its checksum
    (cache / "plain.json").write_text("[]")
    assert verify_entry(cache / "plain.json") == "file: sha256 does not match its manifest (corrupt)"


_LOCK_HOLDER = """
import sys, time
from bench.storage.cache import entry_lock
with entry_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_write_entry_waits_for_the_entry_lock(cache: Path) -> None:
    """The entry and its manifest are written under the entry's lock, so whoever holds it (a verifier, a builder)
    never sees one without the other being settled."""
    path = cache / "x" / "e.bin"
    holder = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, str(path), "1.5"], cwd=REPO, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        t0 = time.perf_counter()
        write_entry(path, lambda tmp: tmp.write_bytes(b"data"))
        assert time.perf_counter() - t0 > 0.5  # it waited for the holder
    finally:
        holder.wait(timeout=30)
    assert verify_entry(path) is None and json.loads(manifest_path(path).read_text())["size"] == 4
