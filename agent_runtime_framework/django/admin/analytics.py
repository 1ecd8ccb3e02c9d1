"""Journey analytics from what happened: the funnel from the step transitions.

Every step change of a journey is a ``journey.step_changed`` event (``{"from", "to"}``),
written in the same transaction as the state it explains; a journey row's creation is its
entry into the initial step. The funnel counts these *visits* (one per entry into a
step), so it is exact for linear, branching and looping journeys alike:

- ``entered``: journeys that entered the step at least once; ``visits``: entries in all
  (a loop enters its steps again);
- ``now``: journeys at the step now and not finished (``active`` / ``parked``);
- ``left``: journeys that entered it and are elsewhere now, and ``to``: where its visits
  went next (transitions and distinct journeys per next step);
- ``completed``: journeys that entered it and completed the journey; ``dropped``: journeys
  that ended at it failed or abandoned; ``completed_here``: completed at it;
- ``median_seconds``: median time from entering the step to leaving it (closed visits),
  to the bucket: the mean of the middle visit's log-spaced bucket (``funnel_counts``:
  four buckets per doubling, so within 19 %; exact when the middle visit is alone in its
  bucket, or its bucket's visits took the same time).

The figures per step come from aggregates kept with the step events (``funnel_counts``:
counts per agent, **UTC day the journeys started**, kind and step, upserted in the
transaction that writes the events), not from the events: the funnel does not grow with
the event table, and pruning old events (``journey_prune``) leaves it as it was. Two
queries whatever the data size: the counts summed over the range's days (all time: the
agent's all-time rows, ``funnel_counts.ALL_TIME``), and the journeys' current (step,
status) (an index-only scan of ``(agent_key, created_at, step, status)`` on the journey
table: ``total``, ``now``, ``dropped``, ``completed_here``; it still grows with the
agent's journeys in range, a few ms at 100,000).

Filters: the agent (always) and the journeys' start date range. A range maps onto the
UTC days it overlaps (``utc_days``: the day of ``since`` up to the day of the last
instant before ``until``): the per-step figures count the journeys started on those
days, while ``total`` and the current figures count those started within the exact
instants. The admin's date filter gives midnights of the site's time zone, so with
``TIME_ZONE = "UTC"`` both agree; elsewhere the step figures take in the whole UTC days
at the edges. ``through`` (journeys that entered a step: one branch of a branching
journey) is computed from the branch's step events (window functions over the visits,
portable between SQLite and PostgreSQL; the partial index ``art_event_steps`` serves
it): exact, but it grows with the events it reads and misses pruned ones.

Behind a router the step events carry the routed journey's key (``routed_journey_key``),
so a journey's funnel counts it whether it ran alone or behind a front desk. A router's
own funnel (``router_funnel``) counts where its conversations were routed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Count

from ...agents.introspect import journey_steps, step_value
from ..models import FunnelCount, Journey, JourneyEvent, JourneyStatus
from ..store.funnel_counts import ALL_TIME, median_of_buckets

__all__ = [
    "STEP_CHANGED",
    "journey_funnel",
    "observed_transitions",
    "router_funnel",
    "utc_days",
]

STEP_CHANGED = "journey.step_changed"

_OPEN = (JourneyStatus.ACTIVE.value, JourneyStatus.PARKED.value)
_DROPPED = (JourneyStatus.FAILED.value, JourneyStatus.ABANDONED.value)


def _to_expr(alias: str) -> str:
    if connection.vendor == "postgresql":
        return f"({alias}.payload ->> 'to')"
    return f"CAST(json_extract({alias}.payload, '$.to') AS TEXT)"


def _seconds_expr(later: str, earlier: str) -> str:
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


def _db_time(value: dt.datetime) -> Any:
    """A datetime as the backend stores it: raw SQL gets no field conversion, and on
    SQLite an aware local time compared as text with stored UTC is off by the offset."""
    return connection.ops.adapt_datetimefield_value(value)


def _q(name: str) -> str:
    return str(connection.ops.quote_name(name))


def _journeys_cte(
    agent_key: str,
    since: dt.datetime | None,
    until: dt.datetime | None,
    through: str | None,
) -> tuple[str, list[Any]]:
    """``j``: the agent's journeys in range (cid, step, status, created_at)."""
    where = ["jr.agent_key = %s"]
    params: list[Any] = [agent_key]
    if since is not None:
        where.append("jr.created_at >= %s")
        params.append(_db_time(since))
    if until is not None:
        where.append("jr.created_at < %s")
        params.append(_db_time(until))
    if through is not None:
        where.append(
            f"EXISTS (SELECT 1 FROM {_q(JourneyEvent._meta.db_table)} x "
            "WHERE x.agent_key = %s AND x.conversation_id = jr.conversation_id "
            f"AND x.type = %s AND {_to_expr('x')} = %s)"
        )
        params += [agent_key, STEP_CHANGED, str(through)]
    sql = (
        "SELECT jr.conversation_id AS cid, jr.step AS step, jr.status AS status, "
        f"jr.created_at AS created_at FROM {_q(Journey._meta.db_table)} jr "
        f"WHERE {' AND '.join(where)}"
    )
    return sql, params


