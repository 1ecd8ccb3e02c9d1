"""ORM implementations of the core's stores, and a MemoryManager with a database lease.

- ``DjangoStateStore`` / ``DjangoConversationStore`` implement the core's ``StateStore`` /
  ``ConversationStore`` on the app's tables. Appending is O(new messages): one
  ``UPDATE ... RETURNING`` reserves the sequence numbers, one bulk INSERT writes the rows;
  history is never rewritten. ``get_messages(limit)`` reads the last ``limit`` rows through
  the (conversation, seq) unique index, so it costs O(window), not O(history).
- ``DjangoMemoryManager`` commits a state, the messages that explain it and the journey's
  counters in ONE transaction, and serialises turns on a conversation with a lease on the
  ``Conversation`` row (a conditional UPDATE with an expiry). No transaction is ever held
  across an ``await``: each database step is one ``run_db`` call.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import math
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, ClassVar, ParamSpec, Self, TypeVar

from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from ...memory.manager import CommitInfo, MemoryContext, MemoryManager
from ...memory.stores import ConversationStore, JourneyBusy, StateStore
from ...state.serializer import VERSION_KEY, StateError
from ..host.usage import upsert_sql, usage_counts, write_usage_counts
from ..models import Conversation, Journey, JourneyEvent, JourneyMessage, JourneyStatus
from .db import run_db
from .funnel_counts import JourneyRow, changes_of, memo_patch, merge_sql, merged, new_marker, record
from .redaction import redact_messages

__all__ = [
    "DjangoConversationStore",
    "DjangoMemoryManager",
    "DjangoStateStore",
    "LeaseLost",
    "conversation_uuid",
    "ensure_conversation_sync",
    "validate_state_json",
]

P = ParamSpec("P")
R = TypeVar("R")

_MESSAGE_FIELDS = ("role", "content", "tool_calls", "tool_call_id", "name")


class LeaseLost(RuntimeError):
    """A commit found that this turn no longer holds the conversation (its lease expired and
    another turn claimed it). Nothing was written: the other turn's data wins."""

    def __init__(self, conversation_id: Any) -> None:
        super().__init__(
            f"Conversation {conversation_id}: this turn's lease expired and another turn "
            "holds the conversation now; the commit was refused so nothing is overwritten "
            "(raise LEASE_SECONDS if turns legitimately run that long)"
        )
        self.conversation_id = conversation_id


_tls = threading.local()


def _c() -> Any:
    """The default database connection: the one bound by ``_bound`` (a plain attribute
    read) or Django's proxy (an asgiref ``Local`` lookup on every attribute access)."""
    return getattr(_tls, "conn", None) or connection


