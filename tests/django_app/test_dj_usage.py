"""Issue 14, part 7: token usage and cost per turn, journey and agent in the admin (prices in
settings), and per-user limits over HTTP (429 with Retry-After). Real turns through the
host and the JSON API, on SQLite or PostgreSQL (``DATABASE_URL``)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from agent_runtime_framework.django.checks import check_settings
from agent_runtime_framework.django.host.registry import register_runtime, unregister_runtime
from agent_runtime_framework.django.host.turns import run_turn_sync
from agent_runtime_framework.django.host.usage import (
    Limits,
    UsageLimitExceeded,
    check_limits_sync,
    conversation_usage,
    cost_of,
)
from agent_runtime_framework.django.models import (
    Conversation,
    Journey,
    JourneyEvent,
    JourneyMessage,
)
from agent_runtime_framework.django.store.orm import DjangoMemoryManager
from agent_runtime_framework.llm.base import LLMServerError
from agent_runtime_framework.testing import ScriptedLLM
from example_project.journeys.front_desk import FRONT_DESK_KEY, build_front_desk
from tests.journeys import OnboardingAgent

pytestmark = pytest.mark.django_db(transaction=True)

USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
PRICES = {"gpt-4o-mini": {"input": 0.15, "output": 0.60}, "gpt-4o": {"input": 2.5, "output": 10}}
FUNNEL = "admin:agent_runtime_journey_funnel_agent"
CHANGE = "admin:agent_runtime_journey_change"
KEY = "onboarding-agent"


@pytest.fixture
def onboarding() -> Iterator[ScriptedLLM]:
    llm = ScriptedLLM(usage=USAGE, model="gpt-4o-mini")
    agent = OnboardingAgent(llm_client=llm)
    register_runtime(agent)
    yield llm
    unregister_runtime(agent.key)


@pytest.fixture
def priced(settings: Any) -> None:
    settings.AGENT_RUNTIME_FRAMEWORK = {"PRICES": PRICES}


def _limits(settings: Any, **limits: Any) -> None:
    settings.AGENT_RUNTIME_FRAMEWORK = {"LIMITS": limits, "ALLOW_ANONYMOUS": True}


def _user(name: str, **extra: Any) -> Any:
    return get_user_model().objects.create_user(name, f"{name}@example.com", "pw", **extra)


def _client(user: Any = None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _post(client: Client, path: str, body: dict[str, Any], **headers: Any) -> Any:
    return client.post(
        f"/api/{path}", json.dumps(body), content_type="application/json", headers=headers
    )


def _first_turn(llm: ScriptedLLM) -> None:
    """The onboarding's first turn: two model calls (the tool, then the reply)."""
    llm.call("start").reply("What is your name?")


def _usage_events(cid: Any) -> list[JourneyEvent]:
    return list(
        JourneyEvent.objects.filter(
            conversation_id=cid, type__in=["assistant.message", "llm.usage"]
        ).order_by("id")
    )


# -- recording -------------------------------------------------------------------------------


def test_a_turn_records_its_tokens_and_model_on_the_reply(onboarding: ScriptedLLM) -> None:
    user = _user("ada")
    _first_turn(onboarding)
    turn = run_turn_sync(KEY, None, "hi", user)
    assert turn.usage == {"prompt_tokens": 200, "completion_tokens": 40, "total_tokens": 240}
    [reply] = _usage_events(turn.conversation_id)
    assert reply.type == "assistant.message"
    assert reply.payload["usage"] == turn.usage
    assert reply.payload["model"] == "gpt-4o-mini" and reply.payload["iterations"] == 2
    journey = Journey.objects.get(conversation_id=turn.conversation_id)
    assert (journey.turns, journey.total_tokens) == (1, 240)


def test_a_failed_turn_still_records_what_it_spent(onboarding: ScriptedLLM) -> None:
    user = _user("ada")
    onboarding.call("start").fail(LLMServerError("down", provider="test"))
    with pytest.raises(LLMServerError):
        run_turn_sync(KEY, uuid.uuid4(), "hi", user)
    [spent] = JourneyEvent.objects.filter(type="llm.usage")
    assert spent.payload["usage"] == USAGE and spent.payload["model"] == "gpt-4o-mini"
    assert spent.conversation.owner == user  # it counts against the user's limits


