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

Token usage is a rough count of whitespace-separated words. ``is_offline_standin`` is True
so a UI can say plainly that no real model is answering.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._wire import field, stable_call_id, text_of
from .base import LLMResponse, LLMStreamEvent

__all__ = ["OfflineStandInLLM"]

# -- patterns -----------------------------------------------------------------------------

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_NUMERIC_DATE = re.compile(r"\b(\d{1,2})[/.](\d{1,2})[/.](\d{4})\b")
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_MONTH_FIRST = re.compile(
    rf"\b({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.IGNORECASE
)
_DAY_FIRST = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})\.?,?\s+(\d{{4}})\b", re.IGNORECASE
)
#: A number, maybe with thousands separators and a currency sign: 42, 250,000, £1,200.50.
_NUMBER = re.compile(
    r"(?<![\w.,])(?:[£$€]\s?)?-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])(?!,\d)"
)
_YES = frozenset(
    {
        *("yes", "y", "yeah", "yep", "yup", "sure", "true", "correct", "right"),
        *("agree", "agreed", "ok", "okay", "certainly", "absolutely", "definitely"),
    }
)
_NO = frozenset(
    {
        *("no", "n", "nope", "nah", "false", "incorrect", "wrong", "disagree"),
        *("never", "not", "don't", "dont"),
    }
)
_FILLER = re.compile(
    r"^(?:(?:hi|hello|hey|well|ok|okay|sure|so|yes|yeah|actually|sorry|oops|no|wait)\b[\s,!.]*"
    r"|(?:my\s+name\s+is|my\s+name's|name's|i\s+am|i'm|im|it\s+is|it's|its|this\s+is"
    r"|call\s+me|the\s+answer\s+is|that\s+would\s+be|that's)\s+)+",
    re.IGNORECASE,
)
#: Whole messages that are small talk, never a value for a free-text parameter.
_GREETINGS = frozenset(
    {
        *("hi", "hello", "hey", "yo", "thanks", "thank you", "ok", "okay", "sure"),
        *("yes", "no", "hm", "hmm", "start", "begin", "go", "help"),
    }
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
#: Clauses of a message, for leaving out the one that holds another fact.
_CLAUSE = re.compile(r"\s*(?:[,;]|\band\b|\bbut\b)\s*", re.IGNORECASE)
_TRAILING = re.compile(r"\s+(?:instead|please|thanks|thank\s+you)\s*$", re.IGNORECASE)
#: Words that say the user changes course: a switch (with a keyword) or a correction.
_SWITCH_SIGNAL = re.compile(
    r"\b(?:instead|actually|rather|switch|back\s+to|return\s+to|resume|go\s+back"
    r"|change\s+of\s+plan)\b",
    re.IGNORECASE,
)
_CORRECTION_SIGNAL = re.compile(
    r"\b(?:actually|sorry|oops|instead|change|changed|correct|correction|wrong|mistake"
    r"|meant|rather|update|make\s+that|typo)\b",
    re.IGNORECASE,
)
_HELP = re.compile(
    r"^\s*(?:help|help\s+me|\?+|options|menu|what\s+can\s+(?:i|you)\s+do)\s*[?!.]*\s*$",
    re.IGNORECASE,
)
#: Names and prefixes of the framework's conversation-control tools (agents/control.py);
#: repeated here because the model layer does not import the agents.
_SWITCH_TOOL = "switch_journey"
_CORRECTION_PREFIX = "Correct an earlier answer"
_CONTROL_RESULTS = ("Switched to", "Corrected the answer")
_INSTRUCTION = re.compile(
    r"^(?:please\s+)?(?:now\s+)?(?:ask|collect|get|request|obtain|gather|find\s+out|confirm)\s+"
    r"(?:for\s+|about\s+)?"
    r"(?:the\s+user(?:'s|s')?\s+(?:for\s+|about\s+)?)?"
    r"(?P<thing>.+?)"
    r"(?:\s+(?:using|with|via|by\s+calling|through)\b.*)?[.!]?$",
    re.IGNORECASE,
)
_THANK = re.compile(r"^(?:please\s+)?thank\s+the\s+user\s+(?P<rest>.*?)[.!]?$", re.IGNORECASE)
_GREETING_SENTENCE = re.compile(r"^(?:welcome|hello|hi|hey|greetings)\b[^.?]*[!.]?$", re.IGNORECASE)

#: A switch the user asked for outranks any answer the message may also hold.
_SWITCH_RANK = 7
#: Specificity of each filler; higher wins when several tools qualify.
_EMAIL_RANK, _DATE_RANK, _ENUM_RANK, _NUMBER_RANK, _BOOL_RANK, _NAME_RANK, _TEXT_RANK = (
    6,
    6,
    5,
    4,
    3,
    2,
    1,
)


@dataclass(slots=True, frozen=True)
class _Fill:
    value: Any
    rank: int


def _words(text: str) -> int:
    return len(text.split())


def _schema_type(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), None)
    return kind if isinstance(kind, str) else None


