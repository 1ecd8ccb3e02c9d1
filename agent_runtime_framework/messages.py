"""Messages at the boundary: every message and every piece of untrusted text enters here.

Two jobs, done once where data comes in rather than checked all through the loop:

- **Shapes.** Callers hand in OpenAI-style dicts, ``AgentMessage`` objects, 0.3.0's
  ``StoredMessage`` or any object with ``role``/``content`` attributes (pydantic models of
  other SDKs). ``as_message`` turns each into the one plain dict shape the loop and the
  stores work with.
- **Text that can be stored and streamed.** A model, a user or a tool may produce a lone
  UTF-16 surrogate (``"\\ud800"``: not encodable as UTF-8, so SQLite reads and SSE writes
  fail) or a NUL (PostgreSQL's ``text`` and ``jsonb`` refuse ``\\u0000``). ``clean_text``
  replaces a lone surrogate with U+FFFD and removes NUL; ``clean_json`` does the same
  through nested JSON values. Clean text (the common case) costs one ``isascii`` or one
  ``encode`` and is returned as the same object.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "REPLACEMENT_CHARACTER",
    "StoredMessage",
    "as_message",
    "as_messages",
    "clean_json",
    "clean_text",
    "estimate_tokens",
    "valid_tool_name",
]

REPLACEMENT_CHARACTER = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
#: What the providers accept as a function name (OpenAI and Anthropic alike).
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def clean_text(text: str) -> str:
    """``text`` made storable on every database and encodable as UTF-8."""
    if text.isascii():
        return text.replace("\x00", "") if "\x00" in text else text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub(REPLACEMENT_CHARACTER, text)
    return text.replace("\x00", "") if "\x00" in text else text


def clean_json(value: Any) -> Any:
    """A JSON-like value with every string in it (keys too) passed through ``clean_text``."""
    kind = type(value)
    if kind is str:
        return clean_text(value)
    if kind is dict or isinstance(value, Mapping):
        return {(clean_text(k) if type(k) is str else k): clean_json(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [clean_json(v) for v in value]
    return value


def estimate_tokens(message: Mapping[str, Any]) -> int:
    """A cheap token estimate of one message: about four characters a token, plus framing.

    Good enough to bound a window (providers' exact counts need their tokenizers and a
    round trip); it errs high for non-English text, which only makes the window shorter.
    """
    size = 16  # role and message framing
    content = message.get("content")
    if type(content) is str:
        size += len(content)
    elif content is not None:
        size += len(str(content))
    calls = message.get("tool_calls")
    if calls:
        for call in calls:
            function = call.get("function") or {} if isinstance(call, dict) else {}
            size += (
                24
                + len(str(function.get("name") or ""))
                + len(str(function.get("arguments") or ""))
            )
    return size // 4


def valid_tool_name(name: Any) -> bool:
    """Whether a provider accepts ``name`` as a function name in a request."""
    if type(name) is not str:
        return False
    if (
        0 < len(name) <= 64
        and name.isascii()
        and name.replace("_", "a").replace("-", "a").isalnum()
    ):
        return True  # the common case, without the regex
    return _TOOL_NAME.fullmatch(name) is not None


class StoredMessage(dict[str, Any]):
    """A message of the history: a plain dict that also reads like 0.3.0's dataclass.

    0.3.0's stores returned ``StoredMessage(role, content, metadata)`` objects
    (``message.role``); ours work with dicts (``message["role"]``). This is both, so code
    written for either reads history unchanged.
    """

    #: ``estimate_tokens`` of the message, worked out once when a store wraps it, so that
    #: choosing a history window each turn is a sum rather than a walk over the text.
    __slots__ = ("tokens",)

    tokens: int

    def __init__(
        self,
        role: str | Mapping[str, Any] | None = None,
        content: Any = None,
        metadata: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        if isinstance(role, Mapping):  # StoredMessage({"role": ..., ...})
            super().__init__(role, **fields)
        else:
            super().__init__(role=role, content=content, **fields)
            if metadata:
                self["metadata"] = dict(metadata)
        self.tokens = estimate_tokens(self)

    @property
    def role(self) -> str:
        return str(self.get("role"))

    @property
    def content(self) -> Any:
        return self.get("content")

    @property
    def metadata(self) -> dict[str, Any]:
        return self.get("metadata") or {}

    @property
    def tool_calls(self) -> list[dict[str, Any]] | None:
        return self.get("tool_calls")

    @property
    def tool_call_id(self) -> str | None:
        return self.get("tool_call_id")

    @classmethod
    def of(cls, message: Mapping[str, Any]) -> StoredMessage:
        """A copy of a message dict as a ``StoredMessage`` (the stores' hot path: C calls
        only, about a third of the cost of the constructor)."""
        stored = _new_dict(cls)
        _update_dict(stored, message)
        content = message.get("content")
        if type(content) is str and "tool_calls" not in message:
            stored.tokens = (16 + len(content)) >> 2  # estimate_tokens, inlined
        else:
            stored.tokens = estimate_tokens(message)
        return stored

    def to_dict(self) -> dict[str, Any]:
        """0.3.0's form: ``content`` only when set, ``metadata`` only when not empty."""
        data = {k: v for k, v in self.items() if v is not None and v != {}}
        data["role"] = self.get("role")
        return data


_new_dict = dict.__new__
_update_dict = dict.update
_FIELDS = ("role", "content", "tool_calls", "tool_call_id", "name", "metadata")


def as_message(message: Any) -> dict[str, Any]:
    """One message in the loop's shape (a new plain dict), its text made safe.

    Accepts a dict, anything with ``to_dict()`` (``AgentMessage``), or an object with a
    ``role`` attribute. A message without a role is a caller's mistake: ``TypeError``.
    """
    if type(message) is dict and len(message) == 2:  # {"role", "content"}: the usual input
        role, content = message.get("role"), message.get("content")
        if (
            type(role) is str
            and role
            and type(content) is str
            and content.isascii()
            and "\x00" not in content
        ):
            return {"role": role, "content": content}
    if type(message) is dict or isinstance(message, Mapping):
        data = dict(message)
    elif hasattr(message, "to_dict"):
        data = dict(message.to_dict())
    elif hasattr(message, "model_dump"):
        data = dict(message.model_dump(exclude_none=True))
    elif hasattr(message, "role"):
        data = {f: getattr(message, f) for f in _FIELDS if getattr(message, f, None) is not None}
    else:
        raise TypeError(
            f"A message must be a dict, an AgentMessage or a StoredMessage, "
            f"not {type(message).__name__}"
        )
    role = data.get("role")
    if not isinstance(role, str) or not role:
        raise TypeError(f"A message needs a 'role' string; got {data!r:.200}")
    content = data.get("content")
    if type(content) is str:
        data["content"] = clean_text(content)
    elif content is not None:
        data["content"] = clean_json(content)
    if data.get("tool_calls"):
        data["tool_calls"] = clean_json(data["tool_calls"])
    elif "tool_calls" in data:
        del data["tool_calls"]  # 0.3.0's AgentMessage defaults it to []
    if data.get("metadata") == {}:
        del data["metadata"]
    return data


def as_messages(messages: Iterable[Any]) -> list[dict[str, Any]]:
    """``as_message`` over a sequence (``None`` is no messages)."""
    if messages is None:
        return []
    return [as_message(m) for m in messages]