def test_a_routed_turn_records_the_router_and_the_journey_apart(settings: Any) -> None:
    settings.AGENT_RUNTIME_FRAMEWORK = {"PRICES": PRICES}
    router_llm = ScriptedLLM(usage=USAGE, model="gpt-4o-mini")
    journey_llm = ScriptedLLM(usage=USAGE, model="gpt-4o")
    desk = build_front_desk(router_llm)
    desk.memory = DjangoMemoryManager()
    for journey in desk.agents.values():
        journey.memory = desk.memory
        journey._memory_is_default = False
    quote = next(a for a in desk.agents.values() if a.key == "quote")
    quote.llm_client = journey_llm
    register_runtime(desk)
    try:
        router_llm.call("request_quote")
        journey_llm.call("choose_cover", cover="car").reply("How old is the driver?")
        turn = run_turn_sync(FRONT_DESK_KEY, None, "a quote for my car", _user("ada"))
    finally:
        unregister_runtime(FRONT_DESK_KEY)
    routing, reply = _usage_events(turn.conversation_id)
    assert (routing.type, routing.payload["model"], routing.payload["usage"]) == (
        "llm.usage",
        "gpt-4o-mini",
        USAGE,
    )
    assert "journey" not in routing.payload
    assert (reply.type, reply.payload["model"], reply.payload["journey"]) == (
        "assistant.message",
        "gpt-4o",
        "quote",
    )
    assert reply.payload["usage"]["total_tokens"] == 240
    per_journey = conversation_usage(turn.conversation_id)
    assert per_journey["*"].total_tokens == 360
    assert per_journey["quote"].total_tokens == 240
    # 100 in / 20 out at gpt-4o-mini, 200 in / 40 out at gpt-4o.
    assert per_journey["*"].cost == Decimal("0.000027") + Decimal("0.0009")
    assert per_journey["quote"].cost == Decimal("0.0009")


def test_cost_of_uses_prices_per_million_tokens() -> None:
    table = {"m": (Decimal("0.15"), Decimal("0.60"))}
    assert cost_of("m", 1_000_000, 1_000_000, table) == Decimal("0.75")
    assert cost_of("m", 200, 40, table) == Decimal("0.000054")
    assert cost_of("other", 200, 40, table) is None


# -- the admin -------------------------------------------------------------------------------


def _admin() -> Client:
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    return _client(admin)


def test_usage_and_cost_per_turn_journey_and_agent_in_the_admin(
    onboarding: ScriptedLLM, priced: None, django_assert_max_num_queries: Any
) -> None:
    user = _user("ada")
    _first_turn(onboarding)
    first = run_turn_sync(KEY, None, "hi", user)
    onboarding.call("save_name", name="Ada").reply("Your email?")
    run_turn_sync(None, first.conversation_id, "Ada", user)
    admin = _admin()
    journey = Journey.objects.get(conversation_id=first.conversation_id)

    response = admin.get(reverse(CHANGE, args=[journey.pk]))
    html = response.content.decode()
    # Per journey: 2 turns, 4 calls of 100 in / 20 out: 400 * 0.15 + 80 * 0.60 per million.
    assert "Usage and cost" in html
    assert "<th>Total</th><th>2</th><th>400</th><th>80</th><th>480</th><th>0.000108</th>" in html
    # Per turn, on the reply event of each turn.
    assert html.count("240 tokens (200 in / 40 out) · gpt-4o-mini · cost 0.000054") == 2

    # Per agent, on its funnel page.
    response = admin.get(reverse(FUNNEL, args=[KEY]))
    html = response.content.decode()
    assert "<td>gpt-4o-mini</td><td>2</td><td>400</td><td>80</td><td>480</td>" in html
    tomorrow = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
    response = admin.get(reverse(FUNNEL, args=[KEY]), {"since": tomorrow})
    assert "No token usage recorded." in response.content.decode()