def _is_email_param(name: str, schema: Mapping[str, Any]) -> bool:
    if schema.get("format") == "email":
        return True
    description = str(schema.get("description") or "").lower()
    return "email" in name.lower() or "e-mail" in description or "email" in description


def _is_date_param(name: str, schema: Mapping[str, Any]) -> bool:
    return schema.get("format") in ("date", "date-time") or "date" in name.lower()


def _is_free_text(name: str, schema: Mapping[str, Any]) -> bool:
    return (
        _schema_type(schema) in ("string", None)
        and "enum" not in schema
        and not _is_email_param(name, schema)
        and not _is_date_param(name, schema)
    )


def _safe_date(year: int, month: int, day: int) -> _dt.date | None:
    try:
        return _dt.date(year, month, day)
    except ValueError:
        return None


def find_date(text: str) -> _dt.date | None:
    """The first date written in one of the supported forms, or None."""
    match = _ISO_DATE.search(text)
    if match:
        found = _safe_date(int(match[1]), int(match[2]), int(match[3]))
        if found:
            return found
    match = _NUMERIC_DATE.search(text)
    if match:
        first, second, year = int(match[1]), int(match[2]), int(match[3])
        # Day first (01/05/2024 is 1 May), unless only month-first is a valid date.
        found = _safe_date(year, second, first) or _safe_date(year, first, second)
        if found:
            return found
    match = _MONTH_FIRST.search(text)
    if match:
        found = _safe_date(int(match[3]), _MONTHS[match[1].lower()], int(match[2]))
        if found:
            return found
    match = _DAY_FIRST.search(text)
    if match:
        return _safe_date(int(match[3]), _MONTHS[match[2].lower()], int(match[1]))
    return None


def _strip_dates_and_emails(text: str) -> str:
    for pattern in (_EMAIL, _ISO_DATE, _NUMERIC_DATE, _MONTH_FIRST, _DAY_FIRST):
        text = pattern.sub(" ", text)
    return text


def clean_free_text(text: str) -> str:
    """The message without leading filler words and trailing punctuation."""
    stripped = text.strip()
    cleaned = _FILLER.sub("", stripped).strip().strip("\"'").rstrip(".!?,;: ").strip()
    cleaned = _TRAILING.sub("", cleaned).rstrip(".!?,;: ").strip()
    return cleaned or stripped.rstrip(".!?")


def _without_email_clauses(text: str) -> str:
    """The message without the clauses that hold an e-mail address (another step's fact):
    "Hi, I'm Grace Hopper and my email is grace@example.com" -> "Hi, I'm Grace Hopper"."""
    if not _EMAIL.search(text):
        return text
    kept = [part for part in _CLAUSE.split(text) if part and not _EMAIL.search(part)]
    return ", ".join(kept)


def _number(text: str) -> float | None:
    match = _NUMBER.search(_strip_dates_and_emails(text))
    if not match:
        return None
    return float(re.sub(r"[£$€,\s]", "", match[0]))


def _fill(name: str, schema: Mapping[str, Any], text: str, allow_free_text: bool) -> _Fill | None:
    """A value for one parameter from the message, or None if this rule set cannot tell."""
    lowered = text.lower()
    kind = _schema_type(schema)
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        best: tuple[int, int, Any] | None = None
        for option in enum:
            label = str(option).lower()
            for variant in {label, label.replace("_", " "), label.replace("-", " ")}:
                match = re.search(rf"(?<!\w){re.escape(variant)}(?!\w)", lowered)
                if match and (best is None or (len(variant), -match.start()) > best[:2]):
                    best = (len(variant), -match.start(), option)
        return _Fill(best[2], _ENUM_RANK) if best else None
    if kind == "boolean":
        tokens = set(re.findall(r"[a-z']+", lowered))
        if tokens & _NO:
            return _Fill(False, _BOOL_RANK)
        if tokens & _YES:
            return _Fill(True, _BOOL_RANK)
        return None
    if kind in ("integer", "number"):
        number = _number(text)
        if number is None:
            return None
        if kind == "integer":
            return _Fill(int(number), _NUMBER_RANK)
        return _Fill(int(number) if number.is_integer() else number, _NUMBER_RANK)
    if kind not in ("string", None):
        return None
    if _is_email_param(name, schema):
        email = _EMAIL.search(text)
        return _Fill(email[0], _EMAIL_RANK) if email else None
    if _is_date_param(name, schema):
        date = find_date(text)
        if date is None:
            return None
        value = date.isoformat()
        if schema.get("format") == "date-time":
            value += "T00:00:00"
        return _Fill(value, _DATE_RANK)
    if allow_free_text:
        remaining = _without_email_clauses(text)
        if not remaining.strip():
            return None  # the message is only an e-mail address: not a name, not a story
        cleaned = clean_free_text(remaining)
        if not cleaned or cleaned.lower() in _GREETINGS:
            return None
        return _Fill(cleaned, _TEXT_RANK)
    return None


