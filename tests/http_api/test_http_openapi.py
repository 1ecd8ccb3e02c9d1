"""The served OpenAPI document (django-ninja's, generated from the API's declarations):
it covers every URL pattern, and fuzzing it gives zero 5xx."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_runtime_framework.django import urls as api_urls
from agent_runtime_framework.django.api import ERROR_CODES

schemathesis = pytest.importorskip("schemathesis")


def _pattern_paths() -> set[str]:
    """The API's URL patterns as OpenAPI paths ("<str:x>" -> "{x}")."""
    return {
        "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(p.pattern)) for p in api_urls.urlpatterns
    }


def test_every_url_pattern_is_documented_and_nothing_else(make_api: Any, agents: Any) -> None:
    document = make_api().get("openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == _pattern_paths()
    # The error schemas are made from the one table of codes.
    schemas = document["components"]["schemas"]
    for status, codes in ERROR_CODES.items():
        body = schemas[f"ErrorBody{status}"]
        code = body["properties"]["code"]
        assert set(code.get("enum") or [code.get("const")]) == set(codes), status
    # Settings and registered agents as they are when the document is served.
    assert schemas["NewMessage"]["properties"]["message"]["maxLength"] == 4000
    assert schemas["NewConversation"]["properties"]["agent"]["enum"] == sorted(agents)
    assert "RunAgentInput" in schemas
    assert document["servers"][0]["url"].endswith("/api")
    # Each documented method is one the view answers (no 405 for a documented method).
    api = make_api()
    for path, operations in document["paths"].items():
        for method in operations:
            url = api.url(path.replace("{conversation_id}", "00000000-0000-0000-0000-000000000000"))
            response = (
                api.client.request(
                    method.upper(), url, headers={"Accept": "application/json"}, timeout=5
                )
                if not path.endswith("/events")
                else None
            )
            if response is not None:
                assert response.status_code != 405, (method, path)
    # The document is a valid OpenAPI document for schemathesis.
    schema = schemathesis.openapi.from_dict(document)
    assert len([op for op in schema.get_all_operations()]) == 11


def test_fuzzing_the_documented_api_gives_no_server_error(
    make_api: Any, users: Any, agents: Any
) -> None:
    from schemathesis import GenerationMode

    api = make_api(users[0])
    token = api.csrf()
    cid = api.start("onboarding-agent", "hello").json()["conversation_id"]
    document = api.get("openapi.json").json()
    base_url = document["servers"][0]["url"]
    schema = schemathesis.openapi.from_dict(document)
    session = requests.Session()
    session.cookies.update({"sessionid": api.client.cookies["sessionid"], "csrftoken": token})
    failures: list[str] = []
    seen: Counter[tuple[str, int]] = Counter()
    calls = 0

    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @given(case=strategy, data=st.data())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any, data: Any) -> None:
            nonlocal calls
            if (
                case.path_parameters
                and "conversation_id" in case.path_parameters
                and data.draw(st.booleans())
            ):
                case.path_parameters["conversation_id"] = cid
            kwargs = case.as_transport_kwargs(base_url=base_url, headers={"X-CSRFToken": token})
            if data.draw(st.integers(0, 3)):
                # Mostly as the logged-in user; sometimes with generated (garbage) cookies.
                kwargs.pop("cookies", None)
            response = session.request(**kwargs, stream=True, timeout=10)
            response.close()  # the event stream never ends by itself
            calls += 1
            seen[(f"{case.method} {case.operation.path}", response.status_code)] += 1
            if response.status_code >= 500:
                failures.append(f"{response.status_code} {case.method} {case.formatted_path}")

        check()

    assert calls >= 100
    assert failures == []
    # The fuzzing reached the turn machinery, not only the input checks.
    assert seen[("POST /conversations/{conversation_id}/messages", 200)] > 0, seen
    assert seen[("POST /conversations", 201)] > 0, seen
