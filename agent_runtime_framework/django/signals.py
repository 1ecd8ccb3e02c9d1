"""Django signals of the app: project code reacts to journeys without touching the loop.

Every signal is sent with ``sender=JourneyEvent`` from a database thread after the event
row is written, so receivers may use the ORM synchronously. Keyword arguments:

- ``journey_event``: ``event`` (the saved ``JourneyEvent``, or an unsaved one for events
  that are not stored, e.g. ``assistant.delta``), ``type``, ``payload``, ``run_id``,
  ``conversation_id``, ``agent_key``.
- ``journey_step_changed``: ``event``, ``conversation_id``, ``agent_key``, ``run_id``,
  ``old_step``, ``new_step`` (step values as stored, e.g. ``"collect_email"``).
- ``journey_completed``: ``event``, ``conversation_id``, ``agent_key``, ``run_id``,
  ``step`` (the terminal step).

People in the loop (``handoff.py``), sent with ``sender=Conversation`` after the change is
committed: ``handoff_requested`` (``conversation_id``, ``reason``, ``source``: "model",
"user" or "staff"), ``handoff_taken`` (``conversation_id``, ``user``), ``staff_replied``
(``conversation_id``, ``user``, ``content``, ``message_seq``), ``handoff_returned``
(``conversation_id``, ``user``). Each is also an event (``handoff.requested``,
``handoff.taken``, ``staff.message``, ``handoff.returned``), so ``journey_event`` sees it.

Tools that need approval (``approvals.py``), sent with ``sender=Approval``:
``approval_requested`` (``conversation_id``, ``approval_id``, ``approver``),
``approval_decided`` (``conversation_id``, ``approval_id``, ``approved``, ``by``, ``user``),
``approval_executed`` (``conversation_id``, ``approval_id``, ``result``); events
``approval.requested``, ``approval.approved`` / ``approval.rejected``, ``approval.executed``.

A receiver that raises does not break the turn: signals go out with ``send_robust`` and
failures are logged to the ``agent_runtime_framework.django`` logger.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = [
    "approval_decided",
    "approval_executed",
    "approval_requested",
    "handoff_requested",
    "handoff_returned",
    "handoff_taken",
    "journey_completed",
    "journey_event",
    "journey_step_changed",
    "staff_replied",
]

journey_event = Signal()
journey_step_changed = Signal()
journey_completed = Signal()
handoff_requested = Signal()
handoff_taken = Signal()
staff_replied = Signal()
handoff_returned = Signal()
approval_requested = Signal()
approval_decided = Signal()
approval_executed = Signal()
