"""The journey funnel's aggregates, written with the step events that explain them.

``arf_funnel_count`` (``FunnelCount``) holds, per agent and per **UTC day the journeys
started** (their row's ``created_at``: the funnel's date range is over the journeys'
start), a count ``n`` (and a sum ``total``) per kind:

- ``visit`` (step): entries into the step (a loop enters it again);
- ``enter`` (step): first entries: distinct journeys, loops or not;
- ``edge`` (step, next step): transitions; ``edge1``: journeys' first use of the edge;
- ``time`` (step, bucket): closed visits by time spent in log-spaced buckets (``bucket_of``:
  four per doubling, 19 % wide, from about 1 ms) with their seconds summed, so a median
  is found to its bucket and given as the mean of the bucket's visits (exact when the
  middle visit is alone in its bucket or all in it took the same time);
- ``done`` (step): journeys that entered the step and are complete now.

Each count also goes to the agent's all-time row (``day`` = ``ALL_TIME``, 0001-01-01, in
the same upsert), so the all-time funnel reads a few dozen rows, and a date range the
rows of its days.

The initial step's entry is the journey row's creation, not an event, and is not stored:
the funnel adds the journeys in range, which it counts from the journey table anyway.

What was counted of each journey is its ``funnel_memo``: the steps (``s:<step>``) and
edges (``e:[from, to]``) it took, the step it is in (``cur``) and since when (``at``, in
microseconds since the epoch),
whether it counts as complete (``done``). Every ``journey.step_changed`` event written
through the framework updates memo and counts in the event's own transaction:

- the turn's commit (``stores._commit_sync``): the journey's ``UPDATE`` merges the memo
  in SQL (``merge_sql``: new keys added with a marker unique to the write, the previous
  ``at``/``done`` kept as ``was_*``) and its ``RETURNING`` brings it back, so the counts
  know what was new without reading the row first; then one multi-row upsert. A commit
  without a step change or a completion writes nothing more;
- the claim's release, ``events.record_events``, an ORM ``JourneyEvent.save()``: one
  SELECT of the journeys, their memo UPDATE, one upsert.

The upsert is ``INSERT ... ON CONFLICT ... DO UPDATE SET n = n + excluded.n`` (SQLite >=
3.24, PostgreSQL), its rows in key order (two turns never wait on each other in a cycle).
A status changed with ``QuerySet.update`` (the admin's reset) is followed by ``resync``.

Rows written behind the framework's back (``bulk_create``, raw SQL, ``QuerySet.update`` of
``created_at``) are counted by ``rebuild``, which recomputes the counts from the journeys
and their step events in batches (migration 0009 runs it to backfill an install;
``manage.py journey_funnel_rebuild`` too). Deleting old events (``journey_prune``) leaves
the counts as they are (a rebuild after a prune counts only the events left).
Deleting a journey row leaves its counts too: the per-step figures keep it, ``total``
does not.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from ...agents.introspect import step_value

__all__ = [
    "ALL_TIME",
    "STEP_CHANGED",
    "JourneyRow",
    "bucket_bounds",
    "bucket_of",
    "median_of_buckets",
    "rebuild",
    "record",
    "resync",
]

STEP_CHANGED = "journey.step_changed"
_COMPLETE = "complete"
#: Buckets per doubling of the time spent, and the lowest bucket (2 ** (-40 / 4) s ~ 1 ms).
_PER_DOUBLING = 4
_FLOOR = -40

#: The ``day`` of the all-time rows: every count goes to its day and to this row, so the
#: all-time funnel reads a few rows per agent however many days it has.
ALL_TIME = dt.date(1, 1, 1)

_JOURNEY = "arf_journey"
_EVENT = "arf_event"
_COUNT = "arf_funnel_count"

#: (agent_key, day, kind, step, target) -> [n, total]
Key = tuple[str, dt.date, str, str, str]
Counts = dict[Key, list[float]]


class JourneyRow(NamedTuple):
    """What the counts need of a journey row (``stores`` gets it from its UPDATE)."""

    created_at: Any
    step: str
    status: str
    memo: Any


def bucket_of(seconds: float) -> int:
    """The time bucket of ``seconds``: ``floor(4 * log2(seconds))``, at least -40."""
    if seconds <= 2.0 ** (_FLOOR / _PER_DOUBLING):
        return _FLOOR
    return max(_FLOOR, math.floor(_PER_DOUBLING * math.log2(seconds)))


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """``[low, high)`` seconds of a bucket (the lowest starts at 0)."""
    low = 0.0 if bucket <= _FLOOR else 2.0 ** (bucket / _PER_DOUBLING)
    return low, 2.0 ** ((bucket + 1) / _PER_DOUBLING)


def median_of_buckets(buckets: Mapping[int, Sequence[float]]) -> float | None:
    """The median of visits counted in buckets (``{bucket: (count, seconds summed)}``):
    the middle visit's (or the mean of the middle two visits') bucket mean."""
    items = sorted((b, float(v[0]), float(v[1])) for b, v in buckets.items() if v[0] > 0)
    count = int(sum(n for _, n, _ in items))
    if not count:
        return None
    ranks = ((count + 1) // 2, (count + 2) // 2)
    values: list[float] = []
    seen = 0
    for _, n, total in items:
        seen += int(n)
        while len(values) < 2 and ranks[len(values)] <= seen:
            values.append(total / n)
    return sum(values) / len(values)


def _utc(value: Any) -> dt.datetime:
    """A stored or in-memory datetime as an aware UTC datetime (SQLite returns text)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _micros(value: Any) -> int:
    """Microseconds since the epoch: exact in JSON (SQLite writes floats to 15 digits)."""
    return (_utc(value) - _EPOCH) // dt.timedelta(microseconds=1)


