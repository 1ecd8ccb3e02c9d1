"""Small helpers shared by the provider clients for reading and shaping wire data.

The SDKs build their response objects leniently: a field that does not match the expected
type may stay a plain dict or a raw value. Reading through ``field()`` works for both, so a
slightly non-standard OpenAI-compatible server still gets a normalized answer.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "MISSING_SDK_HINT",
    "accepted_parameters",
    "arguments_string",
    "field",
    "stable_call_id",
    "text_of",
]

MISSING_SDK_HINT = (
    "The {provider} provider needs the '{package}' package. "
    "Install it with: pip install agent-runtime-framework[{extra}]"
)


_MISSING = object()


def field(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` for mappings, ``obj.name`` otherwise, ``default`` if absent.

    On the streaming hot path, so the common cases (SDK objects, plain dicts) come first
    and the slower ``Mapping`` check only runs for other mapping types.
    """
    if type(obj) is dict:
        return obj.get(name, default)
    value = getattr(obj, name, _MISSING)
    if value is _MISSING:
        return obj.get(name, default) if isinstance(obj, Mapping) else default
    return value


def text_of(content: Any) -> str | None:
    """Plain text of message content: a string, or a list of text parts joined."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, Iterable):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            else:
                text = field(part, "text")
                if isinstance(text, str):
                    parts.append(text)
        return "".join(parts)
    return str(content)


def arguments_string(arguments: Any) -> str:
    """Tool-call arguments as the JSON string the protocol promises.

    A dict (some servers send one) is serialized; a string is kept as it is even when it
    is not valid JSON, because the executor reports that back to the model.
    """
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments
    try:
        return json.dumps(arguments, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(arguments)


def stable_call_id(name: str, arguments: str, index: int) -> str:
    """A deterministic tool-call id for servers that omit one."""
    digest = hashlib.sha1(f"{index}:{name}:{arguments}".encode()).hexdigest()[:16]
    return f"call_{digest}"


_PARAMETER_CACHE: dict[Any, frozenset[str]] = {}


def accepted_parameters(method: Callable[..., Any]) -> frozenset[str]:
    """Keyword names an SDK method accepts (cached per underlying function)."""
    key = getattr(method, "__func__", method)
    names = _PARAMETER_CACHE.get(key)
    if names is None:
        try:
            signature = inspect.signature(method)
        except (TypeError, ValueError):
            names = frozenset()
        else:
            names = frozenset(
                name
                for name, parameter in signature.parameters.items()
                if parameter.kind
                in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            )
        _PARAMETER_CACHE[key] = names
    return names