def _visits_sql(
    agent_key: str,
    initial: str,
    since: dt.datetime | None,
    until: dt.datetime | None,
    through: str | None,
) -> tuple[str, list[Any]]:
    """CTEs ``j`` (journeys), ``v`` (entries into steps, with the journey's status), ``s``
    (each visit with the step it went to next and when, and whether it is the journey's
    first visit of the step), ``t`` (seconds spent, first use of the edge) and ``u`` (the
    visit's rank by time spent within its step, for the median)."""
    journeys, params = _journeys_cte(agent_key, since, until, through)
    seconds = _seconds_expr("s.left_at", "s.at")
    sql = (
        f"WITH j AS ({journeys}), "
        "v AS ("
        f"SELECT e.conversation_id AS cid, e.id AS ord, {_to_expr('e')} AS step, "
        "e.created_at AS at, j.status AS status "
        f"FROM {_q(JourneyEvent._meta.db_table)} e JOIN j ON j.cid = e.conversation_id "
        "WHERE e.agent_key = %s AND e.type = %s "
        "UNION ALL SELECT j.cid, 0, %s, j.created_at, j.status FROM j), "
        "s AS (SELECT v.cid AS cid, v.ord AS ord, v.step AS step, v.at AS at, "
        "v.status AS status, "
        "LEAD(v.step) OVER (PARTITION BY v.cid ORDER BY v.ord) AS next_step, "
        "LEAD(v.at) OVER (PARTITION BY v.cid ORDER BY v.ord) AS left_at, "
        "ROW_NUMBER() OVER (PARTITION BY v.cid, v.step ORDER BY v.ord) AS nth "
        "FROM v), "
        f"t AS (SELECT s.cid, s.ord, s.step, s.status, s.next_step, s.nth, {seconds} AS secs, "
        "ROW_NUMBER() OVER (PARTITION BY s.cid, s.step, s.next_step ORDER BY s.ord) "
        "AS nth_edge FROM s), "
        "u AS (SELECT t.*, "
        "ROW_NUMBER() OVER (PARTITION BY t.step ORDER BY t.secs IS NULL, t.secs) AS rn, "
        "COUNT(t.secs) OVER (PARTITION BY t.step) AS cnt FROM t) "
    )
    return sql, [*params, agent_key, STEP_CHANGED, initial]


def _initial_step(agent: Any) -> str:
    try:
        return str(step_value(agent.get_initial_state().step))
    except Exception:
        return ""


