"""A small claims backend client: what the claim journey's tools call to file a claim.

In a real project this would wrap your claims system's HTTP API. Here it keeps claims in
memory and hands out references, which is enough to show the pattern: the agent receives
the client, passes it to its tools as ``backend_client``, and the tools call it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import secrets
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = ["POLICY_NUMBER_PATTERN", "ClaimReceipt", "ClaimRejected", "ClaimsBackendClient"]

#: Policy numbers look like ``POL-123456``.
POLICY_NUMBER_PATTERN = re.compile(r"\bPOL-?(\d{6})\b", re.IGNORECASE)


class ClaimRejected(Exception):
    """The backend refused the claim (e.g. unknown policy); the message is for the user."""


@dataclass(frozen=True, slots=True)
class ClaimReceipt:
    """What filing a claim returns: the reference the user quotes from now on."""

    reference: str
    policy_number: str
    filed_at: dt.datetime


@dataclass(slots=True)
class _StoredClaim:
    receipt: ClaimReceipt
    incident_date: dt.date
    kind: str
    description: str
    amount: Decimal


@dataclass
class ClaimsBackendClient:
    """An in-memory stand-in for a claims system, safe to share between conversations.

    ``cancelled_policies`` lets a demo (or a test) show a refusal from the backend.
    """

    cancelled_policies: frozenset[str] = frozenset()
    max_amount: Decimal = Decimal("250000")
    _claims: dict[str, _StoredClaim] = field(default_factory=dict, init=False, repr=False)
    _counter: itertools.count[int] = field(
        default_factory=lambda: itertools.count(1), init=False, repr=False
    )

    async def file_claim(
        self,
        *,
        policy_number: str,
        incident_date: dt.date,
        kind: str,
        description: str,
        amount: Decimal,
    ) -> ClaimReceipt:
        """File a claim and return its receipt; raises ``ClaimRejected`` when refused."""
        if not POLICY_NUMBER_PATTERN.fullmatch(policy_number):
            raise ClaimRejected(f"{policy_number!r} is not a policy number like POL-123456.")
        if policy_number in self.cancelled_policies:
            raise ClaimRejected(f"Policy {policy_number} is cancelled, so it cannot take claims.")
        if amount > self.max_amount:
            raise ClaimRejected(
                f"Claims above {self.max_amount:,} need a call with an adjuster: "
                "please phone us instead."
            )
        # No await between reading the counter and storing: atomic on the event loop.
        # A sequence number for humans plus a random tail, so references from several
        # processes never collide (this demo backend has no shared database).
        reference = f"CLM-{next(self._counter):05d}-{secrets.token_hex(2).upper()}"
        receipt = ClaimReceipt(
            reference=reference, policy_number=policy_number, filed_at=dt.datetime.now(dt.UTC)
        )
        self._claims[reference] = _StoredClaim(receipt, incident_date, kind, description, amount)
        return receipt

    def get_claim(self, reference: str) -> ClaimReceipt | None:
        """The receipt of a filed claim, or None."""
        stored = self._claims.get(reference)
        return stored.receipt if stored is not None else None

    @property
    def filed_count(self) -> int:
        return len(self._claims)
