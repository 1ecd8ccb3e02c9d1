"""register_runtime with both hosts, registration from settings, and the own host's run_turn."""

from __future__ import annotations

import abc
import sys
import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps
from django.test import override_settings

from agent_runtime_framework.adapters import DjangoRuntimeAdapter
from agent_runtime_framework.django.host import registry
from agent_runtime_framework.django.host.registry import (
    RuntimeRegistrationError,
    get_runtime,
    register_runtime,
    register_runtimes_from_settings,
    unregister_runtime,
)
from agent_runtime_framework.django.host.turns import ConversationNotFound, run_turn
from agent_runtime_framework.django.models import JourneyEvent
from agent_runtime_framework.testing import ScriptedLLM
from tests.adapter.runtimes import OnboardingAdapter
from tests.journeys import OnboardingAgent


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """The registry as it was before the test (settings registrations included)."""
    before = registry.registered_runtimes()
    from_settings = dict(registry._FROM_SETTINGS)
    yield
    registry._RUNTIMES.clear()
    registry._RUNTIMES.update(before)
    registry._FROM_SETTINGS.clear()
    registry._FROM_SETTINGS.update(from_settings)


@pytest.fixture
def fake_runtime_packages(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """agent_runtime_core + django_agent_runtime stand-ins, as the real ones behave:
    the registry accepts only AgentRuntime instances."""

    class AgentRuntime(abc.ABC):
        @property
        @abc.abstractmethod
        def key(self) -> str: ...

        @abc.abstractmethod
        async def run(self, ctx: Any) -> Any: ...

    registered: dict[str, Any] = {}

    def register_runtime(runtime: Any, key: str | None = None) -> None:
        if not isinstance(runtime, AgentRuntime):
            raise TypeError(f"{runtime!r} is not an AgentRuntime")
        registered[key or runtime.key] = runtime

    core = types.ModuleType("agent_runtime_core")
    core.AgentRuntime = AgentRuntime  # type: ignore[attr-defined]
    dar = types.ModuleType("django_agent_runtime")
    dar_runtime = types.ModuleType("django_agent_runtime.runtime")
    dar_registry = types.ModuleType("django_agent_runtime.runtime.registry")
    dar_registry.register_runtime = register_runtime  # type: ignore[attr-defined]
    for name, module in {
        "agent_runtime_core": core,
        "django_agent_runtime": dar,
        "django_agent_runtime.runtime": dar_runtime,
        "django_agent_runtime.runtime.registry": dar_registry,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    return types.SimpleNamespace(AgentRuntime=AgentRuntime, registered=registered)


def test_register_runtime_registers_with_both_hosts(
    clean_registry: None, fake_runtime_packages: types.SimpleNamespace
) -> None:
    adapter = OnboardingAdapter()
    assert register_runtime(adapter) is adapter

    assert get_runtime("onboarding-adapter") is adapter
    assert fake_runtime_packages.registered == {"onboarding-adapter": adapter}
    # The adapter became an AgentRuntime (a virtual subclass) without importing it eagerly.
    assert isinstance(adapter, fake_runtime_packages.AgentRuntime)

    # A plain JourneyAgent runs on the own host only (its run() takes an AgentContext).
    agent = OnboardingAgent()
    register_runtime(agent)
    assert get_runtime("onboarding-agent") is agent
    assert "onboarding-agent" not in fake_runtime_packages.registered


def test_without_the_optional_packages_only_the_own_host_registers(
    clean_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "django_agent_runtime", None)  # import fails
    adapter = OnboardingAdapter()
    register_runtime(adapter, key="custom-key")
    assert get_runtime("custom-key") is adapter


def test_duplicate_keys_and_bad_runtimes_are_errors(clean_registry: None) -> None:
    first = OnboardingAdapter()
    register_runtime(first)
    register_runtime(first)  # the same object again: fine
    with pytest.raises(RuntimeRegistrationError, match="already registered"):
        register_runtime(OnboardingAdapter())
    with pytest.raises(RuntimeRegistrationError, match="needs an instance"):
        register_runtime(OnboardingAdapter)
    with pytest.raises(RuntimeRegistrationError, match="no run"):
        register_runtime(object(), key="x")
    with pytest.raises(RuntimeRegistrationError, match="Invalid runtime key"):
        register_runtime(OnboardingAdapter(), key="has spaces")
    assert unregister_runtime("onboarding-adapter") is first
    with pytest.raises(LookupError):
        get_runtime("onboarding-adapter")


def test_runtimes_from_settings_instances_classes_and_factories(
    clean_registry: None, fake_runtime_packages: types.SimpleNamespace
) -> None:
    paths = [
        "tests.adapter.runtimes.adapter_instance",
        "tests.adapter.runtimes.OtherOnboardingAdapter",
        "tests.adapter.runtimes.make_adapter",
    ]
    with override_settings(AGENT_RUNTIME_FRAMEWORK={"RUNTIMES": paths}):
        keys = register_runtimes_from_settings()
        # AppConfig.ready() does the same, and running it again registers nothing twice.
        apps.get_app_config("agent_runtime").ready()
        again = register_runtimes_from_settings()
    expected = [
        "onboarding-adapter-instance",
        "onboarding-adapter-from-class",
        "onboarding-adapter-from-factory",
    ]
    assert keys == expected and again == expected
    for key in expected:
        assert isinstance(get_runtime(key), DjangoRuntimeAdapter)
        assert key in fake_runtime_packages.registered


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tests.adapter.runtimes.adapter_instance", "must be a list"),
        (["tests.adapter.runtimes.nothing_here"], "cannot import"),
        (["no_such_module.thing"], "cannot import"),
        ([42], "dotted paths"),
        (["tests.journeys.PROMPTS"], "not a runtime"),
    ],
)
def test_bad_runtime_settings_say_what_is_wrong(
    clean_registry: None, value: Any, message: str
) -> None:
    with (
        override_settings(AGENT_RUNTIME_FRAMEWORK={"RUNTIMES": value}),
        pytest.raises(RuntimeRegistrationError, match=message),
    ):
        register_runtimes_from_settings()


