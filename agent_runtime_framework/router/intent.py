"""Intent routing: which journey a user wants, from a routing tool call or keywords."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

from ..tools.schema import ToolSchema, ToolSchemaBuilder

__all__ = ["IntentDetector", "IntentRouter", "RouteDefinition"]

JourneyT = TypeVar("JourneyT")


@dataclass(slots=True)
class RouteDefinition(Generic[JourneyT]):
    """A journey the router can send a user to; ``name`` becomes a routing tool."""

    journey: JourneyT
    name: str
    description: str = ""
    #: Words that pick this route when the model does not (``IntentDetector``).
    keywords: list[str] = field(default_factory=list)

    def to_tool_schema(self) -> ToolSchema:
        return ToolSchemaBuilder(self.name).description(self.description).build()


class IntentRouter(Generic[JourneyT]):
    """Routes: each is offered to the model as a parameterless tool."""

    def __init__(self, routes: Iterable[RouteDefinition[JourneyT]] = ()) -> None:
        self._routes: dict[str, RouteDefinition[JourneyT]] = {}
        for route in routes:
            self.add_route(route)

    def add_route(self, route: RouteDefinition[JourneyT]) -> IntentRouter[JourneyT]:
        if route.name in self._routes:
            raise ValueError(f"A route named {route.name!r} already exists")
        self._routes[route.name] = route
        return self

    @property
    def routes(self) -> list[RouteDefinition[JourneyT]]:
        return list(self._routes.values())

    def get_tool_schemas(self) -> list[ToolSchema]:
        return [route.to_tool_schema() for route in self._routes.values()]

    def resolve_tool_call(self, name: str) -> JourneyT | None:
        """The journey of a routing tool, or None when ``name`` is not a route."""
        route = self._routes.get(name)
        return route.journey if route is not None else None

    def detector(self) -> IntentDetector[JourneyT]:
        """A keyword detector over the routes' keywords (and their names' words)."""
        keywords: dict[JourneyT, list[str]] = {}
        for route in self._routes.values():
            words = list(route.keywords) or [
                w for w in re.split(r"[_\W]+", route.name) if len(w) > 3
            ]
            journey_word = route.journey.value if isinstance(route.journey, Enum) else route.journey
            keywords.setdefault(route.journey, []).extend([*words, str(journey_word)])
        return IntentDetector(keywords)


class IntentDetector(Generic[JourneyT]):
    """Keyword fallback: the journey whose keywords occur most in the text."""

    def __init__(
        self,
        keywords: Mapping[JourneyT, Iterable[str]],
        default: JourneyT | None = None,
    ) -> None:
        self.patterns: dict[JourneyT, list[re.Pattern[str]]] = {
            journey: [re.compile(rf"\b{re.escape(w.lower())}\w*", re.IGNORECASE) for w in words]
            for journey, words in keywords.items()
        }
        self.default = default

    def detect(self, text: str) -> JourneyT | None:
        best: Any = None
        best_score = 0
        for journey, patterns in self.patterns.items():
            score = sum(1 for p in patterns if p.search(text))
            if score > best_score:
                best, best_score = journey, score
        return best if best is not None else self.default

    def scores(self, text: str) -> dict[JourneyT, int]:
        return {j: sum(1 for p in ps if p.search(text)) for j, ps in self.patterns.items()}
