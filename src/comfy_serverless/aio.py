"""Small asyncio helpers the job steps share: blocking work in threads that a cancel cannot cut short,
and bounded concurrency that cancels the rest on the first failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")
_R = TypeVar("_R")


async def to_the_end(work: Awaitable[_T]) -> _T:
    """Await ``work``; if the caller is cancelled meanwhile, ``work`` still runs to its end before the
    cancellation goes on (its own outcome is then dropped: the cancellation is what the caller hears)."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not report it as lost
        raise


async def in_thread(fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Blocking (file) work in a thread, off the event loop. A cancel waits for the thread, so a file
    is never closed or removed while a thread still uses it."""
    return await to_the_end(asyncio.to_thread(fn, *args, **kwargs))


async def gather_bounded(
    values: Sequence[_T], work: Callable[[_T], Awaitable[_R]], concurrency: int
) -> list[_R]:
    """``work`` on every value, at most ``concurrency`` at a time, results in order. On the first
    failure (or a cancel) the rest are cancelled and waited for, then that failure goes on."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(value: _T) -> _R:
        async with gate:
            return await work(value)

    tasks = [asyncio.ensure_future(one(value)) for value in values]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled():
                task.exception()  # the first failure is the one that goes on
        raise
