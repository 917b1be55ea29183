"""gather_quorum: its hedged mode (listing reads: ask a quorum, the other replicas only if
the quorum is slow, and a failure's replacement in either case), and the calls still
running when the grace ends (cancelled, or handed to a taker: a block's late replicas)."""

from __future__ import annotations

import asyncio

import pytest

from edgestore.cluster.quorum import gather_quorum
from edgestore.errors import ClusterError


def test_a_quorum_that_answers_is_all_that_is_asked() -> None:
    asked: list[str] = []

    async def call(c: str) -> str:
        asked.append(c)
        return c

    async def go() -> list[str]:
        answers = await gather_quorum(iter("abcde"), call, replicas=3, quorum=2, grace_s=0.0, what="t", hedge_s=60.0)
        return sorted(a.value for a in answers)
    assert asyncio.run(go()) == ["a", "b"]
    assert asked == ["a", "b"]


def test_a_failure_is_replaced_and_a_slow_quorum_brings_in_the_others() -> None:
    asked: list[str] = []

    async def go() -> list[str]:
        stuck = asyncio.Event()

        async def call(c: str) -> str:
            asked.append(c)
            if c == "a":
                raise ClusterError("down")
            if c == "b":
                await stuck.wait()   # never answers: only the hedge gets the quorum
            return c
        answers = await gather_quorum(iter("abcde"), call, replicas=3, quorum=2, grace_s=0.0, what="t", hedge_s=0.0)
        return sorted(a.value for a in answers)
    assert asyncio.run(go()) == ["c", "d"]
    assert asked == ["a", "b", "c", "d"]


def test_without_a_quorum_the_read_fails() -> None:
    async def call(c: str) -> str:
        raise ClusterError("down")

    async def go() -> None:
        await gather_quorum(iter("abc"), call, replicas=3, quorum=2, grace_s=0.0, what="t", hedge_s=60.0)
    with pytest.raises(ClusterError):
        asyncio.run(go())


def test_late_calls_are_handed_over_after_the_grace_not_cancelled() -> None:
    async def go() -> tuple[list[str], list[str]]:
        release = asyncio.Event()

        async def call(c: str) -> str:
            if c == "c":
                await release.wait()   # late: still running when the grace ends
            return c
        late: list[asyncio.Task[str]] = []
        answers = await gather_quorum(iter("abc"), call, replicas=3, quorum=2, grace_s=0.01, what="t",
                                      stragglers=late.extend)
        assert len(late) == 1 and not late[0].done()
        release.set()
        return sorted(a.value for a in answers), [await task for task in late]
    assert asyncio.run(go()) == (["a", "b"], ["c"])


def test_without_a_taker_late_calls_are_cancelled() -> None:
    async def go() -> bool:
        started: list[asyncio.Task[object] | None] = []

        async def call(c: str) -> str:
            if c == "c":
                started.append(asyncio.current_task())
                await asyncio.Event().wait()
            return c
        await gather_quorum(iter("abc"), call, replicas=3, quorum=2, grace_s=0.01, what="t")
        return started[0] is not None and started[0].cancelled()
    assert asyncio.run(go())


def test_the_calls_given_up_on_are_named_and_the_ones_handed_over_are_not() -> None:
    async def go(hand_over: bool) -> tuple[list[str], list[str]]:
        stuck = asyncio.Event()
        given_up: list[str] = []
        taken: list[asyncio.Task[str]] = []

        async def call(c: str) -> str:
            if c == "b":
                await stuck.wait()
            return c
        answers = await gather_quorum(iter("abc"), call, replicas=3, quorum=2, grace_s=0.01, what="t",
                                      gave_up=given_up.append, stragglers=taken.extend if hand_over else None)
        for task in taken:
            task.cancel()
        await asyncio.gather(*taken, return_exceptions=True)
        return sorted(a.value for a in answers), given_up
    assert asyncio.run(go(False)) == (["a", "c"], ["b"])
    assert asyncio.run(go(True)) == (["a", "c"], [])
