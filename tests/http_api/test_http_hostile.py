"""Hostile requests at every endpoint: never a 5xx, always the documented JSON error, and no
traceback in the logs for a client's mistake."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from agent_runtime_framework.django import urls as api_urls
from agent_runtime_framework.django.host import run_turn_sync
from agent_runtime_framework.django.models import JourneyMessage
from agent_runtime_framework.django.openapi import ERROR_CODES, openapi_document

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
JSON = "application/json"


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _bodies(agent: str | None) -> list[tuple[str, str | None, bytes]]:
    """(label, Content-Type, body): a valid body first, then hostile ones."""

    def obj(**fields: Any) -> bytes:
        base: dict[str, Any] = {"agent": agent} if agent else {}
        return json.dumps({**base, **fields}).encode()

    deep_message = b'{"message": ' + _deep(30_000) + b"}"
    return [
        ("valid", JSON, obj(message="hello")),
        ("no content type", None, obj(message="hello")),
        ("unknown fields", JSON, obj(message="hi", extra={"x": [1, 2]}, conversation_id=5)),
        ("empty body", JSON, b""),
        ("whitespace body", JSON, b" \n\t "),
        ("null", JSON, b"null"),
        ("a JSON string", JSON, b'"hello"'),
        ("a JSON number", JSON, b"42"),
        ("a JSON array", JSON, b'[{"message": "hi"}]'),
        ("not JSON", JSON, b"{not json"),
        ("NaN", JSON, b'{"message": NaN}'),
        ("non-UTF-8 body", JSON, b'{"message": "\xff\xfe"}'),
        ("UTF-16 body", "application/json; charset=utf-16", obj(message="hi").decode().encode("utf-16")),
        ("charset that does not exist", "application/json; charset=nope", obj(message="hi")),
        ("deep nesting", JSON, _deep(32_000)),
        ("deep nesting in the message", JSON, deep_message),
        ("deep object nesting", JSON, b'{"a":' * 12_000 + b"1" + b"}" * 12_000),
        ("message is a number", JSON, obj(message=5)),
        ("message is null", JSON, obj(message=None)),
        ("message is a list", JSON, obj(message=["hi"])),
        ("message is an object", JSON, obj(message={"text": "hi"})),
        ("message is a bool", JSON, obj(message=True)),
        ("message is blank", JSON, obj(message="   ")),
        ("message too long", JSON, obj(message="x" * 4001)),
        ("agent is a list", JSON, json.dumps({"agent": ["x"], "message": "hi"}).encode()),
        ("unknown agent", JSON, json.dumps({"agent": "nope", "message": "hi"}).encode()),
        ("agent with a lone surrogate", JSON, b'{"agent": "\\ud800"}'),
        ("body over MAX_BODY_BYTES", JSON, obj(message="x" * 70_000)),
        ("body over Django's upload limit", JSON, b" " * 3_000_000),
        ("text/plain", "text/plain", b"message=hi"),
        ("multipart without boundary", "multipart/form-data", b"--x\r\ngarbage"),
        ("multipart with an empty boundary", "multipart/form-data; boundary=", b"garbage"),
        (
            "malformed multipart",
            "multipart/form-data; boundary=xyz",
            b"--xyz\r\nContent-Disposition: form-data\r\n\r\nno end",
        ),
        ("huge urlencoded", "application/x-www-form-urlencoded", b"a=1&" * 400_000),
        ("malformed urlencoded", "application/x-www-form-urlencoded", b"%zz=%&&=\xff"),
        (
            "urlencoded in another charset",
            "application/x-www-form-urlencoded; charset=latin-1",
            b"csrfmiddlewaretoken=x",
        ),
        ("JSON with a form type", "application/x-www-form-urlencoded", obj(message="hi")),
    ]


@dataclass
class Report:
    """What the table found: every answer that breaks the contract, by request."""

    document: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)

    def check(self, label: str, path: str, method: str, response: httpx.Response) -> None:
        status = response.status_code
        key = f"{method} {path} {status}"
        self.seen[key] = self.seen.get(key, 0) + 1
        where = f"{label}: {method} {path} -> {status}"
        if status >= 500:
            self.problems.append(f"{where}: {response.text[:300]}")
            return
        operations = self.document["paths"][path]
        documented = operations.get(method.lower())
        if documented is None:
            if status != 405 or "Allow" not in response.headers:
                self.problems.append(f"{where}: an undocumented method must be 405 with Allow")
        elif str(status) not in documented["responses"]:
            self.problems.append(f"{where}: status not in the OpenAPI document")
        if method == "HEAD":
            return
        content_type = response.headers.get("content-type", "")
        if status == 200 and content_type.startswith("text/event-stream"):
            return
        if not content_type.startswith(JSON):
            self.problems.append(f"{where}: not JSON ({content_type}): {response.text[:200]}")
            return
        if status < 400:
            return
        error = response.json().get("error")
        if not (
            isinstance(error, dict)
            and set(error) == {"code", "message", "details"}
            and isinstance(error["message"], str)
            and isinstance(error["details"], dict)
        ):
            self.problems.append(f"{where}: not the documented error shape: {response.text[:200]}")
        elif error["code"] not in ERROR_CODES.get(status, ()):
            self.problems.append(f"{where}: code {error['code']!r} not documented for {status}")


def _send(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request; an event stream is closed after its headers."""
    request = client.build_request(method, url, **kwargs)
    response = client.send(request, stream=True)
    try:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
    finally:
        response.close()
    return response


