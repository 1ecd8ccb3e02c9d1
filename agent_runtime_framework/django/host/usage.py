"""Token usage, cost and per-user limits.

Where usage is kept: on the events a turn writes anyway, not in a table of its own. The
turn's reply (``assistant.message``) carries the tokens of every model call since the
previous record, with the model's name (``"model"``) and, behind a router, the journey
(``"journey"``). A turn that spent tokens without a reply (handed to a person, stopped at
the iteration bound, failed) records them as ``llm.usage``; so does a call to a different
model than the one before (a router on another model than its journey), so that every
record has exactly one model and one price. Those events are written in the turn's own
transactions (no extra trip to the database on a normal turn).

Cost: ``PRICES`` maps a model to its price per million input and output tokens; costs are
computed when shown, so a price change applies to past turns too (figures are estimates,
not an invoice). Aggregates are one grouped query each (per conversation, per agent).

Per agent, the usage is also summed into ``arf_usage_count`` (``UsageCount``): per agent,
journey, UTC hour and model, plus all-time rows, upserted in the transaction that writes
the usage events (on PostgreSQL in the events' own INSERT, ``stores._insert_events``), so
``agent_usage`` reads those rows, not the events, and outlives pruned events.
``rebuild_usage`` recounts them from the events (migration 0010's backfill).

Limits: ``LIMITS`` caps a user's turns and/or tokens in a sliding window of ``period``
seconds. ``check_limits_sync`` is one query, run in the turn's first database trip before
anything is stored; a user over a limit gets ``UsageLimitExceeded`` (HTTP 429).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import BigIntegerField, Count, Min, Q, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

__all__ = [
    "ALL_TIME_HOUR",
    "USAGE_EVENT",
    "USAGE_EVENT_TYPES",
    "Limits",
    "ModelName",
    "UsageLimitExceeded",
    "UsageMeter",
    "UsageSummary",
    "agent_usage",
    "check_limits_sync",
    "configured_limits",
    "conversation_usage",
    "cost_of",
    "event_usage",
    "model_name_of",
    "price_table",
    "rebuild_usage",
    "record_usage_counts",
]

#: A usage record without a reply (see the module docstring).
USAGE_EVENT = "llm.usage"
#: The event types that carry a turn's usage.
USAGE_EVENT_TYPES = ("assistant.message", USAGE_EVENT)

_MILLION = Decimal(1_000_000)
#: A commit moves ``Conversation.updated_at``; a usage event may be written up to a turn's
#: length after it (a failed turn's, on release), so the limit query looks back this much
#: further on the conversation's timestamp (its index) than on the events'.
_TURN_MARGIN = dt.timedelta(hours=1)


# -- prices -------------------------------------------------------------------------------


def price_table(raw: Any = None) -> dict[str, tuple[Decimal, Decimal]]:
    """``PRICES`` as ``{model: (input, output)}`` per million tokens (Decimals)."""
    if raw is None:
        from ..conf import app_settings

        raw = app_settings().PRICES
    table: dict[str, tuple[Decimal, Decimal]] = {}
    for model, price in (raw or {}).items():
        table[str(model)] = (
            Decimal(str(price.get("input", 0))),
            Decimal(str(price.get("output", 0))),
        )
    return table


def cost_of(
    model: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    prices: Mapping[str, tuple[Decimal, Decimal]] | None = None,
) -> Decimal | None:
    """What the tokens cost at the model's price (None: no price for that model)."""
    table = price_table() if prices is None else prices
    price = table.get(model or "")
    if price is None:
        return None
    return (price[0] * prompt_tokens + price[1] * completion_tokens) / _MILLION


# -- recording ----------------------------------------------------------------------------


