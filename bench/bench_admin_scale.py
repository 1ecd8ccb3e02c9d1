"""The journey admin at scale: the same pages at a small and a large data size, side by side.

On a scratch PostgreSQL database (``bench_admin_scale``, created and dropped), this loads
journeys, conversations, messages and events server-side (``INSERT ... SELECT
generate_series``), once at a small scale and once at a large one (TRUNCATE in between),
and for each scale times the admin pages through ``django.test.Client`` as a logged-in
superuser:

- the journey changelist: default, filtered by agent, by step, by status, by agent and
  status, by date, a search by conversation id, a search by owner, page 50;
- the journey page of a conversation with many messages (and events), and of a typical one;
- the funnel page: all time, and a 30-day date range.

Per page: the number of SQL queries (``CaptureQueriesContext``), the median time of
several requests after a warm-up at each scale, and the ratio large / small. The point
is the ratio (the pages must not grow with the table) and bounded query counts, not the
absolute times. For every page whose slowest query exceeds ``--explain-ms`` at the large
scale, ``EXPLAIN (ANALYZE, BUFFERS)`` of that query is printed, with a note when it
scans a whole table. The database size at each scale is printed too. Last, the indexes
those plans ask for are created in the scratch database and the pages they serve are
measured before and after (``--no-index-trial`` skips this).

Data (large scale, defaults): 100,000 conversations with one journey each, three agent
keys (60 % ``onboarding-agent``, 30 % ``signup-agent``, both registered, so progress bars
render; 10 % ``legacy-agent``, not registered), steps weighted towards the later ones,
statuses consistent with steps and dates (complete at the last step, active when recent,
mostly abandoned otherwise), dates over the last year (more of them recent), 70 % with
one of 500 owners;
1,000,000 messages (user / assistant tool call / tool result / assistant reply), one
conversation holding 2 % of them; events: ``tool.call`` + ``journey.step_changed`` per
step transition, ``assistant.message`` and some ``http.*`` idempotency records, and a long
event log for the big conversation. After loading, ``VACUUM ANALYZE`` (what autovacuum
does on a live database; without statistics the planner and the estimated changelist
count both go wrong).

Run: ``python bench/bench_admin_scale.py [--journeys 100000] [--messages 1000000]
[--small-journeys 1000] [--small-messages 10000] [--repeat 11] [--warmup 3]
[--explain-ms 20] [--no-index-trial] [--keep]``
(PostgreSQL from ``DATABASE_URL``, default ``postgres://postgres@127.0.0.1:5432/postgres``).
About a minute with the defaults on a 2-core machine (loading the large scale: ~30 s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import re
import statistics
import sys
import time
from typing import Any
from urllib.parse import urlencode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PG_DEFAULT = "postgres://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "bench_admin_scale"
OWNERS = 500
ADMIN = "/admin/agent_runtime/journey/"
APP_TABLES = (
    "arf_event",
    "arf_message",
    "arf_journey",
    "arf_conversation",
    "arf_funnel_count",
)
#: The onboarding steps (tests/journeys.py); ``legacy-agent`` has its own, unknown here.
STEPS = ("welcome", "collect_name", "collect_email", "complete")
LEGACY_STEPS = ("start", "qualify", "quote", "done")


# -- setup -------------------------------------------------------------------------------------


def _admin_conninfo() -> dict[str, Any]:
    from agent_runtime_framework.django.dburl import database_from_url

    return database_from_url(os.environ.get("DATABASE_URL") or PG_DEFAULT)


def _server_connection(admin: dict[str, Any]) -> Any:
    import psycopg

    return psycopg.connect(
        dbname=admin["NAME"],
        user=admin["USER"],
        password=admin["PASSWORD"],
        host=admin["HOST"],
        port=admin["PORT"] or 5432,
        autocommit=True,
    )


def _create_database(admin: dict[str, Any]) -> None:
    with _server_connection(admin) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")


def _drop_database(admin: dict[str, Any]) -> None:
    from django.db import connections

    connections.close_all()
    with _server_connection(admin) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def _configure(admin: dict[str, Any]) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        SECRET_KEY="bench-admin-scale",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "agent_runtime_framework.django",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        ROOT_URLCONF="tests.urls",
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [],
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        # A persistent connection, as in production: requests do not pay for a connect.
        DATABASES={"default": {**admin, "NAME": BENCH_DB, "CONN_MAX_AGE": None}},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        AGENT_RUNTIME_FRAMEWORK={},
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _register_agents() -> None:
    """``onboarding-agent`` and ``signup-agent`` (same steps) registered; ``legacy-agent`` not."""
    from agent_runtime_framework.django.host.registry import register_runtime
    from tests.journeys import OnboardingAgent

    class SignupAgent(OnboardingAgent):
        @property
        def key(self) -> str:
            return "signup-agent"

    register_runtime(OnboardingAgent())
    register_runtime(SignupAgent())


def _create_users() -> None:
    """A superuser for the client and ``OWNERS`` plain users to own journeys."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    get_user_model().objects.create_superuser("bench-admin", "admin@example.com", "x")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,"
            " email, is_staff, is_active, date_joined)"
            " SELECT '!', false, 'bench-user-' || n, 'User', 'N' || n,"
            "  'user' || n || '@example.com', false, true, now()"
            " FROM generate_series(1, %s) n",
            [OWNERS],
        )


