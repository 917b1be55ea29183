"""Quorum maths and the fan-out that gathers replica answers.

A call goes to one candidate per replica (the primaries, a handoff standing in for any
primary known to be down). Each failure starts the next handoff, so a write still lands
on `replicas` devices. Once a quorum has answered, stragglers get a grace period and are
then cancelled, or handed over to the caller to finish in the background; if the
candidates run out first, the quorum was not reached.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable, Generic, Iterator, TypeVar

from edgestore.errors import ClusterError, QuorumNotReached, StoreError

__all__ = ["quorum_size", "Answer", "gather_quorum"]

T = TypeVar("T")
C = TypeVar("C")


def quorum_size(replicas: int) -> int:
    """A majority: two quorums always share a replica, so a read sees the last write."""
    return replicas // 2 + 1


@dataclass(frozen=True)
class Answer(Generic[C, T]):
    candidate: C
    value: T


async def gather_quorum(
    candidates: Iterator[C],
    call: Callable[[C], Awaitable[T]],
    *,
    replicas: int,
    quorum: int,
    grace_s: float,
    what: str,
    max_attempts: int | None = None,
    hedge_s: float | None = None,
    stragglers: Callable[[list[asyncio.Task[T]]], None] | None = None,
    gave_up: Callable[[C], None] | None = None,
) -> list[Answer[C, T]]:
    """Run `call` on `replicas` candidates at once, replacing each failure by the next
    candidate; return the answers once `quorum` succeeded and the grace period ended.
    With `hedge_s`, a read that needs only a quorum starts just `quorum` candidates, and
    the rest of the `replicas` only if the quorum has not answered within hedge_s.
    With `stragglers`, the calls still running after the grace are given to it, not
    cancelled (their failures are no longer replaced: repair makes up for them); else
    `gave_up` hears of each candidate whose call was still running when it was cancelled
    (a peer that hangs: its replies come too late to count)."""
    limit = max_attempts if max_attempts is not None else replicas * 3
    loop = asyncio.get_running_loop()
    hedge_at = loop.time() + hedge_s if hedge_s is not None else None
    attempts = 0
    answers: list[Answer[C, T]] = []
    pending: dict[asyncio.Task[T], C] = {}

    def start_next() -> bool:
        nonlocal attempts
        if attempts >= limit:
            return False
        candidate = next(candidates, None)
        if candidate is None:
            return False
        attempts += 1
        pending[asyncio.ensure_future(call(candidate))] = candidate
        return True

    try:
        for _ in range(replicas if hedge_at is None else quorum):
            if not start_next():
                break
        while pending and len(answers) < quorum:
            timeout = max(hedge_at - loop.time(), 0.0) if hedge_at is not None else None
            done, _ = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done and hedge_at is not None:  # the quorum is slow: ask the others too
                hedge_at = None
                while len(pending) + len(answers) < replicas and start_next():
                    pass
            for task in done:
                candidate = pending.pop(task)
                if _succeeded(task):
                    answers.append(Answer(candidate, task.result()))
                else:
                    start_next()
        if len(answers) < quorum:
            raise QuorumNotReached(what, quorum, len(answers))
        if pending:
            done, _ = await asyncio.wait(pending, timeout=grace_s)
            for task in done:
                candidate = pending.pop(task)
                if _succeeded(task):
                    answers.append(Answer(candidate, task.result()))
            if pending and stragglers is not None:
                stragglers(list(pending))
                pending.clear()
        if gave_up is not None:
            for candidate in pending.values():
                gave_up(candidate)
        return answers
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def _succeeded(task: asyncio.Task[object]) -> bool:
    """Replica failures (a peer or a device) count as silence; anything else is a bug."""
    if task.cancelled():
        return False
    exc = task.exception()
    if exc is None:
        return True
    if isinstance(exc, (ClusterError, StoreError)):
        return False
    raise exc
