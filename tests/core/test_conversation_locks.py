"""The in-process turn claim: exclusive, re-entrant, FIFO, bounded wait, cancel-safe."""

import asyncio

import pytest

from agent_runtime_framework.memory.stores import ConversationLocks, JourneyBusy


async def test_waiters_get_the_claim_in_order_and_the_table_empties() -> None:
    locks = ConversationLocks()
    order: list[str] = []

    async def turn(name: str) -> None:
        async with locks.claim("c", 5.0):
            order.append(f"{name}+")
            await asyncio.sleep(0.01)
            order.append(f"{name}-")

    await asyncio.gather(turn("a"), turn("b"), turn("c"))
    assert order == ["a+", "a-", "b+", "b-", "c+", "c-"]
    assert locks.held == {}


async def test_reentrant_in_one_task_and_busy_after_wait() -> None:
    locks = ConversationLocks()
    async with locks.claim("c", 0.0):
        async with locks.claim("c", 0.0):
            pass

        async def other() -> None:
            async with locks.claim("c", 0.01):
                pass

        with pytest.raises(JourneyBusy):
            await asyncio.create_task(other())
    assert locks.held == {}


async def test_cancelled_waiters_do_not_keep_the_conversation() -> None:
    locks = ConversationLocks()
    entered = asyncio.Event()
    release = asyncio.Event()
    waiters: list[asyncio.Task[None]] = []

    async def holder() -> None:
        async with locks.claim("c", 1.0):
            entered.set()
            await release.wait()
        # The claim was just handed to the second waiter; cancel it before it resumes.
        waiters[1].cancel()

    async def waiter() -> None:
        async with locks.claim("c", 5.0):
            pass

    first = asyncio.create_task(holder())
    await entered.wait()
    waiters.extend([asyncio.create_task(waiter()), asyncio.create_task(waiter())])
    await asyncio.sleep(0)
    waiters[0].cancel()
    await asyncio.sleep(0)
    release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await waiters[0]
    # Cancelled after the hand-over: it either ran (wait_for may keep the result) or
    # passed the claim on; the conversation is free either way.
    await asyncio.gather(waiters[1], return_exceptions=True)
    assert locks.held == {}
    async with locks.claim("c", 0.0):
        pass
