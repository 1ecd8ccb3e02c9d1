"""Routing users to journeys."""

from .intent import IntentDetector, IntentRouter, RouteDefinition, RouteResult, create_reroute_tool

__all__ = [
    "IntentDetector",
    "IntentRouter",
    "RouteDefinition",
    "RouteResult",
    "create_reroute_tool",
]
