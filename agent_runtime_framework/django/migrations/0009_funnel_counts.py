"""The journey funnel from aggregates kept with the step events (``funnel_counts.py``):
``arf_funnel_count`` (counts per agent, UTC start day, kind and step) and each journey's
``funnel_memo`` (what was counted of it). ``backfill`` counts an existing install's
journeys and step events, in batches, so its funnels stay as they were."""

from typing import Any

from django.db import migrations, models


def backfill(apps: Any, schema_editor: Any) -> None:
    # Raw SQL over the tables this migration leaves (arf_journey, arf_event,
    # arf_funnel_count), on either database; the same code as ``journey_funnel_rebuild``.
    from agent_runtime_framework.django.store.funnel_counts import rebuild

    rebuild(using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("agent_runtime", "0008_approvals"),
    ]

    operations = [
        migrations.AddField(
            model_name="journey",
            name="funnel_memo",
            field=models.JSONField(db_default={}, default=dict, editable=False),
        ),
        migrations.CreateModel(
            name="FunnelCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("agent_key", models.CharField(max_length=200)),
                ("day", models.DateField()),
                ("kind", models.CharField(max_length=8)),
                ("step", models.CharField(max_length=200)),
                ("target", models.CharField(blank=True, default="", max_length=200)),
                ("n", models.BigIntegerField(default=0)),
                ("total", models.FloatField(default=0.0)),
            ],
            options={
                "db_table": "arf_funnel_count",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("agent_key", "day", "kind", "step", "target"),
                        name="art_funnel_count_key",
                    )
                ],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
