"""The per-channel pacer: never more than the bucket, newest render wins, fair across keys."""

from __future__ import annotations

import asyncio
import time

from bot.pacing import Pacer, Priority


async def test_never_exceeds_the_window_and_coalesces() -> None:
    pacer = Pacer(limit=3, window=0.3, margin=0.02)
    sent: list[tuple[float, str, int]] = []

    def job(key: str, version: int):
        async def run() -> int:
            sent.append((time.monotonic(), key, version))
            return version

        return run

    first = {key: pacer.submit("chan", key, job(key, 0)) for key in "abcde"}
    await asyncio.wait_for(asyncio.gather(first["a"], first["b"], first["c"]), timeout=5)
    # d and e still wait: their newer render replaces the waiting one.
    second = {key: pacer.submit("chan", key, job(key, 1)) for key in "abcde"}
    results = await asyncio.wait_for(asyncio.gather(*second.values()), timeout=5)
    assert results == [1, 1, 1, 1, 1]
    assert await first["d"] == 1  # coalesced: resolved with the newest job's result
    assert [(key, version) for _, key, version in sent] == [
        ("a", 0),
        ("b", 0),
        ("c", 0),
        ("d", 1),
        ("e", 1),
        ("a", 1),
        ("b", 1),
        ("c", 1),
    ]
    for start, _, _ in sent:
        assert sum(1 for t, _, _ in sent if start <= t < start + 0.3) <= 3
    await pacer.close()


async def test_urgent_jobs_go_first_and_keys_are_served_in_turn() -> None:
    pacer = Pacer(limit=1, window=0.05, margin=0.0)
    order: list[str] = []

    def job(name: str):
        async def run() -> None:
            order.append(name)

        return run

    gate, started = asyncio.Event(), asyncio.Event()

    async def blocked() -> None:
        order.append("first")
        started.set()
        await gate.wait()

    blocker = pacer.submit("chan", "first", blocked)
    await asyncio.wait_for(started.wait(), timeout=5)
    later = [pacer.submit("chan", key, job(key)) for key in ("u1", "u2")]
    urgent = pacer.submit("chan", "post", job("post"), priority=Priority.URGENT)
    final = pacer.submit("chan", "u2", job("u2-final"), priority=Priority.FINAL)
    assert pacer.is_busy("u1")
    gate.set()
    await asyncio.wait_for(asyncio.gather(blocker, *later, urgent, final), timeout=5)
    assert order == ["first", "post", "u2-final", "u1"]
    assert not pacer.is_busy("u1")
    await pacer.close()


async def test_failures_reach_the_submitter_and_do_not_stop_the_channel() -> None:
    pacer = Pacer(limit=10, window=1.0)

    async def broken() -> None:
        raise RuntimeError("nope")

    async def fine() -> str:
        return "ok"

    bad = pacer.submit("chan", "bad", broken)
    good = pacer.submit("chan", "good", fine)
    assert await asyncio.wait_for(good, timeout=5) == "ok"
    try:
        await bad
    except RuntimeError as error:
        assert str(error) == "nope"
    else:  # pragma: no cover
        raise AssertionError("the failure was swallowed")
    await pacer.close()
