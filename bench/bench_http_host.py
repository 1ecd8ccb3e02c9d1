"""Throughput and latency of the own HTTP host: many concurrent conversations over real HTTP.

One uvicorn process serves the API (PostgreSQL, sessions, CSRF, the full turn path); a
separate load process drives N concurrent conversations with httpx. The model is a fake
that sleeps ``--latency`` seconds per call (200 ms by default), so the ideal throughput
is ``concurrency / (LLM calls per turn x latency)``: with the framework adding nothing,
every conversation would be waiting on the model all the time.

Two journeys, side by side:

- chat: one LLM call per turn (a text reply), no tools;
- onboarding: two LLM calls per turn (a tool that changes the state, then the reply),
  so each turn also commits state + messages mid-turn and records four events.

Reported per (journey, concurrency): turns/s against the ideal, the latency the framework
adds on top of the model (p50 / p99 of turn latency minus the model's sleeps), the
server's peak memory per active conversation (peak RSS over the idle RSS, divided by the
number of concurrent conversations), the server's CPU per turn, and the load generator's
CPU use. A floor row first: an empty async Django view behind the same middleware, i.e.
what one request costs before the framework does anything. One process runs Python on one
core at a time, so throughput is capped near 1 / (server CPU per turn); the ideal is only
reachable where concurrency / latency stays under that cap.

Per turn, the SQL statements and the thread hops (``run_db`` calls, and every
``run_in_executor`` including Django's sync middleware) are counted on the server over a
few sequential turns of each journey, side by side with a floor: a bare async Django view
doing the same database work by hand (caller, claim with the owner check and the load in
one hop; the user's message; per state-changing tool call state + messages + events in one
transaction; the reply, its event and the release). ``--count-only`` prints just these.

The ASGI handler: ``--handler inline`` serves through
``agent_runtime_framework.django.asgi.get_asgi_application()`` (the known middleware hooks on
the event loop), ``--handler django`` through Django's own ``ASGIHandler`` (a thread hop per
middleware hook); the default ``django,inline`` starts one server of each on the same
database, runs every measurement against one and then the other (so a change of load on
the machine falls on both alike), and ends with a side-by-side summary: thread hops and
server CPU per turn, and per request of the empty floor view (behind the same handler).

Run: ``python bench/bench_http_host.py [--concurrency 100,1000] [--seconds 15]
[--latency 0.2] [--db-threads 32] [--handler django,inline]`` (PostgreSQL from
``DATABASE_URL``, default ``postgres://postgres@127.0.0.1:5432/postgres``; a scratch
database ``bench_http_host_<pid>`` is created and dropped). Target: >= 80% of ideal throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agent_runtime_framework import (  # noqa: E402  (after the sys.path insert)
    AgentContext,
    BaseJourneyState,
    BaseJourneyTools,
    JourneyAgent,
    ToolSchema,
    ToolSchemaBuilder,
)

PG_DEFAULT = "postgres://postgres@127.0.0.1:5432/postgres"
BENCH_DB = f"bench_http_host_{os.getpid()}"  # one per run: runs may overlap
USERNAME = "bench"

# -- the server side ---------------------------------------------------------------------------


def configure(database_url: str, db_threads: int) -> None:
    """Django settings of the benchmark project: only what the API needs."""
    import django
    from django.conf import settings

    from agent_runtime_framework.django.dburl import database_from_url

    database = database_from_url(database_url)
    database["CONN_MAX_AGE"] = None  # the pool threads keep their connections
    settings.configure(
        SECRET_KEY="bench-only",
        DEBUG=False,
        USE_TZ=True,
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "agent_runtime_framework.django",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        ROOT_URLCONF="bench_http_host_urls",
        DATABASES={"default": database},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        AGENT_RUNTIME_FRAMEWORK={
            "DB_THREADS": db_threads,
            "BUSY_WAIT_SECONDS": 0.0,
            "MAX_HISTORY_MESSAGES": 40,
        },
        LOGGING_CONFIG=None,
    )
    django.setup()
    # The URLconf: the API under /api/.
    import types

    from django.urls import include, path

    urls = types.ModuleType("bench_http_host_urls")
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("api/", include("agent_runtime_framework.django.urls")),
        path("floor", floor_view),
        path("floor/turn/<uuid:cid>", floor_turn_view),
        path("floor/new", floor_new_view),
        path("counters", counters_view),
    ]
    sys.modules["bench_http_host_urls"] = urls


async def floor_view(request: Any) -> Any:
    """The floor: an empty async JSON view behind the same middleware (no database)."""
    from django.http import JsonResponse

    return JsonResponse({"ok": True})


async def counters_view(request: Any) -> Any:
    """The server's statement / hop counters (``?reset=1`` zeroes them after reading)."""
    from django.http import JsonResponse
    from turn_counters import counters

    data = counters.snapshot()
    if request.GET.get("reset"):
        counters.reset()
    return JsonResponse(data)