def _bound(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind the thread's connection once for a hot-path unit of work."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if getattr(_tls, "conn", None) is not None:
            return fn(*args, **kwargs)
        _tls.conn = connections[DEFAULT_DB_ALIAS]
        try:
            return fn(*args, **kwargs)
        finally:
            _tls.conn = None

    return wrapper


# -- helpers ------------------------------------------------------------------------------


def conversation_uuid(conversation_id: Any) -> uuid.UUID:
    """The conversation id as a UUID, or a clear error for anything else."""
    if isinstance(conversation_id, uuid.UUID):
        return conversation_id
    try:
        return uuid.UUID(str(conversation_id))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(
            f"conversation_id must be a UUID (got {conversation_id!r}); the Django stores key "
            "conversations by UUID"
        ) from None


def validate_state_json(state: Any) -> dict[str, Any]:
    """Check that a state dict round-trips through JSON before it goes near the database.

    A state that cannot be serialized then fails the tool call that produced it with a
    ``StateError`` naming the problem, rather than a database error mid-transaction.
    """
    if not isinstance(state, dict):
        raise StateError(f"A journey state must be a dict, got {type(state).__name__}")
    try:
        text = json.dumps(state, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StateError(f"Journey state is not JSON-serializable: {exc}") from exc
    loaded = json.loads(text)
    if loaded != state:
        raise StateError(
            "Journey state does not round-trip through JSON (non-string keys or tuples?): "
            f"stored form would be {text[:200]}"
        )
    return state


def _owner_id(owner: Any) -> Any:
    """A user pk from a user instance, a pk, or None (anything else is not an owner)."""
    if owner is None:
        return None
    pk = getattr(owner, "pk", None)
    if pk is not None:
        return pk
    if getattr(owner, "is_anonymous", False):
        return None
    if isinstance(owner, int) and not isinstance(owner, bool):
        return owner
    if isinstance(owner, str) and owner.isdigit():
        return int(owner)
    return None


def _step_text(step: Any) -> str:
    if step is None:
        return ""
    if isinstance(step, Enum):
        step = step.value
    return str(step)


def _message_fields(message: dict[str, Any]) -> tuple[str, Any, Any, str, str, dict[str, Any]]:
    """(role, content, tool_calls, tool_call_id, name, metadata) of a message dict; keys
    beyond the OpenAI fields are kept in ``metadata``."""
    role = message.get("role")
    if not isinstance(role, str) or not role:
        raise ValueError(f"A message needs a 'role' string, got {message!r:.200}")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        # Multi-part content (lists of parts) is kept as JSON text.
        content = json.dumps(content)
    extra = {k: v for k, v in message.items() if k not in _MESSAGE_FIELDS}
    return (
        role,
        content,
        message.get("tool_calls") or None,
        message.get("tool_call_id") or "",
        message.get("name") or "",
        extra,
    )


def _row_to_message(
    role: str, content: Any, tool_calls: Any, tool_call_id: str, name: str
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role, "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if tool_call_id:
        message["tool_call_id"] = tool_call_id
    if name:
        message["name"] = name
    return message


def ensure_conversation_sync(
    conversation_id: Any, agent_key: str = "", owner: Any = None, session_key: str = ""
) -> Conversation:
    """The conversation row, created when missing (sync; see ``DjangoMemoryManager``)."""
    cid = conversation_uuid(conversation_id)
    conversation, _ = Conversation.objects.get_or_create(
        id=cid,
        defaults={
            "agent_key": agent_key,
            "owner_id": _owner_id(owner),
            "session_key": session_key or "",
        },
    )
    return conversation


def _reserve_seqs(
    cid: uuid.UUID,
    count: int,
    extra_where: str = "",
    extra_params: Sequence[Any] = (),
    lease_until: datetime | None = None,
    release: bool = False,
) -> int | None:
    """Advance ``next_seq`` by ``count``; return the first reserved seq (None: no row matched).

    One ``UPDATE ... RETURNING`` on PostgreSQL and SQLite; elsewhere SELECT FOR UPDATE + UPDATE.
    Must run inside a transaction. ``extra_where`` adds the lease condition of a commit.
    """
    now = timezone.now()
    table = _c().ops.quote_name(Conversation._meta.db_table)
    pk = Conversation._meta.pk
    assert pk is not None
    cid_db = pk.get_db_prep_value(cid, _c())
    sets = "next_seq = next_seq + %s, updated_at = %s"
    params: list[Any] = [count, _c().ops.adapt_datetimefield_value(now)]
    if release:
        sets += ", lease_token = '', lease_expires_at = NULL"
    elif lease_until is not None:
        sets += ", lease_expires_at = %s"
        params.append(_c().ops.adapt_datetimefield_value(lease_until))
    if _c().vendor in ("postgresql", "sqlite"):
        with _cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET {sets} WHERE id = %s{extra_where} RETURNING next_seq",
                [*params, cid_db, *extra_params],
            )
            row = cursor.fetchone()
        return None if row is None else int(row[0]) - count
    # Portable path: lock the row, then update it.
    with _cursor() as cursor:
        cursor.execute(
            f"SELECT next_seq FROM {table} WHERE id = %s{extra_where} FOR UPDATE",
            [cid_db, *extra_params],
        )
        row = cursor.fetchone()
        if row is None:
            return None
        cursor.execute(f"UPDATE {table} SET {sets} WHERE id = %s", [*params, cid_db])
    return int(row[0])


@_bound
def _append_sync(cid: uuid.UUID, messages: Sequence[dict[str, Any]], agent_key: str = "") -> None:
    with transaction.atomic():
        start = _reserve_seqs(cid, len(messages))
        if start is None:
            ensure_conversation_sync(cid, agent_key)
            start = _reserve_seqs(cid, len(messages))
            assert start is not None
        _insert_messages(cid, start, messages)


@_bound
def _get_messages_sync(cid: uuid.UUID, limit: int | None) -> list[dict[str, Any]]:
    return _select_messages(cid, limit)


# -- raw SQL on the hot path ----------------------------------------------------------------
# The turn path (claim, load, commit) runs a handful of statements per turn; the ORM's
# per-query overhead would dominate them, so they are written once here as plain SQL
# through Django's own connection (its transactions, its type adaptation).


class _RawCursor:
    """A DB-API cursor on Django's connection, used below Django's cursor wrapper."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._cursor.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(sql, params)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


class _PreparedCursor(_RawCursor):
    """A psycopg 3 cursor on Django's connection that prepares its statements.

    Django leaves ``prepare_threshold`` at None (no server-side prepared statements), so
    every hot-path statement would be parsed and planned again on each turn; prepared,
    they cost about half. Off with ``PREPARED_STATEMENTS = False`` (a transaction-pooling
    proxy without prepared-statement support).
    """

    __slots__ = ()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(sql, params, prepare=True)


class _SqliteCursor(_RawCursor):
    """sqlite3's own cursor on Django's connection (sqlite3 caches compiled statements);
    skips Django's wrapper, converting ``%s`` placeholders once per statement text."""

    __slots__ = ()

    _converted: ClassVar[dict[str, str]] = {}

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        query = self._converted.get(sql)
        if query is None:
            query = self._converted[sql] = sql.replace("%s", "?")
            if len(self._converted) > 512:
                self._converted.clear()
        self._cursor.execute(query, params)


_prepare_flag: list[bool] = []


def _prepare_statements() -> bool:
    if not _prepare_flag:
        from ..conf import app_settings

        _prepare_flag.append(bool(app_settings().PREPARED_STATEMENTS))
    return _prepare_flag[0]


def _forget_settings(**kwargs: Any) -> None:
    _prepare_flag.clear()


setting_changed.connect(_forget_settings)


def _cursor() -> Any:
    """The hot path's cursor: prepared statements on PostgreSQL with psycopg 3 (see
    ``_PreparedCursor``), Django's cursor elsewhere (sqlite3 caches statements itself)."""
    if _c().vendor == "postgresql" and _prepare_statements():
        _c().ensure_connection()
        raw = _c().connection
        try:
            import psycopg
        except ImportError:  # psycopg2
            return _c().cursor()
        if isinstance(raw, psycopg.Connection):
            if raw.prepare_threshold is None:
                # Django's default (None) disables preparing even on request; a huge
                # threshold keeps automatic preparing off and lets ``prepare=True`` work.
                raw.prepare_threshold = 2**31 - 1
            return _PreparedCursor(psycopg.Cursor(raw))
    if _c().vendor == "sqlite":
        _c().ensure_connection()
        return _SqliteCursor(_c().connection.cursor())
    return _c().cursor()


def _q(name: str) -> str:
    return _c().ops.quote_name(name)


def _pk(cid: uuid.UUID) -> Any:
    pk = Conversation._meta.pk
    assert pk is not None
    return pk.get_db_prep_value(cid, _c())


def _ts(value: datetime) -> Any:
    return _c().ops.adapt_datetimefield_value(value)


def _json_param(model: Any, field: str, value: Any) -> Any:
    """A JSON column's parameter (SQL NULL for None, as a nullable JSONField stores it)."""
    if value is None:
        return None
    return _c().ops.adapt_json_value(value, None)


def _json_value(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes | bytearray) else value


def _insert_messages(cid: uuid.UUID, start: int, messages: Sequence[dict[str, Any]]) -> None:
    """One multi-row INSERT of the messages, seq ``start`` onwards (redacted when
    ``REDACT_MESSAGES`` is on: this is the one write path of messages)."""
    rows = [_message_fields(m) for m in redact_messages(messages)]
    now = _ts(timezone.now())
    cid_db = _pk(cid)
    adapt = _c().ops.adapt_json_value
    params: list[Any] = []
    for index, (role, content, calls, call_id, name, metadata) in enumerate(rows):
        params += [
            cid_db,
            start + index,
            role,
            content,
            None if calls is None else adapt(calls, None),
            call_id,
            name,
            adapt(metadata, None),
            now,
        ]
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    with _cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_q(JourneyMessage._meta.db_table)} (conversation_id, seq, role, "
            f"content, tool_calls, tool_call_id, name, metadata, created_at) VALUES {values}",
            params,
        )


def _select_state(cid: uuid.UUID, agent_key: str) -> dict[str, Any] | None:
    with _cursor() as cursor:
        cursor.execute(
            f"SELECT state FROM {_q(Journey._meta.db_table)} "
            "WHERE conversation_id = %s AND agent_key = %s",
            [_pk(cid), agent_key],
        )
        row = cursor.fetchone()
    return None if row is None else _json_value(row[0])


def _select_messages(cid: uuid.UUID, limit: int | None) -> list[dict[str, Any]]:
    table = _q(JourneyMessage._meta.db_table)
    columns = "role, content, tool_calls, tool_call_id, name"
    with _cursor() as cursor:
        if limit:
            # The last ``limit`` rows: the (conversation, seq) index read backwards.
            cursor.execute(
                f"SELECT {columns} FROM {table} WHERE conversation_id = %s "
                "ORDER BY seq DESC LIMIT %s",
                [_pk(cid), int(limit)],
            )
            rows = cursor.fetchall()
            rows.reverse()
        else:
            cursor.execute(
                f"SELECT {columns} FROM {table} WHERE conversation_id = %s ORDER BY seq",
                [_pk(cid)],
            )
            rows = cursor.fetchall()
    return [
        _row_to_message(role, content, _json_value(calls) if calls else None, call_id, name)
        for role, content, calls, call_id, name in rows
    ]


def _insert_events(events: Sequence[Any], now: datetime | None = None) -> None:
    """One multi-row INSERT of unsaved ``JourneyEvent`` rows (payloads already JSON-safe);
    sets their ids, as ``bulk_create`` would. Must run inside the commit's transaction."""
    now = now or timezone.now()
    conn = _c()
    adapt = conn.ops.adapt_json_value
    run_field = JourneyEvent._meta.get_field("run_id")
    created = _ts(now)
    params: list[Any] = []
    for event in events:
        cid = event.conversation_id
        params += [
            None if cid is None else _pk(cid),
            event.agent_key,
            run_field.get_db_prep_value(event.run_id, conn),
            event.seq,
            event.type,
            adapt(event.payload, None),
            created,
        ]
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(events))
    # The usage aggregates of the usage events among them (usage.py), in the same
    # transaction: on PostgreSQL in the same statement (a data-modifying WITH).
    usage = usage_counts(events, now)
    prefix, before = "", list[Any]()
    if usage and conn.vendor == "postgresql":
        upsert, before = upsert_sql(usage)
        prefix, usage = f"WITH counted AS ({upsert}) ", {}
    with _cursor() as cursor:
        cursor.execute(
            f"{prefix}INSERT INTO {_q(JourneyEvent._meta.db_table)} (conversation_id, agent_key, "
            f"run_id, seq, type, payload, created_at) VALUES {values} RETURNING id, run_id, seq",
            before + params,
        )
        returned = cursor.fetchall()
    if usage:
        write_usage_counts(usage, cursor=_cursor)
    ids = {(uuid.UUID(str(run)), int(seq)): pk for pk, run, seq in returned}
    db = conn.alias
    for event in events:
        event.pk = ids[(event.run_id, event.seq)]
        event.created_at = now
        event._state.adding = False
        event._state.db = db