def _json(value: Any) -> Any:
    if isinstance(value, str | bytes | bytearray):
        return json.loads(value)
    return value


def _add(counts: Counts, key: Key, n: int = 1, total: float = 0.0) -> None:
    """Count into the day's row and into the agent's all-time row (``ALL_TIME``)."""
    for row in (key, (key[0], ALL_TIME, *key[2:])):
        entry = counts.setdefault(row, [0, 0.0])
        entry[0] += n
        entry[1] += total


def _text(step: Any) -> str:
    # step_value: a ``str`` Enum's ``str()`` is "Step.COMPLETE" before Python 3.12's StrEnum.
    return "" if step is None else str(step_value(step))


def _edge_key(origin: str, target: str) -> str:
    return "e:" + json.dumps([origin, target], ensure_ascii=False)


def new_marker() -> str:
    """A value unique to one write: memo keys that hold it were added by that write."""
    return uuid.uuid4().hex[:12]


def memo_patch(
    changes: Sequence[tuple[Any, Any, Any]],
    marker: str,
    complete: bool | None,
    step: Any = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(keep, override)``: what a write adds to a journey's memo. ``keep`` keys (steps
    ``s:<step>`` and edges ``e:[from, to]`` taken) are added only when missing, with
    ``marker``; ``override`` (``cur``, ``at``, ``done``) replaces. ``step``: the journey's
    step, recorded when it completes without a step change (where it started)."""
    keep: dict[str, Any] = {}
    override: dict[str, Any] = {}
    previous: str | None = None
    at = 0
    for origin, target, when in changes:
        a = previous if previous is not None else _text(origin)
        t = _text(target)
        keep.setdefault("s:" + a, marker)
        keep.setdefault(_edge_key(a, t), marker)
        keep.setdefault("s:" + t, marker)
        previous, at = t, _micros(when)
    if previous is not None:
        override["cur"], override["at"] = previous, at
    elif complete and step is not None:
        keep["s:" + _text(step)] = marker
    if complete is not None:
        override["done"] = complete
    return keep, override


def merged(old: Mapping[str, Any], keep: Mapping[str, Any], override: Mapping[str, Any]) -> Any:
    """The memo after a write: what ``merge_sql`` computes in the database."""
    new = {**keep, **{k: v for k, v in old.items() if k not in _WAS}, **override}
    new["was_at"], new["was_done"] = old.get("at"), old.get("done")
    return new


_WAS = ("was_at", "was_done")


def merge_sql(vendor: str) -> str:
    """``funnel_memo = <this>`` with two parameters (keep, override): the memo merged in
    the journey's own UPDATE, keeping the previous ``at`` / ``done`` as ``was_*`` (the
    UPDATE's ``RETURNING`` then tells what was new without reading the row first)."""
    if vendor == "postgresql":
        return (
            "(%s || funnel_memo) || %s || jsonb_build_object("
            "'was_at', funnel_memo -> 'at', 'was_done', funnel_memo -> 'done')"
        )
    return (
        "json_set(json_patch(json_patch(%s, funnel_memo), %s), "
        "'$.was_at', json_extract(funnel_memo, '$.at'), "
        "'$.was_done', json_extract(funnel_memo, '$.done'))"
    )


