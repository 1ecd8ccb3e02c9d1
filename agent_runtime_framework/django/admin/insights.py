"""What the journey admin shows beyond the rows: progress, routed conversations, the funnel
and the graph (kept out of ``admin.py``, which wires them in).

- Progress: ``progress_html`` renders ``host.progress_of`` (the one progress function the
  API and the chat page use) from the journey's stored state.
- Routed conversations: ``attach_routed`` reads, in one query for a whole page, the
  journeys behind each router row, so a front-desk row shows the journeys it went
  through and the current one.
- Search: ``conversation_id_range`` turns an id prefix (the 8 characters the list shows)
  into an indexed range.
- Funnel: ``funnel_context`` (``analytics.journey_funnel`` / ``router_funnel``), with
  the agent's usage and cost (``usage.agent_usage``), and the journey's graph: drawn as
  SVG (``graph_svg.journey_svg``) with the edges as a table below it (``graph_html``).
- Usage: ``usage_html`` renders a ``usage.UsageSummary`` (tokens and cost per model);
  ``journey_usage`` picks one journey's share of its conversation.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.utils.html import format_html, format_html_join

from ..models import Journey, JourneyStatus

if TYPE_CHECKING:
    from ..host.usage import UsageSummary

__all__ = [
    "agent_usage_html",
    "attach_routed",
    "conversation_id_range",
    "cost_text",
    "funnel_context",
    "graph_html",
    "graph_svg_html",
    "is_router",
    "journey_usage",
    "progress_html",
    "routed_html",
    "runtime_for",
    "usage_html",
]

#: An id prefix: at least the 8 characters the list shows (shorter terms are owner names).
_HEX = re.compile(r"^[0-9a-f]{8,32}$")


def runtime_for(key: str) -> Any | None:
    """The registered agent or router with this key (a journey behind a router too)."""
    from ..host.registry import find_journey_agent

    try:
        return find_journey_agent(key)
    except Exception:
        return None


def is_router(runtime: Any) -> bool:
    from ...agents.routed import RoutedJourneyAgent

    return isinstance(runtime, RoutedJourneyAgent)


def progress_of_row(agent_key: str, step: str, state: Any) -> dict[str, Any]:
    from ..host.turns import progress_of

    agent = runtime_for(agent_key)
    if agent is None or is_router(agent):
        return {"index": 0, "total": 0, "steps": []}
    return progress_of(agent, step or None, state if isinstance(state, dict) else None)


def progress_html(agent_key: str, step: str, state: Any = None) -> str:
    """The progress bar and "step k of n" (with a loop's round) of one journey row."""
    progress = progress_of_row(agent_key, step, state)
    if not progress.get("total"):
        return format_html('<span class="art-muted">{}</span>', step or "-")
    return format_html(
        '<div class="art-progress" title="{}"><span style="width:{}%"></span></div>'
        '<span class="art-progress-text">{}</span>',
        step or "-",
        round(100 * progress["index"] / progress["total"]),
        progress_text(progress),
    )


def progress_text(progress: dict[str, Any]) -> str:
    """ "step 2 of 5", and in a loop "step 2 of 5 · driver 2"."""
    text = f"step {progress['index'] or '?'} of {progress['total']}"
    if progress.get("round"):
        text += f" · {progress.get('item') or 'item'} {progress['round']}"
    return text


def conversation_id_range(term: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """``(lowest, highest)`` UUID starting with the hex prefix ``term`` (None: not one)."""
    text = term.strip().lower().replace("-", "").rstrip("…").rstrip(".")
    if not _HEX.match(text):
        return None
    return uuid.UUID(text.ljust(32, "0")), uuid.UUID(text.ljust(32, "f"))


def attach_routed(rows: Iterable[Any]) -> None:
    """Give each router row ``routed``: its conversation's journeys (one query per page).

    Each entry: agent key, step, status, progress, and ``current`` for the journey the
    router has active now (its row's step names it) or, when none is, the last one.
    """
    routers: dict[Any, Any] = {}
    for row in rows:
        runtime = runtime_for(row.agent_key)
        if is_router(runtime):
            routers[row.conversation_id] = (row, runtime)
            row.routed = []
    if not routers:
        return
    journeys = (
        Journey.objects.filter(conversation_id__in=list(routers))
        .order_by("created_at", "id")
        .values("id", "conversation_id", "agent_key", "step", "status", "state", "updated_at")
    )
    for found in journeys:
        row, runtime = routers[found["conversation_id"]]
        if found["agent_key"] == row.agent_key:
            continue
        item: dict[str, Any] = dict(found)
        item["progress"] = progress_of_row(item["agent_key"], item["step"], item["state"])
        item["status_label"] = _status_label(item["status"])
        row.routed.append(item)
    for row, runtime in routers.values():
        current_key = runtime.journey_key(row.step) if row.step else None
        for item in row.routed:
            item["current"] = item["agent_key"] == current_key


def _status_label(status: str) -> str:
    return str(JourneyStatus(status).label) if status in JourneyStatus.values else status


def routed_html(row: Any) -> str:
    """The journeys a router row went through, the current one in bold."""
    routed = getattr(row, "routed", None) or []
    if not routed:
        return format_html('<span class="art-muted">{}</span>', "not routed yet")
    return format_html_join(
        " → ",
        '<span class="art-routed{}" title="{}">{}{} <span class="art-muted">({})</span></span>',
        (
            (
                " art-current" if item.get("current") else "",
                progress_text(item["progress"]) if item["progress"].get("total") else "",
                "▶ " if item.get("current") else "",
                item["agent_key"],
                item["status_label"],
            )
            for item in routed
        ),
    )


def funnel_context(
    agent_key: str,
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
    through: str | None,
) -> dict[str, Any]:
    """The funnel page's figures and graph for one agent or router key."""
    from .analytics import journey_funnel, router_funnel

    runtime = runtime_for(agent_key)
    if is_router(runtime):
        return {
            "funnel": router_funnel(runtime, since=since, until=until),
            "agent_registered": True,
            "router": True,
        }
    agent = runtime if runtime is not None and hasattr(runtime, "get_initial_state") else None
    funnel = journey_funnel(agent_key, agent, since=since, until=until, through=through)
    context: dict[str, Any] = {
        "funnel": funnel,
        "agent_registered": agent is not None,
        "router": False,
        "graph_html": graph_html(agent, funnel["edges"]) if agent is not None else "",
        "graph_svg": graph_svg_html(agent, funnel) if agent is not None else "",
    }
    return context


def agent_usage_html(
    agent_key: str, *, since: dt.datetime | None, until: dt.datetime | None
) -> str:
    """The agent's turns, tokens and cost in the range (its share behind routers too)."""
    from ..host.registry import registered_runtimes
    from ..host.usage import agent_usage

    routers = [
        key
        for key, runtime in registered_runtimes().items()
        if is_router(runtime) and any(a.key == agent_key for a in runtime.agents.values())
    ]
    return usage_html(agent_usage(agent_key, routers=routers, since=since, until=until))


def cost_text(cost: Decimal | None) -> str:
    """A cost in the currency of ``PRICES`` ("n/a": no price for the model)."""
    if cost is None:
        return "n/a"
    return f"{cost:.6f}" if cost < 1 else f"{cost:,.2f}"


def journey_usage(journey: Any, conversation_agent_key: str) -> UsageSummary:
    """One journey row's usage: a plain journey's or a router's row counts the whole
    conversation (as its ``turns``/``total_tokens`` do), a journey behind a router its
    own turns (one query)."""
    from ..host.usage import UsageSummary, conversation_usage

    per_journey = conversation_usage(journey.conversation_id)
    if journey.agent_key == conversation_agent_key:
        return per_journey["*"]
    return per_journey.get(journey.agent_key) or UsageSummary()


def usage_html(summary: UsageSummary) -> str:
    """Turns, tokens (input / output) and cost, per model and in total."""
    if not summary.turns and not summary.total_tokens:
        return format_html('<p class="art-muted art-usage">{}</p>', "No token usage recorded.")
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                m["model"] or "(unknown model)",
                m["turns"],
                m["prompt_tokens"],
                m["completion_tokens"],
                m["total_tokens"],
                cost_text(m["cost"]),
            )
            for m in summary.models
        ),
    )
    unpriced = (
        format_html(
            '<p class="art-muted">No price in PRICES for: {}; their tokens are not in the '
            "cost.</p>",
            ", ".join(m or "(unknown model)" for m in summary.unpriced),
        )
        if summary.unpriced
        else ""
    )
    return format_html(
        '<table class="art-usage"><thead><tr><th>Model</th><th>Turns</th><th>Input tokens</th>'
        "<th>Output tokens</th><th>Total tokens</th><th>Cost</th></tr></thead><tbody>{}"
        '<tr class="art-usage-total"><th>Total</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th>'
        "<th>{}</th></tr></tbody></table>{}",
        rows,
        summary.turns,
        summary.prompt_tokens,
        summary.completion_tokens,
        summary.total_tokens,
        cost_text(summary.cost),
        unpriced,
    )


