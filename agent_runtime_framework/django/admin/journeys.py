"""The admin: where every journey stands, what was said, and where journeys stop.

- Journeys list: agent, owner, current step with a "step k of n" progress bar (along the
  journey's own path: ``admin_insights.progress_html``, the API's ``progress_of``), status,
  turns, tokens, last activity; filters by agent, step, status and date; search by
  conversation id (a prefix of 8+ characters or the UUID) or owner. A router's row shows the
  journeys its conversation went through (``admin_insights.attach_routed``).
- Journey page: the state as fields, the transcript as a conversation, the event
  timeline, and the step history (``journey.step_changed`` events with timestamps).
- Actions: reset journeys to their initial state; export transcripts as JSON.
- Funnel per agent (``.../journey/funnel/<agent_key>/``): from the step transitions
  (``analytics.py``): per step, journeys that entered, are there now, left and to where,
  completed or ended there, the median time; per branch (``?through=``) and date range;
  with the journey's graph (SVG, ``graph_svg.py``). A router's funnel: where its
  conversations were routed.

Built for large tables: no N+1 queries (owners are joined, agents resolved from the
in-process registry), no unfiltered COUNT(*) (``show_full_result_count = False`` and, on
PostgreSQL, the planner's row estimate for the unfiltered list), and the funnel is one
GROUP BY (step, status) over the agent's journeys (``bench/bench_admin_scale.py`` measures
all of it at 100,000 journeys).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.functional import cached_property
from django.utils.html import format_html

from ...agents.introspect import journey_steps, step_progress, step_value
from ...state.serializer import VERSION_KEY
from ..host.usage import event_usage, price_table
from ..models import Journey, JourneyEvent, JourneyMessage, JourneyStatus
from ..store import funnel_counts
from . import insights
from .console import ConversationConsoleAdmin  # noqa: F401  (registers the staff console)

__all__ = ["EstimatedCountPaginator", "JourneyAdmin", "funnel_rows"]

#: Transcript, timeline and step history rows shown on a journey page (the newest ones).
DETAIL_MESSAGES = 300
DETAIL_EVENTS = 300
DETAIL_STEPS = 300


def _agent_for(key: str) -> Any | None:
    from ..host.registry import find_journey_agent

    try:
        agent = find_journey_agent(key)
    except Exception:
        return None
    if agent is None or not callable(getattr(agent, "get_initial_state", None)):
        return None
    return agent


_STEPS_CACHE: dict[int, tuple[Any, list[Any]]] = {}


def _steps_of(agent: Any) -> list[Any]:
    """Step values of an agent in enum order (cached per agent object)."""
    cached = _STEPS_CACHE.get(id(agent))
    if cached is not None and cached[0] is agent:
        return cached[1]
    try:
        steps = [step_value(s) for s in journey_steps(agent)]
    except Exception:
        steps = []
    _STEPS_CACHE[id(agent)] = (agent, steps)
    return steps


def _registered_keys() -> list[str]:
    from ..checks import iter_agents
    from ..host.registry import registered_runtimes

    keys: list[str] = []
    for _, agent in iter_agents(registered_runtimes()):
        key = getattr(agent, "key", None)
        if (
            isinstance(key, str)
            and key not in keys
            and callable(getattr(agent, "get_initial_state", None))
        ):
            keys.append(key)
    return keys


def _registered_routers() -> dict[str, Any]:
    from ..host.registry import registered_runtimes

    return {k: r for k, r in registered_runtimes().items() if insights.is_router(r)}


class EstimatedCountPaginator(Paginator):
    """Exact counts for filtered lists; the planner's estimate for a huge unfiltered table.

    ``COUNT(*)`` over millions of rows is a full scan on PostgreSQL; an unfiltered
    changelist does not need the exact figure.
    """

    ESTIMATE_ABOVE = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if (
            connection.vendor == "postgresql"
            and isinstance(queryset, QuerySet)
            and not queryset.query.where
        ):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [queryset.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] and row[0] > self.ESTIMATE_ABOVE:
                return int(row[0])
        return int(super().count)


class AgentFilter(admin.SimpleListFilter):
    """Agents from the registry (no DISTINCT over the journey table)."""

    title = "agent"
    parameter_name = "agent"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, key) for key in _registered_keys()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(agent_key=value) if value else queryset


class StepFilter(admin.SimpleListFilter):
    """Steps of the chosen agent's enum (of all registered agents when none is chosen)."""

    title = "step"
    parameter_name = "step"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        chosen = request.GET.get("agent")
        keys = [chosen] if chosen else _registered_keys()
        seen: list[str] = []
        for key in keys:
            agent = _agent_for(key)
            for value in _steps_of(agent) if agent is not None else ():
                if str(value) not in seen:
                    seen.append(str(value))
        return [(value, value) for value in seen]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(step=value) if value else queryset


