"""Per-turn framework overhead: JourneyAgent vs a minimal hand-written asyncio loop.

The seed's onboarding journey (tests/journeys.py), each turn = 2 LLM calls + 1 tool call,
a zero-latency scripted LLM, in-memory stores. The floor does the same work by hand:
load the state dict, send system prompt + whole history + the new message, run the tool,
send again, append the turn's messages, save the state dict. Both run side by side in one
process, interleaved, so machine noise hits both alike.

For the long conversation the journey cycles: at COMPLETE a ``restart`` tool returns it
to COLLECT_NAME (same work per turn; the history keeps growing), and turns 451-500 are
measured.

Run: python bench/bench_core_turns.py [--conversations 300] [--long-turns 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent_runtime_framework import AgentContext, LLMResponse, ToolSchemaBuilder
from tests.journeys import (
    PROMPTS,
    OnboardingAgent,
    OnboardingState,
    OnboardingStep,
    OnboardingTools,
)

USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
ANSWERS = {
    OnboardingStep.WELCOME: ("start", {}),
    OnboardingStep.COLLECT_NAME: ("save_name", {"name": "Ann"}),
    OnboardingStep.COLLECT_EMAIL: ("save_email", {"email": "ann@example.com"}),
    OnboardingStep.COMPLETE: ("restart", {}),
}
TOOL_BY_PROMPT = {PROMPTS[step]: ANSWERS[step] for step in ANSWERS}


class ZeroLatencyLLM:
    """Answers by looking at the prompt: a tool call first, then text after a tool result."""

    def __init__(self) -> None:
        self.n = 0

    async def generate(
        self, messages: list[dict[str, Any]], tools: Any = None, **kw: Any
    ) -> LLMResponse:
        self.n += 1
        if messages[-1]["role"] == "tool" or not tools:
            return LLMResponse({"role": "assistant", "content": "Thanks! Next?"}, USAGE)
        name, args = TOOL_BY_PROMPT[messages[0]["content"]]
        call = {
            "id": f"c{self.n}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        return LLMResponse({"role": "assistant", "content": None, "tool_calls": [call]}, USAGE)


class CyclingTools(OnboardingTools):
    async def restart(self) -> str:
        self.state.step = OnboardingStep.COLLECT_NAME
        return "Restarted"


class CyclingAgent(OnboardingAgent):
    """The seed's onboarding, plus ``restart`` at COMPLETE so a conversation can go on."""

    def get_tool_schemas(self, state: OnboardingState) -> list:
        if state.step == OnboardingStep.COMPLETE:
            return [ToolSchemaBuilder("restart").description("Start again").build()]
        return super().get_tool_schemas(state)

    def create_tools(self, state: OnboardingState, ctx: AgentContext) -> CyclingTools:
        return CyclingTools(state=state)


# -- the floor: the same work, written by hand ----------------------------------------------

