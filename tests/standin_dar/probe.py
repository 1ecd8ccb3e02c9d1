"""Run in a subprocess by test_dj_table_names (settings: ``tests.standin_dar.settings``).

``python -m tests.standin_dar.probe COMMAND`` prints one JSON document:

- ``tables``: the tables our app and the stand-in own, every table in the database, and for
  each of our tables the names of its indexes, constraints and sequences (and on SQLite the
  ``CREATE`` statements of the table and its indexes).
- ``make-old``: build the schema the first 0001 (+ 0002) made, under Django's derived names
  (``agent_runtime_conversation``, ...), put one row in each table and record 0001 and 0002
  as applied: a database from before the ``arf_`` names.
- ``check-data``: the rows ``make-old`` wrote, read and extended through today's models.
- ``guard``: hand-make a django_agent_runtime-like ``agent_runtime_conversation`` (no
  ``lease_token``) and our old ``agent_runtime_journey`` (with ``state_version``) on a database
  without our tables, run migration 0003's function, and report the tables.
"""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from typing import Any

import django


def _names(connection: Any, cursor: Any, table: str) -> dict[str, Any]:
    introspection = connection.introspection
    names = sorted(introspection.get_constraints(cursor, table))
    sequences = [s["name"] for s in introspection.get_sequences(cursor, table) if s.get("name")]
    info: dict[str, Any] = {"names": names, "sequences": sequences}
    if connection.vendor == "postgresql":
        cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass", [table])
        info["names"] = sorted({*names, *(row[0] for row in cursor.fetchall())})
    if connection.vendor == "sqlite":
        cursor.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = %s AND sql IS NOT NULL", [table]
        )
        info["sql"] = [row[0] for row in cursor.fetchall()]
    return info


def tables() -> dict[str, Any]:
    from django.apps import apps
    from django.db import connection

    def owned(label: str) -> list[str]:
        return sorted(m._meta.db_table for m in apps.get_app_config(label).get_models())

    with connection.cursor() as cursor:
        all_tables = sorted(connection.introspection.table_names(cursor))
        ours = owned("agent_runtime")
        details = {t: _names(connection, cursor, t) for t in ours if t in all_tables}
    return {
        "vendor": connection.vendor,
        "ours": ours,
        "standin": owned("django_agent_runtime"),
        "all": all_tables,
        "details": details,
    }


OLD_ROWS = {"run_id": "6f1c1f3e-0000-4000-8000-000000000001"}


def make_old() -> dict[str, Any]:
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.recorder import MigrationRecorder

    call_command("migrate", "contenttypes", interactive=False, verbosity=0)
    call_command("migrate", "auth", interactive=False, verbosity=0)
    loader = MigrationLoader(connection)
    state = loader.project_state(("agent_runtime", "0002_journey_admin_indexes"), at_end=True)
    for (label, _), model_state in state.models.items():
        if label == "agent_runtime":
            # The first 0001 named no table: Django derived agent_runtime_<model>.
            model_state.options.pop("db_table", None)
    old = state.apps
    models = [
        old.get_model("agent_runtime", n)
        for n in ("Conversation", "Journey", "JourneyMessage", "JourneyEvent")
    ]
    with connection.schema_editor() as editor:
        for model in models:
            editor.create_model(model)
    conversation_model, journey_model, message_model, event_model = models
    conversation = conversation_model.objects.create(agent_key="onboarding", next_seq=1)
    journey_model.objects.create(
        conversation=conversation, agent_key="onboarding", state={"name": "Ann"}, step="email"
    )
    message_model.objects.create(conversation=conversation, seq=0, role="user", content="Ann")
    event_model.objects.create(
        conversation=conversation,
        agent_key="onboarding",
        run_id=uuid.UUID(OLD_ROWS["run_id"]),
        seq=0,
        type="tool.call",
        payload={"name": "save_name"},
    )
    recorder = MigrationRecorder(connection)
    recorder.record_applied("agent_runtime", "0001_initial")
    recorder.record_applied("agent_runtime", "0002_journey_admin_indexes")
    return {"old_tables": [m._meta.db_table for m in models], "conversation": str(conversation.pk)}


def check_data() -> dict[str, Any]:
    from agent_runtime_framework.django.models import (
        Conversation,
        Journey,
        JourneyEvent,
        JourneyMessage,
    )

    conversation = Conversation.objects.get()
    journey = Journey.objects.get()
    message = JourneyMessage.objects.get()
    event = JourneyEvent.objects.get()
    # Foreign keys and id sequences still work after the rename.
    Journey.objects.create(conversation=conversation, agent_key="router")
    JourneyMessage.objects.create(conversation=conversation, seq=1, role="assistant", content="ok")
    JourneyEvent.objects.create(conversation=conversation, run_id=uuid.uuid4(), seq=0, type="x")
    return {
        "agent_key": conversation.agent_key,
        "next_seq": conversation.next_seq,
        "journey_state": journey.state,
        "journey_step": journey.step,
        "message": message.content,
        "event_run_id": str(event.run_id),
        "journeys": Journey.objects.count(),
        "messages": list(JourneyMessage.objects.values_list("seq", flat=True)),
        "events": JourneyEvent.objects.count(),
    }


def guard() -> dict[str, Any]:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", "contenttypes", interactive=False, verbosity=0)
    call_command("migrate", "auth", interactive=False, verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE agent_runtime_conversation (id varchar(36) PRIMARY KEY, "
            "agent_key varchar(100) NOT NULL, title varchar(255) NOT NULL)"
        )
        cursor.execute(
            "CREATE TABLE agent_runtime_journey (id integer PRIMARY KEY, "
            "agent_key varchar(200) NOT NULL, step varchar(200) NOT NULL, "
            "state_version integer NOT NULL)"
        )
        cursor.execute("INSERT INTO agent_runtime_conversation VALUES ('c1', 'theirs', 't')")
        cursor.execute("INSERT INTO agent_runtime_journey VALUES (1, 'ours', 'email', 3)")
    migration = importlib.import_module(
        "agent_runtime_framework.django.migrations.0003_rename_tables_to_arf_prefix"
    )
    with connection.schema_editor() as editor:
        migration.rename_old_tables(None, editor)
    with connection.cursor() as cursor:
        all_tables = sorted(connection.introspection.table_names(cursor))
        cursor.execute("SELECT agent_key FROM agent_runtime_conversation")
        theirs = [row[0] for row in cursor.fetchall()]
        journeys = []
        if "arf_journey" in all_tables:
            cursor.execute("SELECT agent_key, state_version FROM arf_journey")
            journeys = [list(row) for row in cursor.fetchall()]
    return {"all": all_tables, "their_conversations": theirs, "arf_journeys": journeys}


COMMANDS = {"tables": tables, "make-old": make_old, "check-data": check_data, "guard": guard}


def main(argv: list[str]) -> None:
    django.setup()
    print(json.dumps(COMMANDS[argv[1]]()))


if __name__ == "__main__":
    main(sys.argv)
