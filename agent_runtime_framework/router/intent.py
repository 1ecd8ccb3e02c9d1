"""Intent routing: which journey a user wants, from a routing tool call or keywords."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

from ..tools.schema import ToolSchema, ToolSchemaBuilder

__all__ = [
    "IntentDetector",
    "IntentRouter",
    "RouteDefinition",
    "RouteResult",
    "create_reroute_tool",
]

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


@dataclass(slots=True, eq=False)
class RouteResult(Generic[JourneyT]):
    """A routing decision with a confidence (0.3.0's result of detection).

    A result compares equal to its journey (and hashes like it), so
    ``detector.detect(text) == Journey.CLAIM`` holds whichever form ``detect`` returns
    (see ``IntentDetector``). Two results are equal when all their fields are.
    """

    journey: JourneyT
    confidence: float = 1.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RouteResult):
            return (self.journey, self.confidence, self.metadata) == (
                other.journey,
                other.confidence,
                other.metadata,
            )
        return bool(self.journey == other)

    def __hash__(self) -> int:
        return hash(self.journey)


class IntentRouter(Generic[JourneyT]):
    """Routes: each is offered to the model as a parameterless tool.

    ``IntentRouter(routes)`` takes the routes at once; 0.3.0's
    ``IntentRouter(fallback_detector=detector)`` (or the detector as the only positional
    argument) with ``add_route``/``add_routes`` works too. Unlike 0.3.0, adding a second
    route with an existing name raises ``ValueError`` instead of replacing it.
    """

    def __init__(
        self,
        routes: Iterable[RouteDefinition[JourneyT]] | IntentDetector[JourneyT] = (),
        fallback_detector: IntentDetector[JourneyT] | None = None,
    ) -> None:
        self._routes: dict[str, RouteDefinition[JourneyT]] = {}
        if isinstance(routes, IntentDetector):  # 0.3.0: IntentRouter(fallback_detector)
            if fallback_detector is not None:
                raise TypeError("IntentRouter got two fallback detectors")
            fallback_detector = routes
        else:
            self.add_routes(routes)
        #: Keyword detector consulted by ``detect_fallback`` (0.3.0).
        self.fallback_detector = fallback_detector

    def add_route(self, route: RouteDefinition[JourneyT]) -> IntentRouter[JourneyT]:
        if route.name in self._routes:
            raise ValueError(f"A route named {route.name!r} already exists")
        self._routes[route.name] = route
        return self

    def add_routes(self, routes: Iterable[RouteDefinition[JourneyT]]) -> IntentRouter[JourneyT]:
        """Add several routes, in order (fluent)."""
        for route in routes:
            self.add_route(route)
        return self

    @property
    def routes(self) -> list[RouteDefinition[JourneyT]]:
        return list(self._routes.values())

    @property
    def route_names(self) -> list[str]:
        """The routing tools' names, in the order the routes were added."""
        return list(self._routes)

    @property
    def journeys(self) -> list[JourneyT]:
        """The journeys of the routes, in the order the routes were added."""
        return [route.journey for route in self._routes.values()]

    def get_tool_schemas(self) -> list[ToolSchema]:
        return [route.to_tool_schema() for route in self._routes.values()]

    def get_tool_schemas_openai(self) -> list[dict[str, Any]]:
        """The routing tools in the OpenAI ``{"type": "function", ...}`` format."""
        return [schema.to_openai_format() for schema in self.get_tool_schemas()]

    def is_routing_tool(self, name: str) -> bool:
        """Whether ``name`` is one of this router's routing tools."""
        return name in self._routes

    def resolve_tool_call(self, name: str) -> JourneyT | None:
        """The journey of a routing tool, or None when ``name`` is not a route."""
        route = self._routes.get(name)
        return route.journey if route is not None else None

    def detect_fallback(self, message: str) -> RouteResult[JourneyT] | None:
        """0.3.0: ask ``fallback_detector`` (None when there is none or nothing matched).

        Always a ``RouteResult`` (``IntentDetector.detect_route``), whatever form the
        detector's ``detect`` returns.
        """
        if self.fallback_detector is None:
            return None
        return self.fallback_detector.detect_route(message)

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


_UNSET: Any = object()


class IntentDetector(Generic[JourneyT]):
    """Keyword fallback: the journey whose keywords occur most in the text.

    A keyword matches at the start of a word, case-insensitively ("claim" matches
    "Claims" but not "reclaim"); ties go to the journey whose keywords came first.

    Two ways to build one, and ``detect`` answers in the form its caller expects:

    - ``IntentDetector({journey: [words]}, default=None)``: ``detect(text)`` returns the
      journey (or ``default``, or None). ``RoutedJourneyAgent`` and
      ``IntentRouter.detector()`` use this form.
    - 0.3.0's ``IntentDetector(default_journey=None)`` (or ``IntentDetector()``, or the
      default journey as the only positional argument), filled with the fluent
      ``add_keywords(journey, words)``: ``detect(message)`` returns a ``RouteResult``
      (or None) as in 0.3.0, with ``confidence`` = matched keywords / the journey's
      keywords, and 0.5 for the default journey.

    ``detect_journey`` and ``detect_route`` give one form regardless of construction, and
    a ``RouteResult`` compares equal to its journey, so ``detect(text) == journey``
    works in both forms.
    """

    def __init__(
        self,
        keywords: Mapping[JourneyT, Iterable[str]] | None = None,
        default: JourneyT | None = None,
        *,
        default_journey: JourneyT | None = _UNSET,
    ) -> None:
        legacy = keywords is None or not isinstance(keywords, Mapping)
        if keywords is not None and not isinstance(keywords, Mapping):
            # 0.3.0's only positional parameter was the default journey.
            if default is not None or default_journey is not _UNSET:
                raise TypeError(
                    "IntentDetector: the keywords must be a mapping of journey to words"
                )
            keywords, default_journey = None, keywords
        if default_journey is not _UNSET:
            if default is not None:
                raise TypeError("IntentDetector got both default and default_journey")
            default = default_journey
        #: Whether ``detect`` returns ``RouteResult`` (0.3.0's form) rather than a journey.
        self.returns_route_results = legacy
        self.patterns: dict[JourneyT, list[re.Pattern[str]]] = {}
        for journey, words in (keywords or {}).items():
            self.add_keywords(journey, words)
        self.default = default

    def add_keywords(self, journey: JourneyT, keywords: Iterable[str]) -> IntentDetector[JourneyT]:
        """Add words that point to ``journey`` (fluent, 0.3.0)."""
        self.patterns.setdefault(journey, []).extend(
            re.compile(rf"\b{re.escape(w.lower())}\w*", re.IGNORECASE) for w in keywords
        )
        return self

    def scores(self, text: str) -> dict[JourneyT, int]:
        return {j: sum(1 for p in ps if p.search(text)) for j, ps in self.patterns.items()}

    def detect_route(self, text: str) -> RouteResult[JourneyT] | None:
        """The best journey as a ``RouteResult`` with a confidence, or None (0.3.0's detect).

        ``confidence`` is the share of the journey's keywords that matched; the default
        journey, when nothing matched, has confidence 0.5.
        """
        best: Any = None
        best_score = 0
        for journey, patterns in self.patterns.items():
            score = sum(1 for p in patterns if p.search(text))
            if score > best_score:
                best, best_score = journey, score
        if best is None:
            if self.default is None:
                return None
            return RouteResult(journey=self.default, confidence=0.5)
        return RouteResult(journey=best, confidence=min(best_score / len(self.patterns[best]), 1.0))

    def detect_journey(self, text: str) -> JourneyT | None:
        """The best journey for ``text``, else ``default`` (None when there is none)."""
        result = self.detect_route(text)
        return result.journey if result is not None else None

    def detect(self, text: str) -> Any:
        """``detect_journey(text)``, or ``detect_route(text)`` for a 0.3.0-built detector.

        See the class docstring: a detector built from a keywords mapping answers with the
        journey, one built as in 0.3.0 (no mapping) with a ``RouteResult``. Code that
        needs one form whatever the construction calls ``detect_journey`` or
        ``detect_route``.
        """
        if self.returns_route_results:
            return self.detect_route(text)
        return self.detect_journey(text)


def create_reroute_tool() -> ToolSchema:
    """0.3.0's ``reroute_conversation`` tool: lets a journey send the user back to routing.

    The framework does not act on it by itself; a journey's tools answer it, typically
    with ``request_handoff()``.
    """
    return (
        ToolSchemaBuilder("reroute_conversation")
        .description(
            "Use when the customer wants to do something DIFFERENT from the "
            "current journey. For example, if they're getting a quote but ask "
            "about filing a claim. This resets the conversation to detect their "
            "new intent."
        )
        .build()
    )