def journey_funnel(
    agent_key: str,
    agent: Any = None,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    through: str | None = None,
) -> dict[str, Any]:
    """The funnel of one journey agent (two queries; see the module docstring).

    ``agent`` gives the step order, the initial step and the declared branch points;
    without it steps come in alphabetical order and the initial step is unknown.
    """
    initial = _initial_step(agent) if agent is not None else ""
    journeys, jparams = _journeys_cte(agent_key, since, until, through)
    current = f"SELECT step, status, COUNT(*) FROM ({journeys}) j GROUP BY step, status"
    if through is not None:
        with connection.cursor() as cursor:
            cursor.execute(*_visit_rows_sql(agent_key, initial, since, until, through))
            rows = cursor.fetchall()
            cursor.execute(current, jparams)
            current_rows = cursor.fetchall()
        figures = _figures_from_visits(rows)
    else:
        with connection.cursor() as cursor:
            cursor.execute(*_counts_sql(agent_key, since, until))
            rows = cursor.fetchall()
            cursor.execute(current, jparams)
            current_rows = cursor.fetchall()
        total = sum(int(n) for _, _, n in current_rows)
        figures = _figures_from_counts(rows, initial, total)
    return _assemble(agent, figures, current_rows, through)


def utc_days(
    since: dt.datetime | None, until: dt.datetime | None
) -> tuple[dt.date | None, dt.date | None]:
    """The UTC days ``[first, end)`` a range of journeys' starts overlaps: the day of
    ``since`` onwards, up to and including the day of the last instant before ``until``."""
    first = since.astimezone(dt.UTC).date() if since is not None else None
    end = None
    if until is not None:
        last = until.astimezone(dt.UTC) - dt.timedelta(microseconds=1)
        end = last.date() + dt.timedelta(days=1)
    return first, end


def _counts_sql(
    agent_key: str, since: dt.datetime | None, until: dt.datetime | None
) -> tuple[str, list[Any]]:
    """The agent's funnel counts summed over the UTC days of the range (``funnel_counts``)."""
    where = ["agent_key = %s"]
    params: list[Any] = [agent_key]
    first, end = utc_days(since, until)
    if first is None and end is None:  # all time: the agent's all-time rows
        where.append("day = %s")
        params.append(connection.ops.adapt_datefield_value(ALL_TIME))
    elif first is not None:
        where.append("day >= %s")
        params.append(connection.ops.adapt_datefield_value(first))
    else:
        where.append("day > %s")
        params.append(connection.ops.adapt_datefield_value(ALL_TIME))
    if end is not None:
        where.append("day < %s")
        params.append(connection.ops.adapt_datefield_value(end))
    sql = (
        f"SELECT kind, step, target, SUM(n), SUM(total) FROM {_q(FunnelCount._meta.db_table)} "
        f"WHERE {' AND '.join(where)} GROUP BY kind, step, target"
    )
    return sql, params


def _figure(figures: dict[str, dict[str, Any]], step: Any) -> dict[str, Any]:
    key = "" if step is None else str(step)
    if key not in figures:
        figures[key] = {"entered": 0, "visits": 0, "completed": 0, "to": {}, "median": None}
    return figures[key]


def _edge(entry: dict[str, Any], target: Any) -> dict[str, int]:
    to: dict[str, int] = entry["to"].setdefault(str(target), {"transitions": 0, "journeys": 0})
    return to


def _figures_from_counts(
    rows: Sequence[Sequence[Any]], initial: str, total: int
) -> dict[str, dict[str, Any]]:
    """Per step: entered, visits, completed, next steps, median (from the time buckets).
    The initial step's entries are the journeys' creations (``total``), not stored."""
    figures: dict[str, dict[str, Any]] = {}
    buckets: dict[str, dict[int, tuple[float, float]]] = {}
    if total:
        entry = _figure(figures, initial)
        entry["entered"] += total
        entry["visits"] += total
    for kind, step, target, n, summed in rows:
        count = int(n or 0)
        if kind == "time":
            buckets.setdefault(str(step), {})[int(target)] = (count, float(summed or 0))
            continue
        entry = _figure(figures, step)
        if kind == "visit":
            entry["visits"] += count
        elif kind == "enter":
            entry["entered"] += count
        elif kind == "done":
            entry["completed"] += count
        elif kind == "edge":
            _edge(entry, target)["transitions"] += count
        elif kind == "edge1":
            _edge(entry, target)["journeys"] += count
    for step, by_bucket in buckets.items():
        _figure(figures, step)["median"] = median_of_buckets(by_bucket)
    return figures


