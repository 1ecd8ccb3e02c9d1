"""Queued turns through the HTTP API, in process (issue 13): the engine is a recording
callable (``QUEUE`` = its dotted path) and the test plays the worker's part with
``play_conversation``. The real engines with real processes: tests/scale/."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from agent_runtime_framework.django.host.queued import play_conversation
from agent_runtime_framework.django.models import Conversation, JourneyEvent, JourneyMessage, Run
from agent_runtime_framework.llm.base import LLMError

ENQUEUED: list[tuple[str, float | None]] = []
REFUSE = {"on": False}


def recording_queue(conversation_id: str, delay: float | None) -> None:
    """The test's engine: remembers what it was asked (or refuses, like a broker down)."""
    if REFUSE["on"]:
        raise ConnectionError("broker down")
    ENQUEUED.append((conversation_id, delay))


@pytest.fixture
def queued(settings: Any) -> Iterator[None]:
    settings.AGENT_RUNTIME_FRAMEWORK = {
        **settings.AGENT_RUNTIME_FRAMEWORK,
        "TURNS": "queued",
        "QUEUE": "tests.http_api.test_http_queued.recording_queue",
    }
    ENQUEUED.clear()
    REFUSE["on"] = False
    yield
    ENQUEUED.clear()


def _work(cid: str) -> int:
    return int(async_to_sync(play_conversation)(cid))


def test_a_queued_message_is_stored_answered_by_the_worker_and_reported(
    queued: None, make_api: Any, users: Any, agents: Any
) -> None:
    api = make_api(users[0])
    cid = api.start("onboarding-agent").json()["conversation_id"]
    response = api.say(cid, "hello")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["position"] == 0
    assert response.headers["Location"].endswith(f"/conversations/{cid}/runs/{body['run_id']}")
    # Durable before the answer, not in the history yet, and handed to the engine.
    assert Run.objects.get(run_id=body["run_id"]).message == "hello"
    assert not JourneyMessage.objects.filter(conversation_id=cid).exists()
    assert ENQUEUED[0] == (cid, None)
    run = api.get(f"conversations/{cid}/runs/{body['run_id']}").json()
    assert run["status"] == "queued" and run["turn"] is None

    assert _work(cid) == 1
    run = api.get(f"conversations/{cid}/runs/{body['run_id']}").json()
    assert run["status"] == "done" and run["attempts"] == 1
    assert run["turn"]["reply"] and run["turn"]["run_id"] == body["run_id"]
    users_said = JourneyMessage.objects.filter(conversation_id=cid, role="user")
    assert [(m.content, m.metadata) for m in users_said] == [
        ("hello", {"message_id": body["message_id"]})
    ]
    types = list(
        JourneyEvent.objects.filter(run_id=body["run_id"]).order_by("seq").values_list("type")
    )
    assert types[0] == ("run.started",) and types[-1] == ("run.succeeded",)
    # The worker asked the engine to look again after the lease (in case it died).
    assert any(delay for _, delay in ENQUEUED)
    assert _work(cid) == 0  # nothing left


def test_messages_posted_meanwhile_are_answered_in_order_one_turn_each(
    queued: None, make_api: Any, users: Any, agents: Any
) -> None:
    api = make_api(users[0])
    cid = api.start("onboarding-agent").json()["conversation_id"]
    posted = [api.say(cid, text).json() for text in ("hello", "Ada Lovelace", "ada@x.org")]
    assert [p["position"] for p in posted] == [0, 1, 2]
    assert _work(cid) == 3
    said = JourneyMessage.objects.filter(conversation_id=cid, role="user").order_by("seq")
    assert [m.content for m in said] == ["hello", "Ada Lovelace", "ada@x.org"]
    runs = [api.get(f"conversations/{cid}/runs/{p['run_id']}").json() for p in posted]
    assert [r["status"] for r in runs] == ["done"] * 3
    assert [r["finished_at"] for r in runs] == sorted(r["finished_at"] for r in runs)


