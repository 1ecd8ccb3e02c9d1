"""A hostile AG-UI client: another session's thread id, malformed input, two runs of one
thread at once, a replayed run id. Every answer is a clean 4xx JSON error or a RUN_ERROR
event, never a 5xx, never another caller's data, and no traceback in the logs.

The test project runs under uvicorn in a thread (``tests/http_api``'s server) with a
scripted model that takes a moment per call, so that a second run meets a busy thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime_framework.django.api import ERROR_CODES
from agent_runtime_framework.django.host import registry
from agent_runtime_framework.django.store.orm import DjangoMemoryManager
from tests.http_api.rules import RuleLLM
from tests.journeys import OnboardingAgent

SLOW = "agui-slow"
OTHER = "agui-other"

#: Malformed requests and the (status, code) each must get.
MALFORMED = {
    "not_json": (400, "invalid_json"),
    "not_an_object": (400, "invalid_json"),
    "deeply_nested": (400, "invalid_json"),
    "missing_thread": (400, "missing_field"),
    "thread_not_uuid": (400, "invalid_field"),
    "no_messages": (400, "invalid_field"),
    "messages_not_list": (400, "invalid_field"),
    "last_not_user": (400, "invalid_field"),
    "unknown_role": (400, "invalid_field"),
    "nul_in_message": (400, "invalid_field"),
    "blank_message": (400, "invalid_field"),
    "image_part": (400, "invalid_field"),
    "run_id_too_long": (400, "invalid_field"),
    "no_csrf": (403, "csrf_failed"),
    "unknown_agent": (404, "not_found"),
    "get": (405, "method_not_allowed"),
    "body_too_large": (413, "body_too_large"),
    "text_plain": (415, "unsupported_media_type"),
    "message_too_long": (422, "message_too_long"),
}


@pytest.fixture
def slow_agents(transactional_db: Any, settings: Any) -> Iterator[None]:
    """Anonymous (session) use on, and two onboarding agents: a slow one and another."""
    settings.AGENT_RUNTIME_FRAMEWORK = {"ALLOW_ANONYMOUS": True}
    agents = {
        SLOW: OnboardingAgent(
            llm_client=RuleLLM(delay=0.6), memory=DjangoMemoryManager(busy_wait=0.3)
        ),
        OTHER: OnboardingAgent(llm_client=RuleLLM(), memory=DjangoMemoryManager(busy_wait=0.3)),
    }
    for key, agent in agents.items():
        registry.register_runtime(agent, key=key)
    yield
    for key in agents:
        registry.unregister_runtime(key)


def _types(run: dict[str, Any]) -> list[str]:
    return [event["type"] for event in run["events"]]


def _json_error(answer: dict[str, Any], status: int, code: str) -> None:
    assert answer["status"] == status, answer
    assert answer["contentType"].startswith("application/json"), answer
    assert answer["json"]["error"]["code"] == code, answer
    assert code in ERROR_CODES[status]


def test_hostile_client_gets_clean_errors(
    asgi_server: Any, slow_agents: None, agui_client: Any, caplog: Any
) -> None:
    caplog.set_level(logging.INFO)
    out = agui_client("hostile", asgi_server.url, SLOW, OTHER)

    # The owner's run works (a new thread id starts a conversation owned by the session).
    owner = out["owner_run"]
    assert "error" not in owner, owner
    assert _types(owner)[-1] == "RUN_FINISHED"
    assert "TOOL_CALL_START" in _types(owner)

    # Another session with the owner's thread id: 404 before any event, nothing of the thread.
    foreign = out["foreign_thread"]
    assert foreign["events"] == []
    assert foreign["error"]["status"] == 404
    assert foreign["error"]["payload"]["error"]["code"] == "not_found"
    raw = out["foreign_thread_raw"]
    _json_error(raw, 404, "not_found")
    assert "Ada" not in str(raw["json"]) and "Ada" not in str(foreign["error"])
    # The owner's thread under another agent's URL: 404 too.
    _json_error(out["other_agent"], 404, "not_found")

    # Two runs of one thread at once: the second ends with RUN_ERROR conversation_busy,
    # the first completes.
    second = out["busy_second"]
    types = _types(second)
    assert types[0] == "RUN_STARTED" and types[-1] == "RUN_ERROR", types
    assert second["events"][-1]["code"] == "conversation_busy"
    assert "TOOL_CALL_START" not in types and "RUN_FINISHED" not in types
    first = out["busy_first"]
    assert "error" not in first, first
    assert _types(first)[-1] == "RUN_FINISHED"

    # The same runId twice: the stored answer, without playing the turn (no tool call) again.
    once, again = out["replay_first"], out["replay_second"]
    assert once["status"] == again["status"] == 200
    assert [e["type"] for e in once["events"]].count("TOOL_CALL_START") == 1
    assert "TOOL_CALL_START" not in [e["type"] for e in again["events"]]
    reply = [e["result"]["reply"] for e in once["events"] if e["type"] == "RUN_FINISHED"]
    assert reply == [e["result"]["reply"] for e in again["events"] if e["type"] == "RUN_FINISHED"]

    # Malformed input: the JSON API's 4xx answers, before any event.
    assert set(out["malformed"]) == set(MALFORMED)
    for name, (status, code) in MALFORMED.items():
        answer = out["malformed"][name]
        assert answer["status"] < 500, (name, answer)
        _json_error(answer, status, code)

    # No traceback and no error logged for any of it.
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert noisy == [], [r.getMessage() for r in noisy]


def test_a_client_that_leaves_mid_run_does_not_stop_the_turn(
    asgi_server: Any, slow_agents: None, caplog: Any
) -> None:
    """The turn runs to its end (state and messages stored) after the stream is dropped."""
    import time
    import uuid

    import httpx

    from agent_runtime_framework.django.api import agui
    from agent_runtime_framework.django.models import Journey, JourneyMessage

    caplog.set_level(logging.INFO)
    thread = str(uuid.uuid4())
    body = {
        "threadId": thread,
        "runId": str(uuid.uuid4()),
        "messages": [{"id": "m1", "role": "user", "content": "hello"}],
    }
    with httpx.Client(base_url=asgi_server.url, timeout=10) as client:
        client.get("/api/agents")
        headers = {"X-CSRFToken": client.cookies["csrftoken"]}
        with client.stream("POST", f"/api/ag-ui/{SLOW}", json=body, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            first = next(response.iter_lines())
            assert '"RUN_STARTED"' in first
        # Gone before the turn's first (slow) model call returned; the turn goes on to its
        # reply, which is stored with the state.
        deadline = time.monotonic() + 10
        replies: list[str] = []
        while time.monotonic() < deadline and (not replies or agui._background):
            time.sleep(0.1)
            replies = list(
                JourneyMessage.objects.filter(
                    conversation_id=thread, role="assistant", content__startswith="Noted."
                ).values_list("content", flat=True)
            )
        assert not agui._background, "the turn is still running"
        assert replies, "the turn did not store its reply"
        assert Journey.objects.get(conversation_id=thread).step == "collect_name"
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert noisy == [], [r.getMessage() for r in noisy]
