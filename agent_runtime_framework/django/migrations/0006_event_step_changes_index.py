"""The funnel reads journeys' step transitions (``journey.step_changed`` events) per agent:
a partial index holds just those, per journey in order (``analytics.py``)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agent_runtime", "0005_people_in_the_loop"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="journeyevent",
            index=models.Index(
                condition=models.Q(type="journey.step_changed"),
                fields=["agent_key", "conversation", "id"],
                name="art_event_steps",
            ),
        ),
    ]
