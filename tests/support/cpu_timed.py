"""`python tests/support/cpu_timed.py OUT ARGS...`: run `bench ARGS...` in this process (also under torchrun) and write
the CPU time it used, user + system, to OUT/cpu-<RANK>.json (RANK 0 outside torchrun)."""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

if __name__ == "__main__":
    out = Path(sys.argv[1])
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.cli import main

    code = 1
    try:
        code = main(sys.argv[2:])
    finally:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"cpu-{os.environ.get('RANK', '0')}.json").write_text(
            json.dumps({"cpu_s": usage.ru_utime + usage.ru_stime, "code": code}))
    sys.exit(code)
