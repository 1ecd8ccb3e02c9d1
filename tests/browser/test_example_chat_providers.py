"""The chat page with a configured provider: the real OpenAI / Anthropic SDK code paths.

The example project is started with ``OPENAI_API_KEY`` (or ``ANTHROPIC_API_KEY``) and the
provider's base URL pointed at ``FakeProviderServer``, a local fake of both HTTP APIs
that answers with the stand-in's rules in the provider's own wire format (streaming
included). So the page must not show the stand-in banner, must name the model, and a
journey must complete through the SDK, its streaming and the tool-call round trips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_runtime_framework.testing.fake_providers import FakeProviderServer, standin_responder
from tests.browser.chatpage import choose, open_chat, progress, say, step
from tests.browser.harness import ExampleServer, run_example_server

PROVIDERS = {
    "openai": ("/v1/chat/completions", "gpt-4o-mini"),
    "anthropic": ("/v1/messages", "claude-sonnet-4-5"),
}


@pytest.fixture(params=sorted(PROVIDERS))
def provider_setup(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[str, ExampleServer, FakeProviderServer]]:
    provider = request.param
    with FakeProviderServer(standin_responder()) as fake:
        if provider == "openai":
            llm_env = {
                "OPENAI_API_KEY": "sk-test-not-real",
                "OPENAI_BASE_URL": fake.openai_base_url,
            }
        else:
            llm_env = {
                "ANTHROPIC_API_KEY": "sk-ant-test-not-real",
                "ANTHROPIC_BASE_URL": fake.anthropic_base_url,
            }
        with run_example_server(f"example-server-{provider}", llm_env) as server:
            yield provider, server, fake


def test_onboarding_through_a_provider_sdk(
    provider_setup: tuple[str, ExampleServer, FakeProviderServer],
    page: Any,
    shot: Callable[[str], Path],
) -> None:
    provider, server, fake = provider_setup
    path, model = PROVIDERS[provider]
    open_chat(page, server)
    assert page.locator('[data-testid="standin-banner"]').is_hidden()
    assert page.get_attribute('[data-testid="model-name"]', "data-offline-standin") == "false"
    assert model in page.inner_text('[data-testid="model-name"]')

    choose(page, "onboarding")
    assert "What is your name?" in say(page, "Hi")
    assert "Great, Grace Hopper!" in say(page, "I'm Grace Hopper")
    assert "You're all set, Grace Hopper" in say(page, "grace@example.com")
    assert step(page) == "complete"
    assert progress(page) == "Step 3 of 3"
    shot(f"{provider} onboarding complete")

    requests = [r for r in fake.requests if r.path.endswith(path)]
    assert requests, f"no request reached the fake {provider} API"
    bodies = [r.json for r in requests]
    assert all(body["model"] == model for body in bodies)
    # The journeys stream (JourneyConfig(stream=True)); the SDK asked for a stream.
    assert all(body.get("stream") for body in bodies)
    # Step scoping reached the wire: the email step offered save_email, and save_name only
    # as the correction of an earlier answer (the example's onboarding lets the name be
    # corrected).
    last_tools = bodies[-2].get("tools") or []
    names = [t.get("name") or t.get("function", {}).get("name") for t in last_tools]
    assert names == ["save_email", "save_name"], names
    correction = last_tools[1].get("description") or last_tools[1]["function"]["description"]
    assert "Correct an earlier answer" in correction, correction