# -- data ----------------------------------------------------------------------------------------


def _plan_sql(journeys: int, messages: int, hot_index: int, hot_messages: int) -> list[str]:
    """Statements that fill the app tables (one journey per conversation)."""
    avg = max(1.0, (messages - hot_messages) / max(1, journeys - 1))
    spread = max(1, round(2 * avg - 1))
    steps = "ARRAY[" + ",".join(f"'{s}'" for s in STEPS) + "]"
    legacy = "ARRAY[" + ",".join(f"'{s}'" for s in LEGACY_STEPS) + "]"
    return [
        "SELECT setseed(0.42)",
        "DROP TABLE IF EXISTS bench_owner",
        "CREATE TEMP TABLE bench_owner AS SELECT (row_number() OVER (ORDER BY id)) - 1 AS n, id"
        " FROM auth_user WHERE username LIKE 'bench-user-%'",
        "DROP TABLE IF EXISTS bench_plan",
        # Draw the random figures once per journey; everything else is derived from them.
        f"""
        CREATE TEMP TABLE bench_plan AS
        WITH base AS (
            SELECT i,
                   md5('conversation-' || i)::uuid AS cid,
                   CASE WHEN i % 10 < 6 THEN 'onboarding-agent'
                        WHEN i % 10 < 9 THEN 'signup-agent'
                        ELSE 'legacy-agent' END AS agent_key,
                   random() AS r_step, random() AS r_status, random() AS r_age,
                   random() AS r_span, random() AS r_msgs, random() AS r_owner,
                   random() AS r_tokens
            FROM generate_series(1, {journeys}) i
        ), stepped AS (
            SELECT *,
                   CASE WHEN i = {hot_index} THEN 3
                        WHEN r_step < 0.15 THEN 0 WHEN r_step < 0.40 THEN 1
                        WHEN r_step < 0.60 THEN 2 ELSE 3 END AS k,
                   -- skewed to recent dates: a growing product
                   now() - r_age * r_age * interval '365 days' AS created_at
            FROM base
        ), dated AS (
            SELECT *,
                   -- at most 5 days after the start, never in the future (and no ties)
                   created_at + least(r_span * r_span * interval '5 days',
                                      (now() - created_at) * r_span) AS updated_at
            FROM stepped
        )
        SELECT d.i, d.cid, d.agent_key, d.k, d.created_at, d.updated_at,
               (CASE WHEN d.agent_key = 'legacy-agent' THEN {legacy} ELSE {steps} END)[d.k + 1]
                   AS step,
               CASE WHEN d.k = 3 THEN 'complete'
                    WHEN d.updated_at > now() - interval '2 days' THEN 'active'
                    WHEN d.r_status < 0.85 THEN 'abandoned'
                    WHEN d.r_status < 0.95 THEN 'active'
                    ELSE 'failed' END AS status,
               CASE WHEN d.r_owner < 0.7 THEN o.id END AS owner_id,
               CASE WHEN d.r_owner >= 0.7 THEN substr(md5('session-' || d.i), 1, 32)
                    ELSE '' END AS session_key,
               CASE WHEN d.i = {hot_index} THEN {hot_messages}
                    ELSE 1 + floor(d.r_msgs * {spread})::int END AS nmsg,
               d.r_tokens
        FROM dated d
        LEFT JOIN bench_owner o ON o.n = d.i % {OWNERS}
        """,
        """
        INSERT INTO arf_conversation (id, agent_key, owner_id, session_key, next_seq,
            lease_token, lease_expires_at, created_at, updated_at)
        SELECT cid, agent_key, owner_id, session_key, nmsg, '', NULL, created_at, updated_at
        FROM bench_plan ORDER BY i
        """,
        """
        INSERT INTO arf_journey (conversation_id, agent_key, state, state_version,
            step, status, owner_id, session_key, turns, total_tokens, created_at, updated_at,
            completed_at)
        SELECT cid, agent_key,
               jsonb_build_object('step', step, 'name', 'User ' || i,
                                  'email', CASE WHEN k >= 2 THEN 'user' || i || '@example.com'
                                                ELSE '' END,
                                  '_version', 1),
               1, step, status, owner_id, session_key, (nmsg + 3) / 4,
               ((nmsg + 3) / 4) * (200 + floor(r_tokens * 800)::int),
               created_at, updated_at,
               CASE WHEN status = 'complete' THEN updated_at END
        FROM bench_plan ORDER BY i
        """,
        # Turns of four: user, assistant tool call, tool result, assistant reply.
        """
        INSERT INTO arf_message (conversation_id, seq, role, content,
            tool_calls, tool_call_id, name, metadata, created_at)
        SELECT p.cid, s,
               CASE s % 4 WHEN 0 THEN 'user' WHEN 1 THEN 'assistant' WHEN 2 THEN 'tool'
                          ELSE 'assistant' END,
               CASE s % 4
                    WHEN 0 THEN 'Message ' || s || ' from user ' || p.i || ': '
                                || repeat('some words of an answer ', 1 + s % 5)
                    WHEN 1 THEN NULL
                    WHEN 2 THEN 'Saved. Now ask for the next detail.'
                    ELSE 'Thanks! ' || repeat('Could you tell me a bit more? ', 1 + s % 3) END,
               CASE WHEN s % 4 = 1 THEN jsonb_build_array(jsonb_build_object(
                        'id', 'call_' || s, 'type', 'function',
                        'function', jsonb_build_object('name', 'save_name',
                                                       'arguments', '{"name": "Ada"}'))) END,
               CASE WHEN s % 4 = 2 THEN 'call_' || (s - 1) ELSE '' END,
               '', '{}'::jsonb,
               p.created_at + (p.updated_at - p.created_at) * (s::float8 / p.nmsg)
        FROM bench_plan p CROSS JOIN LATERAL generate_series(0, p.nmsg - 1) s
        """,
        # Per step transition t (1..k): a run with tool.call, journey.step_changed and
        # assistant.message; every fifth conversation an http.* idempotency record.
        f"""
        INSERT INTO arf_event (conversation_id, agent_key, run_id, seq, type,
            payload, created_at)
        SELECT p.cid, p.agent_key, md5('run-' || p.i || '-' || t)::uuid, e.seq, e.type,
               CASE e.type
                    WHEN 'tool.call' THEN jsonb_build_object('name', 'save_name',
                                                             'arguments', '{{}}'::jsonb)
                    WHEN 'journey.step_changed' THEN jsonb_build_object(
                        'from', (CASE WHEN p.agent_key = 'legacy-agent' THEN {legacy}
                                      ELSE {steps} END)[t],
                        'to', (CASE WHEN p.agent_key = 'legacy-agent' THEN {legacy}
                                    ELSE {steps} END)[t + 1])
                    ELSE jsonb_build_object('content', 'Thanks, noted.') END,
               p.created_at + (p.updated_at - p.created_at) * (t::float8 / (p.k + 1))
        FROM bench_plan p
        CROSS JOIN LATERAL generate_series(1, p.k) t
        CROSS JOIN LATERAL (VALUES (0, 'tool.call'), (1, 'journey.step_changed'),
                                   (2, 'assistant.message')) e(seq, type)
        WHERE p.i <> {hot_index}
        """,
        f"""
        INSERT INTO arf_event (conversation_id, agent_key, run_id, seq, type,
            payload, created_at)
        SELECT p.cid, '', md5('http-' || p.i)::uuid, 0, 'http.idempotency',
               jsonb_build_object('status', 200), p.updated_at
        FROM bench_plan p WHERE p.i % 5 = 0 AND p.i <> {hot_index}
        """,
        # The big conversation: one run per turn (tool.call + assistant.message) and a
        # step change every tenth turn (a journey that keeps going back and forth).
        f"""
        INSERT INTO arf_event (conversation_id, agent_key, run_id, seq, type,
            payload, created_at)
        SELECT p.cid, p.agent_key, md5('hot-run-' || t)::uuid, e.seq, e.type,
               CASE e.type
                    WHEN 'journey.step_changed' THEN jsonb_build_object(
                        'from', ({steps})[1 + t % 4], 'to', ({steps})[1 + (t + 1) % 4],
                        'reason', 'back and forth')
                    WHEN 'tool.call' THEN jsonb_build_object('name', 'save_email',
                                                             'arguments', '{{}}'::jsonb)
                    ELSE jsonb_build_object('content', 'Thanks, noted.') END,
               p.created_at + (p.updated_at - p.created_at) * (t::float8 / (p.nmsg / 4 + 1))
        FROM bench_plan p
        CROSS JOIN LATERAL generate_series(1, p.nmsg / 4) t
        CROSS JOIN LATERAL (VALUES (0, 'tool.call'), (1, 'journey.step_changed'),
                                   (2, 'assistant.message')) e(seq, type)
        WHERE p.i = {hot_index} AND (e.type <> 'journey.step_changed' OR t % 10 = 0)
        ORDER BY t, e.seq
        """,
    ]


