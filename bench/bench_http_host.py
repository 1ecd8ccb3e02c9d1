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

Run: ``python bench/bench_http_host.py [--concurrency 100,1000] [--seconds 15]
[--latency 0.2] [--db-threads 32]`` (PostgreSQL from ``DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/postgres``; a scratch database ``bench_http_host``
is created and dropped). Target: >= 80% of ideal throughput.
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
BENCH_DB = "bench_http_host"
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
    ]
    sys.modules["bench_http_host_urls"] = urls


async def floor_view(request: Any) -> Any:
    """The floor: an empty async JSON view behind the same middleware (no database)."""
    from django.http import JsonResponse

    return JsonResponse({"ok": True})


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
        ToolSchemaBuilder("save_name").description("Save the name")
        .param("name", "string", "The name", required=True).build()
    ],
    Step.COLLECT_EMAIL: [
        ToolSchemaBuilder("save_email").description("Save the email")
        .param("email", "string", "The email", required=True).build()
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
    import uvicorn
    from django.core.asgi import get_asgi_application

    from agent_runtime_framework.django.registry import register_runtime

    for key, agent in build_agents(args.latency).items():
        register_runtime(agent, key=key)
    uvicorn.run(
        get_asgi_application(), host="127.0.0.1", port=args.port, log_level="warning",
        lifespan="off", backlog=4096, timeout_keep_alive=120,
    )


# -- the driver -------------------------------------------------------------------------------


def _admin_dsn(database_url: str) -> str:
    from urllib.parse import urlparse

    parsed = urlparse(database_url)
    return parsed._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)


def create_database(database_url: str) -> str:
    """A fresh scratch database; returns its URL."""
    from urllib.parse import urlparse

    import psycopg

    with psycopg.connect(_admin_dsn(database_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
        max_connections = conn.execute("SHOW max_connections").fetchone()[0]  # type: ignore[index]
    print(f"PostgreSQL max_connections = {max_connections}")
    return urlparse(database_url)._replace(path=f"/{BENCH_DB}").geturl()


def drop_database(database_url: str) -> None:
    import psycopg

    with psycopg.connect(_admin_dsn(database_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def prepare(database_url: str) -> str:
    """Migrate, create the user, return a logged-in session key (runs in a subprocess)."""
    out = subprocess.run(
        [sys.executable, __file__, "--prepare", "--database-url", database_url],
        capture_output=True, text=True, check=True,
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
    port: int, session_key: str, journey: str, concurrency: int, seconds: float,
    latency: float, server_pid: int,
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
        status, body = await client.request("POST", "/api/conversations", {"agent": journey})
        if status != 201:
            raise RuntimeError(f"POST /api/conversations: {status} {body}")
        return str(body["conversation_id"])

    conversations = []
    for start in range(0, concurrency, 100):  # open the connections in waves
        conversations += await asyncio.gather(
            *(new_conversation(c) for c in clients[start:start + 100])
        )
    cpu0, rss_idle = _proc_stat(server_pid)
    peak = rss_idle
    client_cpu0 = time.process_time()

    async def worker(index: int) -> None:
        nonlocal turns
        client, cid, line = clients[index], conversations[index], 0
        while time.monotonic() < stop_at:
            if journey == "onboarding" and line == len(lines):
                cid, line = await new_conversation(client), 0
            started = time.monotonic()
            status, _ = await client.request(
                "POST", f"/api/conversations/{cid}/messages", {"message": lines[line % 3]}
            )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", default="50,200,1000")
    parser.add_argument("--journeys", default="chat,onboarding")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--db-threads", type=int, default=32)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or PG_DEFAULT)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--switch-interval", type=float, default=0.0,
        help="sys.setswitchinterval() of the server (seconds; 0: Python's 0.005)",
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

    url = create_database(args.database_url)
    server = None
    try:
        session_key = prepare(url)
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--port", str(port), "--database-url", url,
             "--latency", str(args.latency), "--db-threads", str(args.db_threads),
             "--switch-interval", str(args.switch_interval)],
        )
        base = f"http://127.0.0.1:{port}"
        _wait_for(base)
        print(
            f"one uvicorn process, {os.cpu_count()} CPUs, model latency "
            f"{args.latency * 1000:.0f} ms/call, DB_THREADS={args.db_threads}, "
            f"{args.seconds:.0f} s per row\n"
        )
        floor = asyncio.run(drive_floor(port, 100, min(args.seconds, 5.0), server.pid))
        print(
            f"floor: empty async Django view, same middleware: {floor['per_s']:.0f} req/s, "
            f"{floor['cpu_ms']:.2f} ms server CPU per request\n"
        )
        header = (
            f"{'journey':<11}{'conc':>6}{'turns/s':>10}{'ideal':>9}{'ratio':>8}"
            f"{'p50 add':>10}{'p99 add':>10}{'mem/conv':>11}{'srv cpu':>9}{'cpu/turn':>10}"
            f"{'cli cpu':>9}  errors"
        )
        print(header)
        print("-" * len(header))
        for journey in args.journeys.split(","):
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                row = asyncio.run(
                    drive(port, session_key, journey, concurrency, args.seconds, args.latency,
                          server.pid)
                )
                print(
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
            "(one process, one GIL)."
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        drop_database(args.database_url)


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