def _question(thing: str) -> str:
    """ "the user's name" -> "What is your name?" (and similar shapes)."""
    thing = _second_person(thing.strip())
    lowered = thing.lower()
    if lowered.startswith(("whether ", "if ")):
        return f"Could you tell me {thing}?"
    if lowered.startswith(("what ", "which ", "how ", "who ", "when ", "where ")):
        return f"{thing[0].upper()}{thing[1:]}?"
    if lowered.startswith(("your ", "a ", "an ", "the ")):
        return f"What is {thing}?"
    return f"What is your {thing}?"


def _restate_instruction(text: str) -> str | None:
    """The instruction in ``text`` said to the user, or None if it holds no instruction.

    A question is kept; "Ask for/Collect the user's X" becomes "What is your X?";
    "Thank the user for X" becomes "Thank you for X!". A leading greeting sentence
    ("Welcome!") is kept in front.
    """
    sentences = [part.strip() for part in _SENTENCE.split(text.strip()) if part.strip()]
    greeting: list[str] = []
    for sentence in sentences:
        if sentence.endswith("?") and "user" not in sentence.lower():
            return " ".join([*greeting, sentence])
        match = _INSTRUCTION.match(sentence)
        if match:
            return " ".join([*greeting, _question(match["thing"])])
        match = _THANK.match(sentence)
        if match:
            rest = _second_person(match["rest"].strip())
            return " ".join([*greeting, f"Thank you {rest}!" if rest else "Thank you!"])
        if _GREETING_SENTENCE.match(sentence) and not greeting:
            greeting.append(sentence if sentence[-1] in "!." else sentence + "!")
    if greeting:
        return " ".join([*greeting, "How can I help you?"])
    return None


def _restate(system_prompt: str) -> str:
    """A short reply from the step's system prompt, so a demo still moves forward."""
    return _restate_instruction(system_prompt) or "Could you tell me more?"


def _mentions_user(text: str) -> bool:
    return re.search(r"\bthe\s+user\b", text, re.IGNORECASE) is not None


def _prompt_calls(system_prompt: str, tool_name: str) -> bool:
    """True if the prompt tells the model to call/use this tool by name."""
    if not system_prompt:
        return False
    pattern = rf"\b(?:call|use|using|invoke|run)\s+(?:the\s+)?`?{re.escape(tool_name)}`?(?!\w)"
    return re.search(pattern, system_prompt, re.IGNORECASE) is not None


def _second_person(text: str) -> str:
    text = re.sub(r"\bthe user's\b", "your", text, flags=re.IGNORECASE)
    text = re.sub(r"\b(?:their|his or her|his/her)\b", "your", text, flags=re.IGNORECASE)
    text = re.sub(r"\b(?:the user|they|them)\b", "you", text, flags=re.IGNORECASE)
    return text


class OfflineStandInLLM:
    """A deterministic rule-based stand-in for an LLM — NOT an AI (see the module doc).

    Implements the same ``generate``/``stream`` protocol as the real clients, so a journey
    runs end to end offline. Replies are predictable, which also makes it a convenient
    model for tests; for anything a user should rely on, configure a real provider.
    """

    is_offline_standin: bool = True
    model: str = "offline-stand-in"
    provider: str = "standin"

    def __repr__(self) -> str:
        return "OfflineStandInLLM()"

    async def generate(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        """The rule-based answer (``kwargs`` such as temperature are accepted and ignored)."""
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
            if not isinstance(name, str) or not name:
                continue
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


def _switch_options(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    """The options of an offered ``switch_journey`` tool (for a "help" reply)."""
    for tool in tools:
        function = field(tool, "function") or tool
        if field(function, "name") == _SWITCH_TOOL:
            parameters = field(function, "parameters") or {}
            journey = (field(parameters, "properties") or {}).get("journey") or {}
            return [str(option) for option in journey.get("enum") or ()]
    return []


_OPTION_KEYWORDS = re.compile(r"(?:^|\|\s*|\.\s*)([\w-]+):[^|]*?\(keywords:\s*([^)]*)\)")


def _switch_target(text: str, schema: Mapping[str, Any]) -> str | None:
    """The option of ``switch_journey`` the message asks for: named outright, or by one of
    its keywords together with a word that says the user changes course."""
    options = [str(option) for option in schema.get("enum") or ()]
    lowered = text.lower()
    for option in options:
        if re.search(rf"(?<!\w){re.escape(option.lower())}", lowered):
            return option
    if not _SWITCH_SIGNAL.search(text):
        return None
    keywords = {
        match[1]: [k.strip().lower() for k in match[2].split(",") if k.strip()]
        for match in _OPTION_KEYWORDS.finditer(str(schema.get("description") or ""))
    }
    for option in options:
        for keyword in keywords.get(option, ()):
            if re.search(rf"\b{re.escape(keyword)}", lowered):
                return option
    return None


def _reason(error: str) -> str:
    """The part of a refused call's error a user can read: what was wrong."""
    text = error.removeprefix("Error:").strip()
    for cut in (" Expected parameters:", " Tools available now:", " Call one of those"):
        text = text.split(cut)[0]
    return text.rstrip(".") + "."
