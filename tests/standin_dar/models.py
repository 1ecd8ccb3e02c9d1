"""django_agent_runtime's tables (names and the columns that name indexes), as of 0.8."""

import uuid

from django.conf import settings
from django.db import models


class AgentConversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="agent_conversations",
    )
    anonymous_session_id = models.UUIDField(null=True, blank=True, db_index=True)
    agent_key = models.CharField(max_length=100, db_index=True)
    title = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "agent_runtime_conversation"


class AgentRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        AgentConversation, on_delete=models.CASCADE, null=True, blank=True, related_name="runs"
    )
    agent_key = models.CharField(max_length=100, db_index=True)
    status = models.CharField(max_length=20, default="queued", db_index=True)
    input = models.JSONField(default=dict)
    output = models.JSONField(default=dict, blank=True)
    lease_owner = models.CharField(max_length=100, blank=True, db_index=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "agent_runtime_run"


class AgentEvent(models.Model):
    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    event_type = models.CharField(max_length=50, db_index=True)
    payload = models.JSONField(default=dict)
    timestamp = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "agent_runtime_event"
        unique_together = [("run", "seq")]


class AgentCheckpoint(models.Model):
    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="checkpoints")
    seq = models.PositiveIntegerField()
    state = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "agent_runtime_checkpoint"
        unique_together = [("run", "seq")]


class AgentMessage(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        AgentConversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=20)
    content = models.JSONField(default=dict)

    class Meta:
        db_table = "agent_runtime_message"


class PersistenceConversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent_key = models.CharField(max_length=100, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "agent_runtime_persistence_conversation"


class Memory(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_memories"
    )
    key = models.CharField(max_length=255, db_index=True)
    value = models.JSONField()

    class Meta:
        db_table = "agent_runtime_memory"


class Preferences(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_preferences"
    )
    key = models.CharField(max_length=255, db_index=True)
    value = models.JSONField()

    class Meta:
        db_table = "agent_runtime_preferences"


class Fact(models.Model):
    key = models.CharField(max_length=255, db_index=True)
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)

    class Meta:
        db_table = "agent_runtime_fact"


class Summary(models.Model):
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)
    summary = models.TextField()

    class Meta:
        db_table = "agent_runtime_summary"


class Embedding(models.Model):
    content_type = models.CharField(max_length=50, default="text", db_index=True)
    source_id = models.UUIDField(null=True, blank=True, db_index=True)

    class Meta:
        db_table = "agent_runtime_embedding"


class AuditEntry(models.Model):
    event_type = models.CharField(max_length=50, db_index=True)
    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)
    run_id = models.UUIDField(null=True, blank=True, db_index=True)
    agent_key = models.CharField(max_length=100, blank=True, db_index=True)

    class Meta:
        db_table = "agent_runtime_audit_entry"


class ErrorRecord(models.Model):
    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)

    class Meta:
        db_table = "agent_runtime_error_record"


class PerformanceMetric(models.Model):
    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)
    agent_key = models.CharField(max_length=100, blank=True, db_index=True)

    class Meta:
        db_table = "agent_runtime_performance_metric"


class StepCheckpoint(models.Model):
    run_id = models.UUIDField(db_index=True)
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)
    checkpoint_key = models.CharField(max_length=255)
    status = models.CharField(max_length=20, db_index=True)

    class Meta:
        db_table = "agent_step_checkpoint"
        indexes = [models.Index(fields=["run_id", "checkpoint_key"])]


class StepEvent(models.Model):
    checkpoint = models.ForeignKey(StepCheckpoint, on_delete=models.CASCADE, related_name="events")
    event_type = models.CharField(max_length=50, db_index=True)
    step_name = models.CharField(max_length=255, blank=True)

    class Meta:
        db_table = "agent_step_event"