# -- the host's claim (caller, ownership and lease in one statement) ----------------------------


@_bound
def claim_for_caller_sync(
    cid: uuid.UUID,
    agent_key: str | None,
    user_id: Any,
    session_key: str,
    token: str,
    lease_seconds: float,
    *,
    create: bool,
    reach_ownerless: bool,
) -> tuple[str, str | None, float, str | None]:
    """Claim the conversation for a caller: ownership is part of the claim's condition.

    Returns ``(outcome, the conversation's agent key, seconds to wait, handoff status)``
    (the status read by the claim itself, None when not claimed), outcome one of
    ``"claimed"``, ``"busy"``, ``"missing"``, ``"not_owned"``, ``"other_agent"``. One
    statement when it is claimed (an UPDATE of a free or expired lease on a row the caller
    owns; with ``create`` and an agent key, an INSERT ... ON CONFLICT of the row already
    claimed); one more SELECT to tell why when it is not.
    """
    if user_id is not None:
        mine, mine_params = "owner_id = %s", [user_id]
        new_owner, new_session = user_id, ""
    elif session_key or reach_ownerless:
        mine, mine_params = "owner_id IS NULL AND session_key = %s", [session_key]
        new_owner, new_session = None, session_key
    else:  # neither user nor session, and ownerless rows out of reach: nobody's
        return "not_owned", None, 0.0, None
    now = timezone.now()
    until = now + timedelta(seconds=lease_seconds)
    table = _q(Conversation._meta.db_table)
    free = "(lease_token = '' OR lease_expires_at IS NULL OR lease_expires_at < %s)"
    with _cursor() as cursor:
        if create and agent_key is not None:
            cursor.execute(
                f"INSERT INTO {table} AS c (id, agent_key, owner_id, session_key, next_seq, "
                "lease_token, lease_expires_at, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, 0, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET lease_token = EXCLUDED.lease_token, "
                "lease_expires_at = EXCLUDED.lease_expires_at "
                f"WHERE c.agent_key = EXCLUDED.agent_key AND c.{mine.replace(' AND ', ' AND c.')} "
                f"AND {free.replace('lease_', 'c.lease_')} RETURNING handoff_status",
                [
                    _pk(cid),
                    agent_key,
                    new_owner,
                    new_session,
                    token,
                    _ts(until),
                    _ts(now),
                    _ts(now),
                    *mine_params,
                    _ts(now),
                ],
            )
            row = cursor.fetchone()
            if row is not None:
                return "claimed", agent_key, 0.0, str(row[0] or "")
        else:
            same_agent = " AND agent_key = %s" if agent_key is not None else ""
            cursor.execute(
                f"UPDATE {table} SET lease_token = %s, lease_expires_at = %s "
                f"WHERE id = %s AND {mine}{same_agent} AND {free} "
                "RETURNING agent_key, handoff_status",
                [
                    token,
                    _ts(until),
                    _pk(cid),
                    *mine_params,
                    *([agent_key] if agent_key is not None else []),
                    _ts(now),
                ],
            )
            row = cursor.fetchone()
            if row is not None:
                return "claimed", str(row[0]), 0.0, str(row[1] or "")
    rows = list(
        Conversation.objects.filter(id=cid).values(
            "agent_key", "owner_id", "session_key", "lease_expires_at"
        )[:1]
    )
    if not rows:
        return "missing", None, 0.0, None
    found = rows[0]
    if user_id is not None:
        owned = found["owner_id"] == user_id
    else:
        owned = found["owner_id"] is None and found["session_key"] == session_key
    if not owned:
        return "not_owned", None, 0.0, None
    if agent_key is not None and found["agent_key"] != agent_key:
        return "other_agent", found["agent_key"], 0.0, None
    expires = found["lease_expires_at"]
    wait = 0.0 if expires is None else max(0.0, (expires - now).total_seconds())
    return "busy", found["agent_key"], wait, None


