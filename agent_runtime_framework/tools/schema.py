"""Tool schemas: what the model is told a tool takes, and the validator that enforces it.

A schema is built three ways: ``ToolSchemaBuilder`` (the seed's fluent API), ``ToolSchema``
with ``ToolParameter``s, or ``ToolSchema.from_function`` from a signature and docstring.
Every schema owns a pydantic model of its arguments; the executor validates each call
against it, so what the model was promised is what the tool receives.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, EnumType
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

__all__ = [
    "ArgumentError",
    "ToolParameter",
    "ToolSchema",
    "ToolSchemaBuilder",
    "parse_docstring_params",
    "schemas_to_openai_format",
]

_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "number": float,
    "integer": int,
    "boolean": bool,
    "array": list,
    "object": dict,
}


_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ArgumentError(ValueError):
    """Arguments of a tool call did not match the tool's schema; the message says how."""


@dataclass(slots=True)
class ToolParameter:
    """One parameter of a tool in JSON-schema terms (``type`` is a JSON type name)."""

    name: str
    type: str = "string"
    description: str = ""
    required: bool = True
    enum: list[Any] | None = None
    items: dict[str, Any] | None = None
    default: Any = None

    def __post_init__(self) -> None:
        if self.type not in _JSON_TYPES:
            raise ValueError(
                f"Parameter {self.name!r} has type {self.type!r}; use one of {sorted(_JSON_TYPES)}"
            )

    def to_json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.type}
        if self.description:
            schema["description"] = self.description
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        if self.type == "array":
            schema["items"] = self.items or {}
        if not self.required and self.default is not None:
            schema["default"] = self.default
        return schema

    def to_schema(self) -> dict[str, Any]:
        """0.3.0's JSON schema of the parameter: each key only when it is set.

        ``type``, then ``description``, ``enum`` and ``items`` when given, and ``default``
        when not None. What the model is sent is ``to_json_schema()``, which also sends an
        array's ``items`` when none were given (``{}``) and drops the default of a
        required parameter (the model must send it anyway).
        """
        schema: dict[str, Any] = {"type": self.type}
        if self.description:
            schema["description"] = self.description
        if self.enum:
            schema["enum"] = list(self.enum)
        if self.items:
            schema["items"] = self.items
        if self.default is not None:
            schema["default"] = self.default
        return schema

    def python_type(self) -> Any:
        if self.enum is not None:
            return Literal[tuple(self.enum)]
        if self.type == "array" and self.items and self.items.get("type") in _JSON_TYPES:
            item_type: Any = _JSON_TYPES[self.items["type"]]
            return list[item_type]
        return _JSON_TYPES[self.type]