def test_a_retried_post_is_one_run_and_other_callers_get_404(
    queued: None, make_api: Any, users: Any, agents: Any
) -> None:
    alice, bob = make_api(users[0]), make_api(users[1])
    cid = alice.start("onboarding-agent").json()["conversation_id"]
    first = alice.say(cid, "hello", headers={"Idempotency-Key": "k-1"})
    again = alice.say(cid, "hello", headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 202
    assert first.json()["run_id"] == again.json()["run_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert Run.objects.filter(conversation_id=cid).count() == 1
    run_path = f"conversations/{cid}/runs/{first.json()['run_id']}"
    # Another user: the conversation and its runs do not exist for them; nothing stored.
    assert bob.say(cid, "mine now").status_code == 404
    assert bob.get(run_path).status_code == 404
    assert Run.objects.filter(conversation_id=cid).count() == 1
    assert alice.get(f"conversations/{cid}/runs/{uuid.uuid4()}").status_code == 404
    assert alice.get(f"conversations/{cid}/runs/not-a-uuid").status_code == 404
    nobody = make_api()
    assert nobody.get(run_path).status_code in (403, 404)


def test_an_engine_that_refuses_gets_503_and_the_message_waits(
    queued: None, make_api: Any, users: Any, agents: Any
) -> None:
    api = make_api(users[0])
    cid = api.start("onboarding-agent").json()["conversation_id"]
    REFUSE["on"] = True
    response = api.say(cid, "hello")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "queue_unavailable" and response.headers["Retry-After"] == "5"
    run_id = error["details"]["run_id"]
    assert Run.objects.get(run_id=run_id).status == "queued"  # kept
    REFUSE["on"] = False
    assert _work(cid) == 1
    assert api.get(f"conversations/{cid}/runs/{run_id}").json()["status"] == "done"


def test_a_failing_model_fails_the_run_with_its_error(
    queued: None, make_api: Any, users: Any, agents: Any, llm: Any, monkeypatch: Any
) -> None:
    api = make_api(users[0])
    cid = api.start("onboarding-agent").json()["conversation_id"]
    run_id = api.say(cid, "hello").json()["run_id"]

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise LLMError("provider down", provider="fake", status_code=503)

    monkeypatch.setattr(llm, "generate", down)
    monkeypatch.setattr(llm, "stream", down, raising=False)
    _work(cid)
    run = api.get(f"conversations/{cid}/runs/{run_id}").json()
    assert run["status"] == "failed" and run["error"]["type"] == "LLMError"
    assert JourneyEvent.objects.filter(run_id=run_id, type="run.failed").count() == 1
    # What the user said is kept.
    assert JourneyMessage.objects.filter(conversation_id=cid, role="user").count() == 1


def test_a_busy_conversation_is_left_to_its_holder_and_looked_at_after_its_lease(
    queued: None, make_api: Any, users: Any, agents: Any
) -> None:
    api = make_api(users[0])
    cid = api.start("onboarding-agent").json()["conversation_id"]
    run_id = api.say(cid, "hello").json()["run_id"]
    from django.utils import timezone

    until = timezone.now() + timezone.timedelta(seconds=30)
    Conversation.objects.filter(id=cid).update(lease_token="someone", lease_expires_at=until)
    ENQUEUED.clear()
    assert _work(cid) == 0
    ((again, delay),) = ENQUEUED
    assert again == cid and delay is not None and 29 <= delay <= 32
    assert api.get(f"conversations/{cid}/runs/{run_id}").json()["status"] == "queued"


def test_a_worker_that_died_mid_turn_is_resumed_without_storing_the_message_twice(
    queued: None, make_api: Any, users: Any, agents: Any
) -> None:
    from agent_runtime_framework.django.host.queued import _take_sync

    api = make_api(users[0])
    cid = api.start("onboarding-agent").json()["conversation_id"]
    run_id = api.say(cid, "hello").json()["run_id"]
    # A worker takes the run (message stored, run running) and dies before the model answers.
    taken = _take_sync(uuid.UUID(cid), "dead-worker", 30.0)
    assert taken.kind == "play"
    assert api.get(f"conversations/{cid}/runs/{run_id}").json()["status"] == "running"
    assert _work(cid) == 0  # its lease still holds
    Conversation.objects.filter(id=cid).update(lease_expires_at=None, lease_token="")
    assert _work(cid) == 1
    run = api.get(f"conversations/{cid}/runs/{run_id}").json()
    assert run["status"] == "done" and run["attempts"] == 2
    assert JourneyMessage.objects.filter(conversation_id=cid, role="user").count() == 1
    started = JourneyEvent.objects.filter(run_id=run_id, type="run.started").order_by("seq")
    assert [e.payload.get("resumed", False) for e in started] == [False, True]