FLOOR_LATENCY = [0.0]


def _floor_sql() -> Any:
    from django.db import connection

    return connection


async def floor_new_view(request: Any) -> Any:
    """Create a conversation and its journey row for the floor (not counted)."""
    from django.http import JsonResponse

    from agent_runtime_framework.django.store.db import run_db

    cid = uuid.uuid4()

    def create() -> None:
        from django.utils import timezone

        from agent_runtime_framework.django.models import Conversation, Journey

        user = request.user
        Conversation.objects.create(id=cid, agent_key="onboarding", owner_id=user.pk)
        Journey.objects.create(
            conversation_id=cid,
            agent_key="onboarding",
            owner_id=user.pk,
            state={},
            step="welcome",
            updated_at=timezone.now(),
        )

    await run_db(create)
    return JsonResponse({"conversation_id": str(cid)}, status=201)


async def floor_turn_view(request: Any, cid: uuid.UUID) -> Any:
    """The floor of an onboarding turn: the same database work as the framework's, by hand.

    One hop before the model (caller, claim with the owner check, state + history), the
    user's message durable before the model call, one transaction per state-changing tool
    call (messages, state, three events), the final one (reply, its event, release).
    """
    import datetime as dt

    from django.http import JsonResponse
    from django.utils import timezone

    from agent_runtime_framework.django.store.db import run_db

    message = json.loads(request.body)["message"]
    token = uuid.uuid4().hex

    def ts(value: Any) -> Any:
        return _floor_sql().ops.adapt_datetimefield_value(value)

    def cid_db() -> Any:
        return cid.hex if _floor_sql().vendor == "sqlite" else cid

    def open_turn() -> Any:
        from django.http import Http404

        user = request.user
        if not user.is_authenticated:
            raise Http404
        now = timezone.now()
        with _floor_sql().cursor() as cur:
            cur.execute(
                "UPDATE arf_conversation SET lease_token = %s, lease_expires_at = %s "
                "WHERE id = %s AND owner_id = %s AND (lease_token = '' OR lease_expires_at "
                "IS NULL OR lease_expires_at < %s) RETURNING agent_key",
                [token, ts(now + dt.timedelta(seconds=120)), cid_db(), user.pk, ts(now)],
            )
            if cur.fetchone() is None:
                raise Http404
            cur.execute(
                "SELECT state FROM arf_journey WHERE conversation_id = %s AND agent_key = %s",
                [cid_db(), "onboarding"],
            )
            state = cur.fetchone()[0]
            cur.execute(
                "SELECT role, content, tool_calls, tool_call_id, name FROM arf_message "
                "WHERE conversation_id = %s ORDER BY seq DESC LIMIT 40",
                [cid_db()],
            )
            history = cur.fetchall()
        return json.loads(state) if isinstance(state, str) else state, history

    def commit(
        messages: list[dict[str, Any]],
        state: Any,
        events: list[tuple[str, Any]],
        new_turn: bool,
        release: bool,
    ) -> None:
        from django.db import transaction

        now = timezone.now()
        conn = _floor_sql()
        with transaction.atomic(), conn.cursor() as cur:
            lease = (
                "lease_token = '', lease_expires_at = NULL"
                if release
                else ("lease_expires_at = %s")
            )
            extra = [] if release else [ts(now + dt.timedelta(seconds=120))]
            cur.execute(
                f"UPDATE arf_conversation SET next_seq = next_seq + %s, updated_at = %s, {lease} "
                "WHERE id = %s AND lease_token = %s RETURNING next_seq",
                [len(messages), ts(now), *extra, cid_db(), token],
            )
            start = cur.fetchone()[0] - len(messages)
            params: list[Any] = []
            for i, m in enumerate(messages):
                params += [
                    cid_db(),
                    start + i,
                    m["role"],
                    m.get("content"),
                    json.dumps(m["tool_calls"]) if m.get("tool_calls") else None,
                    m.get("tool_call_id", ""),
                    "",
                    "{}",
                    ts(now),
                ]
            cur.execute(
                "INSERT INTO arf_message (conversation_id, seq, role, content, tool_calls, "
                "tool_call_id, name, metadata, created_at) VALUES "
                + ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(messages)),
                params,
            )
            sets, values = ["updated_at = %s"], [ts(now)]
            if state is not None:
                sets += ["state = %s", "step = %s"]
                values += [json.dumps(state), state["step"]]
            if new_turn:
                sets.append("turns = turns + 1")
            cur.execute(
                f"UPDATE arf_journey SET {', '.join(sets)} WHERE conversation_id = %s "
                "AND agent_key = %s",
                [*values, cid_db(), "onboarding"],
            )
            if events:
                params = []
                run = token if conn.vendor == "sqlite" else uuid.UUID(token)
                for i, (kind, payload) in enumerate(events):
                    params += [
                        cid_db(),
                        "onboarding",
                        run,
                        seq[0] + i,
                        kind,
                        json.dumps(payload),
                        ts(now),
                    ]
                seq[0] += len(events)
                cur.execute(
                    "INSERT INTO arf_event (conversation_id, agent_key, run_id, seq, type, "
                    "payload, created_at) VALUES "
                    + ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(events))
                    + " RETURNING id",
                    params,
                )
                cur.fetchall()

    seq = [0]
    state, _history = await run_db(open_turn)
    await run_db(commit, [{"role": "user", "content": message}], None, [], True, False)
    await asyncio.sleep(FLOOR_LATENCY[0])  # the model asks for the tool
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "save_name", "arguments": json.dumps({"name": message})},
    }
    new_state = {**(state or {}), "step": "collect_email", "name": message}
    await run_db(
        commit,
        [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "content": "Ask for the email.", "tool_call_id": "c1"},
        ],
        new_state,
        [
            ("tool.call", {"name": "save_name", "arguments": {"name": message}}),
            ("tool.result", {"name": "save_name", "status": "ok", "result": "Ask for the email."}),
            ("journey.step_changed", {"from": "collect_name", "to": "collect_email"}),
        ],
        False,
        False,
    )
    await asyncio.sleep(FLOOR_LATENCY[0])  # the model replies
    await run_db(
        commit,
        [{"role": "assistant", "content": "Thanks, noted."}],
        None,
        [("assistant.message", {"content": "Thanks, noted."})],
        False,
        True,
    )
    return JsonResponse({"reply": "Thanks, noted."})