def count(
    agent_key: str,
    row: JourneyRow,
    memo: Mapping[str, Any],
    marker: str,
    changes: Sequence[tuple[Any, Any, Any]],
    counts: Counts,
) -> None:
    """Count one write of a journey into ``counts`` from its memo after the write (keys
    holding ``marker`` are new: first visits, first use of an edge)."""
    created = _utc(row.created_at)
    day = created.date()
    was_at = memo.get("was_at")
    since = int(was_at) if was_at is not None else _micros(created)
    was_done = bool(memo.get("was_done"))
    fresh: set[str] = set()
    edges: set[str] = set()
    previous: str | None = None
    for origin, target, at in changes:
        a = previous if previous is not None else _text(origin)
        if previous is None and memo.get("s:" + a) == marker:
            fresh.add(a)  # the step it started in: its creation, not counted
        t = _text(target)
        when = _micros(at)
        spent = max(0.0, (when - since) / 1e6)
        _add(counts, (agent_key, day, "time", a, str(bucket_of(spent))), 1, spent)
        _add(counts, (agent_key, day, "edge", a, t))
        edge = _edge_key(a, t)
        if memo.get(edge) == marker and edge not in edges:
            edges.add(edge)
            _add(counts, (agent_key, day, "edge1", a, t))
        _add(counts, (agent_key, day, "visit", t, ""))
        if memo.get("s:" + t) == marker and t not in fresh:
            fresh.add(t)
            _add(counts, (agent_key, day, "enter", t, ""))
        previous, since = t, when
    if previous is None:
        fresh |= {k[2:] for k, v in memo.items() if k.startswith("s:") and v == marker}
    complete = row.status == _COMPLETE
    steps = [k[2:] for k in memo if k.startswith("s:")]
    if complete and was_done:
        done = [(s, 1) for s in steps if s in fresh]
    elif complete:
        done = [(s, 1) for s in steps]
    elif was_done:
        done = [(s, -1) for s in steps if s not in fresh]
    else:
        done = []
    for step, n in done:
        _add(counts, (agent_key, day, "done", step, ""), n)


def _changes(events: Iterable[Any]) -> dict[tuple[uuid.UUID, str], list[tuple[Any, Any, Any]]]:
    found: dict[tuple[uuid.UUID, str], list[tuple[Any, Any, Any]]] = {}
    for event in events:
        if event.type != STEP_CHANGED or event.conversation_id is None or not event.agent_key:
            continue
        payload = _json(event.payload) or {}
        key = (uuid.UUID(str(event.conversation_id)), str(event.agent_key))
        found.setdefault(key, []).append((payload.get("from"), payload.get("to"), event.created_at))
    return found


def changes_of(
    events: Iterable[Any], conversation_id: uuid.UUID, agent_key: str
) -> list[tuple[Any, Any, Any]]:
    """One journey's step changes among ``events`` (``(from, to, created_at)``)."""
    return _changes(events).get((conversation_id, agent_key), [])


