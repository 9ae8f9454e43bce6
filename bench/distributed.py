"""Runs spread over processes with torch.distributed: `torchrun` on one machine or many.

`bench run`, `bench encode` and `bench data prepare` started by torchrun (WORLD_SIZE > 1) call `init()`, which joins
the job's process group (gloo for CPU tensors, plus NCCL for CUDA tensors where torch sees a GPU) from torchrun's
environment. Every rank then works on its share and meets the others through the group's **store** (the key-value
store torchrun's rendezvous provides, on the network, never in a file): corpus embedding shards are split across
ranks (bench/index/encode.py), queries across ranks for search (bench/systems/pipeline.py), and rank 0 alone prints
and writes results. No file lock is involved, so a cache on NFS works.

A `World` is a view of that state (rank, size, the store); it holds nothing of its own, so any module can ask for
`current()`. What it offers, all through the store:

- `barrier(name)`, `rank_zero_first(name)`, `share(name, obj)` (rank 0's object to every rank), `gather(name, obj)`
  (every rank's object to rank 0). A name may be used again: each call is numbered in the store.
- Liveness. Every rank bumps a heartbeat counter in the store every `BEAT_S` seconds (a daemon thread started by
  `init`). A rank that waits for the others and sees a rank's heartbeat stand still for `stale_after` seconds stops
  with one error line naming it. When torchrun itself ends the job because a rank died (one machine: the agent sends
  SIGTERM to the others), the SIGTERM handler installed by `init` finds the rank that neither stopped on request nor
  beats any more and prints the same line from the lowest stopped rank. Either way a rerun reuses every finished
  shard.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import pickle
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.errors import BenchError

PREFIX = "bench"
BEAT_S = 2.0  # heartbeat period of every rank
STALE_S = 60.0  # a rank whose heartbeat stood still this long is taken for dead (BENCH_DIST_STALE_S)
POLL_S = 0.2


def under_torchrun() -> bool:
    """True in a process started by torchrun with more than one process in the job."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _stale_default() -> float:
    try:
        return float(os.environ.get("BENCH_DIST_STALE_S", STALE_S))
    except ValueError:
        raise BenchError(f"BENCH_DIST_STALE_S must be a number of seconds, got "
                         f"{os.environ['BENCH_DIST_STALE_S']!r}") from None


