"""bench/distributed.py on one in-process store (what torchrun's rendezvous gives every rank): barriers, rank 0's
object shared, every rank's gathered, the shares of work, and a rank whose heartbeat stops named in one error."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch.distributed as dist

from bench.distributed import World, current, init
from bench.errors import BenchError


def _worlds(size: int, stale: float = 30.0) -> list[World]:
    store = dist.TCPStore("127.0.0.1", 0, 1, True)
    return [World(r, size, dist.PrefixStore("bench", store), stale_after=stale) for r in range(size)]


def _on_all(worlds: list[World], fn: Callable[[World], Any]) -> list[Any]:
    """fn(world) on one thread per rank; returns each rank's result (or the exception it raised)."""
    out: list[Any] = [None] * len(worlds)

    def work(w: World) -> None:
        try:
            out[w.rank] = fn(w)
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            out[w.rank] = exc

    threads = [threading.Thread(target=work, args=(w,)) for w in worlds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


def test_shares_of_work() -> None:
    worlds = _worlds(3)
    assert [[i for i in range(8) if w.owns(i)] for w in worlds] == [[0, 3, 6], [1, 4, 7], [2, 5]]
    parts = [w.part(10) for w in worlds]
    assert parts == [slice(0, 4), slice(4, 7), slice(7, 10)]
    assert [w.part(2) for w in worlds] == [slice(0, 1), slice(1, 2), slice(2, 2)]


def test_share_gather_and_barriers_meet_call_by_call() -> None:
    worlds = _worlds(3)

    def job(w: World) -> Any:
        got = []
        for i in range(2):  # the same names twice: each call meets its own
            w.barrier("step")
            got.append(w.share("value", {"from": 0, "i": i} if w.is_main else None))
            got.append(w.gather("ranks", (w.rank, i)))
        return got

    out = _on_all(worlds, job)
    assert out[0] == [{"from": 0, "i": 0}, [(0, 0), (1, 0), (2, 0)], {"from": 0, "i": 1}, [(0, 1), (1, 1), (2, 1)]]
    for r in (1, 2):
        assert out[r] == [{"from": 0, "i": 0}, None, {"from": 0, "i": 1}, None]


def test_rank_zero_first_orders_the_block() -> None:
    worlds = _worlds(2)
    order: list[int] = []

    def job(w: World) -> None:
        with w.rank_zero_first("build"):
            order.append(w.rank)

    _on_all(worlds, job)
    assert order == [0, 1]


@pytest.mark.robustness(case="a rank of a torchrun job dies (its heartbeat stops) while the others wait for it",
                        outcome="the waiting ranks stop with one error naming the rank, its host and pid")
def test_a_rank_whose_heartbeat_stops_is_named() -> None:
    worlds = _worlds(2, stale=1.0)
    worlds[1].store.set("who/1", "node7, pid 4242")
    worlds[1].store.add("beat/1", 1)  # it was alive once, then beats no more and never arrives
    with pytest.raises(BenchError, match=r"rank 1 of 2 \(node7, pid 4242\) stopped answering 1 s ago, while "
                                         r"encoding its shards: .* every finished cache entry"):
        worlds[0].barrier("encode", "encoding its shards")


def test_outside_torchrun_there_is_no_world(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init() is None and current() is None