@pytest.fixture
def tracebacks(caplog: Any) -> Iterator[list[logging.LogRecord]]:
    """ERROR records with a traceback, from Django, the app or uvicorn (which does not
    propagate to the root logger)."""
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    found: list[logging.LogRecord] = []
    yield found
    uvicorn_logger.removeHandler(caplog.handler)


def _errors_logged(caplog: Any) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()[:200]}"
        for r in caplog.records
        if r.levelno >= logging.ERROR and (r.exc_info or r.exc_text)
    ]


@pytest.mark.parametrize("caller", ["user", "anonymous", "anonymous use off"])
def test_hostile_requests_get_documented_4xx_and_no_traceback(
    caller: str,
    make_api: Any,
    users: Any,
    agents: Any,
    settings: Any,
    caplog: Any,
    tracebacks: Any,
) -> None:
    alice, bob = users
    settings.AGENT_RUNTIME_FRAMEWORK = {"ALLOW_ANONYMOUS": caller == "anonymous"}
    api = make_api(alice if caller == "user" else None)
    token = api.csrf()  # all an unauthenticated client needs
    if caller == "anonymous":
        mine = api.start("onboarding-agent").json()["conversation_id"]
    elif caller == "user":
        mine = api.start("onboarding-agent").json()["conversation_id"]
    else:
        mine = str(uuid.uuid4())
    someone_elses = make_api(bob).start("onboarding-agent").json()["conversation_id"]
    ownerless = run_turn_sync("onboarding-agent", None, "hello").conversation_id
    targets = {
        "mine": mine,
        "someone else's": someone_elses,
        "made by code": ownerless,
        "a UUID of nobody": str(uuid.uuid4()),
        "not a UUID": "not-a-uuid",
        "a NUL": "%00",
        "invalid UTF-8": "%ED%A0%80",
        "very long": "x" * 3000,
    }
    report = Report(openapi_document())
    client = api.client
    csrf = {"X-CSRFToken": token}

    def paths() -> Iterator[tuple[str, str, str]]:
        """(label, documented path, URL) of every URL pattern, per target id."""
        for pattern in api_urls.urlpatterns:
            route = str(pattern.pattern)
            documented = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
            if "<" not in route:
                yield "", documented, api.url(route)
                continue
            for label, target in targets.items():
                yield label, documented, api.url(re.sub(r"<[^>]+>", target, route))

    # Every method at every endpoint, with and without a JSON body.
    for label, path, url in paths():
        for method in METHODS:
            report.check(label, path, method, _send(client, method, url, headers=csrf))
            if method not in ("GET", "HEAD"):
                body = b'{"message": "hi"}'
                headers = {**csrf, "Content-Type": JSON}
                answer = _send(client, method, url, content=body, headers=headers)
                report.check(f"{label} with a body", path, method, answer)

    # Every hostile body at every endpoint that takes a POST.
    posts = [("", "/conversations", api.url("conversations"), "onboarding-agent")]
    posts += [
        (label, "/conversations/{conversation_id}/messages", api.url(f"conversations/{t}/messages"), None)
        for label, t in targets.items()
        if label in ("mine", "made by code", "not a UUID")
    ]
    for label, path, url, agent in posts:
        for name, content_type, body in _bodies(agent):
            headers = dict(csrf)
            if content_type is not None:
                headers["Content-Type"] = content_type
            answer = _send(client, "POST", url, content=body, headers=headers)
            report.check(f"{label} {name}", path, "POST", answer)
        # Without the CSRF header, and with a broken one: 403 (or 415 for a form body).
        for name, content_type, body in _bodies(agent)[:1] + _bodies(agent)[-6:]:
            for token_header in ({}, {"X-CSRFToken": "x" * 64}):
                headers = {"Content-Type": content_type or JSON, **token_header}
                answer = _send(client, "POST", url, content=body, headers=headers)
                report.check(f"{label} {name} without CSRF", path, "POST", answer)
                assert answer.status_code in (403, 415), (name, answer.text)

    # Headers: Idempotency-Key and Last-Event-ID, good and bad.
    messages = f"conversations/{mine}/messages"
    for key in ("a b", "x" * 201, "", "ok-key", "é".encode(), b"\xe9"):
        answer = _send(
            client,
            "POST",
            api.url(messages),
            json={"message": "hi"},
            headers={**csrf, "Idempotency-Key": key},
        )
        report.check(f"Idempotency-Key {key[:10]!r}", "/conversations/{conversation_id}/messages", "POST", answer)
    for value in ("abc", "-1", "-", "1-2-3", "9" * 30, "9" * 5000, "7-", "0x10", "1e3", "٣"):
        for kwargs in ({"headers": {"Last-Event-ID": value.encode()}}, {"params": {"last_event_id": value}}):
            answer = _send(client, "GET", api.url(f"conversations/{mine}/events"), **kwargs)
            report.check(f"Last-Event-ID {value[:10]!r}", "/conversations/{conversation_id}/events", "GET", answer)

    assert report.problems == [], "\n".join(report.problems)
    assert _errors_logged(caplog) == []
    # The table reached the turn machinery, not only the input checks.
    if caller != "anonymous use off":
        assert report.seen.get("POST /conversations 201", 0) >= 2, report.seen
        assert report.seen.get("POST /conversations/{conversation_id}/messages 200", 0) >= 2
    else:
        assert set(k.split()[-1] for k in report.seen) <= {"200", "403", "405", "404", "400", "413", "415", "422"}