def record(
    events: Sequence[Any] = (),
    known: Mapping[tuple[uuid.UUID, str], tuple[JourneyRow, str | None]] | None = None,
    *,
    cursor: Callable[[], Any] | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> None:
    """Count stored step events (``JourneyEvent`` rows with ``created_at``) and journeys'
    completion, in the caller's transaction.

    ``known``: journey rows the caller has just written, by (conversation, agent key),
    with the marker of the memo patch its UPDATE merged for that journey's changes in
    ``events`` (``memo_patch`` / ``merge_sql``), or None when it merged none. Other
    journeys with step changes are read (one SELECT), merged and written here.
    """
    changes = _changes(events)
    connection = connections[using]
    open_cursor = cursor or connection.cursor
    counts: Counts = {}
    memos: list[tuple[Any, uuid.UUID, str]] = []
    rows: dict[tuple[uuid.UUID, str], JourneyRow] = {}
    for key, (row, marker) in (known or {}).items():
        memo = _json(row.memo) or {}
        complete = row.status == _COMPLETE
        if marker is not None:
            # Merged by the caller's UPDATE: count it; the counts follow the status, and
            # the memo too unless the write did not know the status it left.
            count(key[1], row, memo, marker, changes.pop(key, ()), counts)
            if bool(memo.get("done")) != complete:
                memos.append(({**memo, "done": complete}, key[0], key[1]))
        elif changes.get(key) or bool(memo.get("done")) != complete:
            rows[key] = row
    missing = [k for k in changes if k not in rows and k not in (known or {})]
    if missing:
        rows.update(_read(missing, open_cursor, using))
    for key, row in rows.items():
        found = changes.get(key, [])
        old = _json(row.memo) or {}
        complete = row.status == _COMPLETE
        if not found and bool(old.get("done")) == complete:
            continue
        marker = new_marker()
        memo = merged(old, *memo_patch(found, marker, complete, row.step))
        count(key[1], row, memo, marker, found, counts)
        memos.append((memo, key[0], key[1]))
    if memos:
        _save_memos(memos, open_cursor, using)
    if counts:
        write(counts, cursor=open_cursor, using=using)


def resync(conversation_id: Any, agent_key: str, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Bring one journey's ``done`` counts in line with its status (after a status was
    changed with ``QuerySet.update``, e.g. the admin's reset)."""
    key = (uuid.UUID(str(conversation_id)), agent_key)
    rows = _read([key], connections[using].cursor, using)
    if rows:
        record((), {key: (rows[key], None)}, using=using)


def _read(
    keys: Sequence[tuple[uuid.UUID, str]], open_cursor: Callable[[], Any], using: str
) -> dict[tuple[uuid.UUID, str], JourneyRow]:
    connection = connections[using]
    field = _conversation_field()
    cids = sorted({cid for cid, _ in keys})
    marks = ", ".join(["%s"] * len(cids))
    with open_cursor() as cur:
        cur.execute(
            "SELECT conversation_id, agent_key, created_at, step, status, funnel_memo "
            f"FROM {_JOURNEY} WHERE conversation_id IN ({marks})",
            [field.get_db_prep_value(cid, connection) for cid in cids],
        )
        found = cur.fetchall()
    wanted = set(keys)
    rows = {}
    for cid, agent_key, created_at, step, status, memo in found:
        key = (uuid.UUID(str(cid)), str(agent_key))
        if key in wanted:
            rows[key] = JourneyRow(created_at, step, status, memo)
    return rows


def _conversation_field() -> Any:
    from ..models import Conversation

    pk = Conversation._meta.pk
    assert pk is not None
    return pk


def _save_memos(
    memos: Sequence[tuple[dict[str, Any], uuid.UUID, str]],
    open_cursor: Callable[[], Any],
    using: str,
) -> None:
    connection = connections[using]
    field = _conversation_field()
    sql = f"UPDATE {_JOURNEY} SET funnel_memo = %s WHERE conversation_id = %s AND agent_key = %s"
    with open_cursor() as cur:
        for memo, cid, agent_key in memos:
            cur.execute(
                sql,
                [
                    connection.ops.adapt_json_value(memo, None),
                    field.get_db_prep_value(cid, connection),
                    agent_key,
                ],
            )


def write(
    counts: Counts,
    *,
    cursor: Callable[[], Any] | None = None,
    using: str = DEFAULT_DB_ALIAS,
    chunk: int = 500,
) -> None:
    """Upsert ``counts`` (one statement per ``chunk`` rows, in key order)."""
    connection = connections[using]
    items = sorted((k, v) for k, v in counts.items() if v[0] or v[1])
    open_cursor = cursor or connection.cursor
    adapt_day = connection.ops.adapt_datefield_value
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        params: list[Any] = []
        for (agent_key, day, kind, step, target), (n, total) in part:
            params += [agent_key, adapt_day(day), kind, step, target, int(n), float(total)]
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(part))
        with open_cursor() as cur:
            cur.execute(
                f"INSERT INTO {_COUNT} (agent_key, day, kind, step, target, n, total) "
                f"VALUES {values} ON CONFLICT (agent_key, day, kind, step, target) "
                f"DO UPDATE SET n = {_COUNT}.n + excluded.n, "
                f"total = {_COUNT}.total + excluded.total",
                params,
            )


def rebuild(
    agent_key: str | None = None,
    *,
    batch_size: int = 2000,
    using: str = DEFAULT_DB_ALIAS,
) -> dict[str, int]:
    """Recount the funnel from the journeys and their step events (of one agent, or all).

    One transaction: the counts are deleted, then journeys are read in batches of
    ``batch_size`` (by id) with their step events, memos rewritten and counts summed in
    memory (bounded by agents x days x steps), then upserted. Returns ``{"journeys",
    "events", "counts"}``. Run it while few turns run: a turn that commits meanwhile waits.
    """
    connection = connections[using]
    field = _conversation_field()
    counts: Counts = {}
    totals = {"journeys": 0, "events": 0, "counts": 0}
    with transaction.atomic(using=using):
        with connection.cursor() as cur:
            if agent_key is None:
                cur.execute(f"DELETE FROM {_COUNT}")
            else:
                cur.execute(f"DELETE FROM {_COUNT} WHERE agent_key = %s", [agent_key])
        last = 0
        while True:
            where = "id > %s"
            params: list[Any] = [last]
            if agent_key is not None:
                where += " AND agent_key = %s"
                params.append(agent_key)
            with connection.cursor() as cur:
                cur.execute(
                    "SELECT id, conversation_id, agent_key, created_at, step, status "
                    f"FROM {_JOURNEY} WHERE {where} ORDER BY id LIMIT %s",
                    [*params, batch_size],
                )
                journeys = cur.fetchall()
            if not journeys:
                break
            last = journeys[-1][0]
            cids = sorted({uuid.UUID(str(j[1])) for j in journeys})
            marks = ", ".join(["%s"] * len(cids))
            with connection.cursor() as cur:
                cur.execute(
                    f"SELECT conversation_id, agent_key, payload, created_at FROM {_EVENT} "
                    f"WHERE type = %s AND conversation_id IN ({marks}) ORDER BY id",
                    [STEP_CHANGED, *(field.get_db_prep_value(c, connection) for c in cids)],
                )
                events = cur.fetchall()
            changes: dict[tuple[uuid.UUID, str], list[tuple[Any, Any, Any]]] = {}
            for cid, key, payload, created_at in events:
                data = _json(payload) or {}
                changes.setdefault((uuid.UUID(str(cid)), str(key)), []).append(
                    (data.get("from"), data.get("to"), created_at)
                )
            updates: list[list[Any]] = []
            for pk, cid, key, created_at, step, status in journeys:
                found = changes.get((uuid.UUID(str(cid)), str(key)), [])
                totals["events"] += len(found)
                row = JourneyRow(created_at, step, status, {})
                memo: Any = {}
                if found or status == _COMPLETE:
                    marker = new_marker()
                    memo = merged({}, *memo_patch(found, marker, status == _COMPLETE, step))
                    count(str(key), row, memo, marker, found, counts)
                updates.append([pk, connection.ops.adapt_json_value(memo, None)])
            values = ", ".join(["(%s, %s)"] * len(updates))
            with connection.cursor() as cur:
                # One UPDATE ... FROM (VALUES ...) per batch (PostgreSQL; SQLite >= 3.33).
                cur.execute(
                    f"UPDATE {_JOURNEY} SET funnel_memo = v.column2 FROM (VALUES {values}) "
                    f"AS v WHERE {_JOURNEY}.id = v.column1",
                    [value for pair in updates for value in pair],
                )
            totals["journeys"] += len(journeys)
        write(counts, using=using)
    totals["counts"] = sum(1 for v in counts.values() if v[0] or v[1])
    return totals
