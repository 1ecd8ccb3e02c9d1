"""``OfflineStandInLLM``: a deterministic, rule-based stand-in for a model. It is NOT an AI.

It exists so that demos, the example project and tests run with no network and no API
key. It reads the last messages and applies fixed rules, in this order:

1. The last message is a tool result: answer in text with that result (tool results in
   journeys are usually written for the user, e.g. "Great, Ada! Now, what's your email?");
   a result addressed to the model ("Ask for the user's name.") is restated as in rule 3.
2. The last message is from the user and tools are offered: call the one tool whose
   parameters it can fill from that message. Fillers, from most to least specific:
   an e-mail address (params named/described "email" or ``format: email``); a date
   (``format: date``/``date-time`` or a name containing "date"; accepts 2024-05-01,
   01/05/2024 read day-first unless that is impossible, and "May 1 2024"/"1 May 2024");
   an ``enum`` option named in the message (case-insensitive); a number for
   ``integer``/``number`` params (an age in "I'm 42"); yes/no words for booleans; and,
   when a tool has exactly one free-text string parameter, the message itself with
   leading filler ("my name is", "I'm", "it's", "call me", greetings) and trailing
   punctuation removed. A tool qualifies only if all its required parameters are filled;
   among those, the most specific match wins, then the one with more parameters filled,
   then the first offered. A tool without parameters qualifies only when a word of its
   name appears in the message, or the system prompt says to call/use it by name
   ("Greet the user and call start."). The call id is derived from the call.
3. Otherwise: a short text reply from the step's system prompt (the first system message),
   restating its instruction as a question: "Ask for the user's name." becomes
   "What is your name?", "Thank the user for X." becomes "Thank you for X!".

Conversation control, with the same small means:

- **Several facts per message.** After a tool result, the user's message is read again
  for the tools the new step offers (an e-mail address, a date, an option, a number not
  used yet): "I'm 30 and want car insurance" chooses the cover, then gives the age. Free
  text leaves out a clause holding an e-mail address ("Grace Hopper and my email is ...").
  Numbers may carry thousands separators and a currency sign ("250,000", "£1,200").
- **Switching.** ``switch_journey`` is called when the message names one of its options,
  or a keyword its description lists for one (``option: ... (keywords: a, b)``) together
  with a word such as "instead", "actually" or "back to".
- **Corrections.** A tool described as "Correct an earlier answer" is only considered
  when the message says so ("actually", "sorry", "instead", "change", "wrong", ...).
- **Replies.** After a switch or a correction it asks the new step's question; when a
  call was refused, the reply is the refusal's reason; "help" gets the step's question
  and the services it could switch to; an e-mail address or date no tool can use yet is
  acknowledged before the question.
- **A person.** When ``talk_to_a_person`` is offered and the message asks for a person
  ("talk to a person", "a human", "an agent", "a representative"), it calls that tool
  with the message as the reason.
- **Approvals.** While a call waits for the user's confirmation (the built-in
  ``answer_approval`` tool is offered), a yes ("yes", "ok", "sure", "confirm", "go
  ahead") calls it with ``approve`` and a no ("no", "cancel", "stop") with ``reject``;
  its result is then said without the "Approved by ..." lead, a rejection as "I haven't
  done that" and the step's question.

Token usage is a rough count of whitespace-separated words. ``is_offline_standin`` is True
so a UI can say plainly that no real model is answering.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from ._standin_text import (
    _CONTROL_RESULTS,
    _CORRECTION_PREFIX,
    _CORRECTION_SIGNAL,
    _EMAIL,
    _HELP,
    _NAME_RANK,
    _NO,
    _NUMBER_RANK,
    _SWITCH_RANK,
    _SWITCH_TOOL,
    _YES,
    _fill,
    _is_free_text,
    _mentions_user,
    _prompt_calls,
    _reason,
    _restate,
    _restate_instruction,
    _switch_options,
    _switch_target,
    _words,
    clean_free_text,
    find_date,
)
from ._wire import field, stable_call_id, text_of
from .base import LLMResponse, LLMStreamEvent

__all__ = ["OfflineStandInLLM", "clean_free_text", "find_date"]

#: The built-in escalation tool (agents/people.py) and what asks for it.
_ESCALATION_TOOL = "talk_to_a_person"
_PERSON = re.compile(
    r"\b(a (real |live )?person|human|(an |live |real )agent|representative|someone real|"
    r"member of staff|talk to (a |an |someone|somebody))",
    re.IGNORECASE,
)
#: The built-in tool a user answers a held call with (agents/approvals.py).
_APPROVAL_TOOL = "answer_approval"
_APPROVE_WORDS = _YES | {"confirm", "confirmed", "approve", "approved", "proceed"}
_REJECT_WORDS = _NO | {"cancel", "reject", "stop", "decline", "abort"}
_GO_AHEAD = re.compile(r"\b(go ahead|do it|go for it)\b", re.IGNORECASE)
#: How an approval's outcome reaches the model: "Approved by <who>. <result>".
_APPROVED = re.compile(r"^Approved by [^.]{1,200}\.\s*")
_REJECTED = re.compile(r"^Rejected by [^:]{1,200}: \w+ was not run\.")


class OfflineStandInLLM:
    """A deterministic rule-based stand-in for an LLM — NOT an AI (see the module doc).

    Implements the same ``generate``/``stream`` protocol as the real clients, so a journey
    runs end to end offline. Replies are predictable, which also makes it a convenient
    model for tests; for anything a user should rely on, configure a real provider.
    """

    is_offline_standin: bool = True
    model: str = "offline-stand-in"
    provider: str = "standin"

    def __init__(self, latency: float = 0.0) -> None:
        #: Seconds each call takes (as a provider would), for load tests and benchmarks.
        self.latency = float(latency)

    def __repr__(self) -> str:
        return (
            f"OfflineStandInLLM(latency={self.latency})" if self.latency else "OfflineStandInLLM()"
        )

    async def generate(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        """The rule-based answer (``kwargs`` such as temperature are accepted and ignored)."""
        if self.latency:
            await asyncio.sleep(self.latency)
        return self.reply(messages, tools)

    async def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[LLMStreamEvent]:
        """The same answer, its text as word deltas, then the complete response."""
        response = self.reply(messages, tools)
        content = response.message.get("content") or ""
        if self.latency:
            await asyncio.sleep(self.latency)
        for index, word in enumerate(content.split(" ")):
            piece = word if index == 0 else " " + word
            if piece:
                yield LLMStreamEvent(delta=piece)
        yield LLMStreamEvent(response=response)

    # -- the rules ------------------------------------------------------------------------

    def reply(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> LLMResponse:
        """The answer as a synchronous call (the protocol methods wrap this)."""
        prompt_tokens = sum(_words(text_of(m.get("content")) or "") for m in messages)
        if tools:
            prompt_tokens += sum(_words(json.dumps(tool)) for tool in tools)
        conversation = [m for m in messages if m.get("role") != "system"]
        last = conversation[-1] if conversation else None
        system = next((m for m in messages if m.get("role") == "system"), None)
        system_text = (text_of(system.get("content")) if system is not None else None) or ""
        if last is not None and last.get("role") == "tool":
            results = []
            for message in reversed(conversation):
                if message.get("role") != "tool":
                    break
                results.append(text_of(message.get("content")) or "")
            results.reverse()
            if results and _REJECTED.match(results[-1]):
                # The user said no to a held call: say so, then the step's question.
                return self._text(
                    f"All right, I haven't done that. {_restate(system_text)}", prompt_tokens
                )
            # An approved call's result is written for the user; its lead is for the model.
            results = [_APPROVED.sub("", result, count=1) for result in results]
            control = any(r.startswith(_CONTROL_RESULTS) for r in results)
            refused = any(r.startswith("Error") for r in results)
            if tools and not control and not refused:
                # Several facts in one message: the next step may use what is left of it.
                call = self._follow_up(conversation, tools, len(messages), system_text)
                if call is not None:
                    return self._call(call, prompt_tokens)
            if control:
                lead = (
                    "Sure."
                    if results[-1].startswith("Switched")
                    else "Thanks, I've corrected that."
                )
                return self._text(f"{lead} {_restate(system_text)}", prompt_tokens)
            if refused and results[-1].startswith("Error"):
                reason = _reason(results[-1])
                return self._text(
                    f"Sorry, I couldn't use that: {reason} {_restate(system_text)}", prompt_tokens
                )
            text = " ".join(result for result in results if result) or "Done."
            # A result written for the model ("Ask for the user's name.") is restated.
            instruction = _restate_instruction(text) if _mentions_user(text) else None
            return self._text(instruction or text, prompt_tokens)
        if last is not None and last.get("role") == "user" and tools:
            user_text = text_of(last.get("content")) or ""
            escalate = self._escalation_call(user_text, tools, len(messages))
            if escalate is not None:
                return self._call(escalate, prompt_tokens)
            answer = self._approval_call(user_text, tools, len(messages))
            if answer is not None:
                return self._call(answer, prompt_tokens)
            call = self._choose_tool(user_text, tools, len(messages), system_text)
            if call is not None:
                return self._call(call, prompt_tokens)
        text = _restate(system_text) if system_text else "Hello! How can I help you?"
        if last is not None and last.get("role") == "user" and system_text:
            user_text = text_of(last.get("content")) or ""
            if _HELP.match(user_text):
                options = _switch_options(tools or ())
                if options:
                    text += f" You can also ask me about: {', '.join(options)}."
            elif tools and (_EMAIL.search(user_text) or find_date(user_text)):
                # A fact for a later step: say so rather than ask the same question bare.
                text = f"Thanks, I can't use that just yet. {text}"
        return self._text(text, prompt_tokens)

    @staticmethod
    def _escalation_call(
        text: str, tools: Sequence[Mapping[str, Any]], position: int
    ) -> dict[str, Any] | None:
        """``talk_to_a_person`` when it is offered and the user asks for a person."""
        if not _PERSON.search(text):
            return None
        for tool in tools:
            function = field(tool, "function") or tool
            if field(function, "name") == _ESCALATION_TOOL:
                arguments = json.dumps({"reason": text.strip()[:200]})
                return {
                    "id": stable_call_id(_ESCALATION_TOOL, arguments, position),
                    "type": "function",
                    "function": {"name": _ESCALATION_TOOL, "arguments": arguments},
                }
        return None

    @staticmethod
    def _approval_call(
        text: str, tools: Sequence[Mapping[str, Any]], position: int
    ) -> dict[str, Any] | None:
        """``answer_approval`` when it is offered and the message is a yes or a no."""
        if not any(field(field(t, "function") or t, "name") == _APPROVAL_TOOL for t in tools):
            return None
        if "?" in text:
            return None  # a question ("what does it not cover?"): the other rules answer
        words = set(re.findall(r"[a-z']+", text.lower()))
        if words & _REJECT_WORDS:
            decision = "reject"
        elif words & _APPROVE_WORDS or _GO_AHEAD.search(text):
            decision = "approve"
        else:
            return None  # something else (a question): the other rules answer it
        arguments = json.dumps({"decision": decision})
        return {
            "id": stable_call_id(_APPROVAL_TOOL, arguments, position),
            "type": "function",
            "function": {"name": _APPROVAL_TOOL, "arguments": arguments},
        }

    def _call(self, call: dict[str, Any], prompt_tokens: int) -> LLMResponse:
        return LLMResponse(
            message={"role": "assistant", "content": None, "tool_calls": [call]},
            usage=self._usage(prompt_tokens, _words(call["function"]["arguments"])),
            finish_reason="tool_calls",
            model=self.model,
        )

    def _follow_up(
        self,
        conversation: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        position: int,
        system_prompt: str,
    ) -> dict[str, Any] | None:
        """A call for the step reached this turn, from facts of the user's message left."""
        start = max(
            (i for i, m in enumerate(conversation) if m.get("role") == "user"), default=None
        )
        if start is None:
            return None
        called: set[str] = set()
        used: set[str] = set()
        for message in conversation[start + 1 :]:
            for call in message.get("tool_calls") or ():
                function = field(call, "function") or {}
                called.add(str(field(function, "name") or ""))
                try:
                    arguments = json.loads(field(function, "arguments") or "{}")
                except ValueError:
                    continue
                if isinstance(arguments, dict):
                    used.update(str(v).lower() for v in arguments.values())
        text = text_of(conversation[start].get("content")) or ""
        return self._choose_tool(text, tools, position, system_prompt, follow_up=(called, used))

    def _text(self, text: str, prompt_tokens: int) -> LLMResponse:
        return LLMResponse(
            message={"role": "assistant", "content": text},
            usage=self._usage(prompt_tokens, _words(text)),
            finish_reason="stop",
            model=self.model,
        )

    @staticmethod
    def _usage(prompt: int, completion: int) -> dict[str, int]:
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    @staticmethod
    def _choose_tool(
        text: str,
        tools: Sequence[Mapping[str, Any]],
        position: int,
        system_prompt: str = "",
        *,
        follow_up: tuple[set[str], set[str]] | None = None,
    ) -> dict[str, Any] | None:
        """The best fillable tool as an OpenAI tool call, or None.

        ``follow_up``: (tools called, values used) earlier this turn; then only a new tool
        with specific values not used yet qualifies (no free text, yes/no or switches).
        """
        best: tuple[tuple[int, int, int], str, dict[str, Any]] | None = None
        for order, tool in enumerate(tools):
            function = field(tool, "function") or tool
            name = field(function, "name")
            if not isinstance(name, str) or not name or name == _ESCALATION_TOOL:
                continue  # a person is asked for by words only (``_escalation_call``)
            parameters = field(function, "parameters") or field(tool, "input_schema") or {}
            properties: Mapping[str, Any] = field(parameters, "properties") or {}
            required = set(field(parameters, "required") or ())
            description = str(field(function, "description") or "")
            correction = description.startswith(_CORRECTION_PREFIX)
            if name == _SWITCH_TOOL:
                if follow_up is not None:
                    continue
                target = _switch_target(text, properties.get("journey") or {})
                if target is not None:
                    score = (_SWITCH_RANK, 1, -order)
                    if best is None or score > best[0]:
                        best = (score, name, {"journey": target})
                continue
            if correction and (follow_up is not None or not _CORRECTION_SIGNAL.search(text)):
                continue
            if follow_up is not None and name in follow_up[0]:
                continue
            free_text = [p for p, schema in properties.items() if _is_free_text(p, schema)]
            arguments: dict[str, Any] = {}
            ranks: list[int] = []
            for param, schema in properties.items():
                filled = _fill(param, schema or {}, text, allow_free_text=len(free_text) == 1)
                if filled is not None:
                    if follow_up is not None and (
                        filled.rank < _NUMBER_RANK or str(filled.value).lower() in follow_up[1]
                    ):
                        continue
                    arguments[param] = filled.value
                    ranks.append(filled.rank)
            if not required <= arguments.keys():
                continue
            if not properties:
                if follow_up is not None:
                    continue
                # Called when the user names it ("confirm") or the step's prompt says to.
                words = {word for word in re.split(r"[_\W]+", name.lower()) if len(word) > 2}
                named = bool(words & set(re.findall(r"\w+", text.lower())))
                prompted = _prompt_calls(system_prompt, name)
                if not (named or prompted):
                    continue
                ranks.append(_NAME_RANK)
            if not ranks:
                continue
            score = (max(ranks), len(ranks), -order)
            if best is None or score > best[0]:
                best = (score, name, arguments)
        if best is None:
            return None
        _, name, arguments = best
        encoded = json.dumps(arguments, ensure_ascii=False)
        return {
            "id": stable_call_id(name, encoded, position),
            "type": "function",
            "function": {"name": name, "arguments": encoded},
        }
