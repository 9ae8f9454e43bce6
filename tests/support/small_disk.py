"""`bench` commands run with some folders on small disks: fresh tmpfs mounts of a given size inside a private mount
namespace (`unshare --mount --map-root-user`), so a test meets a real full disk and leaves no mount behind.

    steps = on_small_disks({cache: 100 << 20}, [Step(["run", ...], env={"BENCH_FAULT_FILL": "*.npy"}), Step([...])],
                           tmp_path)
    steps[0].returncode, steps[0].stderr, steps[0].files  # files: every file on the small disks after the step

The steps run one after another in the namespace (a mount lives only as long as it); `Step.remove` deletes files
before a step (glob patterns: the filler of BENCH_FAULT_FILL, to free the disk again). Run as a module, this file is
the driver inside the namespace: `python -m tests.support.small_disk SPEC.json`.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.support import REPO


@dataclass
class Step:
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)  # glob patterns of files removed before the step (a filler)
    read: list[str] = field(default_factory=list)  # glob patterns of files whose text the outcome brings back


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    files: dict[str, int]  # path → size of every file on the small disks after the step
    texts: dict[str, str]  # path → text of the files matching the step's `read` patterns (the disks go with it)


def on_small_disks(mounts: dict[Path, int], steps: list[Step], work: Path, timeout: float = 600) -> list[Outcome]:
    """Run `steps` (each `python -m bench ARGS`) with each folder of `mounts` a fresh tmpfs of that many bytes."""
    if shutil.which("unshare") is None:
        raise RuntimeError("the disk-full tests need `unshare` (util-linux) to mount a small tmpfs")
    spec = work / "small-disk-spec.json"
    result = work / "small-disk-result.json"
    spec.write_text(json.dumps({"mounts": {str(k): v for k, v in mounts.items()},
                                "steps": [asdict(s) for s in steps], "result": str(result)}))
    proc = subprocess.run(["unshare", "--mount", "--map-root-user", sys.executable, "-m", "tests.support.small_disk",
                           str(spec)], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"small-disk driver failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return [Outcome(**o) for o in json.loads(result.read_text())]


def _files(roots: list[str]) -> dict[str, int]:
    return {str(p): p.stat().st_size for root in roots for p in sorted(Path(root).rglob("*")) if p.is_file()}


def _drive(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    roots = list(spec["mounts"])
    for folder, size in spec["mounts"].items():
        Path(folder).mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder], check=True)
    outcomes = []
    for step in spec["steps"]:
        for pattern in step["remove"]:
            for path in glob.glob(pattern, recursive=True):
                Path(path).unlink(missing_ok=True)
        env = {**os.environ, **step["env"]}
        proc = subprocess.run([sys.executable, "-m", "bench", *step["args"]], cwd=REPO, env=env, capture_output=True,
                              text=True)
        texts = {path: Path(path).read_text() for pattern in step["read"]
                 for path in sorted(glob.glob(pattern, recursive=True))}
        outcomes.append({"returncode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr,
                         "files": _files(roots), "texts": texts})
    Path(spec["result"]).write_text(json.dumps(outcomes))


if __name__ == "__main__":
    _drive(sys.argv[1])