def test_the_admin_pages_query_counts_do_not_grow_with_usage(
    onboarding: ScriptedLLM, priced: None, django_assert_max_num_queries: Any
) -> None:
    user = _user("ada")
    admin = _admin()

    def play(conversations: int) -> Journey:
        for _ in range(conversations):
            _first_turn(onboarding)
            cid = run_turn_sync(KEY, None, "hi", user).conversation_id
            for name in ("Ada", "Grace"):
                onboarding.reply(f"Hello {name}")
                run_turn_sync(None, cid, name, user)
        return Journey.objects.filter(owner=user).latest("id")

    counts = []
    for more in (1, 5):
        journey = play(more)
        for url in (reverse(CHANGE, args=[journey.pk]), reverse(FUNNEL, args=[KEY])):
            admin.get(url)  # the admin's first visit fills its caches (content types)
            with django_assert_max_num_queries(12) as captured:
                assert admin.get(url).status_code == 200
            counts.append(len(captured.captured_queries))
    assert counts[:2] == counts[2:]  # 1 then 6 conversations: the same queries


# -- limits over HTTP ----------------------------------------------------------------------


def test_a_user_over_the_turn_limit_gets_429_and_nothing_is_stored(
    onboarding: ScriptedLLM, settings: Any
) -> None:
    _limits(settings, turns=2, period=3600)
    ada, bob = _user("ada"), _user("bob")
    client = _client(ada)
    _first_turn(onboarding)
    created = _post(client, "conversations", {"agent": KEY, "message": "hi"})
    assert created.status_code == 201, created.content
    cid = created.json()["conversation_id"]
    onboarding.reply("And your name?")
    assert _post(client, f"conversations/{cid}/messages", {"message": "well"}).status_code == 200
    messages = JourneyMessage.objects.filter(conversation_id=cid).count()

    refused = _post(client, f"conversations/{cid}/messages", {"message": "Ada"})
    assert refused.status_code == 429
    retry = int(refused["Retry-After"])
    assert 3590 <= retry <= 3600
    error = refused.json()["error"]
    assert error["code"] == "usage_limit_exceeded"
    assert error["details"] == {
        "limit": "turns",
        "used": 2,
        "allowed": 2,
        "period_seconds": 3600.0,
        "retry_after": retry,
        "conversation_id": cid,
    }
    assert "2 of 2 turns in 1 hour" in error["message"]
    # Refused, not half-stored: no message, no new conversation, the model not called.
    assert JourneyMessage.objects.filter(conversation_id=cid).count() == messages
    started = _post(client, "conversations", {"agent": KEY, "message": "hi again"})
    assert started.status_code == 429
    assert Conversation.objects.filter(owner=ada).count() == 1
    assert onboarding.remaining == 0 and len(onboarding.calls) == 3

    # Another user is not affected.
    _first_turn(onboarding)
    assert _post(_client(bob), "conversations", {"agent": KEY, "message": "hi"}).status_code == 201

    # The window slides: once the oldest turn is older than the period, one more turn fits.
    first_run = JourneyEvent.objects.filter(conversation_id=cid, type="assistant.message")
    oldest = first_run.order_by("id").first()
    assert oldest is not None
    JourneyEvent.objects.filter(run_id=oldest.run_id).update(
        created_at=timezone.now() - dt.timedelta(seconds=3601)
    )
    onboarding.call("save_name", name="Ada").reply("Your email?")
    again = _post(client, f"conversations/{cid}/messages", {"message": "Ada"})
    assert again.status_code == 200, again.content