def _visit_rows_sql(
    agent_key: str,
    initial: str,
    since: dt.datetime | None,
    until: dt.datetime | None,
    through: str | None,
) -> tuple[str, list[Any]]:
    """One pass over the visits of one branch's journeys (read from the step events):
    counts per (step, next step, status), and the medians' middle rows summed per group."""
    head, params = _visits_sql(agent_key, initial, since, until, through)
    middle = "u.secs IS NOT NULL AND (u.rn = (u.cnt + 1) / 2 OR u.rn = (u.cnt + 2) / 2)"
    sql = (
        head + "SELECT u.step, u.next_step, u.status, COUNT(*), "
        "SUM(CASE WHEN u.nth = 1 THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN u.nth_edge = 1 THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {middle} THEN u.secs END), "
        f"SUM(CASE WHEN {middle} THEN 1 ELSE 0 END) "
        "FROM u GROUP BY u.step, u.next_step, u.status"
    )
    return sql, params


def _figures_from_visits(rows: Sequence[Sequence[Any]]) -> dict[str, dict[str, Any]]:
    figures: dict[str, dict[str, Any]] = {}
    sums: dict[str, list[float]] = {}
    for step, next_step, status, visits, first, first_edge, middle, middles in rows:
        entry = _figure(figures, step)
        entry["visits"] += int(visits)
        entry["entered"] += int(first or 0)
        if status == JourneyStatus.COMPLETE:
            entry["completed"] += int(first or 0)
        if next_step is not None:
            to = _edge(entry, next_step)
            to["transitions"] += int(visits)
            to["journeys"] += int(first_edge or 0)
        if middles:
            summed = sums.setdefault("" if step is None else str(step), [0.0, 0])
            summed[0] += float(middle or 0)
            summed[1] += int(middles)
    for step, (summed_secs, n) in sums.items():
        if n:
            _figure(figures, step)["median"] = summed_secs / n
    return figures


def _assemble(
    agent: Any,
    figures: dict[str, dict[str, Any]],
    current_rows: Sequence[Sequence[Any]],
    through: str | None,
) -> dict[str, Any]:
    order: list[str] = []
    if agent is not None:
        try:
            order = [str(step_value(s)) for s in journey_steps(agent)]
        except Exception:
            order = []
    steps: dict[str, dict[str, Any]] = {}

    def row(step: Any) -> dict[str, Any]:
        key = "" if step is None else str(step)
        if key not in steps:
            steps[key] = {
                "step": key,
                "entered": 0,
                "visits": 0,
                "left": 0,
                "to": {},
                "now": 0,
                "active": 0,
                "parked": 0,
                "completed": 0,
                "completed_here": 0,
                "dropped": 0,
                "median_seconds": None,
            }
        return steps[key]

    edges: dict[tuple[str, str], dict[str, int]] = {}
    for step, figure in figures.items():
        if not (figure["visits"] or figure["entered"] or figure["completed"] or figure["to"]):
            continue  # counts that came back to zero (a completion undone)
        entry = row(step)
        entry["visits"] += figure["visits"]
        entry["entered"] += figure["entered"]
        entry["completed"] += figure["completed"]
        for target, counts in figure["to"].items():
            if not counts["transitions"] and not counts["journeys"]:
                continue
            entry["to"][target] = dict(counts)
            edges[(entry["step"], target)] = dict(counts)
        if figure["median"] is not None:
            entry["median_seconds"] = round(float(figure["median"]), 3)
    total = 0
    for step, status, n in current_rows:
        entry = row(step)
        total += int(n)
        if status in _OPEN:
            entry["now"] += int(n)
            entry["active" if status == JourneyStatus.ACTIVE else "parked"] += int(n)
        elif status in _DROPPED:
            entry["dropped"] += int(n)
        elif status == JourneyStatus.COMPLETE:
            entry["completed_here"] += int(n)
    for entry in steps.values():
        here = entry["now"] + entry["dropped"] + entry["completed_here"]
        entry["left"] = max(entry["entered"] - here, 0)
        entry["to"] = dict(sorted(entry["to"].items(), key=lambda kv: -kv[1]["transitions"]))
    known = [s for s in order if s in steps] + [s for s in order if s not in steps]
    ordered = known + sorted(s for s in steps if s not in order)
    rows = []
    for index, name in enumerate(ordered, start=1):
        entry = steps.get(name) or row(name)
        entry["index"] = index
        entry["in_enum"] = name in order
        entry["entered_pct"] = round(100 * entry["entered"] / total, 1) if total else 0
        entry["now_pct"] = round(100 * entry["now"] / total, 1) if total else 0
        entry["to_list"] = [{"step": k, **v} for k, v in entry["to"].items()]
        rows.append(entry)
    return {
        "total": total,
        "rows": rows,
        "edges": [{"from": a, "to": b, **counts} for (a, b), counts in sorted(edges.items())],
        "branches": _branches(agent, order, edges),
        "through": through,
    }


