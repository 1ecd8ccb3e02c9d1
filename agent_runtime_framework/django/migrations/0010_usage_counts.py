"""Token usage from aggregates kept with the usage events (``usage.py``):
``arf_usage_count`` (per agent, journey, UTC hour and model). ``backfill`` sums an existing
install's usage events, in batches, so its usage figures stay as they were."""

from typing import Any

from django.db import migrations, models


def backfill(apps: Any, schema_editor: Any) -> None:
    # The same code as ``usage.rebuild_usage``, over the tables this migration leaves.
    from agent_runtime_framework.django.host.usage import rebuild_usage

    rebuild_usage(using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("agent_runtime", "0009_funnel_counts"),
    ]

    operations = [
        migrations.CreateModel(
            name="UsageCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("agent_key", models.CharField(max_length=200)),
                ("hour", models.BigIntegerField()),
                ("journey", models.CharField(blank=True, default="", max_length=200)),
                ("model", models.CharField(blank=True, default="", max_length=200)),
                ("turns", models.BigIntegerField(default=0)),
                ("records", models.BigIntegerField(default=0)),
                ("prompt_tokens", models.BigIntegerField(default=0)),
                ("completion_tokens", models.BigIntegerField(default=0)),
                ("total_tokens", models.BigIntegerField(default=0)),
            ],
            options={
                "db_table": "arf_usage_count",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("agent_key", "hour", "journey", "model"),
                        name="art_usage_count_key",
                    )
                ],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