@dataclass(eq=False)
class ToolSchema:
    """A tool as the model sees it: name, description and JSON-schema parameters."""

    name: str
    description: str = ""
    parameters: list[ToolParameter] = field(default_factory=list)
    #: Full JSON schema of the arguments when derived from a signature (else built
    #: from ``parameters``).
    json_schema: dict[str, Any] | None = None
    #: Argument model; built lazily from ``parameters`` when not given.
    arguments_model: type[BaseModel] | None = None
    _openai: dict[str, Any] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not _TOOL_NAME.fullmatch(self.name):
            raise ValueError(
                f"Tool name {self.name!r} must be 1-64 letters, digits, '_' or '-' "
                "(what the providers accept)"
            )

    # -- what the model is told -------------------------------------------------------
    def parameters_schema(self) -> dict[str, Any]:
        if self.json_schema is not None:
            return self.json_schema
        return {
            "type": "object",
            "properties": {p.name: p.to_json_schema() for p in self.parameters},
            "required": [p.name for p in self.parameters if p.required],
            "additionalProperties": False,
        }

    def to_openai_format(self) -> dict[str, Any]:
        """``{"type": "function", "function": {...}}`` as the OpenAI API takes it."""
        if self._openai is None:
            self._openai = {
                "type": "function",
                "function": {
                    "name": self.name,
                    "description": self.description,
                    "parameters": self.parameters_schema(),
                },
            }
        return self._openai

    def to_dict(self) -> dict[str, Any]:
        return self.to_openai_format()

    @property
    def parameter_names(self) -> list[str]:
        props = self.parameters_schema().get("properties", {})
        return list(props)

    # -- what the tool receives --------------------------------------------------------
    def _model(self) -> type[BaseModel]:
        if self.arguments_model is None:
            # Agents often rebuild schemas on every call (as the seed does); building a
            # pydantic model costs ~0.3 ms, so models are shared by parameter signature.
            signature = tuple(
                (
                    p.name,
                    p.type,
                    p.required,
                    tuple(p.enum) if p.enum is not None else None,
                    json.dumps(p.items, sort_keys=True) if p.items else None,
                    repr(p.default),
                )
                for p in self.parameters
            )
            self.arguments_model = _arguments_model(self.name, signature, tuple(self.parameters))
        return self.arguments_model

    def validate_arguments(self, arguments: Any) -> dict[str, Any]:
        """Check and coerce (losslessly) a call's arguments, or raise ``ArgumentError``.

        ``arguments`` may be the JSON string the model sent or an already decoded dict.
        Returns keyword arguments for the tool (only the ones the call gave, plus
        defaults for missing optional ones).
        """
        model = self.arguments_model or self._model()
        try:
            if isinstance(arguments, str):
                if not arguments or arguments.isspace():
                    validated = model.model_validate({})
                else:
                    # pydantic parses and validates the JSON in one pass (in Rust).
                    validated = model.__pydantic_validator__.validate_json(arguments)
            elif arguments is None:
                validated = model.model_validate({})
            elif isinstance(arguments, Mapping):
                validated = model.model_validate(arguments)
            else:
                raise ArgumentError(
                    f"the arguments must be a JSON object, got {type(arguments).__name__}"
                )
        except ValidationError as exc:
            raise ArgumentError(_describe_validation_error(exc)) from None
        return dict(validated.__dict__)

    # -- derivation from a signature ---------------------------------------------------
    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> ToolSchema:
        """Derive a schema from type hints and the docstring (``Args:`` / ``:param x:``).

        Supports whatever pydantic supports: Enum, Literal, Optional, lists, dicts,
        nested pydantic models and dataclasses. ``self`` and ``*args``/``**kwargs``
        are skipped.
        """
        sig = inspect.signature(fn)
        try:
            hints = get_type_hints(fn)
        except Exception as exc:
            raise TypeError(f"Cannot resolve type hints of {fn.__qualname__}: {exc}") from exc
        summary, param_docs = parse_docstring_params(inspect.getdoc(fn) or "")
        fields: dict[str, Any] = {}
        for pname, param in sig.parameters.items():
            if pname in ("self", "cls") or param.kind in (
                inspect.Parameter.VAR_POSITIONAL,
                inspect.Parameter.VAR_KEYWORD,
            ):
                continue
            annotation = hints.get(pname, Any)
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[pname] = (annotation, Field(default, description=param_docs.get(pname)))
        tool_name = name or fn.__name__
        model = create_model(
            f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        json_schema = model.model_json_schema()
        json_schema.pop("title", None)
        for prop in json_schema.get("properties", {}).values():
            prop.pop("title", None)
        json_schema.setdefault("properties", {})
        json_schema.setdefault("required", [])
        json_schema["additionalProperties"] = False
        return cls(
            name=tool_name,
            description=description if description is not None else summary,
            json_schema=json_schema,
            arguments_model=model,
        )


_MODEL_CACHE: dict[tuple[str, tuple[Any, ...]], type[BaseModel]] = {}
_MODEL_CACHE_MAX = 2048


def _arguments_model(
    name: str, signature: tuple[Any, ...], parameters: tuple[ToolParameter, ...]
) -> type[BaseModel]:
    key = (name, signature)
    model = _MODEL_CACHE.get(key)
    if model is None:
        fields: dict[str, Any] = {}
        for p in parameters:
            default = ... if p.required else p.default
            fields[p.name] = (
                p.python_type() if p.required else p.python_type() | None,
                Field(default, description=p.description or None),
            )
        model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
        if len(_MODEL_CACHE) >= _MODEL_CACHE_MAX:
            _MODEL_CACHE.clear()
        _MODEL_CACHE[key] = model
    return model


def _describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(arguments)"
        kind = err.get("type", "")
        if kind == "json_invalid":
            reason = err.get("ctx", {}).get("error", "parse error")
            parts.append(f"the arguments are not valid JSON ({reason}); send a JSON object")
        elif kind in ("model_type", "model_attributes_type") and loc == "(arguments)":
            parts.append(
                f"the arguments must be a JSON object, got {type(err.get('input')).__name__}"
            )
        elif kind == "missing":
            parts.append(f"missing required argument '{loc}'")
        elif kind == "extra_forbidden":
            parts.append(f"unexpected argument '{loc}'")
        else:
            parts.append(f"argument '{loc}': {err.get('msg')} (got {err.get('input')!r})")
    return "; ".join(parts)


_SPHINX = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params)\s*:\s*$", re.IGNORECASE)
_GOOGLE_ITEM = re.compile(r"^\s+(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring_params(doc: str) -> tuple[str, dict[str, str]]:
    """Split a docstring into its summary and per-parameter descriptions.

    Understands Google style (``Args:`` then ``name (type): text``) and Sphinx style
    (``:param name: text``); continuation lines are joined.
    """
    lines = doc.splitlines()
    summary_lines: list[str] = []
    params: dict[str, str] = {}
    in_args = False
    current: str | None = None
    for line in lines:
        sphinx = _SPHINX.match(line)
        if sphinx:
            current = sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            in_args = False
            continue
        if _SECTION.match(line.strip()):
            in_args = True
            current = None
            continue
        if in_args:
            item = _GOOGLE_ITEM.match(line)
            if item and line.startswith((" ", "\t")) and (len(line) - len(line.lstrip()) <= 4):
                current = item.group(1)
                params[current] = item.group(2).strip()
                continue
            if line.strip() and current and line.startswith((" ", "\t")):
                params[current] = f"{params[current]} {line.strip()}".strip()
                continue
            if not line.strip():
                current = None
                continue
            if not line.startswith((" ", "\t")):
                in_args = False
        if current and line.strip() and line.startswith((" ", "\t")) and not in_args:
            params[current] = f"{params[current]} {line.strip()}".strip()
            continue
        if not params and not in_args:
            summary_lines.append(line)
    summary = " ".join(s.strip() for s in summary_lines if s.strip())
    return summary, params


_BUILT: dict[tuple[Any, ...], ToolSchema] = {}


class ToolSchemaBuilder:
    """Fluent builder: ``ToolSchemaBuilder("x").description("..").param(..).build()``.

    Agents commonly rebuild the same schemas on every call (the seed's examples do), so
    ``build()`` returns one shared ``ToolSchema`` per distinct definition: its provider
    format and argument validator are then computed once. Treat built schemas as
    immutable.
    """

    __slots__ = ("_description", "_name", "_params")

    def __init__(self, name: str) -> None:
        self._name = name
        self._description = ""
        # A tuple, so that ``build`` can use it in its cache key as it is.
        self._params: tuple[tuple[Any, ...], ...] = ()

    def description(self, text: str) -> ToolSchemaBuilder:
        self._description = text
        return self

    def param(
        self,
        name: str,
        type: str = "string",
        description: str = "",
        required: bool = True,
        *,
        enum: Sequence[Any] | type[Enum] | None = None,
        items: dict[str, Any] | None = None,
        default: Any = None,
    ) -> ToolSchemaBuilder:
        for existing in self._params:
            if existing[0] == name:
                raise ValueError(f"Tool {self._name!r} already has a parameter {name!r}")
        values: tuple[Any, ...] | None
        if enum is None:
            values = None
        elif isinstance(enum, EnumType):
            values = tuple(m.value for m in enum)
        else:
            values = tuple(enum)
        items_key = json.dumps(items, sort_keys=True) if items else None
        self._params += ((name, type, description, required, values, items_key, default),)
        return self

    def to_openai_format(self) -> dict[str, Any]:
        """``build().to_openai_format()`` in one step (0.3.0)."""
        return self.build().to_openai_format()

    def build(self) -> ToolSchema:
        try:
            key = (self._name, self._description, self._params)
            cached = _BUILT.get(key)
        except TypeError:  # an unhashable default: build without sharing
            key, cached = None, None
        if cached is not None:
            return cached
        schema = ToolSchema(
            name=self._name,
            description=self._description,
            parameters=[
                ToolParameter(
                    name=name,
                    type=type_,
                    description=description,
                    required=required,
                    enum=list(values) if values is not None else None,
                    items=json.loads(items_key) if items_key else None,
                    default=default,
                )
                for name, type_, description, required, values, items_key, default in self._params
            ],
        )
        if key is not None:
            if len(_BUILT) >= _MODEL_CACHE_MAX:
                _BUILT.clear()
            _BUILT[key] = schema
        return schema


def schemas_to_openai_format(schemas: Iterable[ToolSchema]) -> list[dict[str, Any]]:
    """Each schema's ``to_openai_format()``, in order (0.3.0)."""
    return [schema.to_openai_format() for schema in schemas]
