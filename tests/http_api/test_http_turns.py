"""Turns over HTTP: concurrent posts, idempotent retries, a failing provider, live events."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import httpx

from agent_runtime_framework import JourneyConfig
from agent_runtime_framework.django.host import registry
from agent_runtime_framework.django.models import Journey, JourneyEvent, JourneyMessage
from agent_runtime_framework.django.store.orm import DjangoMemoryManager
from agent_runtime_framework.llm.base import LLMServerError
from tests.adapter.runtimes import OnboardingAdapter
from tests.journeys import OnboardingAgent


def _parallel(*calls: Any) -> list[Any]:
    """Run the callables at (nearly) the same time in threads; their results in order."""
    results: list[Any] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(index: int, call: Any) -> None:
        barrier.wait()
        results[index] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def _user_messages(cid: str) -> list[str]:
    return list(
        JourneyMessage.objects.filter(conversation_id=cid, role="user")
        .order_by("seq")
        .values_list("content", flat=True)
    )


def test_a_concurrent_post_gets_409_with_retry_after(
    make_api: Any, users: Any, agents: Any, llm: Any
) -> None:
    api = make_api(users[0])
    other = make_api(users[0])  # the same user in a second tab
    cid = api.start("onboarding-agent").json()["conversation_id"]
    llm.delay = 0.6

    first, second = _parallel(lambda: api.say(cid, "hello"), lambda: other.say(cid, "hello again"))
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [200, 409], (first.text, second.text)
    busy = first if first.status_code == 409 else second
    assert busy.json()["error"]["code"] == "conversation_busy"
    assert int(busy.headers["Retry-After"]) >= 1
    # The losing message was not stored; the winner's turn is intact.
    assert len(_user_messages(cid)) == 1
    llm.delay = 0
    assert api.say(cid, "Ada").json()["step"] == "collect_email"


def test_an_idempotent_retry_returns_the_first_response(
    make_api: Any, users: Any, agents: Any, llm: Any
) -> None:
    api = make_api(users[0])
    cid = api.start("onboarding-agent").json()["conversation_id"]
    first = api.say(cid, "hello", headers={"Idempotency-Key": "turn-1"})
    calls = llm.calls
    retry = api.say(cid, "hello", headers={"Idempotency-Key": "turn-1"})

    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert llm.calls == calls  # the turn did not run twice
    assert _user_messages(cid) == ["hello"]
    # The stored response does not show up as an event of the conversation's stream.
    assert (
        not JourneyEvent.objects.filter(conversation_id=cid, type__startswith="http.")
        .exclude(payload__status="done")
        .exists()
    )

    # Another key is another turn; the same key elsewhere is unrelated.
    assert (
        api.say(cid, "Ada", headers={"Idempotency-Key": "turn-2"}).json()["step"] == "collect_email"
    )
    other = api.start("onboarding-agent").json()["conversation_id"]
    assert (
        api.say(other, "hi", headers={"Idempotency-Key": "turn-1"}).json()["step"] == "collect_name"
    )


def test_a_duplicate_while_the_first_runs_gets_409(
    make_api: Any, users: Any, agents: Any, llm: Any
) -> None:
    api = make_api(users[0])
    twin = make_api(users[0])
    cid = api.start("onboarding-agent").json()["conversation_id"]
    llm.delay = 0.5
    key = {"Idempotency-Key": "same-request"}

    def late_twin() -> httpx.Response:
        time.sleep(0.2)
        return twin.say(cid, "hello", headers=key)

    first, duplicate = _parallel(lambda: api.say(cid, "hello", headers=key), late_twin)
    assert first.status_code == 200, first.text
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "request_in_progress"
    assert duplicate.headers["Retry-After"] == "1"
    llm.delay = 0
    assert twin.say(cid, "hello", headers=key).json() == first.json()
    assert _user_messages(cid) == ["hello"]


def test_a_provider_failure_mid_turn_is_502_and_leaves_a_consistent_journey(
    make_api: Any, users: Any, agents: Any, llm: Any
) -> None:
    api = make_api(users[0])
    cid = api.start("onboarding-agent").json()["conversation_id"]
    # The model runs the start tool, then fails on its next call.
    llm.fail_next(
        LLMServerError("openai returned HTTP 503: overloaded", provider="openai", status_code=503),
        after=1,
    )
    response = api.say(cid, "hello", headers={"Idempotency-Key": "k1"})

    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "llm_error"
    assert error["details"]["retryable"] is True and error["details"]["status_code"] == 503
    assert "overloaded" in error["message"]

    # What the tool call changed was committed with the messages that explain it; nothing
    # half-way: every tool call in the history has its result.
    journey = Journey.objects.get(conversation_id=cid, agent_key="onboarding-agent")
    assert journey.step == "collect_name"
    history = list(JourneyMessage.objects.filter(conversation_id=cid).order_by("seq"))
    calls = {c["id"] for m in history if m.tool_calls for c in m.tool_calls}
    answered = {m.tool_call_id for m in history if m.role == "tool"}
    assert calls == answered
    assert [m.content for m in history if m.role == "user"] == ["hello"]
    assert JourneyEvent.objects.filter(conversation_id=cid, type="error").count() == 1

    # The conversation is not stuck, and the failed request's key can be retried.
    retried = api.say(cid, "Ada", headers={"Idempotency-Key": "k1"})
    assert retried.status_code == 200 and retried.json()["step"] == "collect_email"


def test_no_model_configured_is_503(make_api: Any, users: Any, settings: Any) -> None:
    from agent_runtime_framework.django.host import turns as host

    host._reset_host_llm()
    settings.AGENT_RUNTIME_FRAMEWORK = {"LLM": None, "ALLOW_OFFLINE_STANDIN": False}
    agent = OnboardingAgent()  # no model: the host resolves one
    registry.register_runtime(agent, key="no-model")
    try:
        api = make_api(users[0])
        response = api.start("no-model", "hello")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "llm_not_configured"
        assert response.json()["error"]["details"]["conversation_id"]
    finally:
        registry.unregister_runtime("no-model")
        host._reset_host_llm()


def test_an_adapter_runs_over_http(make_api: Any, users: Any, llm: Any) -> None:
    adapter = OnboardingAdapter(llm_client=llm, memory=DjangoMemoryManager())
    registry.register_runtime(adapter)
    try:
        api = make_api(users[0])
        first = api.start("onboarding-adapter", "hello").json()
        cid = first["conversation_id"]
        api.say(cid, "Ada")
        last = api.say(cid, "ada@example.com").json()
        assert last["complete"] is True and last["journey"] == "onboarding-adapter"
        assert last["state"]["name"] == "Ada"
        assert api.get(f"conversations/{cid}").json()["progress"]["index"] == 4
    finally:
        registry.unregister_runtime("onboarding-adapter")


# -- the event stream ---------------------------------------------------------------------


class SSEReader:
    """Reads a text/event-stream response into (id, event, data) tuples."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()
        self.comments: list[str] = []

    def next(self) -> tuple[str | None, str, Any]:
        event_id, event_type, data = None, "message", []
        for line in self.lines:
            if line == "":
                if data:
                    return event_id, event_type, json.loads("\n".join(data))
                continue
            if line.startswith(":"):
                self.comments.append(line)
            elif line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("event: "):
                event_type = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        raise EOFError("stream ended")

    def until(self, event_type: str, limit: int = 50) -> list[tuple[str | None, str, Any]]:
        seen = []
        for _ in range(limit):
            item = self.next()
            seen.append(item)
            if item[1] == event_type:
                return seen
        raise AssertionError(f"no {event_type} in {seen}")


