"""People in the loop: who answers a conversation (handoff to staff) and the permission
to take one over (``agent_runtime.handle_conversation``)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agent_runtime", "0004_journey_status_parked"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="conversation",
            options={
                "permissions": [
                    ("handle_conversation", "Can take over and answer conversations as staff")
                ]
            },
        ),
        migrations.AddField(
            model_name="conversation",
            name="handled_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="arf_handled_conversations",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="conversation",
            name="handoff_reason",
            field=models.CharField(blank=True, db_default="", default="", max_length=500),
        ),
        migrations.AddField(
            model_name="conversation",
            name="handoff_requested_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="conversation",
            name="handoff_source",
            field=models.CharField(blank=True, db_default="", default="", max_length=20),
        ),
        migrations.AddField(
            model_name="conversation",
            name="handoff_status",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "Assistant"),
                    ("waiting", "Waiting for a person"),
                    ("staff", "With staff"),
                ],
                db_default="",
                default="",
                max_length=20,
            ),
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                fields=["handoff_status", "handoff_requested_at"], name="art_conv_handoff_queue"
            ),
        ),
    ]
