"""The app's tables.

DESIGN.md names three (journey, message, event); a fourth, ``Conversation``, holds what
belongs to the conversation rather than to one journey in it: the owner (checked by every
endpoint), the per-conversation claim that serialises turns, and the next message
sequence number (so appending never needs a MAX() over the history). A routed
conversation has several journey rows (the router's and each journey's) but one owner,
one claim and one ordered history.

Table names carry our own prefix, ``arf_`` (index and constraint names: ``art_``), never
``agent_runtime_`` or ``agent_step_``: those belong to django_agent_runtime, which may be
installed next to this app (its ``agent_runtime_conversation`` would collide with the name
Django derives from our app label). Migration 0003 renames the tables of a database that the
first 0001 created under the derived names. The reverse accessors on the user model carry the
prefix too (``user.arf_conversations``, ``user.arf_journeys``): django_agent_runtime's
conversation already takes ``user.agent_conversations``.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.signals import post_save

__all__ = [
    "Approval",
    "ApprovalStatus",
    "Conversation",
    "FunnelCount",
    "HandoffStatus",
    "Journey",
    "JourneyEvent",
    "JourneyMessage",
    "JourneyStatus",
    "Run",
    "RunStatus",
]


class JourneyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETE = "complete", "Complete"
    FAILED = "failed", "Failed"
    ABANDONED = "abandoned", "Abandoned"
    #: Set aside by a switch to another journey; its state and step wait to be resumed.
    PARKED = "parked", "Parked"


class HandoffStatus(models.TextChoices):
    """Who answers the conversation (people in the loop, ``handoff.py``)."""

    #: The model answers (the default).
    ASSISTANT = "", "Assistant"
    #: Handed to a person; nobody has taken it yet.
    WAITING = "waiting", "Waiting for a person"
    #: A member of staff (``handled_by``) answers; the model is not called.
    STAFF = "staff", "With staff"


class Conversation(models.Model):
    """One chat: owner, turn claim, message counter, and who answers it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    #: The agent key the conversation was started with (a journey or a router).
    agent_key = models.CharField(max_length=200, db_index=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="arf_conversations",
    )
    #: Anonymous conversations belong to a session.
    session_key = models.CharField(max_length=64, blank=True, default="", db_index=True)
    #: Sequence number the next message gets.
    next_seq = models.PositiveIntegerField(default=0)
    #: The turn claim: a token and its expiry (empty token = free).
    lease_token = models.CharField(max_length=64, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    #: People in the loop: empty while the model answers (see ``HandoffStatus``).
    handoff_status = models.CharField(
        max_length=20, blank=True, default="", db_default="", choices=HandoffStatus.choices
    )
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="arf_handled_conversations",
    )
    handoff_reason = models.CharField(max_length=500, blank=True, default="", db_default="")
    #: Who asked for the person: "model", "user" or "staff".
    handoff_source = models.CharField(max_length=20, blank=True, default="", db_default="")
    handoff_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "arf_conversation"
        indexes = [
            models.Index(fields=["owner", "-updated_at"], name="art_conv_owner_recent"),
            models.Index(fields=["session_key", "-updated_at"], name="art_conv_session_recent"),
            # The staff queue: conversations waiting for a person, oldest first.
            models.Index(
                fields=["handoff_status", "handoff_requested_at"], name="art_conv_handoff_queue"
            ),
        ]
        permissions = [
            ("handle_conversation", "Can take over and answer conversations as staff"),
        ]

    def __str__(self) -> str:
        return f"{self.agent_key} {self.id}"