class UsageMeter:
    """The tokens of one run's model calls not yet written to an event.

    One record per model and journey: ``add`` returns the record to write first when
    either changes (a router's call, then its journey's; another model, another price);
    ``take`` empties the meter into a payload (None: nothing spent).
    """

    __slots__ = ("calls", "completion", "journey", "model", "prompt", "total")

    def __init__(self) -> None:
        self.model = ""
        self.journey: str | None = None
        self.calls = self.prompt = self.completion = self.total = 0

    def add(
        self, model: str, journey: str | None, usage: Mapping[str, int]
    ) -> dict[str, Any] | None:
        changed = model != self.model or journey != self.journey
        flushed = self.take() if self.calls and changed else None
        self.model, self.journey = model, journey
        self.calls += 1
        self.prompt += int(usage.get("prompt_tokens", 0) or 0)
        self.completion += int(usage.get("completion_tokens", 0) or 0)
        self.total += int(usage.get("total_tokens", 0) or 0)
        return flushed

    def take(self) -> dict[str, Any] | None:
        if not self.calls:
            return None
        record: dict[str, Any] = {
            "usage": {
                "prompt_tokens": self.prompt,
                "completion_tokens": self.completion,
                "total_tokens": self.total,
            },
            "model": self.model,
            "calls": self.calls,
        }
        if self.journey:
            record["journey"] = self.journey
        self.model, self.journey = "", None
        self.calls = self.prompt = self.completion = self.total = 0
        return record


def event_usage(
    event_type: str,
    payload: Any,
    prices: Mapping[str, tuple[Decimal, Decimal]] | None = None,
) -> dict[str, Any] | None:
    """Tokens, model and cost of one stored event (None: it records no usage)."""
    if event_type not in USAGE_EVENT_TYPES or not isinstance(payload, Mapping):
        return None
    usage = payload.get("usage")
    if not isinstance(usage, Mapping) or not usage:
        return None
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    model = str(payload.get("model") or "")
    return {
        "model": model,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": _int(usage.get("total_tokens")) or prompt + completion,
        "cost": cost_of(model, prompt, completion, prices),
    }


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# -- aggregates -----------------------------------------------------------------------------


@dataclass
class UsageSummary:
    """Turns, tokens and cost of a set of usage records (``cost`` None: none priced)."""

    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: Decimal | None = None
    #: Models without a price in ``PRICES`` (their tokens are not in ``cost``).
    unpriced: list[str] = field(default_factory=list)
    #: One row per model: model, turns, tokens, cost.
    models: list[dict[str, Any]] = field(default_factory=list)

    def add(self, row: Mapping[str, Any], prices: Mapping[str, tuple[Decimal, Decimal]]) -> None:
        model = str(row.get("model") or "")
        prompt, completion = int(row["prompt"] or 0), int(row["completion"] or 0)
        total = int(row["total"] or 0) or prompt + completion
        cost = cost_of(model, prompt, completion, prices)
        self.turns += int(row["turns"] or 0)
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.total_tokens += total
        if cost is not None:
            self.cost = cost if self.cost is None else self.cost + cost
        elif model not in self.unpriced:
            self.unpriced.append(model)
        for existing in self.models:
            if existing["model"] == model:
                existing["turns"] += int(row["turns"] or 0)
                existing["prompt_tokens"] += prompt
                existing["completion_tokens"] += completion
                existing["total_tokens"] += total
                if cost is not None:
                    existing["cost"] = (existing["cost"] or Decimal(0)) + cost
                return
        self.models.append(
            {
                "model": model,
                "turns": int(row["turns"] or 0),
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": total,
                "cost": cost,
            }
        )


def _tokens(name: str) -> Any:
    return Coalesce(Sum(Cast(KT(f"payload__usage__{name}"), BigIntegerField())), 0)


def _grouped(queryset: Any, *keys: str) -> list[dict[str, Any]]:
    """One grouped query: per (keys, model) the turns (distinct runs) and token sums."""
    return list(
        queryset.annotate(model=KT("payload__model"), journey=KT("payload__journey"))
        .values(*keys, "model")
        .annotate(
            turns=Count("run_id", distinct=True),
            prompt=_tokens("prompt_tokens"),
            completion=_tokens("completion_tokens"),
            total=_tokens("total_tokens"),
        )
        .order_by()
    )