@dataclass(frozen=True)
class World:
    """This process's place in a distributed job: its rank, the number of ranks, and the job's store."""

    rank: int
    size: int
    store: Any  # a torch.distributed Store shared by every rank (keys under PREFIX)
    stale_after: float = field(default_factory=_stale_default)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, item: int) -> bool:
        """Round-robin ownership of numbered work items (embedding shards): item i belongs to rank i mod size."""
        return item % self.size == self.rank

    def part(self, n: int) -> slice:
        """This rank's contiguous share of n items (queries): sizes differ by at most one, lower ranks first."""
        per, extra = divmod(n, self.size)
        start = self.rank * per + min(self.rank, extra)
        return slice(start, start + per + (1 if self.rank < extra else 0))

    # ------------------------------------------------------------------------------------------------ meeting

    def _call(self, name: str) -> str:
        """A key prefix unique to this call of `name`: every rank calls the same names in the same order, so the
        n-th call of each rank meets the n-th call of the others (the count is kept in the store)."""
        n = self.store.add(f"calls/{name}/{self.rank}", 1)
        return f"{name}/{n}"

    def barrier(self, name: str, what: str = "") -> None:
        """Wait until every rank reached this point (`what` says doing what, for the error naming a dead rank)."""
        key = self._call(name)
        self.store.add(f"{key}/arrived", 1)
        self._wait(lambda: int(self.store.add(f"{key}/arrived", 0)) >= self.size,
                   lambda: [r for r in range(self.size) if not self.store.check([f"{key}/at/{r}"])],
                   what or name, mark=f"{key}/at/{self.rank}")

    @contextlib.contextmanager
    def rank_zero_first(self, name: str, what: str = "") -> Iterator[None]:
        """Rank 0 runs the block first (building a cache entry), the others after it (reading that entry)."""
        if self.is_main:
            yield
            self.barrier(name, what)
        else:
            self.barrier(name, what)
            yield

    def share(self, name: str, obj: Any = None, what: str = "") -> Any:
        """Rank 0's `obj` on every rank (the others pass None)."""
        key = self._call(name)
        if self.is_main:
            self.store.set(f"{key}/value", pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
            return obj
        self._wait(lambda: bool(self.store.check([f"{key}/value"])), lambda: [0], what or name)
        value = pickle.loads(self.store.get(f"{key}/value"))
        if self.store.add(f"{key}/read", 1) == self.size - 1:  # the last reader frees the store's copy
            self.store.delete_key(f"{key}/value")
        return value

    def gather(self, name: str, obj: Any, what: str = "") -> list[Any] | None:
        """Every rank's `obj`, in rank order, on rank 0 (None on the others)."""
        key = self._call(name)
        if not self.is_main:
            self.store.set(f"{key}/from/{self.rank}", pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
            return None
        keys = [f"{key}/from/{r}" for r in range(1, self.size)]
        self._wait(lambda: bool(self.store.check(keys)),
                   lambda: [r for r in range(1, self.size) if not self.store.check([f"{key}/from/{r}"])], what or name)
        out = [obj]
        for k in keys:
            out.append(pickle.loads(self.store.get(k)))
            self.store.delete_key(k)
        return out

    # ------------------------------------------------------------------------------------------------ liveness

    def beats(self, rank: int) -> int:
        return int(self.store.add(f"beat/{rank}", 0))

    def who(self, rank: int) -> str:
        """`host, pid N` of a rank, as it registered itself."""
        key = f"who/{rank}"
        return self.store.get(key).decode() if self.store.check([key]) else "not registered"

    def _wait(self, done: Any, missing: Any, what: str, mark: str | None = None) -> None:
        """Poll `done()`; a rank among `missing()` whose heartbeat stands still for `stale_after` seconds is dead."""
        if mark is not None:
            self.store.set(mark, "1")
        last: dict[int, tuple[int, float]] = {}
        delay = POLL_S / 4
        while not done():
            now = time.monotonic()
            for r in missing():
                beat = self.beats(r)
                seen, since = last.get(r, (-1, now))
                if beat != seen:
                    last[r] = (beat, now)
                elif now - since >= self.stale_after:
                    raise BenchError(
                        f"rank {r} of {self.size} ({self.who(r)}) stopped answering {self.stale_after:.0f} s ago, "
                        f"while {what}: it died or lost its connection, so rank {self.rank} stops too. Run the same "
                        f"command again: every finished cache entry, embedding shards included, is reused")
            time.sleep(delay)
            delay = min(POLL_S * 5, delay * 2)


def current() -> World | None:
    """The World of this process when it belongs to an initialised process group of more than one rank."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a core dependency
        return None
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    from torch.distributed.distributed_c10d import _get_default_store

    return World(dist.get_rank(), dist.get_world_size(), dist.PrefixStore(PREFIX, _get_default_store()))


def init() -> World | None:
    """Under torchrun (WORLD_SIZE > 1) join the job's process group, start the heartbeat and the SIGTERM report;
    elsewhere None. Idempotent: a process group already initialised (e.g. by DDP training) is reused."""
    if not under_torchrun():
        return None
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
        except (RuntimeError, ValueError) as exc:
            raise BenchError(f"could not join the torchrun job's process group ({exc})") from None
    world = current()
    if world is None:
        return None
    if world.store.add(f"started/{world.rank}", 1) == 1:  # once per process
        world.store.set(f"who/{world.rank}", f"{socket.gethostname()}, pid {os.getpid()}")
        threading.Thread(target=_beat, args=(world,), name="bench-heartbeat", daemon=True).start()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda signum, frame: _stopped(world))
        atexit.register(_finished, world)
    return world


def _beat(world: World) -> None:
    while True:
        try:
            world.store.add(f"beat/{world.rank}", 1)
        except Exception:  # the store is gone: the job is ending
            return
        time.sleep(BEAT_S)


def _finished(world: World) -> None:
    with contextlib.suppress(Exception):
        world.store.set(f"finished/{world.rank}", "1")


def set_phase(world: World | None, phase: str) -> None:
    """What this rank is doing now, for the line that names a rank that died."""
    if world is not None:
        world.store.set(f"phase/{world.rank}", phase)


def _stopped(world: World) -> None:
    """torchrun sends SIGTERM to the ranks left when one rank died (or the job was interrupted): name the rank that
    neither stopped on request nor beats any more, once, from the lowest stopped rank, and leave."""
    try:
        world.store.set(f"stopped/{world.rank}", "1")
        before = [world.beats(r) for r in range(world.size)]
        time.sleep(2.5 * BEAT_S)  # the other survivors mark themselves; a live rank beats meanwhile, a dead one not
        gone = [r for r in range(world.size) if world.beats(r) == before[r]
                and not world.store.check([f"stopped/{r}"]) and not world.store.check([f"finished/{r}"])]
        alive = [r for r in range(world.size) if world.store.check([f"stopped/{r}"])]
        if alive and world.rank == min(alive):
            if gone:
                names = "; ".join(f"rank {r} of {world.size} ({world.who(r)}) died while {_phase(world, r)}"
                                  for r in gone)
                sys.stderr.write(f"error: {names}; torchrun stopped the other ranks. Run the same command again: "
                                 f"every finished cache entry, embedding shards included, is reused\n")
            else:
                sys.stderr.write("interrupted: torchrun stopped every rank; finished cache entries are kept\n")
            sys.stderr.flush()
    finally:
        os._exit(1)


def _phase(world: World, rank: int) -> str:
    key = f"phase/{rank}"
    return world.store.get(key).decode() if world.store.check([key]) else "starting"
