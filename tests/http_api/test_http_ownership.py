"""One ownership rule for every endpoint: a user's conversation is that user's, a session's
that session's, and one with neither (made from code or the CLI) nobody's over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

from agent_runtime_framework.django.host.turns import run_turn_sync
from agent_runtime_framework.django.models import Conversation, JourneyMessage


def _events_status(api: Any, cid: str) -> tuple[int, Any]:
    """Status and JSON body of opening the event stream (a 200 stream is closed unread)."""
    with api.client.stream("GET", api.url(f"conversations/{cid}/events")) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return response.status_code, None
        response.read()
        return response.status_code, response.json()


def _not_found_body(cid: str) -> dict[str, Any]:
    return {
        "error": {
            "code": "not_found",
            "message": "Conversation not found",
            "details": {"conversation_id": cid},
        }
    }


def _assert_nobody_reaches(api: Any, cid: str, who: str) -> None:
    """404 with the unknown-id body on every endpoint that reads or writes the conversation."""
    expected = _not_found_body(cid)
    detail = api.get(f"conversations/{cid}")
    assert (detail.status_code, detail.json()) == (404, expected), (who, detail.text)
    assert _events_status(api, cid) == (404, expected), who
    said = api.say(cid, "hi")
    assert (said.status_code, said.json()) == (404, expected), (who, said.text)
    listed = api.get("conversations").json()["conversations"]
    assert cid not in [c["conversation_id"] for c in listed], who
    # Same answer as for an id that exists nowhere.
    unknown = str(uuid.uuid4())
    missing = api.get(f"conversations/{unknown}")
    assert (missing.status_code, missing.json()) == (404, _not_found_body(unknown)), who


def test_a_conversation_without_owner_is_nobodys_over_http(
    make_api: Any, users: Any, agents: Any, settings: Any
) -> None:
    settings.AGENT_RUNTIME_FRAMEWORK = {"ALLOW_ANONYMOUS": True}
    made_by_code = run_turn_sync("onboarding-agent", None, "hello")  # as journey_chat does
    cid = made_by_code.conversation_id
    row = Conversation.objects.get(id=cid)
    assert row.owner_id is None and row.session_key == ""
    stored = JourneyMessage.objects.filter(conversation_id=cid).count()

    no_cookie = make_api()
    bogus_session = make_api()
    bogus_session.client.cookies.set("sessionid", "no-such-session-key")
    other_session = make_api()
    assert other_session.start("onboarding-agent", "hello").status_code == 201
    logged_in = make_api(users[0])
    for who, api in [
        ("no cookie", no_cookie),
        ("a session key that does not exist", bogus_session),
        ("another anonymous session", other_session),
        ("a logged-in user", logged_in),
    ]:
        _assert_nobody_reaches(api, cid, who)

    # Nothing of the refused requests reached the conversation; code still reaches it.
    assert JourneyMessage.objects.filter(conversation_id=cid).count() == stored
    assert run_turn_sync(None, cid, "Ada", create=False).step == "collect_email"


def test_another_owners_conversation_is_404_on_every_endpoint(
    make_api: Any, users: Any, agents: Any, settings: Any
) -> None:
    settings.AGENT_RUNTIME_FRAMEWORK = {"ALLOW_ANONYMOUS": True}
    alice, bob = users
    owner = make_api(alice)
    created = owner.start("onboarding-agent", "hello")
    cid = created.json()["conversation_id"]
    replayed = owner.say(cid, "Ada", headers={"Idempotency-Key": "k-1"})
    assert replayed.status_code == 200
    anonymous = make_api()
    anon_cid = anonymous.start("onboarding-agent", "hello").json()["conversation_id"]
    stored = JourneyMessage.objects.filter(conversation_id__in=[cid, anon_cid]).count()

    for who, api, target in [
        ("another user", make_api(bob), cid),
        ("an anonymous session", make_api(), cid),
        ("a user, on a session's conversation", make_api(bob), anon_cid),
        ("another session, on a session's conversation", make_api(), anon_cid),
        ("the user, on a session's conversation", owner, anon_cid),
    ]:
        _assert_nobody_reaches(api, target, who)
        # Not even an idempotent replay of the owner's stored answer.
        again = api.say(target, "Ada", headers={"Idempotency-Key": "k-1"})
        assert (again.status_code, again.json()) == (404, _not_found_body(target)), who
    assert JourneyMessage.objects.filter(conversation_id__in=[cid, anon_cid]).count() == stored


def test_a_logged_out_client_gets_the_documented_answer(
    make_api: Any, users: Any, agents: Any, settings: Any
) -> None:
    owner = make_api(users[0])
    cid = owner.start("onboarding-agent", "hello").json()["conversation_id"]
    made_by_code = run_turn_sync("onboarding-agent", None, "hello").conversation_id
    logged_out = make_api(users[0])
    logged_out.client.cookies.delete("sessionid")

    # Anonymous use off (the default): 403 authentication_required, nothing more.
    for target in (cid, made_by_code, str(uuid.uuid4())):
        for response in (
            logged_out.get(f"conversations/{target}"),
            logged_out.say(target, "hi"),
        ):
            assert response.status_code == 403, response.text
            assert response.json()["error"]["code"] == "authentication_required"
        status, body = _events_status(logged_out, target)
        assert (status, body["error"]["code"]) == (403, "authentication_required")

    # Anonymous use on: a session of its own, which owns none of them.
    settings.AGENT_RUNTIME_FRAMEWORK = {"ALLOW_ANONYMOUS": True}
    for target in (cid, made_by_code):
        _assert_nobody_reaches(logged_out, target, "logged out")


def test_an_anonymous_caller_without_a_session_creates_nothing_unreachable(
    make_api: Any, agents: Any, settings: Any
) -> None:
    """Starting a conversation gives an anonymous caller a session: never an ownerless row."""
    settings.AGENT_RUNTIME_FRAMEWORK = {"ALLOW_ANONYMOUS": True}
    api = make_api()
    created = api.start("onboarding-agent", "hello")
    assert created.status_code == 201, created.text
    cid = created.json()["conversation_id"]
    assert Conversation.objects.get(id=cid).session_key == api.client.cookies["sessionid"]
    assert api.get(f"conversations/{cid}").status_code == 200