def test_events_stream_resumes_after_last_event_id(make_api: Any, users: Any, agents: Any) -> None:
    api = make_api(users[0])
    turn = api.start("onboarding-agent", "hello").json()
    cid = turn["conversation_id"]
    url = api.url(f"conversations/{cid}/events")

    with api.client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        events = SSEReader(response).until("assistant.message")
    assert [e[1] for e in events] == [
        "run.started",
        "tool.call",
        "tool.result",
        "journey.step_changed",
        "assistant.message",
    ]
    assert events[0][2]["message"] == "hello"
    # Each event names its run (the turn's run_id), so a page attributes it to its turn.
    runs = {e[2].pop("run_id") for e in events}
    assert runs == {turn["run_id"]}
    assert events[1][2] == {"name": "start", "arguments": {}}
    assert events[3][2] == {"from": "welcome", "to": "collect_name"}
    ids = [int(e[0]) for e in events]
    assert ids == sorted(ids)

    api.say(cid, "Ada")
    # Resume after the first turn's last event: only the second turn's events.
    with api.client.stream("GET", url, headers={"Last-Event-ID": str(ids[-1])}) as response:
        second = SSEReader(response).until("assistant.message")
    assert [e[1] for e in second] == [
        "run.started",
        "tool.call",
        "tool.result",
        "journey.step_changed",
        "assistant.message",
    ]
    assert second[1][2]["arguments"] == {"name": "Ada"}
    # The query parameter works as well (for clients that cannot set headers).
    with api.client.stream("GET", url, params={"last_event_id": str(ids[2])}) as response:
        assert SSEReader(response).next()[1] == "journey.step_changed"