def _load(journeys: int, messages: int) -> dict[str, Any]:
    """Truncate the app tables and load one scale; returns counts, timings and ids."""
    from django.apps import apps
    from django.db import connection, transaction

    hot_index = journeys // 2 + 1
    hot_messages = max(1000, messages // 50)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Every table of the app (runs and approvals reference conversations), not only
        # the four this bench fills.
        owned = [m._meta.db_table for m in apps.get_app_config("agent_runtime").get_models()]
        cursor.execute("TRUNCATE " + ", ".join(owned) + " RESTART IDENTITY")
        with transaction.atomic():
            for sql in _plan_sql(journeys, messages, hot_index, hot_messages):
                cursor.execute(sql)
        loaded = time.perf_counter() - started
        # Loaded with raw SQL, behind the framework's back: count the funnel and the usage
        # as migrations 0009 and 0010's backfills do on an existing install
        # (funnel_counts.rebuild, usage.rebuild_usage).
        from agent_runtime_framework.django.host.usage import rebuild_usage
        from agent_runtime_framework.django.store.funnel_counts import rebuild

        rebuild()
        usage_started = time.perf_counter()
        rebuild_usage()
        print(
            f"usage backfill ({journeys} journeys): {time.perf_counter() - usage_started:.1f} s",
            flush=True,
        )
        counted = time.perf_counter() - started - loaded
        loaded += counted
        cursor.execute("VACUUM ANALYZE")
        counts = {}
        for table in APP_TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
        cursor.execute("SELECT cid FROM bench_plan WHERE i = %s", [hot_index])
        hot_cid = cursor.fetchone()[0]
        cursor.execute(
            "SELECT cid FROM bench_plan WHERE agent_key = 'onboarding-agent' AND k = 2"
            " AND i <> %s ORDER BY i LIMIT 1",
            [hot_index],
        )
        typical_cid = cursor.fetchone()[0]
        cursor.execute("SELECT pg_database_size(current_database())")
        db_bytes = cursor.fetchone()[0]
        tables = {}
        for table in APP_TABLES:
            cursor.execute("SELECT pg_total_relation_size(%s)", [table])
            tables[table] = cursor.fetchone()[0]
    from agent_runtime_framework.django.models import Journey

    return {
        "counts": counts,
        "load_s": loaded - counted,
        "funnel_s": counted,
        "vacuum_s": time.perf_counter() - started - loaded,
        "hot_id": Journey.objects.get(conversation_id=hot_cid).pk,
        "hot_messages": hot_messages,
        "typical_id": Journey.objects.get(conversation_id=typical_cid).pk,
        "search_cid": str(typical_cid),
        "db_bytes": db_bytes,
        "table_bytes": tables,
    }


# -- pages ---------------------------------------------------------------------------------------


def _pages(data: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(label, url, text the response must contain) for one scale's data."""
    from django.utils import timezone

    today = dt.date.today()
    since = (today - dt.timedelta(days=30)).isoformat()
    # As DateFieldListFilter's "Past 7 days" link has it (aware datetimes, as strings).
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    past_week = {
        "updated_at__gte": str(midnight - dt.timedelta(days=7)),
        "updated_at__lt": str(midnight + dt.timedelta(days=1)),
    }
    # Page 50 at the large scale; the last page when the small scale has fewer.
    last_page = min(50, max(1, data["counts"]["arf_journey"] // 50))
    return [
        ("list: default", ADMIN, "step 2 of 4"),
        ("list: agent", f"{ADMIN}?agent=onboarding-agent", "step 4 of 4"),
        ("list: step", f"{ADMIN}?step=collect_email", "step 3 of 4"),
        ("list: status", f"{ADMIN}?status__exact=abandoned", "Abandoned"),
        (
            "list: agent+status",
            f"{ADMIN}?agent=onboarding-agent&status__exact=abandoned",
            "Abandoned",
        ),
        ("list: past 7 days", ADMIN + "?" + urlencode(past_week), None),
        ("list: search conv id", f"{ADMIN}?q={data['search_cid']}", data["search_cid"][:8]),
        ("list: search owner", f"{ADMIN}?q=bench-user-1", "bench-user-1"),
        ("list: page 50", f"{ADMIN}?p={last_page}", "step"),
        ("detail: big conv", f"{ADMIN}{data['hot_id']}/change/", "Showing the last 300"),
        ("detail: typical", f"{ADMIN}{data['typical_id']}/change/", "Transcript"),
        ("funnel: all time", f"{ADMIN}funnel/onboarding-agent/", "collect_email"),
        (
            "funnel: 30 days",
            f"{ADMIN}funnel/onboarding-agent/?since={since}&until={today}",
            "collect_email",
        ),
    ]


def _measure(
    client: Any, pages: list[tuple[str, str, str | None]], repeat: int, warmup: int
) -> dict[str, dict[str, Any]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    results: dict[str, dict[str, Any]] = {}
    for label, url, expect in pages:
        for _ in range(warmup):
            response = client.get(url)
            if response.status_code != 200:
                raise SystemExit(f"{label}: GET {url} -> {response.status_code}")
            if expect is not None and expect not in response.content.decode():
                raise SystemExit(f"{label}: GET {url} does not contain {expect!r}")
        times = []
        gc.collect()
        gc.disable()  # no collector pauses inside the timed requests
        try:
            for _ in range(repeat):
                start = time.perf_counter()
                client.get(url)
                times.append(time.perf_counter() - start)
        finally:
            gc.enable()
        queries: list[tuple[float, str, Any]] = []

        def timed(
            execute: Any,
            sql: str,
            params: Any,
            many: bool,
            context: Any,
            queries: list[tuple[float, str, Any]] = queries,
        ) -> Any:
            start = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                queries.append((time.perf_counter() - start, sql, params))

        with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(timed):
            html = client.get(url).content.decode()
        assert len(captured.captured_queries) == len(queries)
        results[label] = {
            "url": url,
            "ms": 1000 * statistics.median(times),
            "queries": len(queries),
            "db_ms": 1000 * sum(t for t, _, _ in queries),
            # Rendered rows: table rows plus transcript messages (what the page draws).
            "rows": html.count("<tr") + html.count('class="art-msg '),
            # (ms, start of the sql) of every query, in order.
            "each": [(1000 * t, " ".join(sql.split())[:90]) for t, sql, _ in queries],
            # (seconds, sql, params, sql as sent) of the slowest query.
            "slowest": max(
                (
                    (t, sql, params, q["sql"])
                    for (t, sql, params), q in zip(queries, captured.captured_queries, strict=True)
                ),
                default=(0.0, "", None, ""),
                key=lambda item: item[0],
            ),
        }
    return results


def _explain(sql: str, params: Any) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return [row[0] for row in cursor.fetchall()]


def _full_scans(plan: list[str]) -> list[str]:
    """Seq scans of the big tables in a plan (a sign of a missing index)."""
    scans = []
    for line in plan:
        match = re.search(r"Seq Scan on (arf_\w+)", line)
        if match and match.group(1) not in scans:
            scans.append(match.group(1))
    return scans


# -- index trial -------------------------------------------------------------------------------

#: Indexes the slow plans above ask for (name, definition, pages they serve), tried on the
#: scratch database only: adding them for real is a migration of the app's models.
SUGGESTED_INDEXES = (
    (
        "bench_journey_agent_step_status",
        "arf_journey (agent_key, step, status)",
        ("funnel: all time",),
    ),
    (
        "bench_journey_agent_created",
        "arf_journey (agent_key, created_at) INCLUDE (step, status)",
        ("funnel: 30 days",),
    ),
    (
        "bench_journey_status_recent",
        "arf_journey (status, updated_at DESC)",
        ("list: status",),
    ),
)


def _try_indexes(
    client: Any, pages: list[tuple[str, str, str | None]], repeat: int, warmup: int
) -> tuple[dict[str, Any], dict[str, Any], dict[str, int]]:
    """The pages the suggested indexes serve, measured before and after creating them."""
    from django.db import connection

    served = {label for _, _, labels in SUGGESTED_INDEXES for label in labels}
    pages = [p for p in pages if p[0] in served]
    before = _measure(client, pages, repeat, warmup)  # again, right before, for a fair pair
    sizes = {}
    with connection.cursor() as cursor:
        for name, definition, _ in SUGGESTED_INDEXES:
            cursor.execute(f"CREATE INDEX {name} ON {definition}")
            cursor.execute("SELECT pg_relation_size(%s)", [name])
            sizes[name] = cursor.fetchone()[0]
        cursor.execute("VACUUM ANALYZE arf_journey")
    return before, _measure(client, pages, repeat, warmup), sizes


# -- report --------------------------------------------------------------------------------------


def _mb(value: int) -> str:
    return f"{value / 1024 / 1024:,.1f} MB"


def _describe(name: str, data: dict[str, Any]) -> None:
    counts = data["counts"]
    print(
        f"{name}: {counts['arf_journey']:,} journeys, "
        f"{counts['arf_conversation']:,} conversations, "
        f"{counts['arf_message']:,} messages "
        f"({data['hot_messages']:,} in the big conversation), "
        f"{counts['arf_event']:,} events; "
        f"{counts['arf_funnel_count']:,} funnel counts; "
        f"loaded in {data['load_s']:.1f} s, funnel backfill {data['funnel_s']:.1f} s, "
        f"VACUUM ANALYZE {data['vacuum_s']:.1f} s; "
        f"database {_mb(data['db_bytes'])} ("
        + ", ".join(f"{t.removeprefix('arf_')} {_mb(b)}" for t, b in data["table_bytes"].items())
        + ")",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--journeys", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--small-journeys", type=int, default=1_000)
    parser.add_argument("--small-messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=11, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests per page")
    parser.add_argument(
        "--explain-ms",
        type=float,
        default=20.0,
        help="EXPLAIN the slowest query of a page above this (large scale)",
    )
    parser.add_argument(
        "--no-index-trial", action="store_true", help="do not try the suggested indexes at the end"
    )
    parser.add_argument(
        "--keep", action="store_true", help=f"keep the {BENCH_DB} database (large data) at the end"
    )
    args = parser.parse_args()

    total = time.perf_counter()
    admin = _admin_conninfo()
    _create_database(admin)
    try:
        _configure(admin)
        _register_agents()
        _create_users()
        from django.test import Client

        client = Client()
        from django.contrib.auth import get_user_model

        client.force_login(get_user_model().objects.get(username="bench-admin"))

        scales = {
            "small": (args.small_journeys, args.small_messages),
            "large": (args.journeys, args.messages),
        }
        data: dict[str, dict[str, Any]] = {}
        results: dict[str, dict[str, dict[str, Any]]] = {}
        for name, (journeys, messages) in scales.items():
            data[name] = _load(journeys, messages)
            _describe(name, data[name])
            results[name] = _measure(client, _pages(data[name]), args.repeat, args.warmup)

        small, large = results["small"], results["large"]
        factor = data["large"]["counts"]["arf_journey"] / max(
            1, data["small"]["counts"]["arf_journey"]
        )
        print()
        print(
            f"Median of {args.repeat} requests after {args.warmup} warm-up, per page "
            f"(data x{factor:,.0f} from small to large):"
        )
        header = (
            f"{'page':<22} {'queries':>7} {'rows':>9} {'ms small':>9} {'ms large':>9} "
            f"{'ratio':>6} {'db ms small':>12} {'db ms large':>12} {'slowest q':>10}"
        )
        print(header)
        print("-" * len(header))
        for label in small:
            s, g = small[label], large[label]
            queries = (
                str(g["queries"])
                if s["queries"] == g["queries"]
                else f"{s['queries']}/{g['queries']}"
            )
            rows = f"{s['rows']}/{g['rows']}"
            print(
                f"{label:<22} {queries:>7} {rows:>9} {s['ms']:>9.1f} {g['ms']:>9.1f} "
                f"{g['ms'] / s['ms']:>6.2f} {s['db_ms']:>12.1f} {g['db_ms']:>12.1f}"
                f" {1000 * g['slowest'][0]:>10.1f}"
            )
        print(
            "queries: per request, incl. session and user ('small/large' when they differ);"
            " rows: table rows + transcript\nmessages rendered, small/large; db ms: SQL time of"
            " one captured request (slowest q: its slowest query, large); page 50 is page "
            f"{results['small']['list: page 50']['url'].rsplit('=', 1)[1]} (the last) at the"
            " small scale."
        )

        # The funnel pages query by query (the funnel's own two: its counts and the
        # journeys' current steps; then the agent's usage, usage.py).
        for label in ("funnel: all time", "funnel: 30 days"):
            for name in ("small", "large"):
                print(
                    f"{label}, {name}: "
                    + "; ".join(
                        f"{ms:.1f} ms {sql[:60]}" for ms, sql in results[name][label]["each"][2:]
                    )
                )
        slow = [
            (label, r) for label, r in large.items() if r["slowest"][0] * 1000 > args.explain_ms
        ]
        print()
        if not slow:
            print(f"No query above {args.explain_ms:g} ms at the large scale.")
        for label, r in slow:
            seconds, sql, params, sent = r["slowest"]
            plan = _explain(sql, params)
            print(f"== {label}: slowest query {1000 * seconds:.1f} ms ==")
            print(sent)
            print("\n".join("   " + line for line in plan))
            scans = _full_scans(plan)
            if scans:
                print("   -> full scan of " + ", ".join(scans) + ": an index would bound it")
            print()
        if not args.no_index_trial:
            before, after, sizes = _try_indexes(
                client, _pages(data["large"]), args.repeat, args.warmup
            )
            print("Suggested indexes, tried on the scratch database (large scale):")
            for name, definition, labels in SUGGESTED_INDEXES:
                print(
                    f"  CREATE INDEX {name} ON {definition};  -- {_mb(sizes[name])}, "
                    f"for {', '.join(labels)}"
                )
            header = (
                f"{'page':<22} {'ms before':>10} {'ms after':>9} "
                f"{'slowest q before':>17} {'slowest q after':>16}"
            )
            print(header)
            print("-" * len(header))
            for label, r in after.items():
                b = before[label]
                print(
                    f"{label:<22} {b['ms']:>10.1f} {r['ms']:>9.1f} "
                    f"{1000 * b['slowest'][0]:>14.1f} ms {1000 * r['slowest'][0]:>13.1f} ms"
                )
            print()
        print(f"Total run {time.perf_counter() - total:.0f} s.")
    finally:
        if args.keep:
            print(f"Kept database {BENCH_DB}.")
        else:
            _drop_database(admin)


if __name__ == "__main__":
    main()