_KIND_LABELS = {
    "next": "declared",
    "loop": "declared, within a loop",
    "back": "declared, back",
    "observed": "observed only (not declared)",
}


def graph_html(agent: Any, observed: list[dict[str, Any]]) -> str:
    """The journey's graph as a server-side list of edges: the declared transitions
    (branches, loops, ways back) with the journeys that took each, and the transitions
    taken that were not declared. No script, no CDN."""
    from ..management.commands.journey_graph import journey_edges

    try:
        edges = journey_edges(agent, observed)
    except Exception:
        return ""
    rows = format_html_join(
        "",
        '<tr class="art-edge art-edge-{}" data-from="{}" data-to="{}"><td>{}</td>'
        "<td>{} {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                edge["kind"],
                edge["from"],
                edge["to"],
                edge["from"],
                "⇢" if edge["kind"] in ("loop", "back") else "→",
                edge["to"],
                _KIND_LABELS.get(edge["kind"], edge["kind"]),
                edge.get("journeys", 0),
                edge.get("transitions", 0),
            )
            for edge in edges
        ),
    )
    return format_html(
        '<table class="art-graph"><thead><tr><th>From</th><th>To</th><th>Transition</th>'
        "<th>Journeys</th><th>Times taken</th></tr></thead><tbody>{}</tbody></table>",
        rows,
    )


def graph_svg_html(agent: Any, funnel: dict[str, Any]) -> str:
    """The journey's graph drawn server-side as SVG (``graph_svg.journey_svg``): its steps
    with the journeys that entered each, its edges with the journeys that took each. Every
    step name is escaped in the markup; "" when the agent has no step enum."""
    from django.utils.safestring import mark_safe

    from .graph_svg import journey_svg

    entered = {str(row["step"]): int(row["entered"]) for row in funnel.get("rows", [])}
    try:
        svg = journey_svg(agent, funnel["edges"], entered=entered, id_prefix="art-graph")
    except Exception:
        return ""
    return mark_safe(svg)  # journey_svg escapes every string it draws