def _progress_html(agent_key: str, step: str, state: Any = None) -> str:
    if state is not None:  # along the journey's own path (admin_insights / host.progress_of)
        return insights.progress_html(agent_key, step, state)
    agent = _agent_for(agent_key)
    if agent is None:
        return format_html('<span class="art-muted">{}</span>', step or "-")
    steps = _steps_of(agent)
    k, n = (steps.index(step) + 1, len(steps)) if step in steps else step_progress(agent, step)
    if not n:
        return format_html("{}", step or "-")
    percent = round(100 * k / n) if k else 0
    return format_html(
        '<div class="art-progress" title="{}"><span style="width:{}%"></span></div>'
        '<span class="art-progress-text">step {} of {}</span>',
        step or "-",
        percent,
        k or "?",
        n,
    )


def funnel_rows(agent: Any, counts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Funnel figures from ``(step, status, n)`` aggregate rows, in the agent's step order.

    Kept for callers of 0.4's API; the admin's funnel is ``analytics.journey_funnel`` (from
    the step transitions, exact for branches and loops).

    "Reached" uses the enum order: a journey at step k reached every step <= k (steps are
    linear). "Stopped" is where journeys are now: active (still in progress there),
    complete, or failed/abandoned there.
    """
    order = _steps_of(agent) if agent is not None else []
    by_step: dict[str, dict[str, int]] = {}
    for row in counts:
        entry = by_step.setdefault(str(row["step"]), {})
        entry[row["status"]] = entry.get(row["status"], 0) + int(row["n"])
    total = sum(sum(v.values()) for v in by_step.values())
    known = [str(s) for s in order]
    rows: list[dict[str, Any]] = []
    remaining = sum(sum(by_step.get(s, {}).values()) for s in known)
    for index, step in enumerate(known):
        here = by_step.get(step, {})
        at_step = sum(here.values())
        rows.append(
            {
                "index": index + 1,
                "step": step,
                "reached": remaining,
                "reached_pct": round(100 * remaining / total, 1) if total else 0,
                "active": here.get(JourneyStatus.ACTIVE, 0),
                "complete": here.get(JourneyStatus.COMPLETE, 0),
                "dropped": here.get(JourneyStatus.FAILED, 0) + here.get(JourneyStatus.ABANDONED, 0),
                "at_step": at_step,
                "at_step_pct": round(100 * at_step / total, 1) if total else 0,
            }
        )
        remaining -= at_step
    unknown = {s: sum(v.values()) for s, v in by_step.items() if s not in known}
    return {"total": total, "rows": rows, "unknown": unknown}


class JourneyChangeList(ChangeList):
    """The journey list never shows the state JSON: don't read it for 50 rows a page."""

    def get_queryset(self, request: HttpRequest, *args: Any, **kwargs: Any) -> QuerySet[Any]:
        return super().get_queryset(request, *args, **kwargs)

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # Router rows: the journeys behind them, for the whole page in one query.
        insights.attach_routed(self.result_list)


@admin.register(Journey)
class JourneyAdmin(admin.ModelAdmin):
    list_display = (
        "conversation_link",
        "agent_key",
        "owner",
        "step",
        "progress",
        "status",
        "turns",
        "total_tokens",
        "updated_at",
    )
    list_display_links = ("conversation_link",)
    list_select_related = ("owner",)
    list_filter = (AgentFilter, StepFilter, "status", ("updated_at", admin.DateFieldListFilter))
    search_fields = ("owner__username", "owner__email")
    search_help_text = (
        "A conversation id (the 8 characters the list shows, or more), or an owner's "
        "username or email."
    )
    ordering = ("-updated_at",)
    date_hierarchy = None
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    actions = ("reset_journeys", "export_transcripts")
    change_form_template = "agent_runtime/admin/journey_detail.html"
    change_list_template = "agent_runtime/admin/journey_changelist.html"
    readonly_fields = (
        "conversation",
        "agent_key",
        "owner",
        "session_key",
        "step",
        "status",
        "turns",
        "total_tokens",
        "state_version",
        "created_at",
        "updated_at",
        "completed_at",
    )
    fields = readonly_fields

    # -- list --------------------------------------------------------------------------------
    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JourneyChangeList

    @admin.display(description="conversation", ordering="conversation_id")
    def conversation_link(self, obj: Journey) -> str:
        return str(obj.conversation_id)[:8] + "…"

    @admin.display(description="progress")
    def progress(self, obj: Journey) -> str:
        if hasattr(obj, "routed"):  # a router's row: the journeys it went through
            return insights.routed_html(obj)
        return _progress_html(obj.agent_key, obj.step, obj.state)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(conversation_id=uuid.UUID(term)), False
        except ValueError:
            pass
        prefix = insights.conversation_id_range(term)
        if prefix is not None:  # an id prefix, as the list shows it: an indexed range
            lowest, highest = prefix
            return queryset.filter(conversation_id__gte=lowest, conversation_id__lte=highest), False
        return queryset.filter(
            Q(owner__username__icontains=term) | Q(owner__email__icontains=term)
        ), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # journeys start in conversations, not in the admin

    # -- detail ------------------------------------------------------------------------------
    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Any:
        queryset = self.get_queryset(request).select_related("owner", "conversation")
        try:
            return queryset.get(pk=object_id)
        except (Journey.DoesNotExist, ValueError, TypeError):
            return None

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The journey page is read-only (a turn owns the state); the list's actions stay.
        return obj is None and super().has_change_permission(request)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        if obj is not None:
            context.update(self.detail_context(obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def detail_context(self, journey: Journey) -> dict[str, Any]:
        """State fields, transcript, events, step history and the conversation's other journeys
        of one journey (5 queries)."""
        cid = journey.conversation_id
        total_messages = journey.conversation.next_seq
        recent = list(
            JourneyMessage.objects.filter(conversation_id=cid)
            .order_by("-seq")
            .values("seq", "role", "content", "tool_calls", "tool_call_id", "name", "created_at")[
                :DETAIL_MESSAGES
            ]
        )
        recent.reverse()
        transcript = [_transcript_entry(m) for m in recent]
        latest = list(
            JourneyEvent.objects.filter(conversation_id=cid)
            .exclude(type__startswith="http.")  # the host's idempotency records, not events
            .order_by("-id")
            .values("type", "payload", "created_at", "run_id", "seq", "agent_key")[:DETAIL_EVENTS]
        )
        prices = price_table()
        events = [
            {
                **e,
                "payload_json": json.dumps(e["payload"], indent=1, ensure_ascii=False),
                # A turn's tokens and cost, on the event that records them (usage.py).
                "usage": _usage_line(event_usage(e["type"], e["payload"], prices)),
            }
            for e in reversed(latest)
        ]
        # The newest step changes, newest first and limited: the planner then walks the
        # conversation's (conversation, id) index backwards, instead of intersecting it
        # with the whole table's "journey.step_changed" entries of the type index (a cost
        # that grows with the event table), and a journey that went back and forth for
        # thousands of turns does not render thousands of rows.
        router = insights.is_router(insights.runtime_for(journey.agent_key))
        # A router's page: the step changes of every journey it routed to.
        step_filter = {} if router else {"agent_key": journey.agent_key}
        latest_steps = list(
            JourneyEvent.objects.filter(
                conversation_id=cid, type="journey.step_changed", **step_filter
            )
            .order_by("-id")
            .values("payload", "created_at", "agent_key")[: DETAIL_STEPS + 1]
        )
        steps_cut = len(latest_steps) > DETAIL_STEPS
        history = reversed(latest_steps[:DETAIL_STEPS])
        step_history: list[dict[str, Any]] = [
            {"step": "…", "at": None, "from": None, "reason": "earlier step changes not shown"}
            if steps_cut
            else {"step": "(start)", "at": journey.created_at, "from": None}
        ]
        for item in history:
            payload = item["payload"] if isinstance(item["payload"], dict) else {}
            step_history.append(
                {
                    "step": payload.get("to"),
                    "from": payload.get("from"),
                    "at": item["created_at"],
                    "reason": payload.get("reason", "") or (item["agent_key"] if router else ""),
                }
            )
        state = journey.state if isinstance(journey.state, dict) else {}
        state_fields = [
            {"name": k, "value": _readable(v), "nested": isinstance(v, dict | list)}
            for k, v in state.items()
            if k != VERSION_KEY  # shown as the journey's state version instead
        ]
        agent = _agent_for(journey.agent_key)
        # The conversation's other journeys: behind a router, the one active and those
        # parked by a switch (conversation control), each a link to its own page.
        siblings = [
            {
                **row,
                "url": reverse("admin:agent_runtime_journey_change", args=[row["id"]]),
                "status_label": JourneyStatus(row["status"]).label
                if row["status"] in JourneyStatus.values
                else row["status"],
            }
            for row in Journey.objects.filter(conversation_id=cid)
            .exclude(id=journey.id)
            .order_by("created_at")
            .values("id", "agent_key", "step", "status", "updated_at")
        ]
        return {
            "journey": journey,
            "conversation_journeys": siblings,
            "state_fields": state_fields,
            "transcript": transcript,
            "transcript_total": total_messages,
            "transcript_cut": total_messages > len(transcript),
            "events": events,
            "step_history": step_history,
            "step_history_cut": steps_cut,
            "progress_html": _progress_html(journey.agent_key, journey.step, journey.state),
            "usage_html": insights.usage_html(
                insights.journey_usage(journey, journey.conversation.agent_key)
            ),
            "is_router": router,
            "agent_registered": agent is not None,
            "funnel_url": reverse(
                "admin:agent_runtime_journey_funnel_agent", args=[journey.agent_key]
            ),
        }

    # -- actions -----------------------------------------------------------------------------
    @admin.action(description="Reset selected journeys to their initial state")
    def reset_journeys(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        from ...state.serializer import StateSerializer
        from ..models import Conversation
        from ..store.events import JOURNEY_STEP_CHANGED, record_event

        done, busy, unknown = 0, 0, set()
        now = timezone.now()
        for journey in queryset.select_related(None).only(
            "id", "agent_key", "conversation_id", "step"
        ):
            agent = _agent_for(journey.agent_key)
            if agent is None:
                unknown.add(journey.agent_key)
                continue
            initial = agent.get_initial_state()
            data = StateSerializer.dump(initial)
            step = step_value(getattr(initial, "step", None))
            with transaction.atomic():
                # Only while no turn holds the conversation: a running turn would
                # overwrite the reset (and its commit would fail its lease check anyway).
                free = Conversation.objects.filter(
                    Q(lease_token="") | Q(lease_expires_at__lt=now), id=journey.conversation_id
                ).update(updated_at=now)
                if not free:
                    busy += 1
                    continue
                Journey.objects.filter(pk=journey.pk).update(
                    state=data,
                    state_version=int(data.get("_version", 1)),
                    step="" if step is None else str(step),
                    status=JourneyStatus.ACTIVE,
                    completed_at=None,
                    updated_at=now,
                )
                # No longer complete: the funnel's "completed" counts follow.
                funnel_counts.resync(journey.conversation_id, journey.agent_key)
            record_event(
                uuid.uuid4(),
                JOURNEY_STEP_CHANGED,
                {"from": journey.step, "to": step, "reason": "reset in admin"},
                conversation_id=journey.conversation_id,
                agent_key=journey.agent_key,
                seq=0,
            )
            done += 1
        if done:
            self.message_user(request, f"Reset {done} journey(s) to their initial state.")
        if busy:
            self.message_user(
                request, f"{busy} journey(s) are in a turn right now; try again.", messages.WARNING
            )
        if unknown:
            self.message_user(
                request,
                "No registered agent for: " + ", ".join(sorted(unknown)) + " (not reset).",
                messages.ERROR,
            )

    @admin.action(description="Export transcripts of selected journeys as JSON")
    def export_transcripts(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse:
        # defer(None): the list's queryset skips the state, the export needs it.
        journeys = list(queryset.defer(None).select_related("owner").order_by("id"))
        ids = {j.conversation_id for j in journeys}
        by_conversation: dict[Any, list[dict[str, Any]]] = {cid: [] for cid in ids}
        rows = (
            JourneyMessage.objects.filter(conversation_id__in=ids)
            .order_by("conversation_id", "seq")
            .values(
                "conversation_id",
                "seq",
                "role",
                "content",
                "tool_calls",
                "tool_call_id",
                "name",
                "created_at",
            )
        )
        for row in rows.iterator(chunk_size=2000):
            message = {
                k: v for k, v in row.items() if k != "conversation_id" and v not in ("", None)
            }
            message["created_at"] = row["created_at"].isoformat()
            by_conversation[row["conversation_id"]].append(message)
        data = [
            {
                "conversation_id": str(j.conversation_id),
                "agent_key": j.agent_key,
                "owner": str(j.owner) if j.owner else None,
                "step": j.step,
                "status": j.status,
                "turns": j.turns,
                "total_tokens": j.total_tokens,
                "state": j.state,
                "created_at": j.created_at.isoformat(),
                "updated_at": j.updated_at.isoformat(),
                "messages": by_conversation.get(j.conversation_id, []),
            }
            for j in journeys
        ]
        response = JsonResponse(data, safe=False, json_dumps_params={"indent": 1})
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="transcripts-{stamp}.json"'
        return response

    # -- funnel ------------------------------------------------------------------------------
    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("funnel/", view(self.funnel_view), name="agent_runtime_journey_funnel"),
            path(
                "funnel/<str:agent_key>/",
                view(self.funnel_view),
                name="agent_runtime_journey_funnel_agent",
            ),
            *super().get_urls(),
        ]

    def funnel_view(self, request: HttpRequest, agent_key: str | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise Http404
        keys = _registered_keys()
        # Routers too: their funnel is where their conversations were routed.
        keys += [k for k, r in _registered_routers().items() if k not in keys]
        if agent_key is None and keys:
            agent_key = keys[0]
        since = _date_param(request, "since")
        until = _date_param(request, "until")
        through = request.GET.get("through", "").strip() or None
        figures: dict[str, Any] = {"funnel": None, "agent_registered": False, "router": False}
        if agent_key:
            # From the step transitions (analytics.py): exact for branches and loops.
            start = _start_of(since) if since else None
            end = _start_of(until + dt.timedelta(days=1)) if until else None
            figures = insights.funnel_context(agent_key, since=start, until=end, through=through)
            # Tokens and cost of the agent's turns in the range (one grouped query).
            figures["usage_html"] = insights.agent_usage_html(agent_key, since=start, until=end)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Journey funnel: {agent_key}" if agent_key else "Journey funnel",
            "agent_key": agent_key,
            "agent_keys": keys,
            **figures,
            "through": through or "",
            "since": since.isoformat() if since else "",
            "until": until.isoformat() if until else "",
        }
        return TemplateResponse(request, "agent_runtime/admin/journey_funnel.html", context)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {
            **(extra_context or {}),
            "funnel_url": reverse("admin:agent_runtime_journey_funnel"),
        }
        return super().changelist_view(request, context)


def _date_param(request: HttpRequest, name: str) -> dt.date | None:
    raw = request.GET.get(name, "").strip()
    if not raw:
        return None
    try:
        return parse_date(raw)
    except ValueError:
        return None


def _start_of(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _readable(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, indent=1, ensure_ascii=False)
    if isinstance(value, Enum):
        return str(value.value)
    if value is None or value == "":
        return "—"
    return str(value)


def _usage_line(usage: Mapping[str, Any] | None) -> str:
    """The event timeline's "15 tokens (10 in / 5 out) · gpt-4o-mini · cost 0.000005"."""
    if usage is None:
        return ""
    return (
        f"{usage['total_tokens']} tokens ({usage['prompt_tokens']} in / "
        f"{usage['completion_tokens']} out) · {usage['model'] or 'unknown model'} · "
        f"cost {insights.cost_text(usage['cost'])}"
    )


def _transcript_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """A message as the detail template shows it: role, text, tool calls with arguments."""
    calls = []
    for call in row.get("tool_calls") or []:
        function = call.get("function") or {} if isinstance(call, dict) else {}
        arguments = function.get("arguments")
        try:
            pretty = json.dumps(json.loads(arguments), ensure_ascii=False) if arguments else ""
        except (TypeError, ValueError):
            pretty = str(arguments)
        calls.append(
            {"id": call.get("id", ""), "name": function.get("name", "?"), "arguments": pretty}
        )
    role = row["role"]
    return {
        "seq": row["seq"],
        "role": role,
        "kind": "tool-call" if calls else role,
        "content": row.get("content") or "",
        "tool_calls": calls,
        "tool_call_id": row.get("tool_call_id") or "",
        "name": row.get("name") or "",
        "created_at": row["created_at"],
    }
