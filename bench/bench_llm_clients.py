"""Client overhead per call: the provider SDK called directly vs through our clients.

Both paths share one SDK instance and hit the same local fake provider server
(``agent_runtime_framework.testing.fake_providers``, run in a child process so it does not
compete for this process's GIL); calls alternate one by one so drift hits both alike. The
server's own handling time (measured inside the server, same canned answers for both
paths) is subtracted from the medians, leaving the client-side cost: request building,
HTTP, parsing, and for our clients the translation, normalization and retry wrapper.

Run: ``python bench/bench_llm_clients.py [--iterations 1000] [--rounds 10]``.
Target: our client ≤ 1.2x the SDK's own overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import openai

from agent_runtime_framework.llm import AnthropicClient, OpenAIClient, RetryPolicy
from agent_runtime_framework.llm.anthropic_client import to_anthropic_messages, to_anthropic_tools
from agent_runtime_framework.testing.fake_providers import (
    FakeProviderServer,
    FakeResponse,
    RecordedRequest,
    anthropic_message,
    anthropic_stream,
    openai_completion,
    openai_stream,
)

TEXT = "Thanks, Ada! I have saved your name. What is the best email address to reach you at?"

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Collect the user's email using save_email tool. Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Welcome! What is your name?"},
    {"role": "user", "content": "Ada Lovelace"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "save_name", "arguments": '{"name": "Ada Lovelace"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "Saved."},
    {"role": "user", "content": "ada@example.com"},
]

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"Save the user's {field}",
            "parameters": {
                "type": "object",
                "properties": {field: {"type": "string", "description": f"The user's {field}"}},
                "required": [field],
            },
        },
    }
    for name, field in (("save_email", "email"), ("save_phone", "phone"))
]


_SERVER: FakeProviderServer | None = None


def _responder(request: RecordedRequest) -> FakeResponse:
    """Canned answers by path and stream flag (built once, reused)."""
    if request.path == "/_bench/server-times":
        # Server-side handling times so far (µs), then forget them.
        assert _SERVER is not None
        times = [r.handling_seconds * 1e6 for r in _SERVER.requests[:-1]]
        _SERVER.reset()
        return FakeResponse(json_body=times)
    streaming = b'"stream":true' in request.body or b'"stream": true' in request.body
    if request.path.endswith("/chat/completions"):
        return _OPENAI_STREAM if streaming else _OPENAI_JSON
    return _ANTHROPIC_STREAM if streaming else _ANTHROPIC_JSON


def _serve(port_out: Any, stop: Any) -> None:
    """Child process: run the fake server, so it does not share the client's GIL."""
    global _SERVER
    with FakeProviderServer(_responder) as server:
        _SERVER = server
        port_out.send(server.url)
        stop.wait()


_OPENAI_JSON = openai_completion(TEXT, [("save_email", {"email": "ada@example.com"})])
_OPENAI_STREAM = openai_stream(
    TEXT, [("save_email", {"email": "ada@example.com"})], argument_chunk=8
)
_ANTHROPIC_JSON = anthropic_message(TEXT, [("save_email", {"email": "ada@example.com"})])
_ANTHROPIC_STREAM = anthropic_stream(
    TEXT, [("save_email", {"email": "ada@example.com"})], argument_chunk=8
)


@dataclass
class Case:
    name: str
    direct: Callable[[], Awaitable[Any]]
    ours: Callable[[], Awaitable[Any]]