@_bound
def claim_any_sync(
    cid: uuid.UUID, token: str, lease_seconds: float
) -> tuple[str, str, Any, str] | float | None:
    """A queue worker's claim, whoever owns the conversation (the owner was checked when
    the message was posted). Returns ``(agent_key, handoff_status, owner_id, session_key)``
    when claimed, the seconds until the current lease expires when busy, None when the
    conversation does not exist."""
    now = timezone.now()
    until = now + timedelta(seconds=lease_seconds)
    table = _q(Conversation._meta.db_table)
    with _cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET lease_token = %s, lease_expires_at = %s WHERE id = %s AND "
            "(lease_token = '' OR lease_expires_at IS NULL OR lease_expires_at < %s) "
            "RETURNING agent_key, handoff_status, owner_id, session_key",
            [token, _ts(until), _pk(cid), _ts(now)],
        )
        row = cursor.fetchone()
    if row is not None:
        return str(row[0]), str(row[1] or ""), row[2], str(row[3] or "")
    expires = list(Conversation.objects.filter(id=cid).values_list("lease_expires_at")[:1])
    if not expires:
        return None
    return 0.0 if expires[0][0] is None else max(0.0, (expires[0][0] - now).total_seconds())


@_bound
def append_with_claim_sync(cid: uuid.UUID, token: str, message: dict[str, Any]) -> int:
    """Store one message of the turn that holds the claim ``token``; returns its seq."""
    start = _reserve_seqs(cid, 1, " AND lease_token = %s", [token])
    if start is None:
        raise LeaseLost(cid)
    _insert_messages(cid, start, [message])
    return start


@_bound
def renew_claim_sync(cid: uuid.UUID, token: str, lease_seconds: float) -> bool:
    """Set a held lease's expiry to ``lease_seconds`` from now."""
    return _renew_sync(cid, token, lease_seconds)


# -- stores -------------------------------------------------------------------------------


class DjangoStateStore(StateStore):
    """Journey state dicts in ``Journey.state``, one row per (agent key, conversation)."""

    def __init__(self) -> None:  # no inner MemoryStore: the table is the store
        pass

    async def load(self, conversation_id: Any, agent_key: str) -> dict[str, Any] | None:
        cid = conversation_uuid(conversation_id)
        return await run_db(self.load_sync, cid, agent_key)

    @staticmethod
    def load_sync(conversation_id: Any, agent_key: str) -> dict[str, Any] | None:
        return _select_state(conversation_uuid(conversation_id), agent_key)

    async def save(self, conversation_id: Any, agent_key: str, state: dict[str, Any]) -> None:
        cid = conversation_uuid(conversation_id)
        validate_state_json(state)
        await run_db(self.save_sync, cid, agent_key, state)

    @staticmethod
    def save_sync(
        conversation_id: Any, agent_key: str, state: dict[str, Any], info: CommitInfo | None = None
    ) -> None:
        """Upsert the journey row (validates the state first)."""
        cid = conversation_uuid(conversation_id)
        validate_state_json(state)
        with transaction.atomic():
            row, marker = _write_journey(cid, agent_key, state, info, (), new_marker())
            _count_funnel(cid, agent_key, row, (), marker)

    async def delete(self, conversation_id: Any, agent_key: str) -> None:
        cid = conversation_uuid(conversation_id)
        await run_db(
            lambda: Journey.objects.filter(conversation_id=cid, agent_key=agent_key).delete()
        )


