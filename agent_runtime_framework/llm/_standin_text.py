"""The offline stand-in's reading of text: patterns, values from a message, questions
from a prompt. Small and rule-based on purpose (see ``standin.py``); kept apart so the
model's own rules stay short.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._wire import field

__all__ = ["clean_free_text", "find_date"]

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
    r"^(?:(?:hi|hello|hey|well|ok|okay|sure|so|yes|yeah|actually|sorry|oops|wait)\b[\s,!.]*"
    r"|no[,!.]+\s*"
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