class Journey(models.Model):
    """A journey's state in one conversation: one row per (agent key, conversation)."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="journeys"
    )
    agent_key = models.CharField(max_length=200)
    state = models.JSONField(default=dict)
    state_version = models.PositiveIntegerField(default=1)
    step = models.CharField(max_length=200, blank=True, default="", db_index=True)
    status = models.CharField(
        max_length=20, choices=JourneyStatus.choices, default=JourneyStatus.ACTIVE
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="arf_journeys",
    )
    session_key = models.CharField(max_length=64, blank=True, default="")
    turns = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    #: What the funnel's counters (``FunnelCount``) have counted of this journey: the
    #: steps and edges it took, the step it is in and since when, whether it counts as
    #: completed (``funnel_counts.py``). Written with the step events, never by hand.
    funnel_memo = models.JSONField(default=dict, db_default={}, editable=False)

    class Meta:
        db_table = "arf_journey"
        constraints = [
            models.UniqueConstraint(
                fields=["agent_key", "conversation"], name="art_journey_unique_per_conversation"
            )
        ]
        indexes = [
            models.Index(
                fields=["agent_key", "status", "-updated_at"], name="art_journey_agent_status"
            ),
            # The funnel counts (agent, step, status) groups from the index alone.
            models.Index(
                fields=["agent_key", "step", "status"], name="art_journey_agent_step_status"
            ),
            # The funnel over a date range.
            models.Index(
                fields=["agent_key", "created_at", "step", "status"],
                name="art_journey_agent_created",
            ),
            models.Index(fields=["status", "-updated_at"], name="art_journey_status_recent"),
            models.Index(fields=["owner", "-updated_at"], name="art_journey_owner_recent"),
            # The admin list's order, with its id tie-breaker.
            models.Index(fields=["-updated_at", "-id"], name="art_journey_recent_id"),
        ]

    def __str__(self) -> str:
        return f"{self.agent_key} @ {self.step or '-'} ({self.conversation_id})"


class JourneyMessage(models.Model):
    """One message of a conversation; append-only, ordered by ``seq``."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=20)
    content = models.TextField(null=True, blank=True)
    tool_calls = models.JSONField(null=True, blank=True)
    tool_call_id = models.CharField(max_length=200, blank=True, default="")
    name = models.CharField(max_length=200, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "arf_message"
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="art_message_unique_seq")
        ]

    def to_message(self) -> dict[str, object]:
        """The OpenAI-style dict the executor works with."""
        message: dict[str, object] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        if self.tool_call_id:
            message["tool_call_id"] = self.tool_call_id
        if self.name:
            message["name"] = self.name
        return message


class JourneyEvent(models.Model):
    """Append-only event log (tool calls, replies, step changes, errors)."""

    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    agent_key = models.CharField(max_length=200, blank=True, default="")
    run_id = models.UUIDField(db_index=True)
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=100, db_index=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "arf_event"
        ordering = ["id"]
        indexes = [
            models.Index(fields=["conversation", "id"], name="art_event_conversation"),
            # The funnel and the observed graph (analytics.py): an agent's step changes,
            # per journey in order, without the other events.
            models.Index(
                fields=["agent_key", "conversation", "id"],
                name="art_event_steps",
                condition=models.Q(type="journey.step_changed"),
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["run_id", "seq"], name="art_event_unique_run_seq")
        ]


class RunStatus(models.TextChoices):
    """Where a queued turn is (``queued.py``)."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Run(models.Model):
    """A user message waiting for, or played by, a queued turn (``TURNS = "queued"``).

    The row is the message's durable home from the moment it is posted until a worker
    stores it in the history (``message_seq``) and plays it. Runs of one conversation are
    played one at a time in ``id`` order, on whichever worker holds the conversation's
    claim; the run id is the turn's ``run_id`` on its events.
    """

    id = models.BigAutoField(primary_key=True)
    run_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="runs")
    #: The id clients know the message by (in the 202 answer, and in its stored metadata).
    message_id = models.UUIDField(default=uuid.uuid4, editable=False)
    message = models.TextField()
    status = models.CharField(
        max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    #: The message's ``seq`` in the history once a worker stored it (never stored twice).
    message_seq = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    #: The turn (``TurnResult.to_dict()``) when done; the error when failed.
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "arf_run"
        ordering = ["id"]
        indexes = [
            # The next run of a conversation: its oldest unfinished one.
            models.Index(
                fields=["conversation", "id"],
                name="art_run_pending",
                condition=models.Q(status__in=["queued", "running"]),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "idempotency_key"],
                name="art_run_idempotency",
                condition=~models.Q(idempotency_key=""),
            )
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} ({self.status})"


class ApprovalStatus(models.TextChoices):
    """Where a held tool call is (``approvals.py``)."""

    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXECUTED = "executed", "Executed"


class Approval(models.Model):
    """A tool call held until a person approves it (``@tool(needs_approval=...)``).

    Every decision is a conditional ``UPDATE`` from ``pending``, so one wins; ``executed``
    is set after the commit that put the result into the conversation (which also wrote the
    ``approval.executed`` event the call is never run again after).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="approvals"
    )
    #: The journey whose tool it is (the agent key, a journey behind a router included).
    agent_key = models.CharField(max_length=200)
    tool = models.CharField(max_length=200)
    arguments = models.JSONField(default=dict)
    #: Who may decide: "user" (the conversation's owner, or staff) or "staff".
    approver = models.CharField(max_length=20)
    summary = models.TextField(blank=True, default="")
    status = models.CharField(
        max_length=20, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING
    )
    decided_by = models.CharField(max_length=200, blank=True, default="")
    decided_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="arf_decided_approvals",
    )
    result = models.TextField(null=True, blank=True)
    #: The outcome (result or rejection) is in the conversation's history.
    reported_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "arf_approval"
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["conversation", "status"], name="art_approval_conv_status"),
            # The staff queue: pending approvals, oldest first.
            models.Index(fields=["status", "created_at"], name="art_approval_queue"),
        ]

    def __str__(self) -> str:
        return f"{self.tool} ({self.status})"