class DjangoConversationStore(ConversationStore):
    """A conversation's messages in ``JourneyMessage``, ordered by ``seq``; append-only."""

    def __init__(self) -> None:  # no in-process dict: the table is the store
        pass

    async def get_messages(
        self, conversation_id: Any, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The history in order; with ``limit``, the LAST ``limit`` messages (O(limit))."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0 or None, got {limit}")
        cid = conversation_uuid(conversation_id)
        return await run_db(_get_messages_sync, cid, limit)

    async def append_messages(
        self, conversation_id: Any, messages: Sequence[dict[str, Any]]
    ) -> None:
        """Add messages at the end: one UPDATE for the seq range, one bulk INSERT."""
        if not messages:
            return
        cid = conversation_uuid(conversation_id)
        await run_db(_append_sync, cid, list(messages))

    async def count(self, conversation_id: Any) -> int:
        cid = conversation_uuid(conversation_id)
        return await run_db(_count_sync, cid)

    async def clear(self, conversation_id: Any) -> None:
        cid = conversation_uuid(conversation_id)
        await run_db(_clear_sync, cid)


def _count_sync(cid: uuid.UUID) -> int:
    value = Conversation.objects.filter(id=cid).values_list("next_seq", flat=True).first()
    return int(value or 0)


def _clear_sync(cid: uuid.UUID) -> None:
    with transaction.atomic():
        JourneyMessage.objects.filter(conversation_id=cid).delete()
        Conversation.objects.filter(id=cid).update(next_seq=0)


def _write_journey(
    cid: uuid.UUID,
    agent_key: str,
    state: dict[str, Any] | None,
    info: CommitInfo | None,
    changes: Sequence[tuple[Any, Any, Any]] = (),
    marker: str | None = None,
) -> tuple[JourneyRow | None, str | None]:
    """UPDATE the journey row (state, step, status, counters); INSERT it when missing.

    Returns what the funnel's counts need of the row (``RETURNING``: no extra read) and
    the marker of the memo patch merged into it (None: none). With the journey's step
    ``changes`` (and a ``marker``), or when it completes, the same statement merges what
    the funnel counted of it into its memo (``funnel_counts``)."""
    now = timezone.now()
    sets = ["updated_at = %s"]
    params: list[Any] = [_ts(now)]
    step: Any = None
    if info is not None and info.step is not None:
        step = info.step
    elif state is not None and "step" in state:
        step = state.get("step")
    if state is not None:
        sets += ["state = %s", "state_version = %s"]
        params += [
            _json_param(Journey, "state", state),
            int(state.get(VERSION_KEY, 1) or 1),
        ]
    if step is not None:
        sets.append("step = %s")
        params.append(_step_text(step))
    if info is not None:
        if info.new_turn:
            sets.append("turns = turns + 1")
        if info.tokens:
            sets.append("total_tokens = total_tokens + %s")
            params.append(int(info.tokens))
        if info.status is not None:
            sets += ["status = %s", "completed_at = NULL"]
            params.append(str(info.status))
        elif info.complete:
            sets += ["status = %s", "completed_at = COALESCE(completed_at, %s)"]
            params += [str(JourneyStatus.COMPLETE), _ts(now)]
        elif state is not None:
            sets += ["status = %s", "completed_at = NULL"]
            params.append(str(JourneyStatus.ACTIVE))
    status = _status_written(state, info)
    patch: tuple[dict[str, Any], dict[str, Any]] | None = None
    if marker is not None and (changes or status == JourneyStatus.COMPLETE):
        complete = None if status is None else status == JourneyStatus.COMPLETE
        patch = memo_patch(changes, marker, complete, None if step is None else _step_text(step))
        sets.append("funnel_memo = " + merge_sql(_c().vendor))
        params += [_json_param(Journey, "funnel_memo", part) for part in patch]
    with _cursor() as cursor:
        cursor.execute(
            f"UPDATE {_q(Journey._meta.db_table)} SET {', '.join(sets)} "
            "WHERE conversation_id = %s AND agent_key = %s" + _RETURNING,
            [*params, _pk(cid), agent_key],
        )
        matched = cursor.fetchall()
    if matched:
        return JourneyRow(*matched[0]), marker if patch is not None else None
    complete = bool(info and info.complete)
    owner_id = _owner_id(info.owner) if info is not None else None
    values = [
        _pk(cid),
        agent_key,
        _json_param(Journey, "state", state if state is not None else {}),
        int((state or {}).get(VERSION_KEY, 1) or 1),
        _step_text(step),
        str(
            info.status
            if info is not None and info.status is not None
            else (JourneyStatus.COMPLETE if complete else JourneyStatus.ACTIVE)
        ),
        owner_id,
        1 if info is not None and info.new_turn else 0,
        int(info.tokens) if info is not None else 0,
        _ts(now),
        _ts(now),
        _ts(now) if complete else None,
        _json_param(Journey, "funnel_memo", merged({}, *patch) if patch is not None else {}),
    ]
    # One statement: the owner and session come from the conversation row.
    with _cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_q(Journey._meta.db_table)} (conversation_id, agent_key, state, "
            "state_version, step, status, owner_id, session_key, turns, total_tokens, "
            "created_at, updated_at, completed_at, funnel_memo) "
            "SELECT c.id, %s, %s, %s, %s, %s, COALESCE(c.owner_id, %s), c.session_key, "
            f"%s, %s, %s, %s, %s, %s FROM {_q(Conversation._meta.db_table)} c WHERE c.id = %s"
            + _RETURNING,
            [*values[1:], values[0]],
        )
        inserted = cursor.fetchall()
    if inserted:
        return JourneyRow(*inserted[0]), marker if patch is not None else None
    owner = info.owner if info is not None else None
    ensure_conversation_sync(cid, agent_key, owner)
    return _write_journey(cid, agent_key, state, info, changes, marker)


#: The journey row's figures the funnel's counts need (``funnel_counts.JourneyRow``).
_RETURNING = " RETURNING created_at, step, status, funnel_memo"


