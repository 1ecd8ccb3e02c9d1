"""DjangoRuntimeAdapter under a django_agent_runtime-like runner (the RunContext double)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from agent_runtime_framework.adapters import DjangoRuntimeAdapter, RunResult
from agent_runtime_framework.django.models import (
    Journey,
    JourneyEvent,
    JourneyMessage,
    JourneyStatus,
)
from agent_runtime_framework.django.store.orm import DjangoMemoryManager
from agent_runtime_framework.llm.base import LLMBadRequestError, LLMRateLimitError
from agent_runtime_framework.testing import ScriptedLLM
from agent_runtime_framework.testing.run_context import FakeRunContext, FakeRunner
from tests.adapter.runtimes import OnboardingAdapter

pytestmark = pytest.mark.django_db(transaction=True)


def onboarding_script() -> ScriptedLLM:
    return (
        ScriptedLLM()
        .call("start")
        .reply("Hi! What's your name?")
        .call("save_name", name="Ada")
        .reply("Thanks Ada, your email?")
        .call("save_email", email="ada@example.com")
        .reply("All set, Ada!")
    )


def stored_events(cid: uuid.UUID) -> list[str]:
    return list(
        JourneyEvent.objects.filter(conversation_id=cid)
        .order_by("id")
        .values_list("type", flat=True)
    )


async def test_three_runs_complete_the_journey_across_runs() -> None:
    llm = onboarding_script()
    adapter = OnboardingAdapter(llm_client=llm)
    runner = FakeRunner(adapter)

    first = await runner.send("hello")
    second = await runner.send("I am Ada")
    third = await runner.send("ada@example.com")

    assert isinstance(first, RunResult)
    assert first.final_output["step"] == "collect_name"
    assert second.final_output["step"] == "collect_email"
    out = third.final_output
    assert out["response"] == "All set, Ada!"
    assert out["complete"] is True and out["step"] == "complete"
    assert out["state"]["name"] == "Ada" and out["state"]["email"] == "ada@example.com"
    llm.assert_exhausted()

    # Each run had its own run id: checkpoints could not carry the state across runs,
    # the journey table did.
    run_ids = [ctx.run_id for ctx in runner.contexts]
    assert len(set(run_ids)) == 3
    journey = await Journey.objects.aget(conversation_id=runner.conversation_id)
    assert journey.status == JourneyStatus.COMPLETE and journey.step == "complete"
    assert journey.state["name"] == "Ada" and journey.turns == 3

    # The runner prepended earlier messages; the stored history has each user message once.
    assert len(runner.contexts[2].input_messages) > 1
    users = [
        m.content
        async for m in JourneyMessage.objects.filter(
            conversation_id=runner.conversation_id, role="user"
        ).order_by("seq")
    ]
    assert users == ["hello", "I am Ada", "ada@example.com"]

    # Every state change was checkpointed for its own run, and reported to the adapter.
    for ctx, step in zip(
        runner.contexts, ["collect_name", "collect_email", "complete"], strict=True
    ):
        checkpoint = await ctx.get_state()
        assert checkpoint is not None and checkpoint["step"] == step
        assert checkpoint["conversation_id"] == str(runner.conversation_id)
    assert [s for _, s in adapter.state_changes] == ["collect_name", "collect_email", "complete"]

    # The model only ever saw the tools of the step it was in.
    assert llm.calls[0].tool_names == ["start"]
    assert llm.calls[2].tool_names == ["save_name"]
    assert llm.calls[4].tool_names == ["save_email"]


async def test_events_go_to_ctx_emit_and_to_the_event_table() -> None:
    adapter = OnboardingAdapter(llm_client=onboarding_script())
    runner = FakeRunner(adapter)
    await runner.send("hello")
    await runner.send("I am Ada")
    await runner.send("ada@example.com")

    last = runner.last_context
    assert last.event_types() == [
        "tool.call",
        "tool.result",
        "journey.step_changed",
        "journey.completed",
        "assistant.message",
    ]
    assert last.events_of("tool.call") == [
        {"name": "save_email", "arguments": {"email": "ada@example.com"}}
    ]
    assert last.events_of("journey.step_changed") == [{"from": "collect_email", "to": "complete"}]
    assert last.events_of("assistant.message")[0]["content"] == "All set, Ada!"

    types = await _stored(runner.conversation_id)
    assert types.count("tool.call") == 3
    assert types.count("journey.completed") == 1
    assert types.count("assistant.message") == 3


async def _stored(cid: uuid.UUID) -> list[str]:
    from agent_runtime_framework.django.store.db import run_db

    return await run_db(stored_events, cid)


async def test_a_checkpoint_of_this_run_is_preferred_when_the_run_resumes() -> None:
    llm = ScriptedLLM().call("start").reply("Your name?")
    adapter = OnboardingAdapter(llm_client=llm)
    runner = FakeRunner(adapter)
    await runner.send("hello")  # the table now says collect_name

    # The host restarts an interrupted run that had already checkpointed collect_email.
    ctx = runner.context("bob@example.com")
    await ctx.checkpoint(
        {
            "agent_runtime_framework": 1,
            "agent_key": adapter.key,
            "conversation_id": str(runner.conversation_id),
            "state": {"step": "collect_email", "name": "Bob", "email": "", "_version": 1},
        }
    )
    llm.call("save_email", email="bob@example.com").reply("Done, Bob.")
    result = await runner.send("bob@example.com", ctx=ctx)

    assert result.final_output["complete"] is True
    assert result.final_output["state"]["name"] == "Bob"
    assert llm.calls[-2].tool_names == ["save_email"]

    # A checkpoint of another conversation is ignored.
    other = runner.context("hi again")
    await other.checkpoint(
        {
            "agent_runtime_framework": 1,
            "agent_key": adapter.key,
            "conversation_id": str(uuid.uuid4()),
            "state": {"step": "collect_name", "name": "", "email": "", "_version": 1},
        }
    )
    llm.reply("You are all set already.")
    again = await runner.send("hi again", ctx=other)
    assert again.final_output["step"] == "complete"


async def test_cancellation_between_llm_calls_ends_the_run_cleanly() -> None:
    llm = ScriptedLLM().call("start").reply("never sent")
    adapter = OnboardingAdapter(llm_client=llm)
    runner = FakeRunner(adapter)
    ctx = runner.context("hello")
    ctx.cancel_when = lambda _ctx: len(llm.calls) >= 1
    result = await runner.send("hello", ctx=ctx)

    assert result.final_output["stopped_reason"] == "cancelled"
    assert result.final_output["response"] == ""
    assert len(llm.calls) == 1  # the second LLM call never happened
    # The tool call that ran is durable.
    journey = await Journey.objects.aget(conversation_id=runner.conversation_id)
    assert journey.step == "collect_name"

    # adapter.cancel(ctx) stops a run the same way.
    llm2 = ScriptedLLM().reply("unused")
    adapter2 = OnboardingAdapter(llm_client=llm2)
    ctx2 = FakeRunContext(
        conversation_id=uuid.uuid4(), input_messages=[{"role": "user", "content": "x"}]
    )
    await adapter2.cancel(ctx2)
    result2 = await adapter2.run(ctx2)
    assert result2.final_output["stopped_reason"] == "cancelled" and llm2.calls == []


async def test_a_failing_run_reports_the_real_error_once() -> None:
    llm = (
        ScriptedLLM()
        .call("start")
        .fail(
            LLMRateLimitError(
                "openai returned HTTP 429: slow down", provider="openai", status_code=429
            )
        )
    )
    adapter = OnboardingAdapter(llm_client=llm)
    ctx = FakeRunContext(
        conversation_id=uuid.uuid4(), input_messages=[{"role": "user", "content": "hello"}]
    )
    with pytest.raises(LLMRateLimitError) as raised:
        await adapter.run(ctx)
    info = await adapter.on_error(ctx, raised.value)

    assert info.type == "LLMRateLimitError"
    assert "slow down" in info.message
    assert info.retriable is True
    assert info.details["status_code"] == 429
    assert ctx.event_types().count("error") == 1  # recorded by the run, not again by on_error
    assert (await _stored(ctx.conversation_id)).count("error") == 1
    # The tool call before the failure is committed; the journey is consistent.
    journey = await Journey.objects.aget(conversation_id=ctx.conversation_id)
    assert journey.step == "collect_name"

    bad = LLMBadRequestError("bad request", provider="openai", status_code=400)
    assert (await adapter.on_error(FakeRunContext(), bad)).retriable is False


async def test_a_retried_run_goes_on_under_the_same_run_id() -> None:
    """django_agent_runtime retries a retriable failure under the same run id, with the same
    input: the events number on (no duplicate key), the message is not stored twice, and
    the journey carries on from what the first attempt committed."""
    llm = (
        ScriptedLLM()
        .call("start")
        .fail(LLMRateLimitError("429: slow down", provider="openai", status_code=429))
        .reply("Hi! What's your name?")
    )
    adapter = OnboardingAdapter(llm_client=llm)
    cid, run_id = uuid.uuid4(), uuid.uuid4()
    hello = [{"role": "user", "content": "hello"}]
    first = FakeRunContext(conversation_id=cid, run_id=run_id, input_messages=hello)
    with pytest.raises(LLMRateLimitError):
        await adapter.run(first)
    retry = FakeRunContext(conversation_id=cid, run_id=run_id, input_messages=hello)
    result = await adapter.run(retry)

    assert result.final_output["response"] == "Hi! What's your name?"
    assert result.final_output["step"] == "collect_name"
    contents = [
        m.content
        async for m in JourneyMessage.objects.filter(conversation_id=cid, role="user").order_by(
            "seq"
        )
    ]
    assert contents == ["hello"]
    seqs = [
        s async for s in JourneyEvent.objects.filter(run_id=run_id).values_list("seq", flat=True)
    ]
    assert sorted(seqs) == list(range(len(seqs)))
    assert "assistant.message" in retry.event_types()


async def test_an_error_outside_the_loop_is_recorded_and_emitted() -> None:
    class BrokenAdapter(OnboardingAdapter):
        def get_system_prompt(self, state):  # type: ignore[no-untyped-def]
            raise KeyError("no prompt for this step")

    adapter = BrokenAdapter(llm_client=ScriptedLLM())
    ctx = FakeRunContext(
        conversation_id=uuid.uuid4(), input_messages=[{"role": "user", "content": "hello"}]
    )
    with pytest.raises(KeyError) as raised:
        await adapter.run(ctx)
    info = await adapter.on_error(ctx, raised.value)
    assert info.type == "KeyError" and info.retriable is False
    assert ctx.events_of("error") == [
        {"type": "KeyError", "message": "'no prompt for this step'", "retriable": False}
    ]
    assert (await _stored(ctx.conversation_id)).count("error") == 1


async def test_a_run_without_conversation_id_uses_the_run_id() -> None:
    llm = ScriptedLLM().reply("Hello there")
    adapter = OnboardingAdapter(llm_client=llm, memory=DjangoMemoryManager())
    ctx = FakeRunContext(input_messages=[{"role": "user", "content": "hi"}])
    result = await adapter.run(ctx)
    assert result.final_output["conversation_id"] == str(ctx.run_id)
    assert result.final_messages[-1] == {"role": "assistant", "content": "Hello there"}
    assert result.usage["total_tokens"] == 15
    assert result.artifacts == {"iterations": 1, "tool_calls": []}


def test_the_adapter_package_imports_without_django_configured() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = (
        "import sys, agent_runtime_framework.adapters as a; "
        "assert a.DjangoRuntimeAdapter; "
        "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules), "
        "'django imported'; print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_subclasses_must_implement_the_seed_methods() -> None:
    class Incomplete(DjangoRuntimeAdapter):  # type: ignore[type-arg]
        pass

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]


async def test_the_runners_user_id_makes_the_user_the_conversations_owner() -> None:
    """django_agent_runtime's REST view puts ``user_id`` in the run metadata (a fact of
    its source); our API's ownership checks must see that user as the owner."""
    from django.contrib.auth import get_user_model

    from agent_runtime_framework.django.models import Conversation

    user = await get_user_model().objects.acreate(username="ada-runner")
    runner = FakeRunner(OnboardingAdapter(llm_client=onboarding_script()))
    runner.metadata["user_id"] = user.pk
    await runner.send("hello")
    conversation = await Conversation.objects.aget(id=runner.conversation_id)
    assert conversation.owner_id == user.pk
    journey = await Journey.objects.aget(conversation_id=runner.conversation_id)
    assert journey.owner_id == user.pk
