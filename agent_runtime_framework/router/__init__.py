"""Routing users to journeys."""

from .intent import IntentDetector, IntentRouter, RouteDefinition

__all__ = ["IntentDetector", "IntentRouter", "RouteDefinition"]