def _status_written(state: dict[str, Any] | None, info: CommitInfo | None) -> str | None:
    """The status ``_write_journey`` sets (None: it leaves the row's)."""
    if info is None:
        return None
    if info.status is not None:
        return str(info.status)
    if info.complete:
        return str(JourneyStatus.COMPLETE)
    return str(JourneyStatus.ACTIVE) if state is not None else None


def _count_funnel(
    cid: uuid.UUID,
    agent_key: str,
    row: JourneyRow | None,
    events: Sequence[Any],
    marker: str | None = None,
) -> None:
    """The funnel's counts of the commit's step events and of the journey's completion,
    in the commit's transaction: one upsert when they changed, none otherwise (the
    journey's memo was merged by its own UPDATE when ``marker`` is given)."""
    if row is None and not events:
        return
    known = {(cid, agent_key): (row, marker)} if row is not None else None
    record(events, known, cursor=_cursor)


# -- the manager --------------------------------------------------------------------------


class _Lease:
    """A claim this task holds: its token, how deeply it is re-entered, whether released."""

    __slots__ = ("depth", "events", "final_depth", "heartbeat", "prefetched", "released", "token")

    def __init__(self, token: str, final_depth: int = 1) -> None:
        self.token = token
        self.depth = 1
        self.released = False
        #: The claim depth at which the turn's final commit also releases the lease: 1,
        #: or 2 when a host holds the claim around one agent's turn (``hold_claim``).
        self.final_depth = final_depth
        #: Stored events recorded during the turn and not yet written: the next commit
        #: writes them in its transaction (the claim's release, if no commit comes).
        self.events: list[Any] = []
        #: The timer that renews the lease (a ``loop.call_later`` handle).
        self.heartbeat: asyncio.TimerHandle | None = None
        #: (agent_key, limit, state, messages) read together with the claim, for the
        #: turn's ``load_context`` (saves a trip to the database thread).
        self.prefetched: tuple[str, int | None, Any, list[dict[str, Any]]] | None = None


#: Leases this task holds, by conversation. A ContextVar, so a nested claim in the same
#: task (a router delegating to a journey) re-enters instead of waiting on itself.
_held: contextvars.ContextVar[dict[uuid.UUID, _Lease] | None] = contextvars.ContextVar(
    "agent_runtime_leases", default=None
)


def buffer_events(conversation_id: uuid.UUID | None, rows: list[Any]) -> bool:
    """Hand a turn's stored events to the claim this task holds on the conversation.

    True when taken: the turn's next commit writes them in its own transaction (one
    multi-row INSERT with the state and messages they explain) and signals them after it;
    a turn that ends without another commit writes them when its claim is released.
    False (no live claim here): the caller writes them itself.
    """
    if conversation_id is None:
        return False
    held = _held.get()
    lease = held.get(conversation_id) if held else None
    if lease is None or lease.released:
        return False
    lease.events.extend(rows)
    return True


