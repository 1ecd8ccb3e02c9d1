"""OpenTelemetry spans: one turn's span tree, GenAI attributes, error status, the host."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agent_runtime_framework import AgentContext
from agent_runtime_framework.django.checks import check_settings
from agent_runtime_framework.django.host.registry import register_runtime, unregister_runtime
from agent_runtime_framework.testing import ScriptedLLM
from agent_runtime_framework.tracing import OpenTelemetryHooks, genai_system, turn_span
from tests.journeys import OnboardingAgent

Local = tuple[TracerProvider, InMemorySpanExporter]


def _llm(*script: Any) -> ScriptedLLM:
    llm = ScriptedLLM(
        script, usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    )
    llm.provider = "openai"  # type: ignore[attr-defined]
    llm.model = "gpt-4o-mini"  # type: ignore[attr-defined]
    return llm


def _by_name(spans: Any) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def _turn(agent: OnboardingAgent, provider: TracerProvider, text: str = "hi") -> Any:
    cid = uuid.uuid4()
    with turn_span(agent.key, cid, "run-1", tracer_provider=provider):
        return await agent.run(AgentContext.for_message(cid, text))


# -- the core: OpenTelemetryHooks + turn_span ------------------------------------------------


async def test_one_turn_gives_the_span_tree_and_genai_attributes(local_spans: Local) -> None:
    provider, exporter = local_spans
    llm = _llm(
        {"id": "call_1", "type": "function", "function": {"name": "start", "arguments": "{}"}},
        "What's your name?",
    )
    agent = OnboardingAgent(llm_client=llm, hooks=OpenTelemetryHooks(llm, tracer_provider=provider))
    cid = uuid.uuid4()
    with turn_span(agent.key, cid, "run-1", tracer_provider=provider):
        result = await agent.run(AgentContext.for_message(cid, "hi"))
    assert result.response == "What's your name?"

    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == [
        "chat gpt-4o-mini",
        "execute_tool start",
        "chat gpt-4o-mini",
        "invoke_agent onboarding-agent",
    ]
    turn = spans[-1]
    assert turn.parent is None
    for span in spans[:-1]:  # model and tool calls are children of the turn, one trace
        assert _parent_id(span) == turn.context.span_id
        assert span.context.trace_id == turn.context.trace_id

    first_chat, tool, last_chat = spans[0], spans[1], spans[2]
    assert first_chat.kind == trace.SpanKind.CLIENT
    assert dict(first_chat.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "arf.tools.offered": 1,
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.response.finish_reasons": ("tool_calls",),
    }
    assert last_chat.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert dict(tool.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "start",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": "call_1",
        "arf.tool.status": "ok",
    }
    assert tool.status.status_code == StatusCode.UNSET
    assert turn.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert turn.attributes["gen_ai.agent.name"] == "onboarding-agent"
    assert turn.attributes["gen_ai.conversation.id"] == str(cid)
    assert turn.attributes["arf.run_id"] == "run-1"
    assert turn.attributes["arf.stopped_reason"] == "text_response"
    assert turn.attributes["arf.step"] == "collect_name"
    assert turn.attributes["arf.tool_calls"] == 1
    assert [(e.name, dict(e.attributes or {})) for e in turn.events] == [
        ("journey.step_changed", {"from": "welcome", "to": "collect_name"})
    ]


async def test_no_argument_values_or_text_on_spans(local_spans: Local) -> None:
    provider, exporter = local_spans
    llm = _llm().call("start").reply("Name?").call("save_name", name="Ada Secret").reply("ok")
    agent = OnboardingAgent(llm_client=llm, hooks=OpenTelemetryHooks(llm, tracer_provider=provider))
    cid = uuid.uuid4()
    for text in ("hi", "I am Ada Secret"):
        with turn_span(agent.key, cid, tracer_provider=provider):
            await agent.run(AgentContext.for_message(cid, text))
    dumped = repr(
        [(s.attributes, [e.attributes for e in s.events]) for s in exporter.get_finished_spans()]
    )
    assert "Secret" not in dumped


async def test_a_raising_tool_sets_the_tool_span_status(local_spans: Local) -> None:
    provider, exporter = local_spans

    class Failing(OnboardingAgent):
        async def execute_tool(self, tools: Any, name: str, arguments: dict[str, Any]) -> Any:
            raise RuntimeError("backend down")

    llm = _llm().call("start").reply("Sorry, try later.")
    agent = Failing(llm_client=llm, hooks=OpenTelemetryHooks(llm, tracer_provider=provider))
    await _turn(agent, provider)  # production mode: the error becomes the tool result
    spans = _by_name(exporter.get_finished_spans())
    tool = spans["execute_tool start"][0]
    assert tool.status.status_code == StatusCode.ERROR
    assert "RuntimeError: backend down" in (tool.status.description or "")
    assert tool.attributes["arf.tool.status"] == "error"
    assert tool.attributes["error.type"] == "RuntimeError"
    assert [e.name for e in tool.events] == ["exception"]
    turn = spans["invoke_agent onboarding-agent"][0]
    assert turn.status.status_code == StatusCode.UNSET  # the turn itself went on


async def test_a_rejected_call_is_a_span_with_status_rejected(local_spans: Local) -> None:
    provider, exporter = local_spans
    llm = _llm().call("nope", secret="x").reply("Hello!")
    agent = OnboardingAgent(llm_client=llm, hooks=OpenTelemetryHooks(llm, tracer_provider=provider))
    await _turn(agent, provider)
    spans = _by_name(exporter.get_finished_spans())
    rejected = spans["execute_tool nope"][0]
    assert rejected.attributes["arf.tool.status"] == "rejected"
    assert rejected.attributes["error.type"] == "tool_call_rejected"
    assert rejected.status.status_code == StatusCode.ERROR
    assert rejected.status.description == "tool call rejected: tool not offered at this step"


async def test_a_failing_model_call_sets_error_status(local_spans: Local) -> None:
    provider, exporter = local_spans
    llm = _llm().fail(TimeoutError("llm slow"))
    agent = OnboardingAgent(llm_client=llm, hooks=OpenTelemetryHooks(llm, tracer_provider=provider))
    with pytest.raises(TimeoutError):
        await _turn(agent, provider)
    chat, turn = exporter.get_finished_spans()
    assert chat.name == "chat gpt-4o-mini"
    assert chat.status.status_code == StatusCode.ERROR
    assert chat.attributes["error.type"] == "TimeoutError"
    assert turn.status.status_code == StatusCode.ERROR
    assert [e.name for e in turn.events] == ["exception"]
    assert _parent_id(chat) == turn.context.span_id


async def test_a_cancelled_turn_ends_the_open_model_span(local_spans: Local) -> None:
    provider, exporter = local_spans
    started = asyncio.Event()

    class Slow:
        provider = "anthropic"
        model = "claude-x"

        async def generate(self, messages: Any, tools: Any = None, **kw: Any) -> Any:
            started.set()
            await asyncio.sleep(30)

    slow = Slow()
    agent = OnboardingAgent(
        llm_client=slow, hooks=OpenTelemetryHooks(slow, tracer_provider=provider)
    )
    task = asyncio.ensure_future(_turn(agent, provider))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    chat, turn = exporter.get_finished_spans()
    assert chat.name == "chat claude-x" and chat.attributes["gen_ai.system"] == "anthropic"
    assert chat.status.status_code == StatusCode.ERROR
    assert turn.status.status_code == StatusCode.ERROR


async def test_spans_are_children_of_the_current_span_without_a_turn_span(
    local_spans: Local,
) -> None:
    provider, exporter = local_spans
    llm = _llm().call("start").reply("Name?")
    agent = OnboardingAgent(llm_client=llm)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /api/chat") as request:
        await agent.run(
            AgentContext.for_message(uuid.uuid4(), "hi"),
            hooks=OpenTelemetryHooks(llm, tracer_provider=provider),
        )
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans][-1] == "POST /api/chat"
    for span in spans[:-1]:
        assert _parent_id(span) == request.get_span_context().span_id
    assert "arf.stopped_reason" not in (spans[-1].attributes or {})  # not our span


async def test_one_hooks_object_keeps_concurrent_turns_apart(local_spans: Local) -> None:
    provider, exporter = local_spans
    gate = asyncio.Event()

    class Gated(ScriptedLLM):
        async def generate(self, messages: Any, tools: Any = None, **kw: Any) -> Any:
            await gate.wait()
            return await super().generate(messages, tools, **kw)

    llm = Gated(["Hello!", "Hello!"])
    hooks = OpenTelemetryHooks(llm, model="m", system="openai", tracer_provider=provider)
    agent = OnboardingAgent(llm_client=llm, hooks=hooks)
    tasks = [asyncio.ensure_future(_turn(agent, provider)) for _ in range(2)]
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(*tasks)
    spans = exporter.get_finished_spans()
    turns = [s for s in spans if s.name.startswith("invoke_agent")]
    chats = [s for s in spans if s.name == "chat m"]
    assert len(turns) == 2 and len(chats) == 2
    assert {_parent_id(c) for c in chats} == {t.context.span_id for t in turns}
    assert all(c.status.status_code == StatusCode.UNSET for c in chats)


def test_genai_system_of_the_framework_clients() -> None:
    class C:
        provider = "azure"

    assert genai_system(C()) == "az.ai.openai"
    assert genai_system(object()) == "_OTHER"


# -- the Django host -------------------------------------------------------------------------


@pytest.fixture
def traced_agent() -> Iterator[OnboardingAgent]:
    llm = _llm().call("start").reply("What's your name?")
    agent = OnboardingAgent(llm_client=llm)
    register_runtime(agent)
    yield agent
    unregister_runtime(agent.key)


@pytest.mark.django_db
async def test_the_host_traces_a_turn_inside_the_request_span(
    settings: Any, spans: InMemorySpanExporter, traced_agent: OnboardingAgent
) -> None:
    from agent_runtime_framework.django.host.turns import run_turn

    settings.AGENT_RUNTIME_FRAMEWORK = {"TRACING": True}
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("POST /agent/chat") as request:
        turn = await run_turn("onboarding-agent", None, "hi")
    found = _by_name(spans.get_finished_spans())
    root = found["invoke_agent onboarding-agent"][0]
    assert _parent_id(root) == request.get_span_context().span_id
    assert root.attributes["gen_ai.conversation.id"] == turn.conversation_id
    assert root.attributes["arf.run_id"] == turn.run_id
    assert root.attributes["arf.journey"] == "onboarding-agent"
    assert root.attributes["arf.step"] == "collect_name"
    assert root.attributes["arf.complete"] is False
    assert root.attributes["gen_ai.usage.input_tokens"] == 24
    assert [_parent_id(s) for s in found["chat gpt-4o-mini"]] == [root.context.span_id] * 2
    assert _parent_id(found["execute_tool start"][0]) == root.context.span_id


@pytest.mark.django_db
async def test_the_host_makes_no_spans_when_tracing_is_off(
    settings: Any, spans: InMemorySpanExporter, traced_agent: OnboardingAgent
) -> None:
    from agent_runtime_framework.django.host.tracing import tracing_enabled, tracing_hooks
    from agent_runtime_framework.django.host.turns import run_turn

    settings.AGENT_RUNTIME_FRAMEWORK = {}
    assert not tracing_enabled() and tracing_hooks(traced_agent) is None
    await run_turn("onboarding-agent", None, "hi")
    assert spans.get_finished_spans() == ()


def test_tracing_and_redaction_settings_are_checked() -> None:
    ok = {
        "TRACING": True,
        "REDACT": "agent_runtime_framework.django.store.redaction.default_redactor",
        "REDACT_MESSAGES": True,
    }
    assert check_settings(ok) == []
    assert check_settings({"REDACT": str.upper}) == []
    bad = [
        {"TRACING": "yes"},
        {"REDACT_MESSAGES": 1},
        {"REDACT": "no.such.module.redactor"},
        {"REDACT": 42},
        {"REDACT_MESSAGES": True},
    ]
    for raw in bad:
        assert [m.id for m in check_settings(raw)] == ["agent_runtime.E006"], raw


@pytest.mark.django_db
async def test_the_host_traces_an_adapter_turn(settings: Any, spans: InMemorySpanExporter) -> None:
    from agent_runtime_framework.django.host.turns import run_turn
    from tests.adapter.runtimes import OnboardingAdapter

    settings.AGENT_RUNTIME_FRAMEWORK = {"TRACING": True}
    adapter = OnboardingAdapter(llm_client=_llm().call("start").reply("Name?"))
    register_runtime(adapter)
    try:
        await run_turn(adapter.key, None, "hi")
    finally:
        unregister_runtime(adapter.key)
    found = _by_name(spans.get_finished_spans())
    root = found["invoke_agent onboarding-adapter"][0]
    assert [_parent_id(s) for s in found["chat gpt-4o-mini"]] == [root.context.span_id] * 2
    assert _parent_id(found["execute_tool start"][0]) == root.context.span_id
