"""Dataclass state <-> JSON-safe dict, exactly, using pydantic.

pydantic already knows how to round-trip enums, UUID, date/datetime, Decimal, nested
dataclasses, lists, dicts and Optional; one cached ``TypeAdapter`` per state class keeps it
cheap. The serializer also owns versioning: ``dump`` stamps ``_version`` and ``load`` runs
the class's ``migrate`` hook on older dicts.
"""

from __future__ import annotations

import dataclasses
import logging
from enum import Enum
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

__all__ = ["VERSION_KEY", "StateError", "StateSerializer"]

logger = logging.getLogger("agent_runtime_framework.state")

VERSION_KEY = "_version"
T = TypeVar("T")
E = TypeVar("E", bound=Enum)


class StateError(ValueError):
    """A state dict could not be turned into a state (or a state into a dict)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class StateSerializer:
    """Converts dataclass states to dicts and back; see the module docstring."""

    _adapters: dict[type, TypeAdapter[Any]] = {}
    _field_names: dict[type, frozenset[str]] = {}

    @classmethod
    def _adapter(cls, state_cls: type) -> TypeAdapter[Any]:
        adapter = cls._adapters.get(state_cls)
        if adapter is None:
            own = {
                name
                for name, hint in vars(state_cls).get("__annotations__", {}).items()
                if "ClassVar" not in str(hint)
            }
            fields_known = (
                {f.name for f in dataclasses.fields(state_cls)}
                if dataclasses.is_dataclass(state_cls)
                else set()
            )
            if not dataclasses.is_dataclass(state_cls) or not own <= fields_known:
                raise TypeError(
                    f"{state_cls.__name__} is not a dataclass: decorate it with @dataclass "
                    "or write to_dict()/from_dict() yourself"
                )
            adapter = TypeAdapter(state_cls)
            cls._adapters[state_cls] = adapter
            cls._field_names[state_cls] = frozenset(
                f.name for f in dataclasses.fields(state_cls) if f.init
            )
        return adapter

    @classmethod
    def dump_fields(cls, state: Any) -> dict[str, Any]:
        """The dataclass's fields as a JSON-safe dict."""
        adapter = cls._adapter(type(state))
        try:
            result: dict[str, Any] = adapter.dump_python(state, mode="json")
        except Exception as exc:  # pydantic raises several types here
            raise StateError(f"Cannot serialize {type(state).__name__}: {exc}") from exc
        return result

    @classmethod
    def load_fields(cls, state_cls: type[T], data: dict[str, Any]) -> T:
        """Build ``state_cls`` from a dict; unknown keys are ignored with a warning."""
        if not isinstance(data, dict):
            raise StateError(
                f"{state_cls.__name__} must be loaded from a dict, got {type(data).__name__}"
            )
        adapter = cls._adapter(state_cls)
        known = cls._field_names[state_cls]
        unknown = [k for k in data if k not in known and k != VERSION_KEY]
        if unknown:
            logger.warning(
                "Ignoring unknown keys %s while loading %s", sorted(unknown), state_cls.__name__
            )
            data = {k: v for k, v in data.items() if k in known}
        elif VERSION_KEY in data:
            data = {k: v for k, v in data.items() if k != VERSION_KEY}
        try:
            return adapter.validate_python(data)
        except ValidationError as exc:
            raise cls._state_error(state_cls, exc) from exc

    @staticmethod
    def _state_error(state_cls: type, exc: ValidationError) -> StateError:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or None
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in e.get('loc', ()))}': {e.get('msg')} "
            f"(got {e.get('input')!r})"
            for e in exc.errors()
        )
        return StateError(f"Invalid {state_cls.__name__}: {problems}", field=field)

    @staticmethod
    def serialize(value: Any) -> Any:
        """Any value made JSON-safe (enums by value, UUIDs and dates as text; 0.3.0)."""
        from pydantic_core import to_jsonable_python

        return to_jsonable_python(value, fallback=str)

    @staticmethod
    def deserialize_enum(value: Any, enum_class: type[E]) -> E:
        """``value`` as a member of ``enum_class`` (a member passes through; 0.3.0)."""
        return value if isinstance(value, enum_class) else enum_class(value)

    @classmethod
    def dump(cls, state: Any) -> dict[str, Any]:
        """``state.to_dict()`` stamped with the class's ``state_version``."""
        data = state.to_dict()
        return {**data, VERSION_KEY: getattr(type(state), "state_version", 1)}

    @classmethod
    def load(cls, state_cls: type[T], data: dict[str, Any]) -> T:
        """Migrate ``data`` to the class's version if needed, then ``from_dict`` it."""
        if not isinstance(data, dict):
            raise StateError(
                f"{state_cls.__name__} must be loaded from a dict, got {type(data).__name__}"
            )
        current = getattr(state_cls, "state_version", 1)
        version = data.get(VERSION_KEY, 1)
        if not isinstance(version, int) or version < 1:
            raise StateError(f"Invalid {VERSION_KEY} {version!r} for {state_cls.__name__}")
        if version > current:
            raise StateError(
                f"{state_cls.__name__} state was saved at version {version}, newer than this "
                f"code's state_version {current}; deploy the newer code or migrate it back"
            )
        if version < current:
            payload = {k: v for k, v in data.items() if k != VERSION_KEY}
            data = state_cls.migrate(payload, version)  # type: ignore[attr-defined]
        elif VERSION_KEY in data:
            data = data.copy()
            del data[VERSION_KEY]
        try:
            return state_cls.from_dict(data)  # type: ignore[attr-defined]
        except StateError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"Invalid {state_cls.__name__}: {exc}") from exc