class DjangoMemoryManager(MemoryManager):
    """``MemoryManager`` over the ORM stores, with atomic commits and a database lease.

    ``busy_wait`` / ``lease_seconds`` / ``max_history_messages`` default to the settings
    ``BUSY_WAIT_SECONDS`` / ``LEASE_SECONDS`` / ``MAX_HISTORY_MESSAGES``.
    """

    state_store: DjangoStateStore
    conversation_store: DjangoConversationStore

    def __init__(
        self,
        state_store: DjangoStateStore | None = None,
        conversation_store: DjangoConversationStore | None = None,
        *,
        busy_wait: float | None = None,
        lease_seconds: float | None = None,
        max_history_messages: int | None = None,
        poll_interval: float = 0.05,
    ) -> None:
        from ..conf import app_settings

        settings = app_settings()
        busy = float(settings.BUSY_WAIT_SECONDS if busy_wait is None else busy_wait)
        super().__init__(
            state_store or DjangoStateStore(),
            conversation_store or DjangoConversationStore(),
            busy_wait=busy,
        )
        self.lease_seconds = float(
            settings.LEASE_SECONDS if lease_seconds is None else lease_seconds
        )
        if self.lease_seconds <= 0:
            raise ValueError(f"LEASE_SECONDS must be > 0, got {self.lease_seconds}")
        if busy < 0:
            raise ValueError(f"BUSY_WAIT_SECONDS must be >= 0, got {busy}")
        window = (
            settings.MAX_HISTORY_MESSAGES if max_history_messages is None else max_history_messages
        )
        if window is not None and (not isinstance(window, int) or window < 1):
            raise ValueError(f"MAX_HISTORY_MESSAGES must be a positive int or None, got {window!r}")
        self.max_history_messages: int | None = window
        self.poll_interval = poll_interval

    # -- conversations ----------------------------------------------------------------------
    async def ensure_conversation(
        self, conversation_id: Any, agent_key: str, owner: Any = None, session_key: str = ""
    ) -> Conversation:
        """The ``Conversation`` row, created (with owner / session) when missing."""
        return await run_db(
            ensure_conversation_sync, conversation_id, agent_key, owner, session_key
        )

    # -- reading ----------------------------------------------------------------------------
    async def load_context(
        self,
        conversation_id: Any,
        agent_key: str,
        message_limit: int | None = None,
        *,
        max_messages: int | None = None,
    ) -> MemoryContext:
        """State and history in one trip to the database thread (two indexed SELECTs).

        The history is the last ``max_messages`` (else ``MAX_HISTORY_MESSAGES``) messages,
        cut to start at a user message so no tool result arrives without its call.
        ``message_limit`` is 0.3.0's name of ``max_messages``.
        """
        if max_messages is None:
            max_messages = message_limit
        cid = conversation_uuid(conversation_id)
        limit = max_messages if max_messages is not None else self.max_history_messages
        lease = (_held.get() or {}).get(cid)
        if lease is not None and lease.prefetched is not None:
            key, window, state, messages = lease.prefetched
            lease.prefetched = None
            if key == agent_key and window == limit:
                return MemoryContext(conversation_id, agent_key, state, messages)
        state, messages = await run_db(_load_context_sync, cid, agent_key, limit)
        return MemoryContext(conversation_id, agent_key, state, messages)

    async def load_state(self, conversation_id: Any, agent_key: str) -> dict[str, Any] | None:
        cid = conversation_uuid(conversation_id)
        lease = (_held.get() or {}).get(cid)
        prefetched = lease.prefetched if lease is not None else None
        if prefetched is not None and prefetched[0] == agent_key:
            state: dict[str, Any] | None = prefetched[2]
            return state
        return await self.state_store.load(cid, agent_key)

    # -- writing ----------------------------------------------------------------------------
    async def save_state(self, conversation_id: Any, agent_key: str, state: Any) -> None:
        await self.commit(conversation_id, agent_key, state=_state_dict(state))

    async def commit(
        self,
        conversation_id: Any,
        agent_key: str,
        *,
        state: dict[str, Any] | None = None,
        messages: Sequence[dict[str, Any]] = (),
        info: CommitInfo | None = None,
    ) -> None:
        """Write state + messages + journey counters in ONE transaction, renewing the lease.

        Raises ``StateError`` (before touching the database) for a state that is not JSON,
        ``LeaseLost`` if this turn's lease was taken over, ``JourneyBusy`` for a commit
        outside a claim while another turn holds the conversation.
        """
        cid = conversation_uuid(conversation_id)
        if state is not None:
            validate_state_json(state)
        rows = list(messages)
        for message in rows:
            if not isinstance(message, dict):
                raise ValueError(f"messages must be dicts, got {type(message).__name__}")
        if state is None and not rows and info is None:
            return
        lease = (_held.get() or {}).get(cid)
        if lease is not None:
            lease.prefetched = None  # what was read before this write is stale now
        token = lease.token if lease is not None and not lease.released else None
        # The turn's last commit in the outermost claim also releases the lease (one
        # transaction instead of two); the claim's exit then has nothing left to do.
        release = bool(
            token and info is not None and info.final and lease and lease.depth == lease.final_depth
        )
        events: list[Any] = []
        if lease is not None and lease.events and not lease.released:
            events, lease.events = lease.events, []
        try:
            await run_db(
                _commit_sync,
                cid,
                agent_key,
                state,
                rows,
                info,
                token,
                self.lease_seconds,
                release,
                events,
            )
        except BaseException:
            if events and lease is not None:
                lease.events[:0] = events  # not written: the claim's release writes them
            raise
        if release and lease is not None:
            lease.released = True

    # -- the lease --------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def claim(
        self, conversation_id: Any, agent_key: str, *, owner: Any = None
    ) -> AsyncIterator[None]:
        """Hold the conversation for one turn (re-entrant within a task).

        Claims with a conditional UPDATE (free or expired lease -> ours), polling until
        ``busy_wait`` runs out, then raises ``JourneyBusy``. While held, a heartbeat renews
        the expiry every third of ``lease_seconds``; a crashed worker's lease simply expires.
        """
        cid = conversation_uuid(conversation_id)
        held = _held.get() or {}
        outer = held.get(cid)
        if outer is not None:
            outer.depth += 1
            try:
                yield
            finally:
                outer.depth -= 1
            return
        lease = _Lease(uuid.uuid4().hex)
        await self._acquire(cid, agent_key, owner, lease)
        async with self._holding(cid, lease):
            yield

    def hold_claim(
        self,
        conversation_id: Any,
        token: str,
        prefetched: tuple[str, int | None, Any, list[dict[str, Any]]] | None = None,
        *,
        final_depth: int = 1,
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold a claim already taken on a database thread (``claim_sync``) with ``token``.

        The host claims in the same unit of database work as the caller's access check,
        then holds it here around the agent's turn (whose own ``claim`` re-enters).
        ``prefetched`` is the state and history read with the claim; ``final_depth`` 2 lets
        the agent's final commit release the lease (nothing is left to do after it).
        """
        lease = _Lease(token, final_depth)
        lease.prefetched = prefetched
        return self._holding(conversation_uuid(conversation_id), lease)

    @contextlib.asynccontextmanager
    async def _holding(self, cid: uuid.UUID, lease: _Lease) -> AsyncIterator[None]:
        """Hold a taken lease in this task: renew it, release it (and write any events the
        turn recorded after its last commit) at the end."""
        reset = _held.set({**(_held.get() or {}), cid: lease})
        loop = asyncio.get_running_loop()
        lease.heartbeat = loop.call_later(self.lease_seconds / 3, self._beat, cid, lease)
        try:
            yield
        finally:
            lease.heartbeat.cancel()
            lease.prefetched = None
            _held.reset(reset)
            events, lease.events = lease.events, []
            if not lease.released:
                lease.released = True
                await run_db(_release_sync, cid, lease.token, events)
            elif events:  # pragma: no cover - a released lease takes no events
                await run_db(_release_sync, cid, "", events)

    async def _acquire(self, cid: uuid.UUID, agent_key: str, owner: Any, lease: _Lease) -> None:
        """Claim (and, in the same trip, read the state and history window) or wait."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.busy_wait
        delay = self.poll_interval
        while True:
            outcome, loaded = await run_db(
                _claim_and_load_sync,
                cid,
                agent_key,
                owner,
                lease.token,
                self.lease_seconds,
                self.max_history_messages,
            )
            if outcome is None:
                if loaded is not None:
                    lease.prefetched = (agent_key, self.max_history_messages, *loaded)
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                retry_after = max(1.0, min(outcome, self.lease_seconds))
                raise JourneyBusy(cid, retry_after=float(math.ceil(retry_after)))
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 1.5, 0.5)

    def _beat(self, cid: uuid.UUID, lease: _Lease) -> None:
        """Timer callback: renew the lease, then schedule the next renewal."""
        if lease.released:
            return
        loop = asyncio.get_running_loop()

        async def renew() -> None:
            if lease.released:
                return
            renewed = await run_db(_renew_sync, cid, lease.token, self.lease_seconds)
            if renewed and not lease.released:
                lease.heartbeat = loop.call_later(self.lease_seconds / 3, self._beat, cid, lease)
            # else: lost; the next commit raises LeaseLost

        task = loop.create_task(renew())
        _background.add(task)
        task.add_done_callback(_background.discard)