def conversation_usage(conversation_id: Any) -> dict[str, UsageSummary]:
    """Usage of one conversation per journey key ("" : not behind a router) plus ``"*"``,
    the whole conversation. One query over the conversation's events (its index)."""
    from ..models import JourneyEvent

    prices = price_table()
    rows = _grouped(
        JourneyEvent.objects.filter(conversation_id=conversation_id, type__in=USAGE_EVENT_TYPES),
        "journey",
    )
    found: dict[str, UsageSummary] = {"*": UsageSummary()}
    for row in rows:
        found["*"].add(row, prices)
        found.setdefault(str(row["journey"] or ""), UsageSummary()).add(row, prices)
    return found


def agent_usage(
    agent_key: str,
    *,
    routers: Iterable[str] = (),
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> UsageSummary:
    """Usage of one agent's turns in a time range: its own records, and its share of the
    conversations of ``routers`` (the routers it is behind). One grouped query over the
    usage aggregates (``arf_usage_count``): the all-time rows, or the rows of the UTC hours
    the range overlaps (a range not on whole hours is widened to them)."""
    from ..models import UsageCount

    keys = [agent_key, *[r for r in routers if r != agent_key]]
    queryset = UsageCount.objects.filter(agent_key__in=keys)
    first, end = utc_hours(since, until)
    if first is None and end is None:
        queryset = queryset.filter(hour=ALL_TIME_HOUR)
    else:
        queryset = queryset.filter(hour__gte=first if first is not None else 0)
        if end is not None:
            queryset = queryset.filter(hour__lt=end)
    rows = (
        queryset.values("agent_key", "journey", "model")
        .annotate(
            turns=Sum("turns"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            total=Sum("total_tokens"),
        )
        .order_by()
    )
    prices = price_table()
    summary = UsageSummary()
    for row in rows:
        # A router counts its whole conversations; a journey its share behind a router.
        if row["agent_key"] == agent_key or row["journey"] == agent_key:
            summary.add(row, prices)
    return summary


# -- aggregates kept with the events ------------------------------------------------------

#: The ``hour`` of the all-time rows of ``arf_usage_count``.
ALL_TIME_HOUR = -1
_USAGE_COUNT = "arf_usage_count"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

#: (agent_key, hour, journey, model) -> [turns, records, prompt, completion, total]
UsageCounts = dict[tuple[str, int, str, str], list[int]]
#: The runs already counted as a turn of a key (a turn counts once per key).
_Runs = dict[tuple[str, int, str, str], set[Any]]


def hour_of(value: Any) -> int:
    """The UTC hour of a datetime, as hours since 1970-01-01 (``arf_usage_count.hour``)."""
    from ..store.funnel_counts import _utc

    return int((_utc(value) - _EPOCH).total_seconds() // 3600)


def utc_hours(
    since: dt.datetime | None, until: dt.datetime | None
) -> tuple[int | None, int | None]:
    """The UTC hours ``[first, end)`` a range overlaps."""
    first = hour_of(since) if since is not None else None
    end = None
    if until is not None:
        end = hour_of(until - dt.timedelta(microseconds=1)) + 1
    return first, end


def _text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def count_usage(
    agent_key: Any,
    run_id: Any,
    payload: Any,
    created_at: Any,
    counts: UsageCounts,
    runs: _Runs,
) -> None:
    """Add one usage event (a type of ``USAGE_EVENT_TYPES``) to ``counts``: its hour's
    row and its all-time row; a run counts as a turn once per row (``runs``)."""
    data = payload if isinstance(payload, Mapping) else {}
    usage = data.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    agent = "" if agent_key is None else str(agent_key)
    journey, model = _text_of(data.get("journey")), _text_of(data.get("model"))
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    total = _int(usage.get("total_tokens"))
    for hour in (hour_of(created_at), ALL_TIME_HOUR):
        key = (agent, hour, journey, model)
        row = counts.setdefault(key, [0, 0, 0, 0, 0])
        seen = runs.setdefault(key, set())
        if run_id not in seen:
            seen.add(run_id)
            row[0] += 1
        row[1] += 1
        row[2] += prompt
        row[3] += completion
        row[4] += total


def usage_counts(events: Iterable[Any], created_at: Any = None) -> UsageCounts:
    """The aggregates of usage events (``JourneyEvent`` rows; stored at ``created_at``, or
    at their own ``created_at``)."""
    counts: UsageCounts = {}
    runs: _Runs = {}
    for event in events:
        if event.type in USAGE_EVENT_TYPES:
            when = created_at if created_at is not None else event.created_at
            count_usage(event.agent_key, event.run_id, event.payload, when, counts, runs)
    return counts


def record_usage_counts(
    events: Iterable[Any],
    *,
    cursor: Callable[[], Any] | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> None:
    """Sum stored usage events into the usage aggregates, in the caller's transaction (one
    upsert; none without usage events)."""
    counts = usage_counts(events)
    if counts:
        write_usage_counts(counts, cursor=cursor, using=using)


def upsert_sql(counts: UsageCounts) -> tuple[str, list[Any]]:
    """One statement upserting ``counts`` (in key order) and its parameters."""
    t = _USAGE_COUNT
    params: list[Any] = []
    for key, values in sorted(counts.items()):
        params += [*key, *values]
    marks = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(counts))
    sql = (
        f"INSERT INTO {t} (agent_key, hour, journey, model, turns, records, "
        f"prompt_tokens, completion_tokens, total_tokens) VALUES {marks} "
        "ON CONFLICT (agent_key, hour, journey, model) DO UPDATE SET "
        f"turns = {t}.turns + excluded.turns, records = {t}.records + excluded.records, "
        f"prompt_tokens = {t}.prompt_tokens + excluded.prompt_tokens, "
        f"completion_tokens = {t}.completion_tokens + excluded.completion_tokens, "
        f"total_tokens = {t}.total_tokens + excluded.total_tokens"
    )
    return sql, params


def write_usage_counts(
    counts: UsageCounts,
    *,
    cursor: Callable[[], Any] | None = None,
    using: str = DEFAULT_DB_ALIAS,
    chunk: int = 500,
) -> None:
    """Upsert ``counts`` (one statement per ``chunk`` rows, in key order)."""
    items = sorted(counts.items())
    open_cursor = cursor or connections[using].cursor
    for start in range(0, len(items), chunk):
        sql, params = upsert_sql(dict(items[start : start + chunk]))
        with open_cursor() as cur:
            cur.execute(sql, params)


def rebuild_usage(*, batch_size: int = 5000, using: str = DEFAULT_DB_ALIAS) -> dict[str, int]:
    """Recount the usage aggregates from the usage events (after events were loaded behind
    the framework's back; the migration's backfill). One transaction: the aggregates are
    deleted, the events read in batches of ``batch_size`` (by id) and summed in memory
    (bounded by agents x hours x models, plus the runs seen), then upserted. Returns
    ``{"events", "counts"}``. Pruned events are gone: their usage is no longer counted."""
    from ..models import JourneyEvent

    counts: UsageCounts = {}
    runs: _Runs = {}
    seen = 0
    with transaction.atomic(using=using):
        with connections[using].cursor() as cur:
            cur.execute(f"DELETE FROM {_USAGE_COUNT}")
        last = 0
        events = JourneyEvent.objects.using(using).filter(type__in=USAGE_EVENT_TYPES)
        while True:
            batch = list(
                events.filter(id__gt=last)
                .order_by("id")
                .values_list("id", "agent_key", "run_id", "payload", "created_at")[:batch_size]
            )
            if not batch:
                break
            last = batch[-1][0]
            for _, agent_key, run_id, payload, created_at in batch:
                count_usage(agent_key, run_id, payload, created_at, counts, runs)
            seen += len(batch)
        write_usage_counts(counts, using=using)
    return {"events": seen, "counts": len(counts)}


# -- limits -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """``LIMITS``: at most ``turns`` turns and ``tokens`` tokens per ``period`` seconds."""

    turns: int | None
    tokens: int | None
    period: float


def configured_limits(raw: Any = None) -> Limits | None:
    """The ``LIMITS`` setting (None: no limits)."""
    if raw is None:
        from ..conf import app_settings

        raw = app_settings().LIMITS
    if not raw:
        return None
    turns, tokens = raw.get("turns"), raw.get("tokens")
    if turns is None and tokens is None:
        return None
    return Limits(turns, tokens, float(raw.get("period", 86400)))


class UsageLimitExceeded(Exception):
    """The caller used up a limit of ``LIMITS``; the window frees in ``retry_after`` s."""

    def __init__(self, limit: str, used: int, allowed: int, period: float, retry_after: float):
        super().__init__(
            f"Usage limit reached: {used} of {allowed} {limit} in {_period_text(period)}"
        )
        self.limit = limit
        self.used = used
        self.allowed = allowed
        self.period = period
        self.retry_after = retry_after


def _period_text(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}s" if count != 1 else f"1 {unit}"
    return f"{seconds:g} seconds"


def check_limits_sync(
    user: Any,
    user_id: Any,
    session_key: str,
    limits: Limits | None = None,
    *,
    now: dt.datetime | None = None,
) -> None:
    """Raise ``UsageLimitExceeded`` when the caller is over a limit (one query).

    The caller's usage records since ``now - period``: through the conversation's
    ``(owner, updated_at)`` (or ``(session_key, updated_at)``) index to the conversations
    active in the window, then their events through ``(conversation, id)``. Staff users and
    callers with neither user nor session (code, the CLI) are not limited.
    """
    limits = configured_limits() if limits is None else limits
    if limits is None or getattr(user, "is_staff", False):
        return
    if user_id is not None:
        mine = Q(conversation__owner_id=user_id)
    elif session_key:
        mine = Q(conversation__owner_id=None, conversation__session_key=session_key)
    else:
        return
    from ..models import JourneyEvent

    now = now or timezone.now()
    since = now - dt.timedelta(seconds=limits.period)
    used = JourneyEvent.objects.filter(
        mine,
        conversation__updated_at__gte=since - _TURN_MARGIN,
        type__in=USAGE_EVENT_TYPES,
        created_at__gte=since,
    ).aggregate(
        turns=Count("run_id", distinct=True),
        tokens=_tokens("total_tokens"),
        oldest=Min("created_at"),
    )
    over: list[tuple[str, int, int]] = []
    if limits.turns is not None and used["turns"] >= limits.turns:
        over.append(("turns", int(used["turns"]), limits.turns))
    if limits.tokens is not None and used["tokens"] >= limits.tokens:
        over.append(("tokens", int(used["tokens"]), limits.tokens))
    if not over:
        return
    oldest = used["oldest"] or now
    # The oldest record leaves the window first: no capacity frees before then.
    wait = (oldest + dt.timedelta(seconds=limits.period) - now).total_seconds()
    limit, count, allowed = over[0]
    raise UsageLimitExceeded(limit, count, allowed, limits.period, float(max(1, math.ceil(wait))))


#: For ``EventRecorderHooks``: the model a call went to (a name, or a function of none).
ModelName = str | Callable[[], str | None] | None


def model_name_of(runtime: Any) -> Callable[[], str | None]:
    """The model of the call being made in a run of ``runtime``: behind a router, the
    client of the journey it is running (``routed_journey_key``), else the runtime's."""
    from ...agents.routed import RoutedJourneyAgent, routed_journey_key

    def current() -> str | None:
        client = getattr(runtime, "llm_client", None)
        if isinstance(runtime, RoutedJourneyAgent):
            journey = routed_journey_key()
            if journey:
                agent = next((a for a in runtime.agents.values() if a.key == journey), None)
                client = getattr(agent, "llm_client", None) or client
        model = getattr(client, "model", None)
        return model if isinstance(model, str) else None

    return current