class SleepyModel:
    """A model that takes ``latency`` seconds per call and answers like a cooperative LLM:
    it calls the one tool the step offers with the user's text, then replies in text."""

    model = "sleepy-fake"

    def __init__(self, latency: float) -> None:
        self.latency = latency

    async def generate(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Any:
        from agent_runtime_framework.llm.base import LLMResponse

        await asyncio.sleep(self.latency)
        usage = {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
        last = messages[-1]
        if last.get("role") == "tool" or not tools:
            return LLMResponse({"role": "assistant", "content": "Thanks, noted."}, usage)
        function = tools[0]["function"]
        params = list(function.get("parameters", {}).get("properties", {}))
        arguments = {params[0]: str(last.get("content") or "")} if params else {}
        call = {
            "id": f"call_{uuid.uuid4().hex[:8]}",
            "type": "function",
            "function": {"name": function["name"], "arguments": json.dumps(arguments)},
        }
        return LLMResponse({"role": "assistant", "content": None, "tool_calls": [call]}, usage)

    async def stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:  # pragma: no cover
        raise NotImplementedError


class ChatStep(str, Enum):
    CHAT = "chat"


@dataclass
class ChatState(BaseJourneyState[ChatStep]):
    step: ChatStep = ChatStep.CHAT


class ChatAgent(JourneyAgent[ChatState, Any, ChatStep]):
    """One step, no tools: every turn is one LLM call and a text reply."""

    @property
    def key(self) -> str:
        return "chat"

    def get_initial_state(self) -> ChatState:
        return ChatState()

    def get_system_prompt(self, state: ChatState) -> str:
        return "Chat with the user."

    def get_tool_schemas(self, state: ChatState) -> list[ToolSchema]:
        return []

    def create_tools(self, state: ChatState, ctx: AgentContext) -> Any:
        return BaseJourneyTools(state=state)


class Step(str, Enum):
    WELCOME = "welcome"
    COLLECT_NAME = "collect_name"
    COLLECT_EMAIL = "collect_email"
    COMPLETE = "complete"


@dataclass
class State(BaseJourneyState[Step]):
    step: Step = Step.WELCOME
    name: str = ""
    email: str = ""

    def is_complete(self) -> bool:
        return self.step == Step.COMPLETE


class Tools(BaseJourneyTools[State]):
    async def start(self) -> str:
        self.state.step = Step.COLLECT_NAME
        return "Ask for the name."

    async def save_name(self, name: str) -> str:
        self.state.name, self.state.step = name, Step.COLLECT_EMAIL
        return "Ask for the email."

    async def save_email(self, email: str) -> str:
        self.state.email, self.state.step = email, Step.COMPLETE
        return "Done."


TOOLS_BY_STEP = {
    Step.WELCOME: [ToolSchemaBuilder("start").description("Begin").build()],
    Step.COLLECT_NAME: [
        ToolSchemaBuilder("save_name")
        .description("Save the name")
        .param("name", "string", "The name", required=True)
        .build()
    ],
    Step.COLLECT_EMAIL: [
        ToolSchemaBuilder("save_email")
        .description("Save the email")
        .param("email", "string", "The email", required=True)
        .build()
    ],
    Step.COMPLETE: [],
}


class OnboardingAgent(JourneyAgent[State, Tools, Step]):
    """The seed's onboarding: each turn runs a state-changing tool, then replies."""

    @property
    def key(self) -> str:
        return "onboarding"

    def get_initial_state(self) -> State:
        return State()

    def get_system_prompt(self, state: State) -> str:
        return f"Onboarding, step {state.step.value}."

    def get_tool_schemas(self, state: State) -> list[ToolSchema]:
        return TOOLS_BY_STEP[state.step]

    def create_tools(self, state: State, ctx: AgentContext) -> Tools:
        return Tools(state=state)


def build_agents(latency: float) -> dict[str, Any]:
    """The two benchmark journeys, sharing one sleepy model."""
    model = SleepyModel(latency)
    return {"chat": ChatAgent(llm_client=model), "onboarding": OnboardingAgent(llm_client=model)}


def serve(args: argparse.Namespace) -> None:
    """The server process: register the journeys, run uvicorn."""
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    configure(args.database_url, args.db_threads)
    FLOOR_LATENCY[0] = args.latency
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from turn_counters import install

    install()
    import uvicorn

    from agent_runtime_framework.django.host.registry import register_runtime

    for key, agent in build_agents(args.latency).items():
        register_runtime(agent, key=key)
    if args.handler == "inline":
        from agent_runtime_framework.django.asgi import get_asgi_application as inline_app

        application: Any = inline_app()
    else:
        from django.core.asgi import get_asgi_application

        application = get_asgi_application()
    uvicorn.run(
        application,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        lifespan="off",
        backlog=4096,
        timeout_keep_alive=120,
    )


# -- the driver -------------------------------------------------------------------------------


def _admin_dsn(database_url: str) -> str:
    from urllib.parse import urlparse

    parsed = urlparse(database_url)
    return parsed._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)


def create_database(database_url: str) -> str:
    """A fresh scratch database; returns its URL."""
    from urllib.parse import urlparse

    if database_url.startswith("sqlite"):
        import tempfile

        return f"sqlite:///{tempfile.mkdtemp(prefix='bench_http_')}/bench.sqlite3"

    import psycopg

    with psycopg.connect(_admin_dsn(database_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
        max_connections = conn.execute("SHOW max_connections").fetchone()[0]  # type: ignore[index]
    print(f"PostgreSQL max_connections = {max_connections}")
    return urlparse(database_url)._replace(path=f"/{BENCH_DB}").geturl()


def drop_database(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        return
    import psycopg

    with psycopg.connect(_admin_dsn(database_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def prepare(database_url: str) -> str:
    """Migrate, create the user, return a logged-in session key (runs in a subprocess)."""
    out = subprocess.run(
        [sys.executable, __file__, "--prepare", "--database-url", database_url],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def _prepare_in_process(database_url: str) -> None:
    configure(database_url, 2)
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user(USERNAME)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    print(session.session_key)


def _proc_stat(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class RawHTTP:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams, one connection per worker.

    httpx tops out near 300 requests/s here (its pool, not the server, is then the
    bottleneck), so the load generator speaks HTTP itself: it is ~10x cheaper per request.
    """

    def __init__(self, port: int, cookies: dict[str, str], headers: dict[str, str]) -> None:
        self.port = port
        self.cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        body = b"" if payload is None else json.dumps(payload).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {self.cookie}\r\n"
            f"{self.headers}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        raw_head = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        if "content-length" in fields:
            data = await self.reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding") == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            data = b"".join(p[:-2] for p in parts)
        else:
            data = b""
        return status, json.loads(data) if data else None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def csrf_token(port: int, session_key: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/agents HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: sessionid={session_key}"
        "\r\nConnection: close\r\n\r\n".encode()
    )
    raw = (await reader.read()).decode("latin-1")
    writer.close()
    for line in raw.split("\r\n"):
        if line.lower().startswith("set-cookie: csrftoken="):
            return line.split("=", 1)[1].split(";", 1)[0]
    raise RuntimeError("no csrftoken cookie from GET /api/agents")


async def drive_floor(
    port: int, concurrency: int, seconds: float, server_pid: int
) -> dict[str, Any]:
    """Requests/s and server CPU per request of the empty view (same connections, no model)."""
    clients = [RawHTTP(port, {}, {}) for _ in range(concurrency)]
    done = 0
    cpu0, _ = _proc_stat(server_pid)
    started = time.monotonic()
    stop_at = started + seconds

    async def worker(client: RawHTTP) -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            status, _ = await client.request("GET", "/floor")
            done += status == 200

    await asyncio.gather(*(worker(c) for c in clients))
    wall = time.monotonic() - started
    cpu1, _ = _proc_stat(server_pid)
    for client in clients:
        client.close()
    return {"per_s": done / wall, "cpu_ms": (cpu1 - cpu0) / max(done, 1) * 1000}


async def drive(
    port: int,
    session_key: str,
    journey: str,
    concurrency: int,
    seconds: float,
    latency: float,
    server_pid: int,
) -> dict[str, Any]:
    """``concurrency`` workers, each playing conversations of ``journey`` for ``seconds``."""
    calls_per_turn = 1 if journey == "chat" else 2
    lines = ["hello", "Ada Lovelace", "ada@example.com"]
    token = await csrf_token(port, session_key)
    cookies = {"sessionid": session_key, "csrftoken": token}
    clients = [RawHTTP(port, cookies, {"X-CSRFToken": token}) for _ in range(concurrency)]
    latencies: list[float] = []
    errors: dict[int, int] = {}
    turns = 0
    stop_at = 0.0

    async def new_conversation(client: RawHTTP) -> str:
        if journey == "floor":  # the bare view, doing the onboarding's database work
            status, body = await client.request("POST", "/floor/new", {})
        else:
            status, body = await client.request("POST", "/api/conversations", {"agent": journey})
        if status != 201:
            raise RuntimeError(f"POST /api/conversations: {status} {body}")
        return str(body["conversation_id"])

    conversations = []
    for start in range(0, concurrency, 100):  # open the connections in waves
        conversations += await asyncio.gather(
            *(new_conversation(c) for c in clients[start : start + 100])
        )
    cpu0, rss_idle = _proc_stat(server_pid)
    peak = rss_idle
    client_cpu0 = time.process_time()

    async def worker(index: int) -> None:
        nonlocal turns
        client, cid, line = clients[index], conversations[index], 0
        while time.monotonic() < stop_at:
            if journey in ("onboarding", "floor") and line == len(lines):
                cid, line = await new_conversation(client), 0
            started = time.monotonic()
            path = (
                f"/floor/turn/{cid}" if journey == "floor" else f"/api/conversations/{cid}/messages"
            )
            status, _ = await client.request("POST", path, {"message": lines[line % 3]})
            elapsed = time.monotonic() - started
            line += 1
            if status == 200:
                turns += 1
                latencies.append(elapsed)
            else:
                errors[status] = errors.get(status, 0) + 1

    async def sample_memory() -> None:
        nonlocal peak
        while time.monotonic() < stop_at:
            peak = max(peak, _proc_stat(server_pid)[1])
            await asyncio.sleep(0.1)

    started = time.monotonic()
    stop_at = started + seconds
    await asyncio.gather(sample_memory(), *(worker(i) for i in range(concurrency)))
    wall = time.monotonic() - started
    cpu1, _ = _proc_stat(server_pid)
    client_cpu = time.process_time() - client_cpu0
    for client in clients:
        client.close()

    model_time = calls_per_turn * latency
    added = [max(0.0, x - model_time) for x in latencies]
    ideal = concurrency / model_time
    achieved = turns / wall
    return {
        "journey": journey,
        "concurrency": concurrency,
        "turns": turns,
        "turns_per_s": achieved,
        "ideal_per_s": ideal,
        "ratio": achieved / ideal,
        "p50_added_ms": _percentile(added, 0.5) * 1000,
        "p99_added_ms": _percentile(added, 0.99) * 1000,
        "mem_per_conv_kib": max(0, peak - rss_idle) / concurrency / 1024,
        "server_cpu": (cpu1 - cpu0) / wall,
        "cpu_ms_per_turn": (cpu1 - cpu0) / max(turns, 1) * 1000,
        "client_cpu": client_cpu / wall,
        "errors": errors,
    }


async def count_per_turn(port: int, session_key: str, turns: int = 9) -> list[dict[str, Any]]:
    """Statements and hops per turn on the server, sequential turns (one in flight)."""
    token = await csrf_token(port, session_key)
    cookies = {"sessionid": session_key, "csrftoken": token}
    client = RawHTTP(port, cookies, {"X-CSRFToken": token})
    lines = ["hello", "Ada Lovelace", "ada@example.com"]
    rows = []

    async def measured() -> dict[str, float]:
        """The counters since the last reset, without the /counters requests' own share
        (the hops of a /counters request fall on both sides of its read and reset)."""
        _, counted = await client.request("GET", "/counters?reset=1")
        return {k: v - overhead.get(k, 0) for k, v in counted.items()}

    overhead: dict[str, float] = {}
    try:
        await client.request("GET", "/counters?reset=1")
        overhead = await measured()  # one /counters request's own statements and hops
        for name in ("chat", "onboarding", "floor"):
            cids = []
            for _ in range(max(1, turns // 3)):
                if name == "floor":
                    status, body = await client.request("POST", "/floor/new", {})
                else:
                    status, body = await client.request(
                        "POST", "/api/conversations", {"agent": name}
                    )
                assert status == 201, (status, body)
                cids.append(body["conversation_id"])
            await client.request("GET", "/counters?reset=1")
            played = 0
            for cid in cids:
                for line in lines:
                    # The floor plays the onboarding's middle turn (one state-changing tool
                    # call) every time; the journeys play their three turns.
                    path = (
                        f"/floor/turn/{cid}"
                        if name == "floor"
                        else f"/api/conversations/{cid}/messages"
                    )
                    status, body = await client.request("POST", path, {"message": line})
                    assert status == 200, (name, status, body)
                    played += 1
            counted = await measured()
            rows.append(
                {"journey": name, "turns": played, **{k: v / played for k, v in counted.items()}}
            )
        # the empty view: what the handler and the middleware cost by themselves
        await client.request("GET", "/counters?reset=1")
        for _ in range(turns):
            status, _ = await client.request("GET", "/floor")
            assert status == 200, status
        counted = await measured()
        rows.append(
            {"journey": "empty", "turns": turns, **{k: v / turns for k, v in counted.items()}}
        )
    finally:
        client.close()
    return rows


def print_counts(rows: list[dict[str, Any]], vendor: str) -> None:
    print(f"per turn on {vendor} (sequential turns; statements without BEGIN/COMMIT):")
    print(f"{'':<24}{'SQL statements':>16}{'run_db hops':>13}{'thread hops':>13}")
    labels = {
        "chat": "chat (1 LLM call)",
        "onboarding": "onboarding (2 calls)",
        "floor": "floor (onboarding)",
        "empty": "empty view (request)",
    }
    for row in rows:
        print(
            f"{labels[row['journey']]:<24}{row['statements']:>16.1f}{row['db_hops']:>13.1f}"
            f"{row['thread_hops']:>13.1f}"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", default="50,200,1000")
    parser.add_argument(
        "--journeys",
        default="chat,onboarding,floor",
        help="chat, onboarding, floor (a bare view doing the onboarding's database work)",
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--db-threads", type=int, default=32)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or PG_DEFAULT)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=0.0,
        help="sys.setswitchinterval() of the server (seconds; 0: Python's 0.005)",
    )
    parser.add_argument(
        "--count-only",
        action="store_true",
        help="only print SQL statements and thread hops per turn (framework and floor)",
    )
    parser.add_argument(
        "--handler",
        default="django,inline",
        help="the ASGI handler(s), one server each, measured in alternation: django "
        "(Django's ASGIHandler) and/or inline (agent_runtime_framework.django.asgi)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    if args.prepare:
        _prepare_in_process(args.database_url)
        return

    handlers = args.handler.split(",")
    for handler in handlers:
        if handler not in ("django", "inline"):
            parser.error(f"--handler: {handler!r} is not django or inline")
    print(
        f"one uvicorn process per handler, {os.cpu_count()} CPUs, model latency "
        f"{args.latency * 1000:.0f} ms/call, DB_THREADS={args.db_threads}, "
        f"{args.seconds:.0f} s per row"
    )
    summaries = run_handlers(args, handlers)
    if len(summaries) > 1:
        print_summary(summaries)


HANDLER_LABELS = {
    "django": "Django's ASGIHandler (sync middleware hooks in threads)",
    "inline": "agent_runtime_framework.django.asgi (known hooks on the loop)",
}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_handlers(args: argparse.Namespace, handlers: list[str]) -> list[dict[str, Any]]:
    """One server per handler on one scratch database, measured in alternation.

    Both servers are up for the whole run and each measurement (counts, floor, every
    journey and concurrency row) runs against one server and then the other, so a change of
    load on the machine falls on both alike; an idle server costs nothing.
    """
    summaries: list[dict[str, Any]] = [{"handler": h, "rows": [], "counts": {}} for h in handlers]
    url = create_database(args.database_url)
    servers: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        session_key = prepare(url)
        for handler in handlers:
            port = _free_port()
            server = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--serve",
                    "--port",
                    str(port),
                    "--database-url",
                    url,
                    "--latency",
                    str(args.latency),
                    "--db-threads",
                    str(args.db_threads),
                    "--switch-interval",
                    str(args.switch_interval),
                    "--handler",
                    handler,
                ],
            )
            servers.append((server, port))
            _wait_for(f"http://127.0.0.1:{port}")
        vendor = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
        for summary, (_server, port) in zip(summaries, servers, strict=True):
            print(f"\n== handler {summary['handler']}: {HANDLER_LABELS[summary['handler']]}")
            counts = asyncio.run(count_per_turn(port, session_key))
            summary["counts"] = {row["journey"]: row for row in counts}
            print_counts(counts, vendor)
        if args.count_only:
            return summaries
        for summary, (server, port) in zip(summaries, servers, strict=True):
            floor = asyncio.run(drive_floor(port, 100, min(args.seconds, 5.0), server.pid))
            summary["floor"] = floor
            print(
                f"floor ({summary['handler']}): empty async Django view, same middleware: "
                f"{floor['per_s']:.0f} req/s, {floor['cpu_ms']:.2f} ms server CPU per request"
            )
        header = (
            f"\n{'handler':<8}{'journey':<11}{'conc':>6}{'turns/s':>10}{'ideal':>9}{'ratio':>8}"
            f"{'p50 add':>10}{'p99 add':>10}{'mem/conv':>11}{'srv cpu':>9}{'cpu/turn':>10}"
            f"{'cli cpu':>9}  errors"
        )
        print(header)
        print("-" * len(header))
        for journey in args.journeys.split(","):
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                for summary, (server, port) in zip(summaries, servers, strict=True):
                    row = asyncio.run(
                        drive(
                            port,
                            session_key,
                            journey,
                            concurrency,
                            args.seconds,
                            args.latency,
                            server.pid,
                        )
                    )
                    summary["rows"].append(row)
                    print(
                        f"{summary['handler']:<8}"
                        f"{row['journey']:<11}{row['concurrency']:>6}{row['turns_per_s']:>10.1f}"
                        f"{row['ideal_per_s']:>9.0f}{row['ratio']:>8.0%}"
                        f"{row['p50_added_ms']:>8.1f}ms{row['p99_added_ms']:>8.1f}ms"
                        f"{row['mem_per_conv_kib']:>8.1f}KiB{row['server_cpu']:>9.0%}"
                        f"{row['cpu_ms_per_turn']:>8.2f}ms{row['client_cpu']:>9.0%}"
                        f"  {row['errors'] or ''}",
                        flush=True,
                    )
        print(
            "\nideal = concurrency / (LLM calls per turn x latency); 'add' = turn latency minus "
            "the model's sleeps;\nmem/conv = (peak - idle server RSS) / concurrency; cpu = "
            "share of one core (server: uvicorn process, client: this load generator);\n"
            "cpu/turn = server CPU per turn: throughput is capped near 1 core / cpu/turn "
            "(one process, one GIL).\n"
        )
        return summaries
    finally:
        for server, _ in servers:
            server.terminate()
        for server, _ in servers:
            server.wait(timeout=10)
        drop_database(args.database_url)


def print_summary(summaries: list[dict[str, Any]]) -> None:
    """The handlers side by side: hops and server CPU per turn, and their ratio."""
    by_name = {s["handler"]: s for s in summaries}
    base = by_name.get("django", summaries[0])
    other = by_name.get("inline", summaries[-1])
    names = f"{other['handler']} / {base['handler']}"
    print(f"== side by side (ratio = {names})\n")
    header = f"{'':<30}" + "".join(f"{s['handler']:>12}" for s in summaries) + f"{'ratio':>9}"
    print(header)
    print("-" * len(header))
    first = summaries[0]
    position = {id(s): i for i, s in enumerate(summaries)}

    def line(label: str, values: list[float], unit: str, digits: int) -> None:
        cells = "".join(f"{v:>{12 - len(unit)}.{digits}f}{unit}" for v in values)
        reference = values[position[id(base)]]
        ratio = values[position[id(other)]] / reference if reference else float("nan")
        print(f"{label:<30}{cells}{ratio:>9.2f}")

    labels = {
        "chat": "chat turn",
        "onboarding": "onboarding turn",
        "floor": "floor (onboarding) turn",
        "empty": "empty view request",
    }
    for journey, label in labels.items():
        if all(journey in s["counts"] for s in summaries):
            line(f"hops/{label}", [s["counts"][journey]["thread_hops"] for s in summaries], "", 1)
    if all("floor" in s for s in summaries):
        line("cpu/empty view request", [s["floor"]["cpu_ms"] for s in summaries], "ms", 2)
    for index, row in enumerate(first["rows"]):
        label = f"cpu/{row['journey']} turn @{row['concurrency']}"
        line(label, [s["rows"][index]["cpu_ms_per_turn"] for s in summaries], "ms", 2)
    for index, row in enumerate(first["rows"]):
        label = f"turns/s {row['journey']} @{row['concurrency']}"
        line(label, [s["rows"][index]["turns_per_s"] for s in summaries], "", 1)
    print()


def _wait_for(base: str) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/agents", timeout=2).status_code in (200, 403):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not start")


if __name__ == "__main__":
    main()