#: Heartbeat renewals in flight (kept referenced until done).
_background: set[asyncio.Task[None]] = set()


def _state_dict(state: Any) -> dict[str, Any]:
    if isinstance(state, dict):
        return state
    from ...state.serializer import StateSerializer

    return StateSerializer.dump(state)


@_bound
def _load_context_sync(
    cid: uuid.UUID, agent_key: str, limit: int | None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    state = DjangoStateStore.load_sync(cid, agent_key)
    messages = _get_messages_sync(cid, limit)
    if limit and len(messages) == limit:
        # A cut window: start it at a user message.
        start = 0
        while start < len(messages) and messages[start].get("role") != "user":
            start += 1
        messages = messages[start:]
    return state, messages


def _free_or_expired(now: datetime) -> Q:
    return Q(lease_token="") | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)


@_bound
def _try_claim_sync(
    cid: uuid.UUID, agent_key: str, owner: Any, token: str, lease_seconds: float
) -> float | None:
    """Claim the row; None on success, else seconds until the current lease expires.

    One statement for new and existing conversations alike: an INSERT of the row already
    claimed, or, when it exists, an UPDATE that only takes a free or expired lease.
    """
    now = timezone.now()
    until = now + timedelta(seconds=lease_seconds)
    table = _q(Conversation._meta.db_table)
    with _cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} AS c (id, agent_key, owner_id, session_key, next_seq, "
            "lease_token, lease_expires_at, created_at, updated_at) "
            "VALUES (%s, %s, %s, '', 0, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET lease_token = EXCLUDED.lease_token, "
            "lease_expires_at = EXCLUDED.lease_expires_at "
            "WHERE c.lease_token = '' OR c.lease_expires_at IS NULL OR c.lease_expires_at < %s",
            [
                _pk(cid),
                agent_key,
                _owner_id(owner),
                token,
                _ts(until),
                _ts(now),
                _ts(now),
                _ts(now),
            ],
        )
        claimed = cursor.rowcount
    if claimed:
        return None
    expires = Conversation.objects.filter(id=cid).values_list("lease_expires_at", flat=True).first()
    if expires is None:
        return 0.0
    return max(0.0, (expires - now).total_seconds())


@_bound
def _claim_and_load_sync(
    cid: uuid.UUID,
    agent_key: str,
    owner: Any,
    token: str,
    lease_seconds: float,
    limit: int | None,
) -> tuple[float | None, tuple[Any, list[dict[str, Any]]] | None]:
    """Claim; when claimed, also read the state and history window (one thread trip)."""
    outcome = _try_claim_sync(cid, agent_key, owner, token, lease_seconds)
    if outcome is not None:
        return outcome, None
    return None, _load_context_sync(cid, agent_key, limit)


@_bound
def _renew_sync(cid: uuid.UUID, token: str, lease_seconds: float) -> bool:
    until = timezone.now() + timedelta(seconds=lease_seconds)
    return bool(
        Conversation.objects.filter(id=cid, lease_token=token).update(lease_expires_at=until)
    )


@_bound
def _release_sync(cid: uuid.UUID, token: str, events: Sequence[Any] = ()) -> None:
    """Release the lease; write the turn's remaining events in the same transaction."""
    if not events:
        Conversation.objects.filter(id=cid, lease_token=token).update(
            lease_token="", lease_expires_at=None
        )
        return
    from .events import send_signals

    with transaction.atomic():
        _insert_events(events)
        _count_funnel(cid, "", None, events)
        if token:
            Conversation.objects.filter(id=cid, lease_token=token).update(
                lease_token="", lease_expires_at=None
            )
    send_signals(events)


@_bound
def _commit_sync(
    cid: uuid.UUID,
    agent_key: str,
    state: dict[str, Any] | None,
    messages: list[dict[str, Any]],
    info: CommitInfo | None,
    token: str | None,
    lease_seconds: float,
    release: bool = False,
    events: Sequence[Any] = (),
) -> None:
    now = timezone.now()
    params: list[Any]
    with transaction.atomic():
        if token is not None:
            where, params = " AND lease_token = %s", [token]
            until: datetime | None = now + timedelta(seconds=lease_seconds)
        else:
            where = " AND (lease_token = '' OR lease_expires_at IS NULL OR lease_expires_at < %s)"
            params = [_c().ops.adapt_datetimefield_value(now)]
            until = None
        start = _reserve_seqs(cid, len(messages), where, params, lease_until=until, release=release)
        if start is None:
            exists = Conversation.objects.filter(id=cid).exists()
            if token is not None:
                raise LeaseLost(cid)
            if exists:
                raise JourneyBusy(cid)
            ensure_conversation_sync(cid, agent_key, info.owner if info is not None else None)
            start = _reserve_seqs(cid, len(messages), where, params)
            if start is None:
                raise JourneyBusy(cid)
        if messages:
            _insert_messages(cid, start, messages)
        row, marker = None, None
        if state is not None or info is not None:
            # The journey's step changes among the events, at the time they are stored.
            changes = [(a, b, now) for a, b, _ in changes_of(events, cid, agent_key)]
            row, marker = _write_journey(cid, agent_key, state, info, changes, new_marker())
        if events:
            _insert_events(events, now)
        _count_funnel(cid, agent_key, row, events, marker)
    if events:
        # After the commit, still on the database thread (receivers may use the ORM).
        from .events import send_signals

        send_signals(events)
