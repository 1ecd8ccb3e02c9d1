"""A global tool: policy questions answered at any step of a journey.

``@tool`` without ``steps`` is offered at every step, so a side question ("what is the
excess?") is answered wherever the user is, and the journey stays at its step: the tool
reads nothing from the state and changes nothing.
"""

from __future__ import annotations

from typing import Literal

from agent_runtime_framework import tool

__all__ = ["FAQ", "FaqTopic", "PolicyFaqTools"]

FaqTopic = Literal["cancellation", "excess", "payment"]

FAQ: dict[str, str] = {
    "cancellation": "You can cancel within 14 days for a full refund, later pro rata.",
    "excess": "The standard excess is 250 per claim (100 for glass).",
    "payment": "You can pay yearly, or monthly by direct debit at no extra cost.",
}


class PolicyFaqTools:
    """Mixed into a journey's tools class: ``policy_faq`` joins every step's tools."""

    @tool
    async def policy_faq(self, topic: FaqTopic) -> str:
        """Answer a general question about our policies; the journey carries on where it was.

        Args:
            topic: cancellation, excess or payment.
        """
        return f"{FAQ[topic]} Now, where were we?"
