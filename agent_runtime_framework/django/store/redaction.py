"""Redaction: personal data masked before it is stored (events; messages when opted in).

A redactor is any ``str -> str`` callable. ``AGENT_RUNTIME_FRAMEWORK["REDACT"]`` names one
(a dotted path or the callable itself; ``None``, the default, stores text as it is).
``default_redactor`` masks e-mail addresses (``[email]``), card numbers (Luhn-valid runs of
13-19 digits, spaces or dashes allowed between them: ``[card]``) and phone numbers
(``[phone]``: 7-15 digits with a leading ``+`` or separators, or 10-15 bare digits; dates
are left alone). It errs on the side of masking.

Event payloads are redacted where they are built (``events.json_safe``, in the same pass
that bounds their strings). ``REDACT_MESSAGES = True`` also redacts the conversation's
messages as they are written; the model then reads the redacted history in later turns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.core.signals import setting_changed

__all__ = [
    "Redactor",
    "default_redactor",
    "event_redactor",
    "luhn_valid",
    "message_redactor",
    "redact_message",
    "redact_messages",
    "redact_value",
    "resolve_redactor",
]


#: What a redactor is: text in, text with the sensitive parts masked out.
Redactor = Callable[[str], str]

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# A run of digits with at most two separators between neighbours ("+1 (555) 010-9999",
# "4111 1111 1111 1111"), not glued to a word, another number or an e-mail.
_NUMBER = re.compile(r"(?<![\w@.+\-])\+?\(?\d(?:[ .\-()]{0,2}\d){5,18}(?![\w@])")
_DATE = re.compile(r"\d{4}[\-./]\d{1,2}[\-./]\d{1,2}|\d{1,2}[\-./]\d{1,2}[\-./]\d{2,4}")
_CARD_SEPARATORS = frozenset(" -")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (what every payment card number passes)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_number(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = "".join(c for c in text if c.isdigit())
    separators = {c for c in text if not c.isdigit()}
    count = len(digits)
    if 13 <= count <= 19 and separators <= _CARD_SEPARATORS and luhn_valid(digits):
        return "[card]"
    if count > 15 or _DATE.fullmatch(text):
        return text
    if text.startswith("+") or separators:
        return "[phone]" if count >= 7 else text
    return "[phone]" if count >= 10 else text  # bare runs of 7-9 digits: ids, amounts


def default_redactor(text: str) -> str:
    """``text`` with e-mail addresses, card numbers and phone numbers masked."""
    if "@" in text:
        text = _EMAIL.sub("[email]", text)
    return _NUMBER.sub(_mask_number, text)


def redact_value(value: Any, redact: Redactor) -> Any:
    """Every string in JSON-like data (dicts, lists) redacted; other values unchanged."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, redact) for v in value]
    return value


def _redact_arguments(arguments: Any, redact: Redactor) -> Any:
    """Tool-call arguments (a JSON string) with their string values redacted; still JSON."""
    if not isinstance(arguments, str):
        return redact_value(arguments, redact)
    try:
        decoded = json.loads(arguments)
    except ValueError:
        return redact(arguments)
    return json.dumps(redact_value(decoded, redact), ensure_ascii=False)


def redact_message(message: Mapping[str, Any], redact: Redactor) -> dict[str, Any]:
    """A copy of an OpenAI-style message with its text and tool-call arguments redacted."""
    out = dict(message)
    content = out.get("content")
    if content is not None:
        out["content"] = redact_value(content, redact)
    calls = out.get("tool_calls")
    if calls:
        redacted = []
        for call in calls:
            if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
                function = dict(call["function"])
                function["arguments"] = _redact_arguments(function.get("arguments"), redact)
                call = {**call, "function": function}
            redacted.append(call)
        out["tool_calls"] = redacted
    return out


# -- the settings ---------------------------------------------------------------------------


def resolve_redactor(value: Any) -> Redactor | None:
    """A ``REDACT`` setting as a callable: None, a callable, or a dotted path to one."""
    if value is None:
        return None
    if isinstance(value, str):
        from django.utils.module_loading import import_string

        value = import_string(value)
    if not callable(value):
        raise TypeError(f"REDACT must be a callable or a dotted path to one, got {value!r}")
    redactor: Redactor = value
    return redactor


_cache: dict[str, Redactor | None] = {}


def event_redactor() -> Redactor | None:
    """The redactor for event payloads (``REDACT``), resolved once per settings change."""
    if "events" not in _cache:
        from ..conf import app_settings

        _cache["events"] = resolve_redactor(app_settings().REDACT)
    return _cache["events"]


def message_redactor() -> Redactor | None:
    """The redactor for stored messages: ``REDACT`` when ``REDACT_MESSAGES`` is on."""
    if "messages" not in _cache:
        from ..conf import app_settings

        on = bool(app_settings().REDACT_MESSAGES)
        _cache["messages"] = event_redactor() if on else None
    return _cache["messages"]


def redact_messages(messages: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
    """The messages as they are to be stored: redacted when ``REDACT_MESSAGES`` is on."""
    redact = message_redactor()
    if redact is None:
        return messages
    return [redact_message(m, redact) for m in messages]


def _forget(*, setting: str = "", **kwargs: Any) -> None:
    if setting == "AGENT_RUNTIME_FRAMEWORK":
        _cache.clear()


setting_changed.connect(_forget)
