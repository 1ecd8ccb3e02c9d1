"""Journeys on the ORM stores under pytest-django's plain ``db`` fixture (no transaction=True).

The test's transaction is shared by the framework's database work (``run_db``) and by
Django's async ORM, so a test sees the rows its turns wrote, and they are rolled back after.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import TestCase

from agent_runtime_framework.django.host.registry import register_runtime, unregister_runtime
from agent_runtime_framework.django.host.turns import run_turn, run_turn_sync
from agent_runtime_framework.django.models import Conversation, Journey, JourneyMessage
from agent_runtime_framework.django.store.db import run_db, sharing_test_connections
from agent_runtime_framework.django.store.orm import DjangoMemoryManager
from agent_runtime_framework.memory import JourneyBusy
from agent_runtime_framework.testing import JourneyDriver, ScriptedLLM
from tests.journeys import OnboardingAgent, OnboardingStep

pytestmark = pytest.mark.django_db

#: One conversation id reused by the rollback tests: a row left behind would show up.
LEAKY_ID = uuid.UUID("00000000-0000-4000-8000-00000000d1b0")


def _onboarding_script() -> ScriptedLLM:
    return (
        ScriptedLLM()
        .call("start")
        .reply("Hi! What's your name?")
        .call("save_name", name="Ada")
        .reply("And your email?")
        .call("save_email", email="ada@example.com")
        .reply("All set!")
    )


@pytest.fixture
def onboarding() -> Iterator[OnboardingAgent]:
    agent = OnboardingAgent(llm_client=_onboarding_script())
    register_runtime(agent)
    yield agent
    unregister_runtime(agent.key)


async def test_async_journey_rows_are_visible_to_the_async_orm(
    scripted_llm: ScriptedLLM, journey_driver: Any, admin_user: Any
) -> None:
    scripted_llm.call("start").reply("Hi! What's your name?")
    scripted_llm.call("save_name", name="Ada").reply("And your email?")
    agent = OnboardingAgent(llm_client=scripted_llm, memory=DjangoMemoryManager())
    driver = journey_driver(agent, owner=admin_user)  # a user the test's transaction created
    await driver.say("hello")
    await driver.say("I am Ada")
    driver.assert_step(OnboardingStep.COLLECT_EMAIL)

    journey = await Journey.objects.aget(conversation_id=driver.conversation_id)
    assert journey.state["name"] == "Ada" and journey.step == "collect_email"
    assert journey.turns == 2
    assert (await Conversation.objects.aget(id=driver.conversation_id)).owner_id == admin_user.pk
    roles = [
        m.role
        async for m in JourneyMessage.objects.filter(
            conversation_id=driver.conversation_id
        ).order_by("seq")
    ]
    assert roles[:4] == ["user", "assistant", "tool", "assistant"]
    # The same rows through run_db, and through the framework's own reader.
    assert await run_db(
        JourneyMessage.objects.filter(conversation_id=driver.conversation_id).count
    ) == len(roles)
    assert len(await driver.history()) == len(roles)


async def test_async_run_turn_with_the_db_fixture(
    db: None, onboarding: OnboardingAgent, admin_user: Any
) -> None:
    user = admin_user  # created by a sync fixture, in the test's transaction
    first = await run_turn("onboarding-agent", None, "hello", user=user)
    cid = first.conversation_id
    await run_turn("onboarding-agent", cid, "I am Ada", user=user)
    last = await run_turn(None, cid, "ada@example.com", user=user)
    assert last.complete and last.state["email"] == "ada@example.com"

    journey = await Journey.objects.aget(conversation_id=cid)
    assert journey.turns == 3 and journey.status == "complete"
    conversation = await Conversation.objects.aget(id=cid)
    assert conversation.lease_token == ""  # the lease was claimed and released in the test
    assert (
        conversation.next_seq == await JourneyMessage.objects.filter(conversation_id=cid).acount()
    )


def test_sync_run_turn_then_the_plain_orm(
    db: None, onboarding: OnboardingAgent, django_user_model: Any
) -> None:
    user = django_user_model.objects.create(username="ada")
    first = run_turn_sync("onboarding-agent", None, "hello", user)
    cid = first.conversation_id
    run_turn_sync("onboarding-agent", cid, "I am Ada", user)
    run_turn_sync(None, cid, "ada@example.com", user)

    journey = Journey.objects.get(conversation_id=cid)
    assert (journey.state["name"], journey.state["email"]) == ("Ada", "ada@example.com")
    assert JourneyMessage.objects.filter(conversation_id=cid, role="user").count() == 3
    assert connection.in_atomic_block  # still inside pytest-django's test transaction


def test_sync_driver_through_async_to_sync_sees_rows_written_by_the_test(admin_user: Any) -> None:
    agent = OnboardingAgent(llm_client=_onboarding_script(), memory=DjangoMemoryManager())
    driver = JourneyDriver(agent, owner=admin_user)  # a row of the test's transaction
    async_to_sync(driver.say)("hello")
    async_to_sync(driver.say)("I am Ada")
    journey = Journey.objects.get(conversation_id=driver.conversation_id)
    assert journey.state["name"] == "Ada" and journey.owner_id == admin_user.pk
    assert Conversation.objects.get(id=driver.conversation_id).next_seq == 8


@pytest.mark.parametrize("run", ["first", "second"])
async def test_rows_of_a_test_are_rolled_back(run: str, django_user_model: Any) -> None:
    assert not await Conversation.objects.filter(id=LEAKY_ID).aexists()
    assert not await django_user_model.objects.filter(username="leaky").aexists()
    await django_user_model.objects.acreate(username="leaky")
    assert not await run_db(Journey.objects.filter(conversation_id=LEAKY_ID).exists)
    driver = JourneyDriver(
        OnboardingAgent(llm_client=_onboarding_script(), memory=DjangoMemoryManager()), LEAKY_ID
    )
    await driver.say("hello")
    assert await Journey.objects.filter(conversation_id=LEAKY_ID).aexists()


@pytest.mark.parametrize("run", ["first", "second"])
def test_rows_of_a_sync_test_are_rolled_back(run: str, onboarding: OnboardingAgent) -> None:
    assert not Conversation.objects.filter(id=LEAKY_ID).exists()
    run_turn_sync("onboarding-agent", LEAKY_ID, "hello")
    assert Journey.objects.filter(conversation_id=LEAKY_ID).exists()


async def test_the_lease_serialises_concurrent_turns_inside_the_test_transaction(
    admin_user: Any,
) -> None:
    cid = uuid.uuid4()

    async def other_turn(busy_wait: float) -> str:
        async with DjangoMemoryManager(busy_wait=busy_wait).claim(cid, "onboarding-agent"):
            return (await Conversation.objects.aget(id=cid)).lease_token

    def elsewhere(coro: Any) -> asyncio.Task[Any]:  # another turn: no lease held in its context
        return asyncio.create_task(coro, context=contextvars.Context())

    async with DjangoMemoryManager().claim(cid, "onboarding-agent", owner=admin_user):
        mine = (await Conversation.objects.aget(id=cid)).lease_token
        with pytest.raises(JourneyBusy):
            await elsewhere(other_turn(busy_wait=0.0))
        waiting = elsewhere(other_turn(busy_wait=5.0))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # polls while this turn holds the conversation
    assert (await waiting) not in ("", mine)  # claimed once released
    assert (await Conversation.objects.aget(id=cid)).lease_token == ""

    # Two conversations played concurrently: their work shares the test's connection.
    a, b = (
        JourneyDriver(
            OnboardingAgent(llm_client=_onboarding_script(), memory=DjangoMemoryManager())
        )
        for _ in range(2)
    )
    await asyncio.gather(a.say("hello"), b.say("hello"))
    assert (
        await Journey.objects.filter(
            conversation_id__in=[a.conversation_id, b.conversation_id]
        ).acount()
        == 2
    )


async def test_a_failed_unit_of_work_rolls_back_to_its_savepoint_only(admin_user: Any) -> None:
    cid = uuid.uuid4()

    def create_then_fail() -> None:
        with transaction.atomic():
            Conversation.objects.create(id=cid, agent_key="x", owner=admin_user)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await run_db(create_then_fail)
    assert not await Conversation.objects.filter(id=cid).aexists()
    # The test's transaction lives on: its user is still there, new work still commits to it.
    await run_db(Conversation.objects.create, id=cid, agent_key="x", owner=admin_user)
    assert await Conversation.objects.filter(id=cid, owner=admin_user).aexists()


@pytest.mark.django_db(transaction=True)
async def test_transactional_tests_keep_the_thread_pool() -> None:
    assert not sharing_test_connections()
    cid = uuid.uuid4()
    await run_db(Conversation.objects.create, id=cid, agent_key="x")
    assert await Conversation.objects.filter(id=cid).aexists()


def test_db_tests_share_the_test_connection() -> None:
    assert sharing_test_connections()


class JourneyInADjangoTestCase(TestCase):
    """Django's own ``TestCase`` wraps its tests in a transaction too."""

    async def test_an_async_journey_sees_and_rolls_back_with_the_test(self) -> None:
        user = await get_user_model().objects.acreate(username="bo")
        agent = OnboardingAgent(llm_client=_onboarding_script(), memory=DjangoMemoryManager())
        driver = JourneyDriver(agent, owner=user)
        await driver.say("hello")
        journey = await Journey.objects.aget(conversation_id=driver.conversation_id)
        self.assertEqual(journey.owner_id, user.pk)
        self.assertTrue(sharing_test_connections())