def _branches(
    agent: Any, order: list[str], edges: dict[tuple[str, str], dict[str, int]]
) -> list[dict[str, Any]]:
    """Branch points: steps with two or more ways forward (declared, else observed).

    Edges back (to an earlier step of the enum) and within one loop are not branches.
    """
    from ...agents.progress import declared_transitions, loop_of

    declared: list[tuple[str, str]] = []
    if agent is not None:
        declared = [(a, b) for a, b, _ in declared_transitions(agent)]
    pairs = declared or list(edges)
    forward: dict[str, list[str]] = {}
    for a, b in pairs:
        if a in order and b in order and order.index(b) <= order.index(a):
            continue
        group = loop_of(agent, a) if agent is not None else None
        if group is not None and b in group:
            continue
        targets = forward.setdefault(a, [])
        if b not in targets:
            targets.append(b)
    return [{"step": a, "options": targets} for a, targets in forward.items() if len(targets) > 1]


def observed_transitions(
    agent_key: str,
    agent: Any = None,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """``[{"from", "to", "transitions", "journeys"}]``: the transitions journeys took."""
    return list(journey_funnel(agent_key, agent, since=since, until=until)["edges"])


def router_funnel(
    router: Any,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> dict[str, Any]:
    """Where a router's conversations went: per routed journey, the conversations that
    entered it and where its journey stands (two queries)."""
    key = router.key
    conversations = Journey.objects.filter(agent_key=key)
    routed = Journey.objects.filter(conversation__agent_key=key).exclude(agent_key=key)
    if since is not None:
        conversations = conversations.filter(created_at__gte=since)
        routed = routed.filter(conversation__created_at__gte=since)
    if until is not None:
        conversations = conversations.filter(created_at__lt=until)
        routed = routed.filter(conversation__created_at__lt=until)
    total = conversations.count()
    counts: dict[str, dict[str, int]] = {}
    for item in routed.order_by().values("agent_key", "status").annotate(n=Count("*")):
        by = counts.setdefault(item["agent_key"], {})
        by[item["status"]] = by.get(item["status"], 0) + int(item["n"])
    rows = []
    for index, agent in enumerate(getattr(router, "agents", {}).values(), start=1):
        by = counts.get(agent.key, {})
        entered = sum(by.values())
        rows.append(
            {
                "index": index,
                "step": agent.key,
                "entered": entered,
                "entered_pct": round(100 * entered / total, 1) if total else 0,
                "active": by.get(JourneyStatus.ACTIVE, 0),
                "parked": by.get(JourneyStatus.PARKED, 0),
                "now": by.get(JourneyStatus.ACTIVE, 0) + by.get(JourneyStatus.PARKED, 0),
                "completed": by.get(JourneyStatus.COMPLETE, 0),
                "dropped": by.get(JourneyStatus.FAILED, 0) + by.get(JourneyStatus.ABANDONED, 0),
            }
        )
    return {"total": total, "rows": rows, "router": True}