def test_the_token_limit_and_retry_after_of_the_oldest_turn(
    onboarding: ScriptedLLM, settings: Any
) -> None:
    _limits(settings, tokens=300, period=86400)
    client = _client(_user("ada"))
    _first_turn(onboarding)
    cid = _post(client, "conversations", {"agent": KEY, "message": "hi"}).json()[
        "conversation_id"
    ]  # 240 tokens
    onboarding.reply("And your name?")
    assert _post(client, f"conversations/{cid}/messages", {"message": "x"}).status_code == 200
    # 360 tokens now: over 300. The oldest turn was 86000 s ago: the window frees in 400 s.
    JourneyEvent.objects.filter(type="assistant.message").order_by("id").filter(
        id=JourneyEvent.objects.filter(type="assistant.message").order_by("id")[0].id
    ).update(created_at=timezone.now() - dt.timedelta(seconds=86000))
    refused = _post(client, f"conversations/{cid}/messages", {"message": "Ada"})
    assert refused.status_code == 429
    assert 390 <= int(refused["Retry-After"]) <= 400
    details = refused.json()["error"]["details"]
    assert (details["limit"], details["used"], details["allowed"]) == ("tokens", 360, 300)


def test_anonymous_callers_are_limited_per_session_and_staff_not_at_all(
    onboarding: ScriptedLLM, settings: Any
) -> None:
    _limits(settings, turns=1)
    first, second = Client(), Client()
    _first_turn(onboarding)
    cid = _post(first, "conversations", {"agent": KEY, "message": "hi"}).json()["conversation_id"]
    assert _post(first, f"conversations/{cid}/messages", {"message": "x"}).status_code == 429
    _first_turn(onboarding)
    assert _post(second, "conversations", {"agent": KEY, "message": "hi"}).status_code == 201

    staff = _client(_user("sam", is_staff=True))
    for _ in range(2):
        _first_turn(onboarding)
        assert _post(staff, "conversations", {"agent": KEY, "message": "hi"}).status_code == 201


def test_a_retried_request_is_replayed_even_over_the_limit(
    onboarding: ScriptedLLM, settings: Any
) -> None:
    _limits(settings, turns=2)
    client = _client(_user("ada"))
    _first_turn(onboarding)
    cid = _post(client, "conversations", {"agent": KEY, "message": "hi"}).json()["conversation_id"]
    onboarding.reply("And your name?")
    path = f"conversations/{cid}/messages"
    answered = _post(client, path, {"message": "x"}, idempotency_key="k-1")
    assert answered.status_code == 200
    replayed = _post(client, path, {"message": "x"}, idempotency_key="k-1")
    assert replayed.status_code == 200 and replayed["Idempotent-Replayed"] == "true"
    assert replayed.json() == answered.json()
    assert _post(client, path, {"message": "y"}, idempotency_key="k-2").status_code == 429


def test_the_limit_check_is_one_query(
    onboarding: ScriptedLLM, django_assert_num_queries: Any
) -> None:
    ada = _user("ada")
    for _ in range(3):
        _first_turn(onboarding)
        run_turn_sync(KEY, None, "hi", ada)
    with django_assert_num_queries(1):
        check_limits_sync(ada, ada.pk, "", Limits(turns=5, tokens=None, period=3600))
    with django_assert_num_queries(1), pytest.raises(UsageLimitExceeded) as raised:
        check_limits_sync(ada, ada.pk, "", Limits(turns=None, tokens=720, period=3600))
    assert (raised.value.limit, raised.value.used) == ("tokens", 720)
    sam = _user("sam", is_staff=True)
    with django_assert_num_queries(0):  # staff are not limited: nothing to ask
        check_limits_sync(sam, sam.pk, "", Limits(1, None, 60))


# -- checks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        {"PRICES": {"gpt-4o-mini": {"input": -1}}},
        {"PRICES": {"gpt-4o-mini": {"in": 0.1}}},
        {"PRICES": ["gpt-4o-mini"]},
        {"LIMITS": {"turns": 0}},
        {"LIMITS": {"period": 60}},
        {"LIMITS": {"tokens": 10, "period": 0}},
        {"LIMITS": {"turns": True}},
        {"LIMITS": 100},
    ],
)
def test_bad_prices_and_limits_are_reported(raw: dict[str, Any]) -> None:
    assert [e.id for e in check_settings(raw)] == ["agent_runtime.E006"]


def test_good_prices_and_limits_pass() -> None:
    raw = {"PRICES": PRICES, "LIMITS": {"turns": 100, "tokens": 200000, "period": 86400}}
    assert check_settings(raw) == []
    assert check_settings({"LIMITS": None, "PRICES": {}}) == []
