"""The HTTP API against a real uvicorn server: every endpoint, ownership, bad input."""

from __future__ import annotations

import json
import uuid
from typing import Any

from agent_runtime_framework.django.models import Conversation, JourneyMessage


def test_agents_lists_registered_agents_steps_and_model(
    make_api: Any, agents: Any, host_llm: Any
) -> None:
    api = make_api()
    response = api.get("agents")
    assert response.status_code == 200
    body = response.json()
    by_key = {a["key"]: a for a in body["agents"]}
    assert by_key["onboarding-agent"]["steps"] == [
        "welcome",
        "collect_name",
        "collect_email",
        "complete",
    ]
    desk = by_key["front-desk"]
    assert [j["key"] for j in desk["journeys"]] == ["signup", "feedback"]
    assert desk["journeys"][1] == {
        "key": "feedback",
        "name": "Feedback",
        "description": "Leave feedback",
        "steps": ["ask", "done"],
    }
    assert body["llm"] == {"model": "rule-llm", "offline_standin": False}
    assert "csrftoken" in api.client.cookies  # for the chat page's POSTs


def test_a_three_turn_onboarding_over_http(make_api: Any, users: Any, agents: Any) -> None:
    alice, _ = users
    api = make_api(alice)

    created = api.start("onboarding-agent", "hello")
    assert created.status_code == 201, created.text
    first = created.json()
    cid = first["conversation_id"]
    assert first["agent"] == first["journey"] == "onboarding-agent"
    assert first["step"] == "collect_name"
    assert first["progress"] == {
        "index": 2,
        "total": 4,
        "steps": ["welcome", "collect_name", "collect_email", "complete"],
    }
    assert first["reply"].startswith("Noted.")
    assert first["complete"] is False and first["stopped_reason"] == "text_response"
    assert first["usage"]["total_tokens"] == 20

    second = api.say(cid, "Ada")
    assert second.status_code == 200 and second.json()["step"] == "collect_email"
    third = api.say(cid, "ada@example.com").json()
    assert third["complete"] is True and third["step"] == "complete"
    assert third["state"]["name"] == "Ada" and third["state"]["email"] == "ada@example.com"
    assert third["progress"]["index"] == 4

    detail = api.get(f"conversations/{cid}").json()
    assert detail["complete"] is True and detail["step"] == "complete"
    assert detail["state"]["email"] == "ada@example.com"
    assert [m["content"] for m in detail["messages"] if m["role"] == "user"] == [
        "hello",
        "Ada",
        "ada@example.com",
    ]
    assert [m["seq"] for m in detail["messages"]] == list(range(len(detail["messages"])))
    tool_calls = [m for m in detail["messages"] if m["tool_calls"]]
    assert tool_calls[0]["tool_calls"][0]["function"]["name"] == "start"

    listed = api.get("conversations").json()["conversations"]
    assert [(c["conversation_id"], c["status"], c["step"]) for c in listed] == [
        (cid, "complete", "complete")
    ]


def test_the_front_desk_routes_over_http(make_api: Any, users: Any, agents: Any) -> None:
    api = make_api(users[0])
    unclear = api.start("front-desk", "hi there").json()
    cid = unclear["conversation_id"]
    assert unclear["journey"] == "front-desk" and unclear["step"] is None
    assert "sign up or leave feedback" in unclear["reply"]

    routed = api.say(cid, "I want to sign up").json()
    assert (routed["agent"], routed["journey"], routed["step"]) == (
        "front-desk",
        "signup",
        "collect_name",
    )
    assert routed["progress"]["index"] == 2
    api.say(cid, "Ada")
    done = api.say(cid, "ada@example.com").json()
    assert done["journey"] == "signup" and done["complete"] is True

    # The journey is over: the front desk routes the next request anew.
    feedback = api.say(cid, "some feedback: great app").json()
    assert feedback["journey"] == "feedback" and feedback["step"] == "done"
    assert feedback["complete"] is True
    assert feedback["progress"] == {"index": 2, "total": 2, "steps": ["ask", "done"]}

    detail = api.get(f"conversations/{cid}").json()
    assert detail["agent"] == "front-desk" and detail["journey"] == "feedback"
    summary = api.get("conversations").json()["conversations"][0]
    assert summary["journey"] == "feedback" and summary["agent"] == "front-desk"


