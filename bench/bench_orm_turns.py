"""Per-turn cost of the onboarding journey with ORM persistence, against a raw-SQL floor.

For SQLite and PostgreSQL (side by side, each backend in its own subprocess so each gets
a clean Django setup), this measures:

- framework: ``OnboardingAgent.run`` with ``DjangoMemoryManager`` (claim lease, load
  state + history window, one atomic commit per state-changing tool call, the final
  commit, release), driven by an instant fake model, so only framework + database costs
  are timed;
- floor: the same guarantees hand-written with the DB-API driver (sqlite3 / psycopg) on
  the same tables: a conditional UPDATE claiming the conversation (an INSERT of it,
  already claimed, on the first turn); SELECT state and the last N messages; the user's
  message in its own transaction before the model call (durable before it); per
  state-changing tool call one transaction (UPDATE ... RETURNING next_seq with the lease
  check, one multi-row INSERT of the messages, UPDATE/INSERT journey); the final
  transaction with the reply and the release. No ORM, no executor;
- history: framework per-turn cost in conversations with 10,000 stored messages vs 10
  (``MAX_HISTORY_MESSAGES`` bounds what a turn loads);
- size: database bytes per 1,000 turns (tables + indexes).

Run: ``python bench/bench_orm_turns.py [--conversations 100] [--rounds 3] [--no-fsync]``
(PostgreSQL from ``DATABASE_URL``, default ``postgres://postgres@127.0.0.1:5432/postgres``;
a scratch database ``bench_orm_turns`` is created and dropped).
Targets: framework / floor <= 1.5; history 10,000 / 10 <= 1.2.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PG_DEFAULT = "postgres://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB = "bench_orm_turns"
HISTORY_WINDOW = 40
USER_LINES = ("hello", "Ada Lovelace", "ada@example.com")


# -- setup -----------------------------------------------------------------------------------


#: Set by ``--no-fsync``: both paths skip the disk flush at commit (isolates CPU and
#: round-trip overhead from disk jitter; durability is the same code path otherwise).
NO_FSYNC = os.environ.get("BENCH_NO_FSYNC") == "1"


def _configure(backend: str) -> dict[str, Any]:
    import django
    from django.conf import settings

    from agent_runtime_framework.django.dburl import database_from_url

    if backend == "sqlite":
        path = os.path.join(tempfile.mkdtemp(prefix="bench_orm_"), "bench.sqlite3")
        # Persistent connections for the database threads (as in production).
        database = {**database_from_url(f"sqlite:///{path}"), "CONN_MAX_AGE": None}
        if NO_FSYNC:
            database["OPTIONS"] = {**database["OPTIONS"], "init_command": "PRAGMA synchronous=OFF"}
    else:
        import psycopg

        base = os.environ.get("DATABASE_URL") or PG_DEFAULT
        admin = database_from_url(base)
        with psycopg.connect(
            dbname=admin["NAME"],
            user=admin["USER"],
            password=admin["PASSWORD"],
            host=admin["HOST"],
            port=admin["PORT"] or 5432,
            autocommit=True,
        ) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_BENCH_DB}")
            conn.execute(f"CREATE DATABASE {PG_BENCH_DB}")
        database = {**admin, "NAME": PG_BENCH_DB, "CONN_MAX_AGE": None}
        if NO_FSYNC:
            database["OPTIONS"] = {**database["OPTIONS"], "options": "-c synchronous_commit=off"}
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        SECRET_KEY="bench",
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "agent_runtime_framework.django",
        ],
        DATABASES={"default": database},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        AGENT_RUNTIME_FRAMEWORK={"MAX_HISTORY_MESSAGES": HISTORY_WINDOW, "DB_THREADS": 4},
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return database


class InstantLLM:
    """A zero-latency model: calls the step's one tool with the user's text, then replies."""

    async def generate(self, messages: Any, tools: Any = None, **kwargs: Any) -> Any:
        from agent_runtime_framework.llm.base import LLMResponse

        last = messages[-1]
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if last.get("role") == "user" and tools:
            tool = tools[0]["function"]
            params = tool.get("parameters", {}).get("properties", {})
            args = json.dumps({name: last["content"] for name in params})
            call = {
                "id": f"call_{uuid.uuid4().hex[:8]}",
                "type": "function",
                "function": {"name": tool["name"], "arguments": args},
            }
            return LLMResponse({"role": "assistant", "content": None, "tool_calls": [call]}, usage)
        return LLMResponse({"role": "assistant", "content": "Thanks, noted."}, usage)


# -- framework ---------------------------------------------------------------------------------


def _agent() -> Any:
    from agent_runtime_framework.django.store.orm import DjangoMemoryManager
    from tests.journeys import OnboardingAgent

    return OnboardingAgent(llm_client=InstantLLM(), memory=DjangoMemoryManager())


async def _framework_conversation(agent: Any, cid: uuid.UUID) -> float:
    """Seconds per turn for the 3 onboarding turns of one conversation, via the framework."""
    from agent_runtime_framework import AgentContext

    start = time.perf_counter()
    for text in USER_LINES:
        await agent.run(AgentContext.for_message(cid, text))
    return (time.perf_counter() - start) / len(USER_LINES)


# -- floor -------------------------------------------------------------------------------------


class Floor:
    """The same guarantees in raw DB-API calls, on the same tables."""

    def __init__(self, backend: str, database: dict[str, Any]) -> None:
        self.backend = backend
        if backend == "sqlite":
            import sqlite3

            self.conn = sqlite3.connect(database["NAME"], isolation_level=None, timeout=20)
            if NO_FSYNC:
                self.conn.execute("PRAGMA synchronous=OFF")
            self.p = "?"
        else:
            import psycopg

            self.conn = psycopg.connect(
                dbname=database["NAME"],
                user=database["USER"],
                password=database["PASSWORD"],
                host=database["HOST"],
                port=database["PORT"] or 5432,
                autocommit=True,
                **({"options": "-c synchronous_commit=off"} if NO_FSYNC else {}),
            )
            self.p = "%s"

    def _id(self, cid: uuid.UUID) -> Any:
        return cid.hex if self.backend == "sqlite" else cid

    def _now(self, delta: float = 0.0) -> Any:
        import datetime as dt

        value = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delta)
        return value.replace(tzinfo=None).isoformat(" ") if self.backend == "sqlite" else value

    def x(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(sql.replace("?", self.p), params)

    def claim_new(self, cid: Any, token: str) -> None:
        """A new conversation is created already claimed (one INSERT)."""
        self.x(
            "INSERT INTO arf_conversation (id, agent_key, session_key, next_seq, "
            "lease_token, lease_expires_at, created_at, updated_at) "
            "VALUES (?, 'onboarding-agent', '', 0, ?, ?, ?, ?)",
            (cid, token, self._now(120), self._now(), self._now()),
        )

    def _commit(
        self,
        cid: Any,
        token: str,
        messages: list[dict[str, Any]],
        state: dict[str, Any] | None,
        step: str,
        new_turn: int,
        tokens: int,
        complete: bool,
        insert_journey: bool,
        release: bool = False,
    ) -> None:
        now = self._now()
        self.x("BEGIN")
        lease = "lease_token = '', lease_expires_at = NULL" if release else "lease_expires_at = ?"
        lease_params = () if release else (self._now(120),)
        row = self.x(
            "UPDATE arf_conversation SET next_seq = next_seq + ?, updated_at = ?, "
            f"{lease} WHERE id = ? AND lease_token = ? RETURNING next_seq",
            (len(messages), now, *lease_params, cid, token),
        ).fetchone()
        if row is None:
            self.x("ROLLBACK")
            raise RuntimeError("lease lost")
        start = row[0] - len(messages)
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(messages))
        params: list[Any] = []
        for i, m in enumerate(messages):
            params += [
                cid,
                start + i,
                m["role"],
                m.get("content"),
                json.dumps(m["tool_calls"]) if m.get("tool_calls") else None,
                m.get("tool_call_id", ""),
                "",
                "{}",
                now,
            ]
        self.x(
            "INSERT INTO arf_message (conversation_id, seq, role, content, "
            f"tool_calls, tool_call_id, name, metadata, created_at) VALUES {values}",
            params,
        )
        status = "complete" if complete else "active"
        if insert_journey:
            self.x(
                "INSERT INTO arf_journey (conversation_id, agent_key, state, "
                "state_version, step, status, session_key, turns, total_tokens, created_at, "
                "updated_at) VALUES (?, 'onboarding-agent', ?, 1, ?, ?, '', ?, ?, ?, ?)",
                (cid, json.dumps(state), step, status, new_turn, tokens, now, now),
            )
        elif state is not None:
            self.x(
                "UPDATE arf_journey SET state = ?, step = ?, status = ?, "
                "turns = turns + ?, total_tokens = total_tokens + ?, updated_at = ? "
                "WHERE conversation_id = ? AND agent_key = 'onboarding-agent'",
                (json.dumps(state), step, status, new_turn, tokens, now, cid),
            )
        else:
            self.x(
                "UPDATE arf_journey SET turns = turns + ?, "
                "total_tokens = total_tokens + ?, updated_at = ? "
                "WHERE conversation_id = ? AND agent_key = 'onboarding-agent'",
                (new_turn, tokens, now, cid),
            )
        self.x("COMMIT")

    def turn(
        self, cid_uuid: uuid.UUID, text: str, tool: str, arg: str | None, step_after: str, new: bool
    ) -> None:
        cid = self._id(cid_uuid)
        token = uuid.uuid4().hex
        if new:
            self.claim_new(cid, token)
        else:
            claimed = self.x(
                "UPDATE arf_conversation SET lease_token = ?, lease_expires_at = ? "
                "WHERE id = ? AND (lease_token = '' OR lease_expires_at IS NULL "
                "OR lease_expires_at < ?)",
                (token, self._now(120), cid, self._now()),
            ).rowcount
            if not claimed:
                raise RuntimeError("busy")
        row = self.x(
            "SELECT state FROM arf_journey WHERE conversation_id = ? "
            "AND agent_key = 'onboarding-agent'",
            (cid,),
        ).fetchone()
        state = json.loads(row[0]) if row and isinstance(row[0], str) else (row[0] if row else None)
        history = self.x(
            "SELECT role, content, tool_calls, tool_call_id, name FROM "
            "arf_message WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?",
            (cid, HISTORY_WINDOW),
        ).fetchall()
        del history
        if state is None:
            state = {"step": "welcome", "name": "", "email": "", "_version": 1}
        call_id = "call_" + uuid.uuid4().hex[:8]
        arguments = json.dumps(
            {"name": arg} if tool == "save_name" else {"email": arg} if tool == "save_email" else {}
        )
        state = dict(state)
        step_before = str(state.get("step", "welcome"))
        state["step"] = step_after
        if tool == "save_name":
            state["name"] = arg
        elif tool == "save_email":
            state["email"] = arg
        first = row is None
        # The user's message is durable before the model is called (its own transaction,
        # with the journey's turn counter), as the framework guarantees.
        self._commit(
            cid,
            token,
            [{"role": "user", "content": text}],
            {} if first else None,
            step_before,
            1,
            0,
            False,
            insert_journey=first,
        )
        messages = [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": tool, "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "content": "ok", "tool_call_id": call_id},
        ]
        self._commit(
            cid,
            token,
            messages,
            state,
            step_after,
            0,
            0,
            step_after == "complete",
            insert_journey=False,
        )
        # The final reply and the release: one transaction.
        self._commit(
            cid,
            token,
            [{"role": "assistant", "content": "Thanks, noted."}],
            None,
            step_after,
            0,
            30,
            step_after == "complete",
            insert_journey=False,
            release=True,
        )


FLOOR_PLAN = (
    ("start", None, "collect_name"),
    ("save_name", "Ada Lovelace", "collect_email"),
    ("save_email", "ada@example.com", "complete"),
)


def _floor_conversation(floor: Floor, cid: uuid.UUID) -> float:
    """Seconds per turn for the same 3 turns, in raw SQL."""
    start = time.perf_counter()
    for index, (text, (tool, arg, step)) in enumerate(zip(USER_LINES, FLOOR_PLAN, strict=True)):
        floor.turn(cid, text, tool, arg, step, new=index == 0)
    return (time.perf_counter() - start) / len(USER_LINES)


# -- history and size -------------------------------------------------------------------------


def _seed_history(count: int, messages: int) -> list[uuid.UUID]:
    """``count`` conversations that already hold ``messages`` messages each."""
    from agent_runtime_framework.django.models import Conversation, JourneyMessage

    ids = [uuid.uuid4() for _ in range(count)]
    Conversation.objects.bulk_create(
        [Conversation(id=i, agent_key="onboarding-agent", next_seq=messages) for i in ids]
    )
    batch: list[JourneyMessage] = []
    for cid in ids:
        for seq in range(messages):
            role = "user" if seq % 2 == 0 else "assistant"
            batch.append(
                JourneyMessage(
                    conversation_id=cid, seq=seq, role=role, content=f"old message {seq}"
                )
            )
            if len(batch) >= 5000:
                JourneyMessage.objects.bulk_create(batch)
                batch = []
    JourneyMessage.objects.bulk_create(batch)
    return ids


def _db_bytes(backend: str) -> int:
    from django.db import connection

    tables = ["arf_conversation", "arf_journey", "arf_message", "arf_event"]
    with connection.cursor() as cursor:
        if backend == "sqlite":
            cursor.execute("PRAGMA wal_checkpoint")
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute("PRAGMA freelist_count")
            free = cursor.fetchone()[0]
            cursor.execute("PRAGMA page_size")
            return int((pages - free) * cursor.fetchone()[0])
        cursor.execute("VACUUM ANALYZE")
        total = 0
        for table in tables:
            cursor.execute("SELECT pg_total_relation_size(%s)", [table])
            total += int(cursor.fetchone()[0])
        return total


def run_backend(backend: str, conversations: int, rounds: int) -> dict[str, Any]:
    """All figures for one backend. Framework and floor alternate conversation by
    conversation (and small/large histories likewise), so disk and cache drift hit both
    alike; each figure is the median over its conversations."""
    database = _configure(backend)
    from django.db import connection

    from agent_runtime_framework.django.store.db import shutdown_db_threads

    floor = Floor(backend, database)
    agent = _agent()
    total = conversations * rounds

    async def measure() -> tuple[list[float], list[float]]:
        for _ in range(10):  # warm up both paths
            await _framework_conversation(agent, uuid.uuid4())
            _floor_conversation(floor, uuid.uuid4())
        fw, fl = [], []
        for i in range(total):
            if i % 2:
                fw.append(await _framework_conversation(agent, uuid.uuid4()))
                fl.append(_floor_conversation(floor, uuid.uuid4()))
            else:
                fl.append(_floor_conversation(floor, uuid.uuid4()))
                fw.append(await _framework_conversation(agent, uuid.uuid4()))
        return fw, fl

    size_before = _db_bytes(backend)
    gc.collect()
    framework_times, floor_times = asyncio.run(measure())
    size_after = _db_bytes(backend)
    turns_played = 2 * total * len(USER_LINES)

    per_size = max(10, total // 4)
    small = _seed_history(per_size, 10)
    large = _seed_history(per_size, 10_000)

    async def history() -> tuple[list[float], list[float]]:
        s_times, l_times = [], []
        for a, b in zip(small, large, strict=True):
            s_times.append(await _framework_conversation(agent, a))
            l_times.append(await _framework_conversation(agent, b))
        return s_times, l_times

    gc.collect()
    hist_small, hist_large = asyncio.run(history())
    shutdown_db_threads()
    connection.close()
    fw = statistics.median(framework_times)
    fl = statistics.median(floor_times)
    hs = statistics.median(hist_small)
    hl = statistics.median(hist_large)
    return {
        "backend": backend,
        "framework_ms": fw * 1000,
        "floor_ms": fl * 1000,
        "ratio": fw / fl,
        "history10_ms": hs * 1000,
        "history10k_ms": hl * 1000,
        "history_ratio": hl / hs,
        "bytes_per_1000_turns": (size_after - size_before) / turns_played * 1000,
        "turns": turns_played,
    }


def _drop_pg_db() -> None:
    import psycopg

    from agent_runtime_framework.django.dburl import database_from_url

    admin = database_from_url(os.environ.get("DATABASE_URL") or PG_DEFAULT)
    with psycopg.connect(
        dbname=admin["NAME"],
        user=admin["USER"],
        password=admin["PASSWORD"],
        host=admin["HOST"],
        port=admin["PORT"] or 5432,
        autocommit=True,
    ) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_BENCH_DB}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="Both paths commit without flushing to disk (isolates CPU and round-trip cost).",
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.no_fsync:
        os.environ["BENCH_NO_FSYNC"] = "1"
    if args.backend:
        print(json.dumps(run_backend(args.backend, args.conversations, args.rounds)))
        return

    results: dict[str, dict[str, Any] | str] = {}
    for backend in ("sqlite", "postgres"):
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--backend",
                backend,
                "--conversations",
                str(args.conversations),
                "--rounds",
                str(args.rounds),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if proc.returncode:
            results[backend] = "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
        else:
            results[backend] = json.loads(proc.stdout.strip().splitlines()[-1])
        if backend == "postgres":
            try:
                _drop_pg_db()
            except Exception as exc:  # the server may be down: nothing to drop
                print(f"(could not drop {PG_BENCH_DB}: {exc})")

    mode = "no fsync" if os.environ.get("BENCH_NO_FSYNC") == "1" else "durable commits"
    print(
        f"Onboarding turns with ORM persistence, {mode} ({args.conversations * args.rounds} "
        "conversations x 3 turns per path, interleaved; medians; "
        f"history window {HISTORY_WINDOW})"
    )
    rows = [
        ("framework per turn (ms)", "framework_ms", "{:.3f}"),
        ("raw SQL floor per turn (ms)", "floor_ms", "{:.3f}"),
        ("framework / floor (target <= 1.5)", "ratio", "{:.2f}"),
        ("turn at 10 msgs history (ms)", "history10_ms", "{:.3f}"),
        ("turn at 10,000 msgs history (ms)", "history10k_ms", "{:.3f}"),
        ("10,000 / 10 (target <= 1.2)", "history_ratio", "{:.2f}"),
        ("DB bytes per 1,000 turns", "bytes_per_1000_turns", "{:,.0f}"),
    ]
    print(f"{'':38} {'SQLite':>14} {'PostgreSQL':>14}")
    for label, key, fmt in rows:
        cells = []
        for backend in ("sqlite", "postgres"):
            result = results[backend]
            cells.append(fmt.format(result[key]) if isinstance(result, dict) else "-")
        print(f"{label:38} {cells[0]:>14} {cells[1]:>14}")
    for backend, result in results.items():
        if not isinstance(result, dict):
            print(f"{backend}: {result}")


if __name__ == "__main__":
    main()