FLOOR_TOOLS = {
    OnboardingStep.WELCOME: [
        {
            "type": "function",
            "function": {
                "name": "start",
                "description": "Begin onboarding",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ],
    OnboardingStep.COLLECT_NAME: [
        {
            "type": "function",
            "function": {
                "name": "save_name",
                "description": "Save the user's name",
                "parameters": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "required": ["name"],
                },
            },
        }
    ],
    OnboardingStep.COLLECT_EMAIL: [
        {
            "type": "function",
            "function": {
                "name": "save_email",
                "description": "Save the user's email",
                "parameters": {
                    "type": "object",
                    "properties": {"email": {"type": "string"}},
                    "required": ["email"],
                },
            },
        }
    ],
    OnboardingStep.COMPLETE: [
        {
            "type": "function",
            "function": {
                "name": "restart",
                "description": "Start again",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ],
}


class Floor:
    def __init__(self, llm: ZeroLatencyLLM) -> None:
        self.llm = llm
        self.states: dict[str, dict[str, Any]] = {}
        self.histories: dict[str, list[dict[str, Any]]] = {}

    async def turn(self, conversation_id: str, text: str) -> str:
        data = self.states.get(conversation_id)
        state = OnboardingState.from_dict(data) if data else OnboardingState()
        history = self.histories.setdefault(conversation_id, [])
        user = {"role": "user", "content": text}
        messages = [{"role": "system", "content": PROMPTS[state.step]}, *history, user]
        response = await self.llm.generate(messages, tools=FLOOR_TOOLS[state.step])
        new = [user, response.message]
        tools = CyclingTools(state=state)
        for call in response.message.get("tool_calls") or []:
            function = call["function"]
            result = await getattr(tools, function["name"])(**json.loads(function["arguments"]))
            new.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        messages.extend(new[1:])
        messages[0] = {"role": "system", "content": PROMPTS[state.step]}
        final = await self.llm.generate(messages, tools=FLOOR_TOOLS[state.step])
        new.append(final.message)
        history.extend(new)
        self.states[conversation_id] = state.to_dict()
        return str(final.message["content"])


# -- measuring --------------------------------------------------------------------------------


def summary(samples_ns: list[int]) -> tuple[float, float]:
    us = sorted(s / 1000 for s in samples_ns)
    return statistics.median(us), us[int(len(us) * 0.95) - 1]


async def short_conversations(n: int) -> tuple[list[int], list[int]]:
    framework = CyclingAgent(llm_client=ZeroLatencyLLM())
    floor = Floor(ZeroLatencyLLM())
    fw: list[int] = []
    fl: list[int] = []
    for _ in range(n):
        cid = str(uuid.uuid4())
        for text in ("hello", "Ann", "ann@example.com"):
            t0 = time.perf_counter_ns()
            await floor.turn(cid, text)
            t1 = time.perf_counter_ns()
            await framework.run(AgentContext.for_message(cid, text))
            t2 = time.perf_counter_ns()
            fl.append(t1 - t0)
            fw.append(t2 - t1)
    return fw, fl


async def long_conversation(turns: int, window: tuple[int, int]) -> tuple[list[int], list[int]]:
    framework = CyclingAgent(llm_client=ZeroLatencyLLM())
    floor = Floor(ZeroLatencyLLM())
    cid = str(uuid.uuid4())
    fw: list[int] = []
    fl: list[int] = []
    texts = ["hello", "Ann", "ann@example.com", "again"]
    for i in range(1, turns + 1):
        text = texts[(i - 1) % 4]
        t0 = time.perf_counter_ns()
        await floor.turn(cid, text)
        t1 = time.perf_counter_ns()
        await framework.run(AgentContext.for_message(cid, text))
        t2 = time.perf_counter_ns()
        if window[0] <= i <= window[1]:
            fl.append(t1 - t0)
            fw.append(t2 - t1)
    history = await framework.memory.conversation_store.get_messages(cid)
    assert len(history) == len(floor.histories[cid]), "framework and floor diverged"
    return fw, fl


def report(label: str, fw: list[int], fl: list[int]) -> float:
    fw_med, fw_p95 = summary(fw)
    fl_med, fl_p95 = summary(fl)
    ratio = fw_med / fl_med
    print(f"{label}")
    print(f"  framework  median {fw_med:8.1f} us/turn   p95 {fw_p95:8.1f} us")
    print(f"  floor      median {fl_med:8.1f} us/turn   p95 {fl_p95:8.1f} us")
    print(f"  ratio framework/floor (median): {ratio:.2f}")
    return ratio


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=300)
    parser.add_argument("--long-turns", type=int, default=500)
    args = parser.parse_args()
    await short_conversations(20)  # warm-up: imports, caches
    fw, fl = await short_conversations(args.conversations)
    short = report(f"Short conversations ({args.conversations} x 3 turns, onboarding):", fw, fl)
    start = max(1, args.long_turns - 49)
    fw, fl = await long_conversation(args.long_turns, (start, args.long_turns))
    long = report(f"Long conversation, turns {start}-{args.long_turns}:", fw, fl)
    print(
        f"targets: short <= 3.0 ({'ok' if short <= 3 else 'MISSED'}), "
        f"long <= 3.0 ({'ok' if long <= 3 else 'MISSED'})"
    )


if __name__ == "__main__":
    asyncio.run(main())
