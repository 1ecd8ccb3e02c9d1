"""Move our tables out of django_agent_runtime's way.

The first 0001 let Django derive the table names from the app label: ``agent_runtime_
conversation``, ``agent_runtime_journey``, ``agent_runtime_journeymessage`` and
``agent_runtime_journeyevent``. django_agent_runtime creates ``agent_runtime_conversation`` (and
owns every ``agent_runtime_*`` / ``agent_step_*`` name), so both apps could not be migrated
into one database. 0001 now creates ``arf_*`` tables; this migration renames the tables of a
database that the first 0001 created, together with the indexes, constraints and sequences
whose names Django or PostgreSQL derived from the old table names (their names are
database-wide: ``agent_runtime_conversation_agent_key_<hash>`` is exactly the index
django_agent_runtime creates on its own conversation table).

A table is renamed only when it has a column only ours has, so a table of
django_agent_runtime's is never touched; on a fresh database (or one already renamed) this
does nothing. Reversing it is a no-op: the state before it already names the ``arf_*`` tables.

Run it before django_agent_runtime's first migration on an upgraded database; a plain
``migrate`` does (it applies the apps' migrations in label order, ``agent_runtime`` first).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

OLD_PREFIX = "agent_runtime_"
NEW_PREFIX = "arf_"

#: (old name, new name, columns only our table has).
TABLES: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("agent_runtime_conversation", "arf_conversation", frozenset({"lease_token", "next_seq"})),
    ("agent_runtime_journey", "arf_journey", frozenset({"state_version", "agent_key", "step"})),
    ("agent_runtime_journeymessage", "arf_message", frozenset({"seq", "tool_call_id"})),
    ("agent_runtime_journeyevent", "arf_event", frozenset({"run_id", "seq", "agent_key"})),
)


def _new_name(name: str) -> str:
    return NEW_PREFIX + name[len(OLD_PREFIX) :]


def _rename_postgresql_names(schema_editor: Any, cursor: Any, table: str) -> None:
    q = schema_editor.quote_name
    cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass", [q(table)])
    constraints = {row[0] for row in cursor.fetchall()}
    for name in sorted(constraints):
        if name.startswith(OLD_PREFIX):
            # Renames the index behind a primary key or unique constraint as well.
            schema_editor.execute(
                f"ALTER TABLE {q(table)} RENAME CONSTRAINT {q(name)} TO {q(_new_name(name))}"
            )
    cursor.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s",
        [table],
    )
    for (name,) in sorted(cursor.fetchall()):
        if name.startswith(OLD_PREFIX) and name not in constraints:
            schema_editor.execute(f"ALTER INDEX {q(name)} RENAME TO {q(_new_name(name))}")
    for sequence in schema_editor.connection.introspection.get_sequences(cursor, table):
        name = sequence["name"]
        if name.startswith(OLD_PREFIX):
            schema_editor.execute(f"ALTER SEQUENCE {q(name)} RENAME TO {q(_new_name(name))}")


def _rename_sqlite_indexes(schema_editor: Any, cursor: Any, table: str) -> None:
    # SQLite cannot rename an index: drop it and create it again under the new name. (The
    # table rename already rewrote the ON clause and the other tables' foreign keys.)
    cursor.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s "
        "AND sql IS NOT NULL",
        [table],
    )
    for name, sql in cursor.fetchall():
        if not name.startswith(OLD_PREFIX):
            continue
        quoted = schema_editor.quote_name(name)
        if quoted not in sql:
            continue
        schema_editor.execute(f"DROP INDEX {quoted}")
        schema_editor.execute(sql.replace(quoted, schema_editor.quote_name(_new_name(name)), 1))


def rename_old_tables(apps: Any, schema_editor: Any) -> None:
    """Rename the first 0001's tables (only ours, only if present) to their ``arf_`` names."""
    connection = schema_editor.connection
    introspection = connection.introspection
    with connection.cursor() as cursor:
        existing = set(introspection.table_names(cursor))
        renamed = []
        for old, new, own_columns in TABLES:
            if old not in existing or new in existing:
                continue
            columns = {c.name for c in introspection.get_table_description(cursor, old)}
            if not own_columns <= columns:
                continue  # Not ours (django_agent_runtime's conversation, say): leave it.
            q = schema_editor.quote_name
            schema_editor.execute(
                schema_editor.sql_rename_table % {"old_table": q(old), "new_table": q(new)}
            )
            renamed.append(new)
        for table in renamed:
            if connection.vendor == "postgresql":
                _rename_postgresql_names(schema_editor, cursor, table)
            elif connection.vendor == "sqlite":
                _rename_sqlite_indexes(schema_editor, cursor, table)


class Migration(migrations.Migration):
    dependencies = [
        ("agent_runtime", "0002_journey_admin_indexes"),
    ]

    operations = [
        migrations.RunPython(rename_old_tables, migrations.RunPython.noop, elidable=False),
    ]