def test_live_deltas_and_events_arrive_while_a_turn_runs(
    make_api: Any, users: Any, llm: Any
) -> None:
    streaming = OnboardingAgent(
        llm_client=llm, memory=DjangoMemoryManager(), config=JourneyConfig(stream=True)
    )
    registry.register_runtime(streaming, key="streaming")
    try:
        api = make_api(users[0])
        cid = api.start("streaming").json()["conversation_id"]
        url = api.url(f"conversations/{cid}/events")
        llm.delay = 0.3
        with api.client.stream("GET", url) as response:
            reader = SSEReader(response)
            turn = threading.Thread(target=lambda: api.say(cid, "hello"))
            turn.start()
            events = reader.until("assistant.message")
            turn.join(timeout=10)
        types = [e[1] for e in events]
        assert types[:4] == ["run.started", "tool.call", "tool.result", "journey.step_changed"]
        deltas = [e for e in events if e[1] == "assistant.delta"]
        assert "".join(e[2]["delta"] for e in deltas) == events[-1][2]["content"]
        # A delta's id resumes after the last stored event before it.
        stored_before = events[3][0]
        assert all(e[0].startswith(f"{stored_before}-") for e in deltas)
        assert reader.comments  # the opening comment
    finally:
        registry.unregister_runtime("streaming")


def test_idle_streams_get_keepalives_and_events_of_other_workers(
    make_api: Any, users: Any, agents: Any, monkeypatch: Any
) -> None:
    from agent_runtime_framework.django.api import events as views
    from agent_runtime_framework.django.models import JourneyEvent as EventRow
    from agent_runtime_framework.django.signals import journey_event
    from agent_runtime_framework.django.store.events import record_event

    monkeypatch.setattr(views, "SSE_POLL_SECONDS", 0.1)
    monkeypatch.setattr(views, "SSE_KEEPALIVE_SECONDS", 0.3)
    api = make_api(users[0])
    cid = api.start("onboarding-agent").json()["conversation_id"]
    url = api.url(f"conversations/{cid}/events")
    # Another worker's event: stored, but this process's live bus never hears of it.
    journey_event.disconnect(sender=EventRow, dispatch_uid="agent_runtime_live_bus")
    try:
        with api.client.stream("GET", url) as response:
            lines = response.iter_lines()
            seen: list[str] = []
            for line in lines:
                seen.append(line)
                if line == ": keep-alive":
                    break
            run = uuid.uuid4()
            record_event(run, "progress.update", {"done": 1}, conversation_id=cid)
            for line in lines:
                seen.append(line)
                if line.startswith("data: "):
                    break
    finally:
        views.connect_signals()
    assert ": keep-alive" in seen
    assert "event: progress.update" in seen and seen[-1] == (f'data: {{"done":1,"run_id":"{run}"}}')


def test_run_turn_sync_plays_turns_from_sync_code(users: Any, llm: Any) -> None:
    from agent_runtime_framework.django.host.turns import ConversationNotFound, run_turn_sync

    agent = OnboardingAgent(llm_client=llm, memory=DjangoMemoryManager())
    registry.register_runtime(agent, key="sync-onboarding")
    try:
        first = run_turn_sync("sync-onboarding", None, "hello", users[0])
        second = run_turn_sync(None, first.conversation_id, "Ada", users[0].pk)
        assert (first.step, second.step) == ("collect_name", "collect_email")
        try:
            run_turn_sync(None, first.conversation_id, "x", users[1])
        except ConversationNotFound:
            pass
        else:
            raise AssertionError("another user played a turn on the conversation")
    finally:
        registry.unregister_runtime("sync-onboarding")