def test_a_conversation_is_404_for_everyone_but_its_owner(
    make_api: Any, users: Any, agents: Any, settings: Any
) -> None:
    alice, bob = users
    owner = make_api(alice)
    cid = owner.start("onboarding-agent", "hello").json()["conversation_id"]
    intruder = make_api(bob)

    assert intruder.get(f"conversations/{cid}").status_code == 404
    assert intruder.say(cid, "hi").status_code == 404
    assert intruder.get(f"conversations/{cid}/events").status_code == 404
    assert intruder.get("conversations").json() == {"conversations": []}
    error = intruder.get(f"conversations/{cid}").json()["error"]
    assert error["code"] == "not_found"
    # Same answer as for a conversation that does not exist.
    missing = intruder.get(f"conversations/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

    # Anonymous callers: refused while ALLOW_ANONYMOUS is off ...
    anonymous = make_api()
    for response in (
        anonymous.get("conversations"),
        anonymous.get(f"conversations/{cid}"),
        anonymous.get(f"conversations/{cid}/events"),
        anonymous.say(cid, "hi"),
        anonymous.start("onboarding-agent"),
    ):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "authentication_required"

    # ... and with it on, a session owns its conversations and nothing else.
    settings.AGENT_RUNTIME_FRAMEWORK = {"ALLOW_ANONYMOUS": True}
    assert anonymous.get(f"conversations/{cid}").status_code == 404
    assert anonymous.say(cid, "hi").status_code == 404
    mine = anonymous.start("onboarding-agent", "hello")
    assert mine.status_code == 201, mine.text
    anon_cid = mine.json()["conversation_id"]
    assert anonymous.say(anon_cid, "Ada").json()["step"] == "collect_email"
    assert [
        c["conversation_id"] for c in anonymous.get("conversations").json()["conversations"]
    ] == [anon_cid]

    other_session = make_api()
    assert other_session.get(f"conversations/{anon_cid}").status_code == 404
    assert other_session.say(anon_cid, "x").status_code == 404
    assert other_session.get(f"conversations/{anon_cid}/events").status_code == 404
    assert other_session.get("conversations").json() == {"conversations": []}
    assert owner.get(f"conversations/{anon_cid}").status_code == 404
    row = Conversation.objects.get(id=anon_cid)
    assert row.owner_id is None and row.session_key


def _error(response: Any) -> tuple[int, str]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.status_code, response.json()["error"]["code"]


def test_bad_input_gets_a_clear_4xx(make_api: Any, users: Any, agents: Any, settings: Any) -> None:
    api = make_api(users[0])
    cid = api.start("onboarding-agent").json()["conversation_id"]
    token = api.csrf()
    headers = {"X-CSRFToken": token, "Content-Type": "application/json"}
    url = api.url(f"conversations/{cid}/messages")
    post = api.client.post

    assert _error(post(url, content=b"{not json", headers=headers)) == (400, "invalid_json")
    assert _error(post(url, content=b"", headers=headers)) == (400, "invalid_json")
    assert _error(post(url, content=b"\xff\xfe", headers=headers)) == (400, "invalid_json")
    assert _error(post(url, content=b"[1, 2]", headers=headers)) == (400, "invalid_json")
    assert _error(post(url, json={}, headers=headers)) == (400, "missing_field")
    assert _error(post(url, json={"message": 5}, headers=headers)) == (400, "invalid_field")
    assert _error(post(url, json={"message": "  "}, headers=headers)) == (400, "invalid_field")
    assert _error(post(url, json={"message": "a\x00b"}, headers=headers)) == (400, "invalid_field")
    assert _error(post(url, content=b'{"message": "\\ud800"}', headers=headers)) == (
        400,
        "invalid_field",
    )
    too_long = "x" * 4001
    response = post(url, json={"message": too_long}, headers=headers)
    assert _error(response) == (422, "message_too_long")
    assert response.json()["error"]["details"]["max_chars"] == 4000
    big = json.dumps({"message": "x" * 70_000}).encode()
    assert _error(post(url, content=big, headers=headers)) == (413, "body_too_large")
    assert _error(
        post(url, content=b"message=hi", headers={**headers, "Content-Type": "text/plain"})
    ) == (415, "unsupported_media_type")
    assert _error(
        post(url, json={"message": "hi"}, headers={**headers, "Idempotency-Key": "a b"})
    ) == (400, "invalid_idempotency_key")
    assert _error(api.post("conversations", {"agent": "nope"})) == (400, "unknown_agent")
    assert _error(api.post("conversations", {"agent": ["x"]})) == (400, "invalid_field")
    assert _error(api.post("conversations", {"message": "hi"})) == (400, "missing_field")
    assert _error(api.get("conversations/not-a-uuid")) == (404, "not_found")
    assert _error(api.say("not-a-uuid", "hi")) == (404, "not_found")
    assert _error(api.client.delete(api.url(f"conversations/{cid}"))) == (405, "method_not_allowed")
    assert _error(api.get(f"conversations/{cid}/messages")) == (405, "method_not_allowed")
    assert _error(api.get(f"conversations/{cid}/events", headers={"Last-Event-ID": "abc"})) == (
        400,
        "invalid_last_event_id",
    )

    # CSRF: a POST without the token is refused, in JSON.
    refused = api.client.post(url, json={"message": "hi"})
    assert _error(refused) == (403, "csrf_failed")
    assert "CSRF" in refused.json()["error"]["details"]["reason"]

    settings.AGENT_RUNTIME_FRAMEWORK = {"MAX_MESSAGE_CHARS": 10, "MAX_BODY_BYTES": 100}
    assert _error(post(url, json={"message": "x" * 11}, headers=headers))[0] == 422
    assert _error(post(url, json={"message": "x" * 200}, headers=headers)) == (
        413,
        "body_too_large",
    )
    # Nothing of that reached the conversation.
    assert JourneyMessage.objects.filter(conversation_id=cid).count() == 0
