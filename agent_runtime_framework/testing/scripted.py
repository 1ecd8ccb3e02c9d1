"""A scripted fake LLM: plays queued replies and records every call it receives."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..llm.base import LLMResponse, LLMStreamEvent

__all__ = ["RecordedCall", "ScriptExhausted", "ScriptedLLM", "tool_call"]


class ScriptExhausted(AssertionError):
    """The code under test called the model more often than the script foresaw."""


def tool_call(
    tool_name: str,
    arguments: Mapping[str, Any] | None = None,
    /,
    *,
    raw_arguments: str | None = None,
    id: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """An OpenAI-format tool call; ``raw_arguments`` sends a literal (maybe broken) string."""
    args = (
        raw_arguments if raw_arguments is not None else json.dumps({**(arguments or {}), **kwargs})
    )
    return {
        "id": id or "",
        "type": "function",
        "function": {"name": tool_name, "arguments": args},
    }


@dataclass(slots=True)
class RecordedCall:
    """What the model was sent on one call."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def system_prompt(self) -> str | None:
        if self.messages and self.messages[0].get("role") == "system":
            return self.messages[0].get("content")
        return None

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.tools]


class ScriptedLLM:
    """Answers from a queue. Items: a str (text reply), a tool call dict or a list of them
    (one answer with several calls), an ``LLMResponse``, or an exception to raise."""

    def __init__(
        self,
        script: Iterable[Any] = (),
        *,
        usage: Mapping[str, int] | None = None,
        model: str | None = None,
    ) -> None:
        self.script: deque[Any] = deque(script)
        self.calls: list[RecordedCall] = []
        self.usage = dict(
            usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        )
        #: The model name answers report (as a provider client's ``model``): prices apply.
        self.model = model
        self._ids = 0

    # -- building the script ---------------------------------------------------------------
    def reply(self, text: str) -> ScriptedLLM:
        self.script.append(text)
        return self

    def call(
        self, tool_name: str, arguments: Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> ScriptedLLM:
        self.script.append(tool_call(tool_name, arguments, **kwargs))
        return self

    def calls_many(self, *calls: dict[str, Any]) -> ScriptedLLM:
        self.script.append(list(calls))
        return self

    def fail(self, error: BaseException) -> ScriptedLLM:
        self.script.append(error)
        return self

    @property
    def remaining(self) -> int:
        return len(self.script)

    def assert_exhausted(self) -> None:
        if self.script:
            raise AssertionError(
                f"{len(self.script)} scripted replies were never used: {list(self.script)}"
            )

    # -- the client protocol -----------------------------------------------------------------
    async def generate(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        self.calls.append(
            RecordedCall(
                messages=[dict(m) for m in messages],
                tools=[dict(t) for t in tools or ()],
                kwargs=dict(kwargs),
            )
        )
        if not self.script:
            raise ScriptExhausted(
                f"ScriptedLLM has no reply left for call #{len(self.calls)}; last message: "
                f"{dict(messages[-1]) if messages else None}"
            )
        item = self.script.popleft()
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, LLMResponse):
            return item
        if isinstance(item, str):
            message: dict[str, Any] = {"role": "assistant", "content": item}
        else:
            calls = [item] if isinstance(item, dict) else list(item)
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [self._with_id(c) for c in calls],
            }
        return LLMResponse(message=message, usage=dict(self.usage), model=self.model)

    async def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[LLMStreamEvent]:
        response = await self.generate(messages, tools, **kwargs)
        text = response.message.get("content") or ""
        for index, word in enumerate(text.split(" ")):
            yield LLMStreamEvent(delta=word if index == 0 else " " + word)
        yield LLMStreamEvent(response=response)

    def _with_id(self, call: dict[str, Any]) -> dict[str, Any]:
        if call.get("id"):
            return call
        self._ids += 1
        return {**call, "id": f"call_{self._ids}"}