class FunnelCount(models.Model):
    """The journey funnel's aggregates (``funnel_counts.py``): per agent, UTC day the
    journeys started, kind and step (and next step or time bucket), a count and a sum.

    Upserted (``n = n + excluded.n``) in the transaction that writes the step events
    they count, so the funnel reads a few rows per day instead of every step event.
    """

    agent_key = models.CharField(max_length=200)
    #: The UTC date the counted journeys started (their row's ``created_at``).
    day = models.DateField()
    #: ``visit``, ``enter``, ``edge``, ``edge1``, ``time`` or ``done`` (``funnel_counts``).
    kind = models.CharField(max_length=8)
    step = models.CharField(max_length=200)
    #: The next step (``edge``, ``edge1``), the time bucket (``time``), else "".
    target = models.CharField(max_length=200, blank=True, default="")
    n = models.BigIntegerField(default=0)
    #: Seconds in the step summed over the bucket's visits (``time``), else 0.
    total = models.FloatField(default=0.0)

    class Meta:
        db_table = "arf_funnel_count"
        constraints = [
            models.UniqueConstraint(
                fields=["agent_key", "day", "kind", "step", "target"], name="art_funnel_count_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.agent_key} {self.day} {self.kind} {self.step} {self.target}: {self.n}"


def _count_saved_step_event(sender: Any, instance: JourneyEvent, created: bool, **kw: Any) -> None:
    """A step event saved through the ORM (``JourneyEvent.objects.create``) is counted in
    the funnel like one the framework writes (``funnel_counts``); ``bulk_create`` is not."""
    if created and instance.type == "journey.step_changed":
        from .store.funnel_counts import record

        record([instance], using=kw.get("using") or "default")


post_save.connect(_count_saved_step_event, sender=JourneyEvent, dispatch_uid="arf_funnel_count")


class UsageCount(models.Model):
    """Token usage aggregates (``usage.py``): per agent, journey behind a router ("" when
    none), UTC hour and model, the usage records' turns (distinct runs), count and tokens.

    Upserted (``turns = turns + excluded.turns`` ...) in the transaction that writes the
    usage events they sum, so an agent's usage reads a few rows per hour instead of every
    event; ``hour`` is hours since 1970-01-01 UTC, ``usage.ALL_TIME_HOUR`` (-1) all time.
    """

    agent_key = models.CharField(max_length=200)
    hour = models.BigIntegerField()
    journey = models.CharField(max_length=200, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    turns = models.BigIntegerField(default=0)
    records = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)

    class Meta:
        db_table = "arf_usage_count"
        constraints = [
            models.UniqueConstraint(
                fields=["agent_key", "hour", "journey", "model"], name="art_usage_count_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.agent_key} {self.hour} {self.journey} {self.model}: {self.turns}"
