"""The "parked" journey status: a journey set aside by a switch, waiting to be resumed."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agent_runtime", "0003_rename_tables_to_arf_prefix"),
    ]

    operations = [
        migrations.AlterField(
            model_name="journey",
            name="status",
            field=models.CharField(
                choices=[
                    ("active", "Active"),
                    ("complete", "Complete"),
                    ("failed", "Failed"),
                    ("abandoned", "Abandoned"),
                    ("parked", "Parked"),
                ],
                default="active",
                max_length=20,
            ),
        ),
    ]