def build_cases(url: str) -> list[Case]:
    # Typed as Any: the SDKs' TypedDict parameters are beside the point of a benchmark.
    oa_sdk: Any = openai.AsyncOpenAI(api_key="sk-bench", base_url=f"{url}/v1", max_retries=0)
    an_sdk: Any = anthropic.AsyncAnthropic(api_key="sk-bench", base_url=url, max_retries=0)
    policy = RetryPolicy(max_retries=0)
    oa = OpenAIClient("gpt-bench", client=oa_sdk, retry=policy)
    an = AnthropicClient("claude-bench", client=an_sdk, retry=policy)
    # The direct Anthropic path gets messages already in Anthropic shape (as a user of
    # the SDK would write them); our client translates from OpenAI shape on every call.
    an_system, an_messages = to_anthropic_messages(MESSAGES)
    an_tools = to_anthropic_tools(TOOLS)

    async def oa_direct() -> Any:
        completion = await oa_sdk.chat.completions.create(
            model="gpt-bench", messages=MESSAGES, tools=TOOLS
        )
        return completion.choices[0].message

    async def oa_direct_stream() -> Any:
        parts: list[str] = []
        chunks = await oa_sdk.chat.completions.create(
            model="gpt-bench",
            messages=MESSAGES,
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in chunks:
            for choice in chunk.choices:
                if choice.delta.content:
                    parts.append(choice.delta.content)
        return "".join(parts)

    async def an_direct() -> Any:
        message = await an_sdk.messages.create(
            model="claude-bench",
            max_tokens=1024,
            system=an_system,
            messages=an_messages,
            tools=an_tools,
        )
        return message.content

    async def an_direct_stream() -> Any:
        parts: list[str] = []
        events = await an_sdk.messages.create(
            model="claude-bench",
            max_tokens=1024,
            system=an_system,
            messages=an_messages,
            tools=an_tools,
            stream=True,
        )
        async for event in events:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                parts.append(event.delta.text)
        return "".join(parts)

    async def drain(stream: Any) -> Any:
        last = None
        async for event in stream:
            last = event
        return last

    return [
        Case("openai generate", oa_direct, lambda: oa.generate(MESSAGES, tools=TOOLS)),
        Case("openai stream", oa_direct_stream, lambda: drain(oa.stream(MESSAGES, tools=TOOLS))),
        Case("anthropic generate", an_direct, lambda: an.generate(MESSAGES, tools=TOOLS)),
        Case("anthropic stream", an_direct_stream, lambda: drain(an.stream(MESSAGES, tools=TOOLS))),
    ]


async def _time(fn: Callable[[], Awaitable[Any]], count: int, into: list[float]) -> None:
    for _ in range(count):
        started = time.perf_counter_ns()
        await fn()
        into.append((time.perf_counter_ns() - started) / 1000.0)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


async def _server_times(url: str) -> list[float]:
    import httpx2

    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{url}/_bench/server-times")
        return [float(value) for value in response.json()]


async def run(
    url: str, iterations: int, rounds: int, warmup: int, only: str = ""
) -> list[tuple[str, dict[str, float]]]:
    """Per case: warm up, then alternate rounds of direct SDK calls and our client's calls."""
    results: list[tuple[str, dict[str, float]]] = []
    per_round = max(1, iterations // rounds)
    for case in build_cases(url):
        if only not in case.name:
            continue
        for fn in (case.direct, case.ours):  # warm caches, connections, imports
            await _time(fn, warmup, [])
        direct: list[float] = []
        ours: list[float] = []
        server: list[float] = []
        gc.collect()
        await _server_times(url)
        for _ in range(rounds):
            # Alternate call by call, so drift and background noise hit both paths alike.
            for _ in range(per_round):
                await _time(case.direct, 1, direct)
                await _time(case.ours, 1, ours)
            server += await _server_times(url)
        server_median = statistics.median(server)
        stats = {
            "direct_median": statistics.median(direct),
            "direct_p95": _p95(direct),
            "ours_median": statistics.median(ours),
            "ours_p95": _p95(ours),
            "server_median": server_median,
            "direct_overhead": statistics.median(direct) - server_median,
            "ours_overhead": statistics.median(ours) - server_median,
        }
        stats["ratio"] = stats["ours_overhead"] / stats["direct_overhead"]
        results.append((case.name, stats))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000, help="calls per path per case")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--case", default="", help="only cases whose name contains this")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")  # a clean child on every platform
    receive, send = context.Pipe(duplex=False)
    stop = context.Event()
    child = context.Process(target=_serve, args=(send, stop), daemon=True)
    child.start()
    try:
        url = receive.recv()
        results = asyncio.run(run(url, args.iterations, args.rounds, args.warmup, args.case))
    finally:
        stop.set()
        child.join(timeout=5)
    print(f"{args.iterations} calls per path; µs per call (overhead = client time - server time)")
    header = (
        f"{'case':<20} {'SDK med':>9} {'SDK p95':>9} {'ours med':>9} {'ours p95':>9} "
        f"{'server':>8} {'SDK ovh':>9} {'ours ovh':>9} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for name, s in results:
        worst = max(worst, s["ratio"])
        print(
            f"{name:<20} {s['direct_median']:>9.0f} {s['direct_p95']:>9.0f} "
            f"{s['ours_median']:>9.0f} {s['ours_p95']:>9.0f} {s['server_median']:>8.0f} "
            f"{s['direct_overhead']:>9.0f} {s['ours_overhead']:>9.0f} {s['ratio']:>5.2f}x"
        )
    verdict = "OK" if worst <= 1.2 else "ABOVE TARGET"
    print(f"worst ratio {worst:.2f}x (target <= 1.20x): {verdict}")


if __name__ == "__main__":
    main()
