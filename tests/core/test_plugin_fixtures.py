"""The pytest plugin's fixtures, used directly (they are registered by the entry point)."""

from agent_runtime_framework import configure, is_debug
from agent_runtime_framework.llm import OpenAIClient
from agent_runtime_framework.testing.fake_providers import openai_completion


async def test_fake_provider_server_fixture_serves_the_openai_wire_format(fake_provider_server):
    fake_provider_server.enqueue(openai_completion("Hello from the fake"))
    client = OpenAIClient("fake-model", api_key="k", base_url=fake_provider_server.openai_base_url)
    response = await client.generate([{"role": "user", "content": "hi"}])
    assert response.message["content"] == "Hello from the fake"
    assert len(fake_provider_server.requests) == 1


def test_framework_config_fixture_restores_the_previous_config(framework_config):
    configure(debug=False)
    framework_config(debug=True)
    assert is_debug()