def test_a_duplicate_key_from_settings_is_an_error(clean_registry: None) -> None:
    register_runtime(OnboardingAdapter(), key="onboarding-adapter-instance")
    with (
        override_settings(
            AGENT_RUNTIME_FRAMEWORK={"RUNTIMES": ["tests.adapter.runtimes.adapter_instance"]}
        ),
        pytest.raises(RuntimeRegistrationError, match="already registered"),
    ):
        register_runtimes_from_settings()


@pytest.mark.django_db(transaction=True)
async def test_the_adapter_runs_on_the_own_host_through_run_turn(clean_registry: None) -> None:
    llm = (
        ScriptedLLM()
        .call("start")
        .reply("Your name?")
        .call("save_name", name="Ada")
        .reply("Your email?")
        .call("save_email", email="ada@example.com")
        .reply("Done!")
    )
    adapter = register_runtime(OnboardingAdapter(llm_client=llm))
    cid = uuid.uuid4()

    first = await run_turn("onboarding-adapter", cid, "hello", session_key="s" * 32)
    assert (first.step, first.progress) == (
        "collect_name",
        {"index": 2, "total": 4, "steps": ["welcome", "collect_name", "collect_email", "complete"]},
    )
    await run_turn("onboarding-adapter", cid, "I am Ada", session_key="s" * 32)
    last = await run_turn(None, cid, "ada@example.com", session_key="s" * 32)

    assert last.reply == "Done!" and last.complete is True
    assert last.journey == last.agent == "onboarding-adapter"
    assert last.state["email"] == "ada@example.com" and last.state["name"] == "Ada"
    assert last.progress["index"] == 4
    # The host's RunContext checkpointed every state change and handed the backend client.
    assert [s for _, s in adapter.state_changes] == ["collect_name", "collect_email", "complete"]

    types_ = [
        t
        async for t in JourneyEvent.objects.filter(conversation_id=cid)
        .order_by("id")
        .values_list("type", flat=True)
    ]
    assert types_.count("tool.call") == 3 and types_.count("journey.completed") == 1
    # Nothing recorded twice by the adapter and the host's emit.
    assert types_.count("assistant.message") == 3

    # Another session cannot use the conversation.
    with pytest.raises(ConversationNotFound):
        await run_turn(None, cid, "hi", session_key="t" * 32)


@pytest.mark.django_db(transaction=True)
async def test_cancel_run_stops_a_plain_journey_agent_on_the_own_host(
    clean_registry: None,
) -> None:
    """One run path: a plain JourneyAgent runs under the host's RunContext like an adapter,
    so cancel_run reaches it before its next model call."""
    from agent_runtime_framework.django.host.turns import cancel_run

    run_id = uuid.uuid4()

    class CancellingLLM(ScriptedLLM):
        async def generate(self, messages: Any, tools: Any = None, **kw: Any) -> Any:
            response = await super().generate(messages, tools=tools, **kw)
            cancel_run(run_id)  # someone cancels while the tool runs
            return response

    llm = CancellingLLM().call("start").reply("never sent")
    register_runtime(OnboardingAgent(llm_client=llm), key="cancellable")
    turn = await run_turn("cancellable", None, "hello", session_key="c" * 32, run_id=run_id)

    assert turn.stopped_reason == "cancelled"
    assert turn.step == "collect_name"  # the tool call before the cancel is committed
    assert len(llm.calls) == 1
